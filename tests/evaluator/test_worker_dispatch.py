"""Fair dispatch between challenges and the compare-and-set state machine (real Redis, real database)."""
from __future__ import annotations

import pytest

from challenges.models import Outcome
from evaluator import dispatch, nodes, queues, reaper, state, submit
from evaluator.models import WorkerNode
from hub.errors import Conflict
from tests.evaluator.pipeline import fresh
from tests.factories import make_eval_setup

pytestmark = [pytest.mark.redis]


def waiting_submission(session, setup):  # type: ignore[no-untyped-def]
    # No Redis URL: the row is written and waits in the database, as it does while Redis is down.
    return submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0],
                                  image_id="sha256:" + "1" * 64, image_ref="m", redis_url=None)


def live_node(session, conn, name: str, classes=("cpu",)) -> None:  # type: ignore[no-untyped-def]
    """A node registered in the database that beats in Redis (evaluator.nodes)."""
    session.add(WorkerNode(name=name, queues=list(classes)))
    session.commit()
    nodes.beat(conn, name, list(classes), [])


def test_a_busy_challenge_cannot_starve_another(session, tmp_path, redis_conn):
    busy = make_eval_setup(session, tmp_path)
    quiet = make_eval_setup(session, tmp_path)
    flood = [waiting_submission(session, busy) for _ in range(6)]
    late = [waiting_submission(session, quiet) for _ in range(2)]
    live_node(session, redis_conn, "w1")
    live_node(session, redis_conn, "w2")

    # Two workers: the queue holds at most three jobs; slots alternate between the challenges.
    sent = dispatch.feed(session, redis_conn)
    assert sent == [flood[0].id, late[0].id, flood[1].id]
    assert queues.queued_count(redis_conn, "cpu") == 3
    assert dispatch.feed(session, redis_conn) == []          # full: nothing more until a slot frees

    # The quiet challenge's second submission is next in line, ahead of the flood's backlog.
    info = dispatch.queue_position(session, late[1].id, redis_conn)
    assert info.position == 4 and info.workers == 2 and info.est_wait_s is not None
    assert dispatch.queue_position(session, flood[5].id, redis_conn).position == 8

    for sub in (flood[0], late[0]):                         # two runs finish
        attempt = fresh(session, sub.id).attempt
        assert state.claim(session, sub.id, attempt, "w1")
        assert state.finish(session, sub.id, attempt, state.Result("scored", Outcome.SCORED, scores={"accuracy": 1.0},
                                                                    primary_score=1.0))
        redis_conn.lpop("rq:queue:eval-cpu")
    assert dispatch.feed(session, redis_conn) == [late[1].id, flood[2].id]


def test_the_state_machine_moves_by_compare_and_set(session, tmp_path, redis_conn):
    setup = make_eval_setup(session, tmp_path)
    sub = waiting_submission(session, setup)
    attempt = state.mark_dispatched(session, sub.id, 0, "eval-cpu")
    assert attempt == 1 and state.mark_dispatched(session, sub.id, 0, "eval-cpu") is None

    assert state.claim(session, sub.id, 1, "w1")
    assert not state.claim(session, sub.id, 1, "w2")         # a job that runs twice finds nothing to claim
    result = state.Result("scored", Outcome.SCORED, scores={"accuracy": 0.5}, primary_score=0.5)
    assert state.finish(session, sub.id, 1, result)
    assert not state.finish(session, sub.id, 1, result)      # …and scores once
    assert fresh(session, sub.id).primary_score == 0.5

    with pytest.raises(Conflict):
        state.cancel(session, sub.id)
    again = state.rerun(session, sub.id)
    assert again.status == "queued" and again.primary_score is None and again.job_id == ""
    assert state.mark_dispatched(session, sub.id, 1, "eval-cpu") == 2
    assert not state.claim(session, sub.id, 1, "old-job")     # the old attempt's job cannot take it back
    assert state.claim(session, sub.id, 2, "w1")


def test_an_old_attempt_cannot_overwrite_a_newer_one(session, tmp_path, redis_conn):
    setup = make_eval_setup(session, tmp_path)
    sub = waiting_submission(session, setup)
    state.mark_dispatched(session, sub.id, 0, "eval-cpu")
    state.claim(session, sub.id, 1, "dead-node")
    report = reaper.SweepReport()
    reaper.give_back(session, fresh(session, sub.id), "worker stopped answering", report)
    assert report.requeued == [sub.id]
    assert state.mark_dispatched(session, sub.id, 1, "eval-cpu") == 2
    assert state.claim(session, sub.id, 2, "w2")
    late = state.Result("failed", Outcome.NONZERO_EXIT, "exit 1", exit_code=1)
    assert not state.finish(session, sub.id, 1, late)        # the orphaned horse of attempt 1 comes back
    assert state.finish(session, sub.id, 2, state.Result("scored", Outcome.SCORED, scores={"accuracy": 1.0},
                                                         primary_score=1.0))
    done = fresh(session, sub.id)
    assert (done.status, done.attempt, done.infra_failures) == ("scored", 2, 1)


def test_the_reaper_fails_what_has_been_retried_too_often(session, tmp_path, redis_conn, monkeypatch):
    monkeypatch.setenv("HUB_MAX_ATTEMPTS", "2")
    setup = make_eval_setup(session, tmp_path)
    sub = waiting_submission(session, setup)
    for attempt in (1, 2):
        state.mark_dispatched(session, sub.id, attempt - 1, "eval-cpu")
        state.claim(session, sub.id, attempt, "gone")
        reaper.give_back(session, fresh(session, sub.id), "worker gone stopped answering", reaper.SweepReport())
    done = fresh(session, sub.id)
    assert (done.status, done.outcome, done.counts_against_limit) == ("failed", "infra_error", False)
    assert "gave up after 2 attempts" in done.reason
