"""A worker node: one RQ worker (rq 3.x, a forked work horse per job) that is also a node of the platform.

`flask --app app worker --queues cpu,nvidia-a100 --accelerators nvidia-a100:2 --name node-1` starts one.
Beside RQ's own work it
* beats every HEARTBEAT_S: one Redis key with its queues, devices and the run it is doing (evaluator.nodes; no
  database write). The reaper hands the work of a node whose key expires to another node, and a run's device
  lease lives as long as its node's key lists it. The WorkerNode row and the devices are written at start only;
* runs the reaper every `reaper_interval` seconds (a Redis lock lets one node at a time do the
  cluster-wide part; orphan containers are swept on every node, for its own Docker engine);
* wakes every second from its blocking dequeue (a job still starts as soon as it is pushed).
Everything happens in the worker's main thread, so forking a work horse never copies a lock held by
another thread; each horse opens its own database connections and Docker client.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import time
from typing import Any

from redis.exceptions import RedisError
from rq import Worker
from rq.job import Job
from rq.queue import Queue
from sqlmodel import select

from evaluator import jobs, nodes, queues, reaper, state
from evaluator.models import WorkerNode
from evaluator.quota import inventory
from evaluator.sandbox import uid_pool
from hub.db import get_engine, session_scope
from hub.models import utcnow

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
RESTART_DELAY_S = 1.0
HORSE_WAIT_S = 15 * 60.0   # at most this long for an orphaned horse after a Redis outage (then it is killed)


class NodeWorker(Worker):
    """rq.Worker plus the node's heartbeat and the reaper timer (see the module docstring)."""

    def __init__(self, queue_names: list[str], *, node: str, classes: list[str], devices: list[dict[str, Any]],
                 database_url: str, redis_url: str, reaper_interval: float = 2.0, generation: int = 1,
                 **kwargs: Any) -> None:
        conn = queues.connect(redis_url)
        # A fresh RQ name per start: after a Redis outage RQ may still hold the previous one as active.
        super().__init__(queue_names, connection=conn, name=f"{node}.{os.getpid()}.{generation}",
                         job_monitoring_interval=1, **kwargs)
        self.node = node
        self.classes = classes
        self.devices = devices
        self.database_url = database_url
        self.reaper_interval = reaper_interval
        self._last_beat = 0.0
        self._last_sweep = 0.0
        self.runs: list[tuple[int, int]] = []   # (submission id, attempt) of the job this node's horse runs

    @property
    def dequeue_timeout(self) -> int:
        return 1

    # RQ calls heartbeat() from its loop, while waiting for work and while a horse runs.
    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if not self._is_horse:
            self.node_tick()

    def node_tick(self, force: bool = False, force_beat: bool = False) -> None:
        now = time.monotonic()
        try:
            if force or force_beat or now - self._last_beat >= HEARTBEAT_S:
                self._last_beat = now
                beat(self.connection, self.node, self.classes, self.devices, self.runs)
            if self.reaper_interval > 0 and not force_beat and (force or now - self._last_sweep >= self.reaper_interval):
                self._last_sweep = now
                try:
                    client = jobs.docker_client()
                except Exception:  # noqa: BLE001 - Docker down: sweep the database and Redis all the same
                    log.warning("node %s: Docker is not answering; orphan containers are not swept", self.node)
                    client = None
                with session_scope(self.database_url) as session:
                    reaper.sweep(session, self.connection, client)
        except RedisError as err:
            log.warning("node %s: reaper sweep skipped, Redis is not answering (%s)", self.node, err)
        except Exception:  # noqa: BLE001 - a failed tick must not stop the worker; the next one retries
            log.exception("node %s: heartbeat or reaper sweep failed", self.node)

    def execute_job(self, job: Job, queue: Queue) -> None:
        # The run is announced before the horse exists, so the reaper never sees it claimed but not listed.
        run = state.parse_job_id(job.id)
        self.runs = [run] if run is not None else []
        self.node_tick(force_beat=True)
        try:
            super().execute_job(job, queue)
        finally:
            # A horse that outlives its worker (Redis went away mid-job) keeps its run listed while
            # settle_horse waits for it.
            if not self._horse_alive():
                self.runs = []
                self.node_tick(force_beat=True)

    def _horse_alive(self) -> bool:
        pid = self.horse_pid
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return not done

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        # The horse is a fork: drop the parent's pooled DB connections (without closing them under it).
        get_engine(self.database_url).dispose(close=False)
        super().main_work_horse(job, queue)


def beat(conn: Any, node: str, classes: list[str], devices: list[dict[str, Any]],
         runs: list[tuple[int, int]] | tuple[tuple[int, int], ...] = ()) -> None:
    """The node's beat: one Redis key (evaluator.nodes), no database write."""
    nodes.beat(conn, node, classes, devices, runs)


def register(database_url: str, node: str, classes: list[str], devices: list[dict[str, Any]]) -> None:
    """Announce the node (fresh start time) and its devices."""
    with session_scope(database_url) as session:
        row = session.exec(select(WorkerNode).where(WorkerNode.name == node)).first()
        if row is None:
            row = WorkerNode(name=node)
        row.hostname = socket.gethostname()
        row.queues, row.accelerators = list(classes), list(devices)
        row.started_at = row.heartbeat_at = utcnow()
        row.current_submission_id = None
        session.add(row)
        session.flush()
        inventory.register_node(session, node, devices)


