"""A settled run reaches challenges once, through signals: the contract locks and submission_finished goes out."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from blinker import Signal

from challenges import challenges, judging, phases, runs
from challenges.models import Challenge, Outcome, SubmissionStatus
from challenges.signals import phase_ended, submission_finished, winner_announced
from evaluator import state
from hub.models import Role, utcnow
from tests.factories import make_approved_team, make_open_challenge, make_scored_submission, make_user


@contextmanager
def caught(signal: Signal) -> Iterator[list[dict[str, Any]]]:
    got: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        got.append(kwargs)

    signal.connect(receiver)
    try:
        yield got
    finally:
        signal.disconnect(receiver)


def test_owner_references_round_trip() -> None:
    assert runs.submission_of(runs.owner_of(42)) == 42
    assert runs.submission_of("scoring:42") is None and runs.submission_of("submission:x") is None


def test_the_first_score_locks_the_contract_in_the_same_commit_and_is_announced_once(session, open_challenge):
    c = open_challenge.challenge
    team = make_approved_team(session, c, open_challenge.gov).team
    sub = make_scored_submission(session, team, open_challenge.phases[0], 0, status="running", outcome=None,
                                 attempt=1)
    assert session.get(Challenge, c.id).metric_locked_at is None
    result = state.Result(status=SubmissionStatus.SCORED, outcome=Outcome.SCORED, scores={"rmse": 1.5},
                          primary_score=1.5)
    with caught(submission_finished) as got:
        assert state.finish(session, sub.id, 1, result)
        assert not state.finish(session, sub.id, 1, result)       # a second delivery changes nothing
    session.expire_all()
    assert session.get(Challenge, c.id).metric_locked_at is not None
    assert [(g["submission_id"], g["status"], g["outcome"], g["primary_score"]) for g in got] == \
        [(sub.id, "scored", "scored", 1.5)]


def test_a_failure_or_a_cancellation_is_announced_but_locks_nothing(session, open_challenge):
    c = open_challenge.challenge
    team = make_approved_team(session, c, open_challenge.gov).team
    failing = make_scored_submission(session, team, open_challenge.phases[0], 0, status="running", outcome=None,
                                     attempt=1)
    waiting = make_scored_submission(session, team, open_challenge.phases[0], 0, status="queued", outcome=None)
    with caught(submission_finished) as got:
        assert state.fail(session, failing.id, Outcome.INFRA_ERROR, "engine gone", attempt=1)
        state.cancel(session, waiting.id, "operator")
    session.expire_all()
    assert session.get(Challenge, c.id).metric_locked_at is None
    assert [(g["submission_id"], g["outcome"]) for g in got] == [(failing.id, "infra_error"),
                                                                 (waiting.id, "cancelled")]


def test_a_phase_that_ended_is_announced_once(session, open_challenge):
    c = open_challenge.challenge
    first = open_challenge.phases[0]
    with caught(phase_ended) as got:
        phases.ensure_cuts(session, c, first.ends_at - timedelta(seconds=1))
        assert got == []
        phases.ensure_cuts(session, c, first.ends_at + timedelta(seconds=1))
        phases.ensure_cuts(session, c, first.ends_at + timedelta(hours=1))
    assert [(g["phase_id"], g["ended_at"]) for g in got] == [(first.id, first.ends_at)]


def test_the_winner_is_announced_by_signal(session, data_dir):
    oc = make_open_challenge(session, data_dir)
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    make_scored_submission(session, a.team, oc.phases[0], 1.0)
    c = oc.challenge
    judge = make_user(session, Role.JUDGE)
    judging.assign_judge(session, oc.gov, c, judge.id)
    challenges.change_status(session, oc.gov, c, "freeze")
    challenges.change_status(session, oc.gov, c, "start_review")
    start = utcnow()
    judging.publish_notice(session, oc.gov, c, 5, now=start)
    with caught(winner_announced) as got:
        judging.announce(session, oc.gov, c, now=start + timedelta(days=6))
    assert [(g["challenge_id"], g["team_id"]) for g in got] == [(c.id, a.team.id)]
