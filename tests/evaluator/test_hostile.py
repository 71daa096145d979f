"""Hostile images through the real pipeline: Submission row → RQ → a real worker node → sandbox → scoring.

One worker node serves the whole module (starting one per test would cost seconds each). For every
attack: the run ends with its typed outcome, the node is still alive, no container of the submission is
left, the truth's marker never shows in what the team can read, and a normal submission right after it
scores exactly. The attacks themselves are in tests/evaluator/hostile.py (bench/hostile_table.py prints
the ceilings they reach).
"""
from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker.errors
import pytest
from sqlmodel import Session

from challenges.models import Submission
from evaluator import intake, queues, sandbox, state, submit
from evaluator.nodes import live_names
from tests.evaluator import hostile
from tests.evaluator.pipeline import Nodes, ended, pipeline_env, tagged, wait_for
from tests.factories import make_eval_setup

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]

MIB = 1 << 20


@pytest.fixture(scope="module")
def hostile_env(db_url: str, redis_url: str, docker_client: Any,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """One worker node for the module, the platform's ports as listeners, and where its data lives."""
    import redis

    redis.Redis.from_url(redis_url).flushall()   # jobs left by an earlier module would reuse our ids
    root = tmp_path_factory.mktemp("hostile")
    listeners = hostile.Listeners()
    nodes = Nodes(pipeline_env(db_url, redis_url, root), root)
    node = nodes.start("hostile-node", reaper_interval=0.5)
    try:
        yield SimpleNamespace(node=node, nodes=nodes, listeners=listeners, data_dir=root / "data",
                              redis_socket=redis_url.removeprefix("unix://"), hosts=hostile.host_addresses(docker_client))
    finally:
        nodes.stop_all()
        listeners.close()


@pytest.fixture
def env(hostile_env: SimpleNamespace, redis_url: str) -> SimpleNamespace:
    # A node is live while its beat is in Redis (evaluator.nodes); the tables' clean-up does not touch it.
    assert hostile_env.node.proc.poll() is None, hostile_env.nodes.logs()
    wait_for(lambda: "hostile-node" in live_names(queues.connect(redis_url)), 15, what="the node's heartbeat")
    return hostile_env


def queue_image(session: Session, setup: Any, image_id: str, redis_url: str) -> Submission:
    return submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=image_id,
                                  image_ref="hostile", redis_url=redis_url)


def containers_of(client: Any, submission_id: int) -> list[str]:
    """The sandbox containers (by the hub.sandbox label) that belong to one submission of any instance."""
    return [c.name for c in sandbox.list_hub_containers(client)
            if (parsed := state.parse_container_name(c.name)) is not None and parsed[1] == submission_id]


def assert_node_still_scores(session: Session, setup: Any, env: SimpleNamespace, image_id: str, redis_url: str) -> None:
    """The node is alive and a normal submission after the attack scores exactly (accuracy 1.0)."""
    assert env.node.proc.poll() is None, env.nodes.logs()
    sub = queue_image(session, setup, image_id, redis_url)
    done = wait_for(lambda: ended(session, sub.id), 60, what="the normal submission after the attack")
    assert (done.status, done.primary_score, done.worker) == ("scored", 1.0, env.node.name), \
        (done.reason, env.nodes.logs())


