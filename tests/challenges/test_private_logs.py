"""Logs of runs on hidden data: withheld from the team on every path (page, API, live tail), still read by the
judges, the organisers and the admin; a public phase's and a check run's log stay the team's to read."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from challenges import judging, submissions
from hub.models import Role
from tests.factories import login, make_approved_team, make_open_challenge, make_scored_submission, make_user

MARKER = "HIDDEN-INPUT-ROW-7f3a9c"        # what a run printed from the private split's /input
PUBLIC_LOG = "PUBLIC-PHASE-LOG-41d2"
SAMPLE_LOG = "SAMPLE-INPUT-LOG-0be5"


@pytest.fixture
def world(session, data_dir):  # type: ignore[no-untyped-def]
    oc = make_open_challenge(session, data_dir, phases=[
        {"split": "public", "days": (-0.9, 5)},
        {"split": "private", "scores_visible": "reveal", "days": (5.1, 10)}])
    public, private = oc.phases
    own = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    other = make_approved_team(session, oc.challenge, oc.gov, name="乙队")
    judge, conflicted = make_user(session, Role.JUDGE), make_user(session, Role.JUDGE)
    for j in (judge, conflicted):
        judging.assign_judge(session, oc.gov, oc.challenge, j.id)
    judging.declare_conflict(session, conflicted, oc.challenge, own.team.id, "亲属关系")
    hidden = make_scored_submission(session, own.team, private, 0.5, log_excerpt=f"reading /input\n{MARKER}\n",
                                    status="failed", outcome="nonzero_exit", exit_code=3, runtime_s=2.5,
                                    reason="The container exited with code 3.")
    open_run = make_scored_submission(session, own.team, public, 0.25, log_excerpt=f"{PUBLIC_LOG}\n")
    check = make_scored_submission(session, own.team, private, 0.75, kind="check", scores={"rmse": 0.75},
                                   log_excerpt=f"{SAMPLE_LOG}\n")
    return SimpleNamespace(oc=oc, public=public, private=private, own=own, other=other, judge=judge,
                           conflicted=conflicted, hidden=hidden, open_run=open_run, check=check,
                           admin=make_user(session, Role.ADMIN))


def _client(app, user):  # type: ignore[no-untyped-def]
    client = app.test_client()
    login(client, user)
    return client


def _all_paths(client, sub_id: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"page": client.get(f"/submissions/{sub_id}").get_data(as_text=True),
            "api": client.get(f"/api/v1/submissions/{sub_id}").get_data(as_text=True),
            "tail": client.get(f"/api/v1/submissions/{sub_id}/log").get_data(as_text=True)}


def test_a_team_never_reads_the_log_of_its_run_on_hidden_data(app, world):
    team = _client(app, world.own.users[0])
    answers = _all_paths(team, world.hidden.id)
    for path, body in answers.items():
        assert MARKER not in body, path

    page = team.get(f"/submissions/{world.hidden.id}", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert 'id="log-withheld"' in page and "只向评审专家和主办方显示" in page
    assert "The container exited with code 3." in page          # the reason and the exit code stay
    assert "<dd>3</dd>" in page and "2.5 s" in page
    body = team.get(f"/api/v1/submissions/{world.hidden.id}").get_json()
    assert body["log_excerpt"] == "" and body["log_withheld"] is True and body["log_withheld_text"]
    assert (body["outcome"], body["exit_code"], body["runtime_s"]) == ("nonzero_exit", 3, 2.5)
    tail = team.get(f"/api/v1/submissions/{world.hidden.id}/log").get_json()
    assert tail["log"] == "" and tail["log_withheld"] is True and tail["reason"] and tail["done"]


def test_judges_organisers_and_the_admin_still_read_it(app, world):
    for user in (world.judge, world.oc.gov, world.admin):
        answers = _all_paths(_client(app, user), world.hidden.id)
        assert all(MARKER in body for body in answers.values()), user.role
    # A judge who declared a conflict with the team does not see its submissions at all.
    conflicted = _client(app, world.conflicted)
    assert conflicted.get(f"/api/v1/submissions/{world.hidden.id}/log").status_code == 404
    assert MARKER not in conflicted.get(f"/submissions/{world.hidden.id}").get_data(as_text=True)
    # Another team does not either.
    other = _client(app, world.other.users[0])
    assert all(MARKER not in body for body in _all_paths(other, world.hidden.id).values())


@pytest.mark.redis
def test_the_live_tail_of_a_running_private_run_is_withheld_too(app_config, session, world, redis_url, redis_conn):
    from app import create_app
    from evaluator import queues

    run = world.hidden
    run.status, run.outcome, run.attempt, run.log_excerpt = "running", None, 1, ""
    session.add(run)
    session.commit()
    queues.set_live_log(redis_conn, run.id, 1, f"epoch 1\n{MARKER}\n".encode())
    app = create_app({**app_config, "REDIS_URL": redis_url})

    tail = _client(app, world.own.users[0]).get(f"/api/v1/submissions/{run.id}/log")
    assert tail.status_code == 200 and MARKER not in tail.get_data(as_text=True)
    assert tail.get_json()["status"] == "running" and tail.get_json()["log_withheld"] is True
    page = _client(app, world.own.users[0]).get(f"/submissions/{run.id}").get_data(as_text=True)
    assert 'data-withheld="1"' in page    # the page polls for the status only
    assert MARKER in _client(app, world.judge).get(f"/api/v1/submissions/{run.id}/log").get_json()["log"]


def test_a_public_phase_log_and_a_check_run_log_stay_the_teams(app, world):
    team = _client(app, world.own.users[0])
    for sub, text in ((world.open_run, PUBLIC_LOG), (world.check, SAMPLE_LOG)):
        answers = _all_paths(team, sub.id)
        assert all(text in body for body in answers.values()), sub.kind
    # A check run's sample scores are no secret, even on a phase whose board waits for the reveal.
    body = team.get(f"/api/v1/submissions/{world.check.id}").get_json()
    assert body["kind"] == "check" and body["scores"] == {"rmse": 0.75}
    page = team.get(f"/submissions/{world.check.id}").get_data(as_text=True)
    assert 'id="check-run-badge"' in page and 'id="scores"' in page


def test_a_public_board_on_the_private_split_hides_its_inputs_as_well(session, world):
    """The split decides what /input held: a phase on the same split as a private phase withholds its logs."""
    assert not submissions.run_has_hidden_inputs(session, world.open_run, world.public)
    assert submissions.run_has_hidden_inputs(session, world.hidden, world.private)
    assert not submissions.run_has_hidden_inputs(session, world.check, world.private)
    world.public.split = "private"
    session.add(world.public)
    session.commit()
    assert submissions.run_has_hidden_inputs(session, world.open_run, world.public)


def test_a_reason_never_carries_back_what_a_hidden_run_read(app, session, world):
    """A run on hidden data could write its inputs as ids (or make its scorer print them) and read them back in
    the reason: the team's reason keeps the sentence and the counts, not the quoted values."""
    smuggled = "SMUGGLED-INPUT-b41e"
    bad = make_scored_submission(
        session, world.own.team, world.private, 0.0, status="failed", outcome="bad_output",
        reason=f"Some ids are not in the test set (3 in all), first: '{smuggled}-1', \"{smuggled}-2\".")
    scorer = make_scored_submission(
        session, world.own.team, world.private, 0.0, status="failed", outcome="bad_output",
        reason=f"The organiser's scorer refused the predictions: row 7 {smuggled}")
    team = _client(app, world.own.users[0])
    for sub in (bad, scorer):
        for path, body in _all_paths(team, sub.id).items():
            assert smuggled not in body, path
    page = team.get(f"/submissions/{bad.id}").get_data(as_text=True)
    assert "Some ids are not in the test set (3 in all), first: &#39;…&#39;, &#39;…&#39;." in page
    assert team.get(f"/api/v1/submissions/{scorer.id}").get_json()["reason"] == (
        "The organiser's scorer refused the predictions (its words are kept with the log).")
    judge = _client(app, world.judge)
    assert smuggled in judge.get(f"/api/v1/submissions/{bad.id}").get_json()["reason"]
    # A check run's or a public phase's reason is the team's in full.
    public = make_scored_submission(session, world.own.team, world.public, 0.0, status="failed",
                                    outcome="bad_output", reason=f"first: '{smuggled}'")
    assert smuggled in team.get(f"/api/v1/submissions/{public.id}").get_json()["reason"]
