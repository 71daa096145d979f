"""Check runs: their own cap, outside the submission limits, never on a board, a ranking or a cut."""
from __future__ import annotations

from datetime import timedelta

import pytest

from challenges import leaderboard, submissions
from challenges.datasets import write_generated
from hub.errors import DomainError
from hub.models import Role, utcnow
from hub.users import issue_api_token
from tests.factories import login, make_approved_team, make_open_challenge, make_scored_submission, make_user


@pytest.fixture
def arena(session, data_dir):  # type: ignore[no-untyped-def]
    """An open challenge whose running phase has a public sample, a tight daily limit, and one approved team."""
    oc = make_open_challenge(session, data_dir, phases=[{"per_day_limit": 1, "total_limit": 1,
                                                         "concurrent_limit": 1}])
    phase = oc.phases[0]
    write_generated(session, oc.gov, oc.challenge, phase.split, "id,x\n1,2\n2,4\n", "id,value\n1,1.5\n2,3\n",
                    str(data_dir), sample_inputs="id,x\ns1,1\n", sample_truth="id,value\ns1,0.5\n")
    team = make_approved_team(session, oc.challenge, oc.gov, name="检查队")
    return oc, phase, team


def _create(session, team, phase, kind: str = "check", **kw):  # type: ignore[no-untyped-def]
    return submissions.create_submission(session, team_id=team.team.id, phase_id=phase.id,
                                         user_id=team.users[0].id, image_source="registry",
                                         image_ref="registry.local/t/m@sha256:" + "c" * 64,
                                         image_id="sha256:" + "c" * 64, kind=kind, **kw)


def test_check_runs_do_not_use_up_the_submission_limits(session, arena):
    oc, phase, team = arena
    check = _create(session, team, phase)
    assert check.kind == "check"
    assert submissions.usage(session, oc.challenge, team.team.id, phase) == {"total": 0, "today": 0, "running": 0}
    # With a check run in flight, the team still has its one submission slot of the day.
    real = _create(session, team, phase, kind="submission")
    assert real.kind == "submission"
    with pytest.raises(DomainError) as err:
        _create(session, team, phase, kind="submission")
    assert err.value.code == "concurrent_limit"


def test_check_runs_have_their_own_cap(session, arena):
    _oc, phase, team = arena

    def end(sub, outcome: str, counted: bool = True) -> None:  # type: ignore[no-untyped-def]
        sub.status, sub.outcome, sub.counts_against_limit = "failed", outcome, counted
        session.add(sub)
        session.commit()

    first = _create(session, team, phase, check_runs_per_day=2)
    with pytest.raises(DomainError) as err:
        _create(session, team, phase, check_runs_per_day=2)
    assert err.value.code == "check_running"                  # one at a time
    end(first, "nonzero_exit")
    second = _create(session, team, phase, check_runs_per_day=2)
    end(second, "bad_output")
    with pytest.raises(DomainError) as err:
        _create(session, team, phase, check_runs_per_day=2)
    assert err.value.code == "check_limit" and "(UTC+8)" in str(err.value)
    end(second, "infra_error", counted=False)                  # the platform's own failures never count
    assert _create(session, team, phase, check_runs_per_day=2).kind == "check"


def test_a_phase_without_a_public_sample_refuses_check_runs(session, data_dir):
    oc = make_open_challenge(session, data_dir)
    team = make_approved_team(session, oc.challenge, oc.gov)
    with pytest.raises(DomainError) as err:
        _create(session, team, oc.phases[0])
    assert err.value.code == "no_sample"


def test_the_api_refuses_a_check_run_without_a_sample_in_chinese(app, session, data_dir):
    oc = make_open_challenge(session, data_dir)
    team = make_approved_team(session, oc.challenge, oc.gov)
    token = issue_api_token(session, team.users[0])
    session.commit()
    resp = app.test_client().post(f"/api/v1/challenges/{oc.challenge.slug}/submissions?kind=check",
                                  headers={"Authorization": f"Bearer {token}"},
                                  json={"image": "registry.local:5000/t/m:v1"})
    assert resp.status_code in (400, 409, 422), resp.get_data(as_text=True)
    error = resp.get_json()["error"]
    assert error["code"] == "no_sample" and "没有公开样例数据" in error["message"]
    assert not session.exec(submissions.select(submissions.Submission)).first()
    page = app.test_client()
    login(page, team.users[0])
    html = page.get(f"/challenges/{oc.challenge.slug}/submit?kind=check").get_data(as_text=True)
    assert 'id="check-run-intro"' in html and "没有公开样例数据" in html


def test_a_check_run_never_reaches_the_board_the_ranking_or_the_cut(session, arena):
    oc, phase, team = arena
    rival = make_approved_team(session, oc.challenge, oc.gov, name="对手队")
    at = utcnow() - timedelta(minutes=5)
    # Even a check row that (wrongly) carried a primary score better than everyone's stays off.
    make_scored_submission(session, team.team, phase, 0.01, at=at, kind="check")
    make_scored_submission(session, rival.team, phase, 9.0, at=at)
    judge = make_user(session, Role.ADMIN)
    for viewer in (None, judge, team.users[0]):
        board = leaderboard.build(session, phase.id, viewer=viewer)
        assert [r.team_name for r in board.teams] == ["对手队"]
    assert leaderboard.team_scores(session, oc.challenge, phase) == {rival.team.id: 9.0}
    assert "检查队" not in leaderboard.to_csv(leaderboard.build(session, phase.id, viewer=judge))
