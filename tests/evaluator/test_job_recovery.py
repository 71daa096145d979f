"""The job's and the node's own recovery paths, run in this process against a real database and Redis:
a retried attempt whose lease ended, a node tick while Docker is down, a run that cannot reach Docker."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import select

from challenges.models import Submission
from evaluator import jobs, queues, reaper, state, submit
from evaluator.quota import inventory, leases
from evaluator.quota.models import Lease
from evaluator.worker import NodeWorker
from hub.models import utcnow
from tests.evaluator.pipeline import fresh
from tests.factories import make_eval_setup

pytestmark = [pytest.mark.redis]

NODE = "node-t"
IMAGE = "sha256:" + "2" * 64


@pytest.fixture
def no_docker(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """This process's Docker engine is gone: its socket does not exist (and no client is cached)."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.setattr(jobs, "_docker", {})


def _runtime(db_url: str, redis_url: str, tmp_path: Path, devices: list[dict]) -> jobs.Runtime:
    return jobs.Runtime(database_url=db_url, redis_url=redis_url, data_dir=str(tmp_path / "data"), node=NODE,
                        devices=tuple(devices))


def _retried_attempt_whose_lease_ended(session, tmp_path):  # type: ignore[no-untyped-def]
    """A GPU submission whose attempt 1 failed once for the platform (RQ will retry it) after its lease ended."""
    setup = make_eval_setup(session, tmp_path, accelerators=1, accelerator_class="fake-gpu")
    devices = inventory.parse_accelerators("fake-gpu:1", NODE)
    inventory.register_node(session, NODE, devices)
    session.commit()
    sub = submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=IMAGE,
                                 image_ref="m", redis_url=None)
    assert state.mark_dispatched(session, sub.id, 0, "eval-fake-gpu") == 1
    assert state.claim(session, sub.id, 1, NODE)
    lease = leases.acquire(session, submission_id=sub.id, attempt=1, challenge_id=setup.challenge.id,
                                accel_class="fake-gpu", count=1, node=NODE, ttl_s=60)
    assert lease is not None
    assert state.retry_later(session, sub.id, 1)       # the first try failed; RQ runs the same job again…
    leases.release(session, lease.id)               # …but the lease ended meanwhile (expiry, a sweep)
    return sub, devices


def test_a_retry_whose_lease_ended_goes_to_a_new_attempt_counted(session, db_url, redis_url, redis_conn, tmp_path,
                                                                 monkeypatch):
    sub, devices = _retried_attempt_whose_lease_ended(session, tmp_path)
    monkeypatch.setattr(jobs, "_runtime", _runtime(db_url, redis_url, tmp_path, devices))

    assert jobs.evaluate(sub.id, 1) == "no-device"

    row = fresh(session, sub.id)
    # Handed to a new attempt (waiting for the dispatcher), and the platform's failure is counted…
    assert (row.status, row.job_id, row.attempt, row.infra_failures) == ("queued", "", 1, 2)
    # …and no lease of the old attempt is left holding the device.
    assert session.exec(select(Lease).where(Lease.submission_id == sub.id, Lease.released_at == None)  # noqa: E711
                        .execution_options(populate_existing=True)).all() == []


def test_a_retry_whose_lease_ended_is_bounded_by_max_attempts(session, db_url, redis_url, redis_conn, tmp_path,
                                                              monkeypatch):
    monkeypatch.setenv("HUB_MAX_ATTEMPTS", "1")
    sub, devices = _retried_attempt_whose_lease_ended(session, tmp_path)
    monkeypatch.setattr(jobs, "_runtime", _runtime(db_url, redis_url, tmp_path, devices))

    jobs.evaluate(sub.id, 1)

    row = fresh(session, sub.id)
    assert (row.status, row.outcome, row.counts_against_limit) == ("failed", "infra_error", False)
    assert "gave up after 1 attempts" in row.reason and "lease ended" in row.reason, row.reason


@pytest.mark.usefixtures("no_docker")
def test_a_node_tick_sweeps_and_dispatches_while_docker_is_down(session, db_url, redis_url, redis_conn, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    sub = submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=IMAGE,
                                 image_ref="m", redis_url=None)
    # Dispatched a while ago, but Redis lost its job (a restart): only a sweep can find the work again.
    assert state.mark_dispatched(session, sub.id, 0, "eval-cpu") == 1
    session.exec(update(Submission).where(Submission.id == sub.id)  # type: ignore[call-overload]
                 .values(queued_at=utcnow() - timedelta(seconds=reaper.GRACE_S + 5)))
    session.commit()

    worker = NodeWorker([queues.queue_name("cpu")], node=NODE, classes=["cpu"], devices=[], database_url=db_url,
                        redis_url=redis_url, reaper_interval=1.0)
    worker.node_tick(force=True)

    row = fresh(session, sub.id)
    assert (row.status, row.attempt, row.infra_failures) == ("queued", 2, 1), row
    assert queues.job_status(redis_conn, row.job_id) == "queued"      # the new attempt's job is in Redis


@pytest.mark.usefixtures("no_docker")
def test_a_run_that_cannot_reach_docker_is_an_infrastructure_error(session, db_url, redis_url, redis_conn, tmp_path,
                                                                   monkeypatch):
    setup = make_eval_setup(session, tmp_path)
    sub = submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=IMAGE,
                                 image_ref="m", redis_url=None)
    state.mark_dispatched(session, sub.id, 0, "eval-cpu")
    assert state.claim(session, sub.id, 1, NODE)
    rt = _runtime(db_url, redis_url, tmp_path, [])
    monkeypatch.setattr(jobs, "_runtime", rt)

    with pytest.raises(jobs.InfraError, match="Docker is not answering"):
        jobs.run_attempt(session, redis_conn, rt, fresh(session, sub.id), setup.challenge, setup.phase, "cpu", None)
    assert not (tmp_path / "data" / "runs").exists() or not any((tmp_path / "data" / "runs").iterdir())

    # Through the job: not the team's failure; with no RQ retry left it fails as the platform's, uncounted.
    state.retry_later(session, sub.id, 1)
    assert jobs.evaluate(sub.id, 1) == "infra_error"
    row = fresh(session, sub.id)
    assert (row.status, row.outcome, row.counts_against_limit) == ("failed", "infra_error", False)
    assert "Docker is not answering" in row.reason
