"""Leaderboards: best/latest per team, direction, ties, baselines, disqualification, freeze, reveal, CSV, chart."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from challenges import charts, leaderboard
from challenges.models import Baseline
from hub.models import Role
from tests.factories import make_approved_team, make_open_challenge, make_scored_submission, make_user


def _names(board):  # type: ignore[no-untyped-def]
    return [(r.team_name, r.primary_score) for r in board.rows]


@pytest.fixture
def board_setup(session, data_dir):  # type: ignore[no-untyped-def]
    oc = make_open_challenge(session, data_dir, extra_metrics=["mae"])
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    b = make_approved_team(session, oc.challenge, oc.gov, name="乙队")
    return oc, a, b


def test_best_submission_per_team_ordered_by_direction_with_baseline(session, board_setup):
    oc, a, b = board_setup
    phase, t0 = oc.phases[0], oc.phases[0].starts_at
    make_scored_submission(session, a.team, phase, 3.0, at=t0 + timedelta(hours=1), scores={"rmse": 3.0, "mae": 2.0})
    make_scored_submission(session, a.team, phase, 1.0, at=t0 + timedelta(hours=2), scores={"rmse": 1.0, "mae": 0.8})
    make_scored_submission(session, b.team, phase, 2.0, at=t0 + timedelta(hours=3), scores={"rmse": 2.0, "mae": 1.1})
    make_scored_submission(session, b.team, phase, 0, status="failed", outcome="bad_output", at=t0)
    session.add(Baseline(phase_id=phase.id, label="基线", primary_score=2.5, scores={"rmse": 2.5, "mae": 2.0}))
    session.commit()
    board = leaderboard.build(session, phase.id, viewer=None)
    assert _names(board) == [("甲队", 1.0), ("乙队", 2.0), ("基线", 2.5)]
    assert [r.rank for r in board.rows] == [1, 2, None]
    assert [m.key for m in board.metrics] == ["rmse", "mae"]
    assert board.rows[0].scores == {"rmse": 1.0, "mae": 0.8}
    # Higher is better for a max metric: each team's best is now its highest score.
    oc.challenge.metric = "accuracy"
    session.add(oc.challenge)
    session.commit()
    assert _names(leaderboard.build(session, phase.id, viewer=None)) == [("甲队", 3.0), ("基线", 2.5), ("乙队", 2.0)]


def test_latest_mode_and_ties_go_to_the_earlier_submission(session, board_setup):
    oc, a, b = board_setup
    phase, t0 = oc.phases[0], oc.phases[0].starts_at
    make_scored_submission(session, a.team, phase, 1.0, at=t0 + timedelta(hours=2))
    make_scored_submission(session, b.team, phase, 1.0, at=t0 + timedelta(hours=1))
    assert [n for n, _s in _names(leaderboard.build(session, phase.id, viewer=None))] == ["乙队", "甲队"]
    make_scored_submission(session, b.team, phase, 5.0, at=t0 + timedelta(hours=3))
    oc.challenge.leaderboard_mode = "latest"
    session.add(oc.challenge)
    session.commit()
    assert _names(leaderboard.build(session, phase.id, viewer=None)) == [("甲队", 1.0), ("乙队", 5.0)]


def test_disqualified_submissions_and_teams_are_excluded(session, board_setup):
    from challenges import judging

    oc, a, b = board_setup
    phase = oc.phases[0]
    best = make_scored_submission(session, a.team, phase, 0.5)
    make_scored_submission(session, a.team, phase, 1.5)
    make_scored_submission(session, b.team, phase, 1.0)
    judging.disqualify_submission(session, oc.gov, best, "使用了测试集标签")
    assert _names(leaderboard.build(session, phase.id, viewer=None)) == [("乙队", 1.0), ("甲队", 1.5)]
    judging.disqualify_team(session, oc.gov, oc.challenge, b.team.id, "代码抄袭")
    assert _names(leaderboard.build(session, phase.id, viewer=None)) == [("甲队", 1.5)]


def test_frozen_public_board_stops_but_a_team_still_sees_its_own_newer_score(session, data_dir):
    from hub.models import utcnow

    now = utcnow()
    oc = make_open_challenge(session, data_dir, phases=[{"freeze_at": now - timedelta(hours=1)}])
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    b = make_approved_team(session, oc.challenge, oc.gov, name="乙队")
    phase = oc.phases[0]
    make_scored_submission(session, a.team, phase, 2.0, at=now - timedelta(hours=3))
    make_scored_submission(session, b.team, phase, 3.0, at=now - timedelta(hours=2))
    make_scored_submission(session, b.team, phase, 1.0, at=now - timedelta(minutes=30))  # after the freeze
    public = leaderboard.build(session, phase.id, viewer=None)
    assert public.frozen and _names(public) == [("甲队", 2.0), ("乙队", 3.0)]
    own = leaderboard.build(session, phase.id, viewer=b.users[0])
    mine = [r for r in own.rows if r.own][0]
    assert (mine.primary_score, mine.after_freeze) == (1.0, True)
    assert [r.primary_score for r in own.rows if not r.own] == [2.0]
    assert _names(leaderboard.build(session, phase.id, viewer=oc.gov))[0] == ("乙队", 1.0)  # organisers: live


def test_private_board_is_hidden_until_revealed_except_for_privileged(session, data_dir):
    from challenges import judging, phases

    oc = make_open_challenge(session, data_dir, phases=[{"scores_visible": "reveal"}])
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    phase = oc.phases[0]
    make_scored_submission(session, a.team, phase, 2.0)
    judge = make_user(session, Role.JUDGE)
    judging.assign_judge(session, oc.gov, oc.challenge, judge.id)
    for viewer in (None, a.users[0], make_user(session, Role.JUDGE), make_user(session, Role.GOV)):
        board = leaderboard.build(session, phase.id, viewer=viewer)
        assert board.hidden and board.rows == []
    for viewer in (judge, oc.gov, make_user(session, Role.ADMIN)):
        assert _names(leaderboard.build(session, phase.id, viewer=viewer)) == [("甲队", 2.0)]
    phases.reveal(session, oc.gov, oc.challenge, phase)
    assert _names(leaderboard.build(session, phase.id, viewer=None)) == [("甲队", 2.0)]


def test_one_sql_query_builds_a_board(session, engine, board_setup):
    oc, a, b = board_setup
    phase = oc.phases[0]
    for i in range(5):
        make_scored_submission(session, a.team, phase, float(i))
        make_scored_submission(session, b.team, phase, float(i) + 0.5)
    challenge = oc.challenge  # held, as a page holds it after looking it up by slug  # noqa: F841
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        board = leaderboard.build(session, phase.id, viewer=a.users[0])
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(board.rows) == 2
    assert len(statements) == 1, statements


def test_csv_export_and_svg_chart(session, board_setup):
    oc, a, b = board_setup
    phase, t0 = oc.phases[0], oc.phases[0].starts_at
    make_scored_submission(session, a.team, phase, 3.0, at=t0 + timedelta(hours=1), scores={"rmse": 3.0, "mae": 2})
    make_scored_submission(session, a.team, phase, 1.0, at=t0 + timedelta(hours=5), scores={"rmse": 1.0, "mae": 1})
    make_scored_submission(session, a.team, phase, 4.0, at=t0 + timedelta(hours=6), scores={"rmse": 4.0, "mae": 3})
    board = leaderboard.build(session, phase.id, viewer=None)
    lines = leaderboard.to_csv(board).splitlines()
    assert lines[0] == "rank,team,rmse,mae,submission_id,submitted_at_utc"
    assert lines[1].startswith("1,甲队,1,1,")
    series = leaderboard.score_history(session, board)
    assert [v for _t, v in series["甲队"]] == [3.0, 1.0]  # the running best, not every score
    svg = charts.best_over_time_svg(series, "最佳成绩", "暂无")
    assert svg.startswith("<svg") and "<polyline" in svg and "甲队" in svg and "<script" not in svg
    assert "暂无" in charts.best_over_time_svg({}, "t", "暂无")