@pytest.mark.parametrize("attack", hostile.RUN_ATTACKS, ids=lambda a: a.name)
def test_hostile_image_is_contained(attack: hostile.Attack, env, session, redis_url, docker_client, busybox_image,
                                    tmp_path):
    setup = make_eval_setup(session, tmp_path, truth=hostile.TRUTH, time_limit_s=attack.time_limit_s,
                            memory_mb=attack.memory_mb)
    dataset_dir = Path(setup.dataset.truth_path).parent
    ctx = hostile.Context(truth_path=Path(setup.dataset.truth_path), input_dir=Path(setup.dataset.inputs_dir),
                          redis_socket=env.redis_socket, ports=env.listeners.ports, hosts=env.hosts)
    script = "#!/bin/sh\n" + attack.script(ctx)
    assert hostile.MARKER not in script
    image = tagged(docker_client, busybox_image(script, **attack.image_opts))
    volumes_before = hostile.engine_volumes(docker_client)

    sub = queue_image(session, setup, image, redis_url)
    done = wait_for(lambda: ended(session, sub.id), attack.time_limit_s + 60, what=attack.name)

    want_status = "scored" if attack.outcome == "scored" else "failed"
    assert (done.status, done.outcome) == (want_status, attack.outcome), (done.reason, done.log_excerpt[-2000:],
                                                                          env.nodes.logs())
    if want_status == "failed":
        assert done.reason and done.primary_score is None
    else:
        assert done.primary_score == 1.0
    assert done.counts_against_limit           # the team's own doing, never the platform's
    assert hostile.MARKER not in done.log_excerpt and hostile.MARKER not in done.reason
    assert hostile.LEAK not in done.log_excerpt, done.log_excerpt
    wait_for(lambda: not containers_of(docker_client, sub.id), 15, what="the container to be removed")
    assert hostile.engine_volumes(docker_client) == volumes_before   # no volume left on the node's engine
    assert sorted(p.name for p in dataset_dir.iterdir()) == ["inputs", "truth.csv"]
    assert sorted(p.name for p in Path(setup.dataset.inputs_dir).iterdir()) == ["ids.txt"]

    log = done.log_excerpt
    if attack.name in ("fork_bomb", "never_exits"):
        assert f"time limit of {attack.time_limit_s} s" in done.reason
        assert done.runtime_s is not None and done.runtime_s < attack.time_limit_s + 5
    elif attack.name == "memory_bomb":
        assert f"{attack.memory_mb} MiB" in done.reason
    elif attack.name == "tmp_fill":
        # /tmp (half the memory limit) filled up with a plain ENOSPC the model survived, not an OOM kill.
        assert "No space left on device" in log, log
    elif attack.name in ("output_fill", "oversized_prediction"):
        assert "size limit" in done.reason
    elif attack.name == "log_flood":
        # 1 GiB printed; what the submission keeps is capped (head and tail of the capped log).
        assert 0 < len(log) <= state.LOG_EXCERPT_CHARS
        assert set(log) <= set("x\n…[] logtruncated")
    elif attack.name == "network":
        assert env.listeners.accepted == []
        assert log.split()[-1] == "lo"          # the only interface
    elif attack.name == "truth_read":
        assert "No such file or directory" in log
    elif attack.name == "write_outside":
        assert log.count("Read-only file system") >= 5
    elif attack.name == "setuid":
        uid = re.search(r"Uid:\s+(\d+)\s+(\d+)", log)
        assert uid and uid[1] == uid[2] and int(uid[1]) in sandbox.uid_pool(), log   # the run's own uid, not root
        assert re.search(r"NoNewPrivs:\s+1", log), log
        assert "-rwsr-xr-x" in log               # the bit was there; no-new-privileges made it inert
    elif attack.name == "env_grab":
        lines = log.splitlines()
        assert "NVIDIA_VISIBLE_DEVICES=void" in lines and "LD_PRELOAD=" in lines and "CUDA_VISIBLE_DEVICES=" in lines
    elif attack.name == "exits_early":
        assert "predictions.csv" in done.reason and "bye" in log
    elif attack.name == "declared_volume":
        # The VOLUME was a tmpfs of /tmp's size (half the memory limit), not 192 MiB on the node's disk.
        written = re.search(r"volume-mib (\d+)", log)
        assert written and int(written[1]) <= attack.memory_mb // 2, log
        assert "No space left on device" in log and " /data tmpfs " in log, log
    elif attack.name == "volume_in_output":
        assert "VOLUME" in done.reason and "/output/cache" in done.reason
    elif attack.name == "health_check":
        assert "processes 1" in log, log          # the image's own shell only: the probe never ran
    elif attack.name == "ignored_sigterm":
        assert "trapped" in log and f"time limit of {attack.time_limit_s} s" in done.reason
        assert done.runtime_s is not None and done.runtime_s < attack.time_limit_s + 5
    elif attack.name == "image_config":
        uid = re.search(r"uid (\d+)", log)
        assert uid and int(uid[1]) in sandbox.uid_pool(), log

    assert_node_still_scores(session, setup, env, busybox_image("#!/bin/sh\n" + hostile.MODEL), redis_url)


