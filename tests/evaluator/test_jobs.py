"""The evaluation pipeline end to end: real Redis, real Docker, real RQ worker nodes as subprocesses."""
from __future__ import annotations

import pytest
from sqlmodel import select

from challenges.models import Challenge, Submission
from evaluator import jobs, submit
from evaluator.quota.models import LedgerLine
from tests.evaluator.pipeline import (MODEL_075, PERFECT_MODEL, Nodes, ended, fresh, pipeline_env, slow_model,
                                      tagged, wait_for)
from tests.factories import make_eval_setup

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def nodes(db_url, redis_url, redis_conn, tmp_path):  # type: ignore[no-untyped-def]
    started = Nodes(pipeline_env(db_url, redis_url, tmp_path), tmp_path)
    yield started
    started.stop_all()


def queue(session, setup, image_id: str, redis_url: str, user_index: int = 0) -> Submission:  # type: ignore[no-untyped-def]
    if not image_id.startswith("sha256:000"):
        import docker

        tagged(docker.from_env(), image_id)
    return submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[user_index],
                                  image_id=image_id, image_ref="test-model", redis_url=redis_url)


def test_correct_model_is_scored_exactly(session, tmp_path, busybox_image, redis_url, nodes):
    setup = make_eval_setup(session, tmp_path)
    sub = queue(session, setup, busybox_image(MODEL_075), redis_url)
    assert sub.status == "queued" and sub.attempt == 1 and sub.job_id == f"sub-{sub.id}-a1"
    node = nodes.start("n1")

    done = wait_for(lambda: ended(session, sub.id), 60, what="the submission to end")
    assert done.status == "scored", (done.outcome, done.reason, nodes.logs())
    assert done.outcome == "scored"
    assert done.scores == {"accuracy": 0.75}
    assert done.primary_score == 0.75
    assert "model done" in done.log_excerpt
    assert done.worker == node.name and done.attempt == 1
    assert done.container_started_at is not None and done.container_finished_at is not None
    assert done.runtime_s is not None and done.runtime_s >= 0
    assert done.counts_against_limit
    challenge = session.get(Challenge, setup.challenge.id, populate_existing=True)
    assert challenge.metric_locked_at is not None
    lines = session.exec(select(LedgerLine).where(LedgerLine.submission_id == sub.id)).all()
    assert len(lines) == 1 and lines[0].device_class == "cpu"


MALFORMED = """#!/bin/sh
printf 'id,label\\n1,a\\n2,b\\n2,b\\n3,a\\n' > /output/predictions.csv
"""


def test_each_failure_type_has_its_outcome_and_detail(session, tmp_path, busybox_image, redis_url, nodes):
    setup = make_eval_setup(session, tmp_path, time_limit_s=2, memory_mb=32)
    cases = {
        "time_limit": busybox_image("#!/bin/sh\necho working\nsleep 30\n"),
        "memory_limit": busybox_image("exec dd if=/dev/zero of=/dev/null bs=200M count=1\n"),
        "nonzero_exit": busybox_image("#!/bin/sh\necho 'cannot find weights' >&2\nexit 3\n"),
        "missing_output": busybox_image("#!/bin/sh\necho 'forgot to write'\n"),
        "bad_output": busybox_image(MALFORMED),
        "image_rejected": busybox_image(PERFECT_MODEL, architecture="arm64"),
    }
    subs = {kind: queue(session, setup, image_id, redis_url) for kind, image_id in cases.items()}
    nodes.start("n1")

    for kind, sub in subs.items():
        done = wait_for(lambda: ended(session, sub.id), 90, what=kind)
        assert (done.status, done.outcome) == ("failed", kind), (kind, done.reason, nodes.logs())
        assert done.reason
        assert done.primary_score is None
    assert "time limit of 2 s" in fresh(session, subs["time_limit"].id).reason
    assert "working" in fresh(session, subs["time_limit"].id).log_excerpt
    assert "32 MiB" in fresh(session, subs["memory_limit"].id).reason
    nonzero = fresh(session, subs["nonzero_exit"].id)
    assert nonzero.exit_code == 3 and "code 3" in nonzero.reason and "cannot find weights" in nonzero.log_excerpt
    assert "predictions.csv" in fresh(session, subs["missing_output"].id).reason
    bad = fresh(session, subs["bad_output"].id).reason
    assert "'2'" in bad or "line" in bad.lower(), bad
    assert "arm64" in fresh(session, subs["image_rejected"].id).reason
    # The team's own failures count against its limits.
    assert all(fresh(session, s.id).counts_against_limit for s in subs.values())


