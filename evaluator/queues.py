"""RQ queues: one per accelerator class, deterministic job ids, explicit timeouts, bounded retries.

Redis only carries work; the database decides what runs (see evaluator.dispatch for fairness). A job is
`evaluator.jobs.evaluate(submission_id, attempt)` with id `sub-<id>-a<attempt>`, on queue
`eval-<accelerator class>` ("eval-cpu" for challenges without accelerators), with
`job_timeout = time limit + JOB_MARGIN_S` and `Retry(max=INFRA_RETRIES)`: the job only raises for
infrastructure errors (Docker down, image load failed…); a team's own failure is a final status, never an
exception, so it is never retried.
"""
from __future__ import annotations

import re
from functools import lru_cache

from redis import Redis
from rq import Queue, Retry
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job

from evaluator.state import job_id_for

JOB_MARGIN_S = 180          # image load, scoring and clean-up on top of the sandbox's own limit
INFRA_RETRIES = 2           # bounded: after that the submission fails as the platform's fault
RESULT_TTL_S = 3600
LIVE_LOG_TTL_S = 6 * 3600
_CLASS_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


@lru_cache(maxsize=8)
def connect(url: str) -> Redis:
    """One client (and pool) per URL per process; redis-py re-creates its pool after a fork."""
    return Redis.from_url(url, health_check_interval=30)


def accel_class_of(accelerators: int, accelerator_class: str) -> str:
    return "cpu" if accelerators <= 0 else (accelerator_class or "gpu")


def queue_name(accel_class: str) -> str:
    if not _CLASS_RE.match(accel_class):
        raise ValueError(f"bad accelerator class {accel_class!r}")
    return f"eval-{accel_class}"


def class_of_queue(name: str) -> str:
    return name[len("eval-"):] if name.startswith("eval-") else name


def job_timeout(time_limit_s: int) -> int:
    return int(time_limit_s) + JOB_MARGIN_S


def enqueue(conn: Redis, submission_id: int, attempt: int, accel_class: str, time_limit_s: int) -> Job:
    return enqueue_many(conn, [(submission_id, attempt, accel_class, time_limit_s)])[0]


def enqueue_many(conn: Redis, jobs: list[tuple[int, int, str, int]]) -> list[Job]:
    """Enqueue (submission id, attempt, class, time limit) jobs, one pipeline per class."""
    by_class: dict[str, list[tuple[int, int, str, int]]] = {}
    for job in jobs:
        by_class.setdefault(job[2], []).append(job)
    out: list[Job] = []
    for accel_class, of_class in by_class.items():
        queue = Queue(queue_name(accel_class), connection=conn)
        datas = [Queue.prepare_data("evaluator.jobs.evaluate", (sid, attempt), job_id=job_id_for(sid, attempt),
                                    timeout=job_timeout(limit), retry=Retry(max=INFRA_RETRIES),
                                    result_ttl=RESULT_TTL_S, failure_ttl=24 * 3600,
                                    description=f"evaluate submission {sid} attempt {attempt}")
                 for sid, attempt, _cls, limit in of_class]
        out += queue.enqueue_many(datas)
    return out


def job_statuses(conn: Redis, job_ids: list[str]) -> dict[str, str | None]:
    """job_status of many jobs in one round trip."""
    pipe = conn.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hget(Job.key_for(job_id), "status")
    return {job_id: (raw.decode() if isinstance(raw, bytes) else raw) or None
            for job_id, raw in zip(job_ids, pipe.execute())}


def job_status(conn: Redis, job_id: str) -> str | None:
    """The RQ status of a job ("queued", "started", "failed"…), or None when Redis does not know it."""
    try:
        status = Job.fetch(job_id, connection=conn).get_status(refresh=True)
    except (NoSuchJobError, InvalidJobOperation):
        return None
    if status is None:
        return None
    return str(getattr(status, "value", status))


def queued_count(conn: Redis, accel_class: str) -> int:
    return Queue(queue_name(accel_class), connection=conn).count


def stop_job(conn: Redis, job_id: str) -> bool:
    """Ask the worker running this job to kill its work horse (used by cancel); False if none runs it."""
    try:
        send_stop_job_command(conn, job_id)
        return True
    except (NoSuchJobError, InvalidJobOperation):
        return False


def drop_job(conn: Redis, job_id: str) -> None:
    """Remove a job that should no longer run (cancelled before a worker took it)."""
    try:
        job = Job.fetch(job_id, connection=conn)
    except (NoSuchJobError, InvalidJobOperation):
        return
    try:
        job.cancel()
    except InvalidJobOperation:
        pass


# ---------------------------------------------------------------- live log (the running container's output)
def live_log_key(submission_id: int, attempt: int) -> str:
    return f"hub:livelog:{submission_id}:a{attempt}"


def set_live_log(conn: Redis, submission_id: int, attempt: int, text: bytes) -> None:
    """The latest (capped) log of a running attempt, written by its work horse about once a second."""
    conn.set(live_log_key(submission_id, attempt), text, ex=LIVE_LOG_TTL_S)


def read_live_log(conn: Redis, submission_id: int, attempt: int, offset: int = 0) -> bytes:
    return conn.getrange(live_log_key(submission_id, attempt), offset, -1) or b""