def resolve_inventory(node: str, accelerators: str | None) -> list[dict[str, Any]]:
    """--accelerators in the ACCELERATORS format ("none" for a CPU-only node); unset: ask the node."""
    if accelerators is None:
        return inventory.node_inventory()
    if accelerators.strip().lower() in ("", "none", "0"):
        return []
    return inventory.parse_accelerators(accelerators, node)


def resolve_classes(queue_spec: str | None, devices: list[dict[str, Any]]) -> list[str]:
    """--queues as accelerator classes ("cpu,nvidia-a100"); unset: cpu plus every class the node has."""
    if queue_spec:
        classes = [q.strip() for q in queue_spec.split(",") if q.strip()]
    else:
        classes = ["cpu"] + sorted({d["accel_class"] for d in devices})
    return [queues.class_of_queue(c) for c in dict.fromkeys(classes)]


def run_worker(config: dict[str, Any], *, queue_spec: str | None = None, accelerators: str | None = None,
               name: str | None = None, burst: bool = False, reaper_interval: float = 2.0,
               logging_level: str = "INFO") -> bool:
    """Run one worker node until stopped (SIGTERM / Ctrl-C: finish the current job, then leave)."""
    if not config.get("REDIS_URL"):
        raise RuntimeError("REDIS_URL is not set: a worker needs the platform's Redis")
    uid_pool()   # a malformed HUB_SANDBOX_UIDS stops the node here (ValueError), not each run later
    node = name or os.environ.get("HUB_NODE_NAME") or socket.gethostname()
    os.environ["HUB_NODE_NAME"] = node
    devices = resolve_inventory(node, accelerators)
    classes = resolve_classes(queue_spec, devices)
    jobs.configure(jobs.Runtime(database_url=config["DATABASE_URL"], redis_url=config["REDIS_URL"],
                                data_dir=config["DATA_DIR"], node=node,
                                max_image_bytes=int(config.get("MAX_IMAGE_BYTES", 2 << 30)), devices=tuple(devices),
                                registry_allowlist=tuple(config.get("REGISTRY_ALLOWLIST", ()))))
    register(config["DATABASE_URL"], node, classes, devices)
    log.info("node %s: queues %s, devices %s", node, classes, [d["uuid"] for d in devices])
    stop = StopSignals()
    generation = 0
    worked = False
    while True:
        generation += 1
        worker: NodeWorker | None = None
        try:
            # Inside the try: building an RQ worker already talks to Redis (CLIENT SETNAME).
            worker = NodeWorker([queues.queue_name(c) for c in classes], node=node, classes=classes,
                                devices=devices, database_url=config["DATABASE_URL"], redis_url=config["REDIS_URL"],
                                reaper_interval=reaper_interval, generation=generation)
            worker.node_tick(force=True)
            if stop.count:
                return worked
            worked = worker.work(burst=burst, logging_level=logging_level) or worked
        except (RedisError, ValueError):
            pass
        # RQ's signal handlers belong to the worker that just left; from here until the next one runs, a
        # SIGTERM / Ctrl-C is recorded here (a handler of the old worker would talk to a Redis that is gone).
        stop.install()
        if burst or stop.count or (worker is not None and (worker._stop_requested
                                                           or worker._shutdown_requested_date is not None)):
            return worked   # asked to stop (SIGTERM / Ctrl-C), or a burst that ran dry
        # RQ leaves its loop when Redis goes away, possibly in the middle of a job whose work horse still runs.
        if worker is not None and worker.horse_pid:
            settle_horse(worker, stop)
        # The node waits for Redis to come back instead of dying, then starts a worker under a fresh name.
        log.warning("node %s: lost Redis; starting again in %s s", node, RESTART_DELAY_S)
        if stop.wait(RESTART_DELAY_S):
            return worked


class StopSignals:
    """SIGTERM / SIGINT counted while no RQ worker is running (between two incarnations of the node's worker)."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._received)
        signal.signal(signal.SIGINT, self._received)

    def _received(self, signum: int, frame: Any) -> None:
        self.count += 1
        log.info("signal %s: the node stops after its current job", signum)

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop was asked for."""
        deadline = time.monotonic() + seconds
        while not self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(self.count)


def settle_horse(worker: NodeWorker, stop: StopSignals, limit_s: float = HORSE_WAIT_S) -> None:
    """Let the work horse of a worker that lost Redis mid-job finish before another worker starts.

    The horse writes its result to the database, which needs no Redis, so its run is not wasted; and the
    node never runs two jobs at once. Meanwhile the node keeps heart-beating and sweeping (once Redis is
    back, the reaper hands a run whose RQ job was lost to a new attempt, and the horse's watcher then stops
    its container, so the wait is short). After `limit_s`, or a second stop signal (Ctrl-C twice: a cold
    stop), the horse is killed; the reaper removes its container and re-queues its work.
    """
    pid = worker.horse_pid
    deadline = time.monotonic() + limit_s
    log.warning("node %s: lost Redis while horse %s runs; waiting for it to finish", worker.node, pid)
    while True:
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return   # already reaped
        if done:
            log.info("node %s: horse %s finished", worker.node, pid)
            return
        if stop.count >= 2 or time.monotonic() > deadline:
            log.warning("node %s: killing horse %s", worker.node, pid)
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)   # the horse leads its own process group
            except (ProcessLookupError, PermissionError):
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
            return
        worker.node_tick()
        time.sleep(0.2)