def test_infrastructure_error_is_retried_then_failed_and_not_counted(session, tmp_path, redis_url, nodes):
    setup = make_eval_setup(session, tmp_path)
    # An image that is on no node and whose archive is gone: the platform cannot run it, whatever it tries.
    sub = queue(session, setup, "sha256:" + "0" * 64, redis_url)
    nodes.start("n1")

    done = wait_for(lambda: ended(session, sub.id), 60)
    assert (done.status, done.outcome) == ("failed", "infra_error"), (done.reason, nodes.logs())
    assert done.infra_failures == 2, (done.attempt, done.reason, nodes.logs())  # two retries, then fail
    assert not done.counts_against_limit
    assert "Platform error after 3 tries" in done.reason
    assert done.attempt == 1                   # RQ retried the same job, not a new attempt


def test_killing_the_worker_and_its_horse_mid_run_still_scores_once(session, tmp_path, busybox_image, redis_url,
                                                                   nodes, docker_client):
    setup = make_eval_setup(session, tmp_path)
    sub = queue(session, setup, busybox_image(slow_model(4)), redis_url)
    first = nodes.start("doomed")
    wait_for(lambda: fresh(session, sub.id).status == "running" and first.horse_pids(), 60, what="the run to start")
    second = nodes.start("survivor")
    first.kill9(horse_too=True)

    done = wait_for(lambda: ended(session, sub.id), 90)
    assert done.status == "scored", (done.reason, nodes.logs())
    assert done.primary_score == 1.0
    assert done.worker == second.name and done.attempt == 2
    # Scored once: one metered run, one final result; the orphaned container of attempt 1 is gone.
    assert len(session.exec(select(LedgerLine).where(LedgerLine.submission_id == sub.id)).all()) == 1
    prefix = jobs.container_name(session, sub.id, 1)
    wait_for(lambda: not [c for c in docker_client.containers.list(all=True) if c.name.startswith(prefix)],
             15, what="orphan removal")


def test_killing_only_the_work_horse_hands_the_work_to_a_new_attempt(session, tmp_path, busybox_image, redis_url,
                                                                    nodes):
    setup = make_eval_setup(session, tmp_path)
    sub = queue(session, setup, busybox_image(slow_model(3)), redis_url)
    node = nodes.start("n1")
    horses = wait_for(lambda: fresh(session, sub.id).status == "running" and node.horse_pids(), 60)
    import os
    import signal

    for pid in horses:
        os.kill(pid, signal.SIGKILL)

    done = wait_for(lambda: ended(session, sub.id), 90)
    assert done.status == "scored", (done.reason, nodes.logs())
    assert done.attempt == 2 and done.worker == node.name
    assert len(session.exec(select(LedgerLine).where(LedgerLine.submission_id == sub.id)).all()) == 1


def test_cancel_stops_the_running_container(session, tmp_path, busybox_image, redis_url, nodes, docker_client):
    setup = make_eval_setup(session, tmp_path, time_limit_s=60)
    sub = queue(session, setup, busybox_image(slow_model(50)), redis_url)
    nodes.start("n1")
    name = jobs.container_name(session, sub.id, 1)
    wait_for(lambda: name in [c.name for c in docker_client.containers.list()], 60, what="the container")

    jobs.cancel_submission(session, redis_url, sub.id, actor_id=None)

    wait_for(lambda: name not in [c.name for c in docker_client.containers.list(all=True)], 15,
             what="the container to be stopped")
    done = fresh(session, sub.id)
    assert (done.status, done.outcome) == ("cancelled", "cancelled")
    assert not done.counts_against_limit