def archive_image_id(path: Path) -> str | None:
    """The image ID a (possibly damaged) docker-layout archive would load as: its config's digest."""
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if re.fullmatch(r"[0-9a-f]{64}\.json", member.name):
                    return "sha256:" + member.name[:64]
    except (tarfile.TarError, OSError):
        pass
    return None


@pytest.fixture
def victims(docker_client: Any, tmp_path: Path) -> Iterator[str]:
    """The demo-like tag and another team's image on the node, for the image-level attacks; removed after."""
    victim = hostile.plant_victims(docker_client, tmp_path / "victims")
    yield victim
    for ref in (hostile.VICTIM_TAG, victim):
        try:
            docker_client.images.remove(ref, force=True)
        except docker.errors.APIError:
            pass


@pytest.mark.parametrize("attack", [a for a in hostile.UPLOAD_ATTACKS if a.reason], ids=lambda a: a.name)
def test_hostile_upload_is_refused_before_loading(attack: hostile.Upload, env, session, redis_url, docker_client,
                                                  tmp_path, request):
    if attack.needs_victims:
        request.getfixturevalue("victims")
    setup = make_eval_setup(session, tmp_path, truth=hostile.TRUTH)
    src = attack.build(tmp_path / f"{attack.name}.tar")
    image_id = archive_image_id(src)
    settings = submit.IntakeSettings(data_dir=str(env.data_dir), max_image_bytes=attack.max_bytes or 64 * MIB,
                                     redis_url=redis_url)
    kept_before = set((env.data_dir / "images").glob("*")) if (env.data_dir / "images").exists() else set()

    with src.open("rb") as fh:
        sub = submit.submit_upload(session, slug=setup.challenge.slug, user=setup.users[0], stream=fh,
                                   settings=settings, filename=src.name)

    assert (sub.status, sub.outcome) == ("failed", "image_rejected")
    expected = intake.REASONS[attack.reason].split("%(")[0].rstrip(": ")
    assert sub.reason.startswith(expected), (sub.reason, expected)
    assert sub.image_id == "" and sub.job_id == ""
    assert list((env.data_dir / "uploads").glob("*")) == []            # the partial upload is gone
    kept_after = set((env.data_dir / "images").glob("*")) if (env.data_dir / "images").exists() else set()
    assert kept_after == kept_before                                     # nothing kept for a node to load
    if image_id is not None:
        with pytest.raises(docker.errors.ImageNotFound):
            docker_client.images.get(image_id)                           # never loaded into the engine
    assert containers_of(docker_client, sub.id) == []

    # The node keeps working, and a valid upload through the same path scores.
    assert env.node.proc.poll() is None, env.nodes.logs()
    good = hostile.valid_archive(tmp_path / "good.tar")
    with good.open("rb") as fh:
        ok = submit.submit_upload(session, slug=setup.challenge.slug, user=setup.users[0], stream=fh,
                                  settings=submit.IntakeSettings(data_dir=str(env.data_dir), max_image_bytes=64 * MIB,
                                                                 redis_url=redis_url), filename="good.tar")
    tagged(docker_client, ok.image_id)
    done = wait_for(lambda: ended(session, ok.id), 60, what="the valid upload")
    assert (done.status, done.primary_score, done.worker) == ("scored", 1.0, env.node.name), \
        (done.reason, env.nodes.logs())
    docker_client.images.remove(ok.image_id, force=True)


