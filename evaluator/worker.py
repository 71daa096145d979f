"""A worker node: one RQ worker (rq 3.x, a forked work horse per job) that is also a node of the platform.

`flask --app app worker --queues cpu,nvidia-a100 --accelerators nvidia-a100:2 --name node-1` starts one.
Beside RQ's own work it
* writes a heartbeat into evaluator.models.WorkerNode every HEARTBEAT_S (the reaper hands the work of a
  node whose heartbeat stops to another node), with its queues and device inventory; registers the
  devices with the quota's inventory so leases can be granted on it;
* runs the reaper every `reaper_interval` seconds (a Redis lock lets one node at a time do the
  cluster-wide part; orphan containers are swept on every node, for its own Docker engine);
* wakes every second from its blocking dequeue (a job still starts as soon as it is pushed).
Everything happens in the worker's main thread, so forking a work horse never copies a lock held by
another thread; each horse opens its own database connections and Docker client.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from redis.exceptions import RedisError
from rq import Worker
from rq.job import Job
from rq.queue import Queue
from sqlmodel import select

from evaluator import jobs, queues, reaper, seams
from evaluator.models import WorkerNode
from hub.db import get_engine, session_scope
from hub.models import utcnow

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
RESTART_DELAY_S = 1.0


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

    @property
    def dequeue_timeout(self) -> int:
        return 1

    # RQ calls heartbeat() from its loop, while waiting for work and while a horse runs.
    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        super().heartbeat(timeout, pipeline)
        if not self._is_horse:
            self.node_tick()

    def node_tick(self, force: bool = False) -> None:
        now = time.monotonic()
        try:
            if force or now - self._last_beat >= HEARTBEAT_S:
                self._last_beat = now
                beat(self.database_url, self.node, self.classes, self.devices)
            if self.reaper_interval > 0 and (force or now - self._last_sweep >= self.reaper_interval):
                self._last_sweep = now
                try:
                    client = jobs.docker_client()
                except Exception:  # noqa: BLE001 - Docker down: sweep the database and Redis all the same
                    log.warning("node %s: Docker is not answering; orphan containers are not swept", self.node)
                    client = None
                with session_scope(self.database_url) as session:
                    reaper.sweep(session, self.connection, client)
        except Exception:  # noqa: BLE001 - a failed tick must not stop the worker; the next one retries
            log.exception("node %s: heartbeat or reaper sweep failed", self.node)

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        # The horse is a fork: drop the parent's pooled DB connections (without closing them under it).
        get_engine(self.database_url).dispose(close=False)
        super().main_work_horse(job, queue)


def beat(database_url: str, node: str, classes: list[str], devices: list[dict[str, Any]]) -> None:
    with session_scope(database_url) as session:
        row = session.exec(select(WorkerNode).where(WorkerNode.name == node)).first()
        if row is None:
            row = WorkerNode(name=node, hostname=socket.gethostname(), queues=classes, accelerators=devices)
        row.queues, row.accelerators = list(classes), list(devices)
        row.heartbeat_at = utcnow()
        session.add(row)


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
        seams.register_node(session, node, devices)


def resolve_inventory(node: str, accelerators: str | None) -> list[dict[str, Any]]:
    """--accelerators in the ACCELERATORS format ("none" for a CPU-only node); unset: ask the node."""
    if accelerators is None:
        return seams.node_inventory()
    if accelerators.strip().lower() in ("", "none", "0"):
        return []
    return seams.parse_accelerators(accelerators, node)


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
    node = name or os.environ.get("HUB_NODE_NAME") or socket.gethostname()
    os.environ["HUB_NODE_NAME"] = node
    devices = resolve_inventory(node, accelerators)
    classes = resolve_classes(queue_spec, devices)
    allow = config.get("REGISTRY_ALLOWLIST") or os.environ.get("REGISTRY_ALLOWLIST", "")
    jobs.configure(jobs.Runtime(database_url=config["DATABASE_URL"], redis_url=config["REDIS_URL"],
                                data_dir=config["DATA_DIR"], node=node,
                                max_image_bytes=int(config.get("MAX_IMAGE_BYTES", 2 << 30)), devices=tuple(devices),
                                registry_allowlist=tuple(h.strip() for h in str(allow).split(",") if h.strip())))
    register(config["DATABASE_URL"], node, classes, devices)
    log.info("node %s: queues %s, devices %s", node, classes, [d["uuid"] for d in devices])
    generation = 0
    while True:
        generation += 1
        worker = NodeWorker([queues.queue_name(c) for c in classes], node=node, classes=classes, devices=devices,
                            database_url=config["DATABASE_URL"], redis_url=config["REDIS_URL"],
                            reaper_interval=reaper_interval, generation=generation)
        try:
            worker.node_tick(force=True)
            worked = worker.work(burst=burst, logging_level=logging_level)
        except (RedisError, ValueError):
            worked = False
        if burst or worker._stop_requested or worker._shutdown_requested_date is not None:
            return worked   # asked to stop (SIGTERM / Ctrl-C), or a burst that ran dry
        # RQ leaves its loop when Redis goes away; the node waits for it to come back instead of dying.
        log.warning("node %s: lost Redis; starting again in %s s", node, RESTART_DELAY_S)
        time.sleep(RESTART_DELAY_S)
