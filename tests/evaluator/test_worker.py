"""Worker nodes against one Redis and one database: different inventories, a Redis restart."""
from __future__ import annotations

import signal

import pytest
from sqlmodel import select

from challenges.models import Submission
from evaluator import submit
from evaluator.embedded import start_redis
from evaluator.models import WorkerNode
from evaluator.quota.models import LedgerLine
from tests.evaluator.pipeline import PERFECT_MODEL, Nodes, ended, fresh, pipeline_env, tagged, wait_for
from tests.factories import make_eval_setup

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]


def queue(session, setup, image_id, redis_url):  # type: ignore[no-untyped-def]
    return submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=image_id,
                                  image_ref="m", redis_url=redis_url)


def test_two_nodes_with_different_inventories_take_their_own_work(session, db_url, redis_url, redis_conn, tmp_path,
                                                                  busybox_image, docker_client):
    image = tagged(docker_client, busybox_image(PERFECT_MODEL))
    cpu = make_eval_setup(session, tmp_path)
    gpu = make_eval_setup(session, tmp_path, accelerators=1, accelerator_class="fake-gpu")
    too_big = make_eval_setup(session, tmp_path, accelerators=3, accelerator_class="fake-gpu")
    nodes = Nodes(pipeline_env(db_url, redis_url, tmp_path), tmp_path)
    try:
        nodes.start("cpu-node", queues="cpu", accelerators="none")
        nodes.start("gpu-node", queues="fake-gpu", accelerators="fake-gpu:2")
        wait_for(lambda: len(session.exec(select(WorkerNode)).all()) == 2, 30, what="both nodes")
        a = queue(session, cpu, image, redis_url)
        b = queue(session, gpu, image, redis_url)
        c = queue(session, too_big, image, redis_url)

        a_done = wait_for(lambda: ended(session, a.id), 60)
        b_done = wait_for(lambda: ended(session, b.id), 60)
        c_done = wait_for(lambda: ended(session, c.id), 60)
    finally:
        nodes.stop_all()
    assert (a_done.status, a_done.worker) == ("scored", "cpu-node"), nodes.logs()
    assert (b_done.status, b_done.worker) == ("scored", "gpu-node"), nodes.logs()
    line = session.exec(select(LedgerLine).where(LedgerLine.submission_id == b.id)).one()
    assert line.device_class == "fake-gpu" and line.device_ids == ["FAKE-fake-gpu-gpu-node-0"]
    assert (c_done.status, c_done.outcome) == ("failed", "infra_error")
    assert "No worker node has 3 devices of class fake-gpu" in c_done.reason
    assert not c_done.counts_against_limit


def test_queued_work_survives_a_redis_restart(session, db_url, redis_url, tmp_path, busybox_image, docker_client):
    image = tagged(docker_client, busybox_image(PERFECT_MODEL))
    proc, url = start_redis(tmp_path / "own-redis")
    setup = make_eval_setup(session, tmp_path)
    nodes = Nodes(pipeline_env(db_url, url, tmp_path), tmp_path)
    try:
        first = [queue(session, setup, image, url) for _ in range(2)]
        assert [s.job_id != "" for s in first] == [True, False]   # one dispatched, one waiting in the DB
        proc.send_signal(signal.SIGKILL)        # Redis dies and comes back empty
        proc.wait(timeout=10)
        proc, url = start_redis(tmp_path / "own-redis")
        nodes.start("n1")
        done = [wait_for(lambda s=s: ended(session, s.id), 60) for s in first]
        assert [d.status for d in done] == ["scored", "scored"], nodes.logs()
        assert done[0].attempt == 2            # its job was lost with Redis and enqueued again from the DB

        # Redis dies while the node is idle and a team submits meanwhile: the row waits in the DB.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        late = queue(session, setup, image, url)
        assert late.status == "queued" and late.job_id == ""
        proc, url = start_redis(tmp_path / "own-redis")
        late_done = wait_for(lambda: ended(session, late.id), 90)
        assert late_done.status == "scored", nodes.logs()
    finally:
        nodes.stop_all()
        proc.terminate()
        proc.wait(timeout=10)
    assert all(n.proc.returncode is not None for n in nodes.started)
    assert len(session.exec(select(Submission).where(Submission.status == "scored")).all()) == 3
    assert fresh(session, late.id).attempt == 1
