"""Cached leaderboards: no viewer ever gets another's view, and every change shows on the very next request."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from challenges import judging, leaderboard, phases
from challenges.models import Phase, Submission, SubmissionStatus
from evaluator import state
from hub.models import Role, utcnow
from tests.factories import login, make_approved_team, make_open_challenge, make_scored_submission, make_user


@pytest.fixture
def board(session, data_dir):  # type: ignore[no-untyped-def]
    oc = make_open_challenge(session, data_dir)
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    b = make_approved_team(session, oc.challenge, oc.gov, name="乙队")
    t0 = oc.phases[0].starts_at
    make_scored_submission(session, a.team, oc.phases[0], 2.0, at=t0 + timedelta(hours=1))
    make_scored_submission(session, b.team, oc.phases[0], 3.0, at=t0 + timedelta(hours=2))
    return oc, a, b


def _api(client, oc):  # type: ignore[no-untyped-def]
    resp = client.get(f"/api/v1/challenges/{oc.challenge.slug}/leaderboard")
    assert resp.status_code == 200
    return resp.get_json()


def _rows(body):  # type: ignore[no-untyped-def]
    return [(r["team"], r["score"], r["own"]) for r in body["rows"]]


def _page(client, oc) -> str:  # type: ignore[no-untyped-def]
    resp = client.get(f"/challenges/{oc.challenge.slug}/leaderboard")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def test_a_team_never_gets_another_teams_cached_view(app, session, board):
    oc, a, b = board
    anonymous = app.test_client()
    assert _rows(_api(anonymous, oc)) == [("甲队", 2.0, False), ("乙队", 3.0, False)]
    assert "你的队伍" not in _page(anonymous, oc) and "your team" not in _page(anonymous, oc)
    clients = {}
    for name, team in (("甲队", a), ("乙队", b)):
        clients[name] = app.test_client()
        login(clients[name], team.users[0])
        _api(clients[name], oc)  # warms this viewer's entries
        _page(clients[name], oc)
    for _round in range(2):  # the second round is served from the caches
        for name, team in (("甲队", a), ("乙队", b)):
            rows = _rows(_api(clients[name], oc))
            assert [own for _n, _s, own in rows] == [n == name for n, _s, _o in rows]
            page = _page(clients[name], oc)
            assert page.count("ch-own") == 1
            own_row = page[page.index("ch-own"):].split("</tr>", 1)[0]
            assert name in own_row
        assert _rows(_api(anonymous, oc)) == [("甲队", 2.0, False), ("乙队", 3.0, False)]
        assert "ch-own" not in _page(anonymous, oc)


def test_the_token_and_the_cookie_of_two_teams_stay_apart(app, session, board):
    from hub.users import issue_api_token

    oc, a, b = board
    tokens = {}
    for name, team in (("甲队", a), ("乙队", b)):
        tokens[name] = issue_api_token(session, team.users[0])
    session.commit()
    client = app.test_client()
    for _round in range(2):
        for name in ("甲队", "乙队"):
            body = client.get(f"/api/v1/challenges/{oc.challenge.slug}/leaderboard",
                              headers={"Authorization": f"Bearer {tokens[name]}"}).get_json()
            assert [r["team"] for r in body["rows"] if r["own"]] == [name]


def test_a_newly_scored_submission_shows_on_the_very_next_request(app, session, board):
    oc, a, b = board
    client = app.test_client()
    assert _rows(_api(client, oc))[0] == ("甲队", 2.0, False)
    assert "1.5" not in _page(client, oc)
    # The evaluator scores through its own compare-and-set (a Core UPDATE, another session, no ORM flush).
    sub = make_scored_submission(session, b.team, oc.phases[0], 0, status="running", outcome=None, attempt=1)
    assert _rows(_api(client, oc))[0] == ("甲队", 2.0, False)
    result = state.Result(status=SubmissionStatus.SCORED, outcome="scored", scores={"rmse": 1.5}, primary_score=1.5)
    assert state.finish(session, sub.id, 1, result)
    assert _rows(_api(client, oc))[0] == ("乙队", 1.5, False)
    assert "1.5" in _page(client, oc)


def test_disqualification_and_sql_by_hand_show_at_once(app, session, board, engine):
    oc, a, b = board
    client = app.test_client()
    assert [r[0] for r in _rows(_api(client, oc))] == ["甲队", "乙队"]
    judging.disqualify_team(session, oc.gov, oc.challenge, a.team.id, "抄袭")
    assert [r[0] for r in _rows(_api(client, oc))] == ["乙队"]
    assert "甲队" not in _page(client, oc)
    # Even SQL written by hand (no service, no ORM) is seen: the version comes from the database itself.
    with engine.begin() as conn:
        conn.execute(update(Submission).where(Submission.team_id == b.team.id).values(primary_score=9.0))
    assert _rows(_api(client, oc)) == [("乙队", 9.0, False)]


def test_reveal_takes_effect_on_the_next_request(app, session, data_dir):
    oc = make_open_challenge(session, data_dir, phases=[{"scores_visible": "reveal"}])
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    make_scored_submission(session, a.team, oc.phases[0], 2.0)
    client = app.test_client()
    assert _api(client, oc)["hidden"] is True and _api(client, oc)["rows"] == []
    assert "hidden-note" in _page(client, oc)
    organiser = app.test_client()
    login(organiser, oc.gov)
    assert _api(organiser, oc)["private_view"] is True and _rows(_api(organiser, oc)) == [("甲队", 2.0, False)]
    phases.reveal(session, oc.gov, oc.challenge, oc.phases[0])
    body = _api(client, oc)
    assert body["hidden"] is False and _rows(body) == [("甲队", 2.0, False)]
    assert "hidden-note" not in _page(client, oc)


def _freeze_setup(session, data_dir, freeze_at):  # type: ignore[no-untyped-def]
    oc = make_open_challenge(session, data_dir)
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    b = make_approved_team(session, oc.challenge, oc.gov, name="乙队")
    phase = oc.phases[0]
    make_scored_submission(session, a.team, phase, 2.0, at=phase.starts_at + timedelta(minutes=1))
    make_scored_submission(session, b.team, phase, 3.0, at=phase.starts_at + timedelta(minutes=2))
    return oc, a, b, phase


def test_freeze_set_by_the_organiser_applies_at_once(app, session, data_dir):
    oc, a, b, phase = _freeze_setup(session, data_dir, None)
    make_scored_submission(session, b.team, phase, 1.0)  # now: after the freeze that comes next
    client = app.test_client()
    assert _rows(_api(client, oc))[0] == ("乙队", 1.0, False)
    phases.update_phase(session, oc.gov, oc.challenge, phase, freeze_at=utcnow() - timedelta(seconds=30))
    body = _api(client, oc)
    assert body["frozen"] is True and _rows(body)[0] == ("甲队", 2.0, False)
    assert "frozen-note" in _page(client, oc)
    team_b = app.test_client()
    login(team_b, b.users[0])
    mine = _api(team_b, oc)  # the frozen board still shows a team its own newer score
    assert [(r["team"], r["score"], r["after_freeze"]) for r in mine["rows"] if r["own"]] == [("乙队", 1.0, True)]
    assert _rows(_api(client, oc))[0] == ("甲队", 2.0, False)


def test_time_based_freeze_applies_when_freeze_at_passes(app, session, data_dir):
    """No write happens at freeze_at: the cached board must still stop moving then (nothing is timed here)."""
    oc, a, b, phase = _freeze_setup(session, data_dir, None)
    freeze_at = utcnow() + timedelta(seconds=1)
    session.get(Phase, phase.id).freeze_at = freeze_at
    session.commit()
    make_scored_submission(session, b.team, phase, 1.0, at=freeze_at + timedelta(seconds=1))  # scored after it
    client = app.test_client()
    before = _api(client, oc)
    page_before = _page(client, oc)
    assert before["frozen"] is False and _rows(before)[0] == ("乙队", 1.0, False) and "frozen-note" not in page_before
    assert _api(client, oc) == before  # served from the cache while the clock has not reached freeze_at
    while utcnow() <= freeze_at:
        time.sleep(0.05)
    after = _api(client, oc)
    assert after["frozen"] is True and _rows(after)[0] == ("甲队", 2.0, False)
    assert "frozen-note" in _page(client, oc)


def test_service_boards_follow_the_clock_and_the_viewer(session, data_dir):
    oc, a, b, phase = _freeze_setup(session, data_dir, None)
    freeze_at = phase.starts_at + timedelta(hours=1)
    session.get(Phase, phase.id).freeze_at = freeze_at
    session.commit()
    make_scored_submission(session, b.team, phase, 1.0, at=freeze_at + timedelta(minutes=5))
    challenge = oc.challenge
    early = leaderboard.cached_build(session, challenge, phase, viewer=None, now=freeze_at - timedelta(minutes=1))
    late = leaderboard.cached_build(session, challenge, phase, viewer=None, now=freeze_at + timedelta(minutes=10))
    own = leaderboard.cached_build(session, challenge, phase, viewer=b.users[0], now=freeze_at + timedelta(minutes=10))
    assert [(r.team_name, r.primary_score) for r in early.rows][0] == ("乙队", 1.0) and not early.frozen
    assert [(r.team_name, r.primary_score) for r in late.rows][0] == ("甲队", 2.0) and late.frozen
    assert [(r.team_name, r.primary_score, r.after_freeze) for r in own.rows if r.own] == [("乙队", 1.0, True)]
    assert leaderboard.clock_changes([phase], freeze_at - timedelta(minutes=1)) == freeze_at
    # A judge sees the live board; another judge of no panel does not.
    judge = make_user(session, Role.JUDGE)
    judging.assign_judge(session, oc.gov, challenge, judge.id)
    outsider = make_user(session, Role.JUDGE)
    now = freeze_at + timedelta(minutes=10)
    assert leaderboard.cached_build(session, challenge, phase, viewer=judge, now=now).private_view is True
    seen = leaderboard.cached_build(session, challenge, phase, viewer=outsider, now=now)
    assert seen.private_view is False and seen.rows[0].team_name == "甲队"


def test_uncommitted_changes_are_never_shared(session, board, engine):
    from sqlmodel import Session

    oc, a, b = board
    phase = oc.phases[0]
    public = leaderboard.cached_build(session, oc.challenge, phase, viewer=None)
    with Session(engine, expire_on_commit=False) as writer:
        writer.execute(update(Submission).where(Submission.team_id == a.team.id).values(primary_score=99.0))
        mine = leaderboard.cached_build(writer, oc.challenge, phase, viewer=None)
        assert [r.primary_score for r in mine.rows] == [3.0, 99.0]
        writer.rollback()
    again = leaderboard.cached_build(session, oc.challenge, phase, viewer=None)
    assert [r.primary_score for r in again.rows] == [r.primary_score for r in public.rows] == [2.0, 3.0]