def test_fork_storm_beside_a_well_behaved_run(env, session, redis_url, docker_client, busybox_image, tmp_path):
    """Two runs at once on one host (two worker processes, one engine): a fork storm at its pids limit, and a
    neighbour that forks 200 processes, allocates memory and writes /tmp and /output. The neighbour scores
    normally, and the two ran under different uids, so no per-uid budget (RLIMIT_NPROC …) was shared."""
    second = env.nodes.start("hostile-node-2", reaper_interval=0.5)
    try:
        wait_for(lambda: "hostile-node-2" in live_names(queues.connect(redis_url)), 15,
                 what="the second node's heartbeat")
        setup = make_eval_setup(session, tmp_path, truth=hostile.TRUTH, time_limit_s=20, memory_mb=256)
        storm_image = tagged(docker_client, busybox_image("#!/bin/sh\n" + hostile.STORM))
        neighbour_image = tagged(docker_client, busybox_image("#!/bin/sh\n" + hostile.NEIGHBOUR))
        volumes_before = hostile.engine_volumes(docker_client)

        storm = queue_image(session, setup, storm_image, redis_url)
        names = wait_for(lambda: containers_of(docker_client, storm.id), 30, what="the storm's container")

        def storm_pids() -> int:
            try:
                return len(docker_client.api.top(names[0]).get("Processes") or [])
            except docker.errors.APIError:
                return 0

        wait_for(lambda: storm_pids() >= 250, 30, what="the storm to reach its pids limit")
        neighbour = queue_image(session, setup, neighbour_image, redis_url)
        done = wait_for(lambda: ended(session, neighbour.id), 60, what="the neighbour")
        stormed = wait_for(lambda: ended(session, storm.id), 60, what="the storm")
    finally:
        second.stop()

    assert (done.status, done.primary_score) == ("scored", 1.0), (done.reason, done.log_excerpt, env.nodes.logs())
    assert "forked 200" in done.log_excerpt and "memory and /tmp ok" in done.log_excerpt, done.log_excerpt
    assert stormed.outcome == "time_limit", (stormed.reason, stormed.log_excerpt)
    assert {done.worker, stormed.worker} == {"hostile-node", "hostile-node-2"}   # at the same time, on one host
    uids = [re.search(r"uid (\d+)", sub.log_excerpt) for sub in (done, stormed)]
    assert all(uids) and uids[0][1] != uids[1][1], (done.log_excerpt, stormed.log_excerpt)
    wait_for(lambda: not containers_of(docker_client, storm.id) and not containers_of(docker_client, neighbour.id),
             15, what="both containers to be removed")
    assert hostile.engine_volumes(docker_client) == volumes_before
    assert_node_still_scores(session, setup, env, busybox_image("#!/bin/sh\n" + hostile.MODEL), redis_url)


@pytest.mark.parametrize("attack", [a for a in hostile.UPLOAD_ATTACKS if not a.reason], ids=lambda a: a.name)
def test_accepted_hostile_upload_moves_no_tag(attack: hostile.Upload, env, session, redis_url, docker_client, victims,
                                              tmp_path):
    setup = make_eval_setup(session, tmp_path, truth=hostile.TRUTH)
    src = attack.build(tmp_path / f"{attack.name}.tar")
    settings = submit.IntakeSettings(data_dir=str(env.data_dir), max_image_bytes=64 * MIB, redis_url=redis_url)

    with src.open("rb") as fh:
        sub = submit.submit_upload(session, slug=setup.challenge.slug, user=setup.users[0], stream=fh,
                                   settings=settings, filename=src.name)
    tagged(docker_client, sub.image_id)
    done = wait_for(lambda: ended(session, sub.id), 60, what=attack.name)

    assert sub.image_id == archive_image_id(src) != victims          # the run is pinned to the team's own ID
    assert (done.status, done.primary_score) == ("scored", 1.0), (done.reason, env.nodes.logs())
    assert "retag-" in done.log_excerpt                               # the team's code ran, not the demo's
    assert docker_client.images.get(hostile.VICTIM_TAG).id == victims  # and the demo tag never moved
    docker_client.images.remove(sub.image_id, force=True)
