"""The dispatcher: the database decides what runs next, fairly between challenges; Redis only carries it.

How fairness works. A new submission is *waiting* in the database. `feed()` moves waiting submissions into
the RQ queue of their accelerator class, but keeps that queue short: at most one job per live worker of the
class, plus one (`target_depth`). Each free slot goes to the challenge with the fewest submissions in
flight (dispatched or running) in that class, ties to the challenge whose oldest waiting submission is
oldest; within a challenge, oldest first. So one challenge that sends a hundred submissions gets its
fair share of the workers, and a newcomer waits behind at most `target_depth` jobs, never behind the whole
backlog. An optional per-challenge cap (`HUB_CHALLENGE_CAP`, default off) bounds how many workers one
challenge may hold at once. `feed()` runs after every submit, after every finished job (in the work
horse), and in every reaper sweep, under a short Redis lock per class; the row moves by compare-and-set
(evaluator.state), so a race between two feeders dispatches a submission once.

Because Redis holds only this short buffer, losing Redis loses nothing: the reaper finds dispatched
submissions whose job is gone and makes them waiting again (see evaluator.reaper).
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from redis import Redis
from redis.exceptions import LockError
from sqlmodel import Session, select

from challenges.models import Challenge, Submission, SubmissionStatus
from evaluator import queues, seams, state
from evaluator.models import WorkerNode
from hub.models import utcnow

DEFAULT_RUNTIME_S = 30.0


def dead_after_s() -> float:
    """A worker whose heartbeat is older than this is gone (its work is handed to another)."""
    return float(os.environ.get("HUB_WORKER_DEAD_AFTER", "10"))


def challenge_cap() -> int:
    return int(os.environ.get("HUB_CHALLENGE_CAP", "0"))


def live_workers(session: Session, accel_class: str | None = None) -> list[WorkerNode]:
    since = utcnow() - timedelta(seconds=dead_after_s())
    nodes = session.exec(select(WorkerNode).where(WorkerNode.heartbeat_at >= since)).all()
    return [n for n in nodes if accel_class is None or accel_class in (n.queues or [])]


def devices_of_class(devices: list[dict[str, Any]] | tuple[dict[str, Any], ...] | None, accel_class: str) -> int:
    """How many of a node's declared devices are of this class."""
    return sum(1 for d in (devices or []) if d.get("accel_class") == accel_class)


def largest_node(session: Session, accel_class: str) -> int:
    """The most devices of a class that one live node has."""
    return max((devices_of_class(n.accelerators, accel_class) for n in live_workers(session, accel_class)), default=0)


def target_depth(session: Session, accel_class: str) -> int:
    return len(live_workers(session, accel_class)) + 1


def _class_rows(session: Session, accel_class: str | None,
                statuses: tuple[str, ...]) -> list[tuple[Submission, Challenge]]:
    stmt = (select(Submission, Challenge).join(Challenge, Challenge.id == Submission.challenge_id)  # type: ignore[arg-type]
            .where(Submission.status.in_(statuses)).order_by(Submission.id))  # type: ignore[attr-defined]
    rows = list(session.exec(stmt))
    if accel_class is None:
        return rows
    return [(s, c) for s, c in rows if queues.accel_class_of(c.accelerators, c.accelerator_class) == accel_class]


@dataclass
class Backlog:
    """Where one accelerator class stands: waiting in the DB, dispatched to Redis, running."""

    accel_class: str
    waiting: list[Submission] = field(default_factory=list)
    dispatched: list[Submission] = field(default_factory=list)
    running: list[Submission] = field(default_factory=list)
    challenges: dict[int, Challenge] = field(default_factory=dict)


def backlogs(session: Session, accel_class: str | None = None) -> dict[str, Backlog]:
    out: dict[str, Backlog] = {}
    for sub, ch in _class_rows(session, accel_class, (SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)):
        cls = queues.accel_class_of(ch.accelerators, ch.accelerator_class)
        b = out.setdefault(cls, Backlog(cls))
        b.challenges[ch.id] = ch  # type: ignore[index]
        if sub.status == SubmissionStatus.RUNNING:
            b.running.append(sub)
        elif sub.job_id:
            b.dispatched.append(sub)
        else:
            b.waiting.append(sub)
    return out


def fair_order(backlog: Backlog, cap: int = 0) -> list[Submission]:
    """The waiting submissions of one class in the order feed() would dispatch them."""
    inflight: dict[int, int] = defaultdict(int)
    for sub in backlog.dispatched + backlog.running:
        inflight[sub.challenge_id] += 1
    pending: dict[int, list[Submission]] = defaultdict(list)
    for sub in backlog.waiting:          # already oldest first
        pending[sub.challenge_id].append(sub)
    order: list[Submission] = []
    while pending:
        eligible = [c for c in pending if not cap or inflight[c] < cap]
        if not eligible:
            break
        cid = min(eligible, key=lambda c: (inflight[c], pending[c][0].id))
        order.append(pending[cid].pop(0))
        inflight[cid] += 1
        if not pending[cid]:
            del pending[cid]
    return order


def feed(session: Session, conn: Redis, accel_class: str | None = None) -> list[int]:
    """Top up the RQ queue of each class from the waiting submissions; returns the ids dispatched."""
    dispatched: list[int] = []
    for cls, backlog in backlogs(session, accel_class).items():
        if not backlog.waiting:
            continue
        lock = conn.lock(f"hub:dispatch:{cls}", timeout=10, blocking_timeout=5)
        if not lock.acquire():
            continue  # another feeder holds it; the next sweep catches anything it missed
        try:
            # Re-read under the lock: another process may have dispatched meanwhile.
            backlog = backlogs(session, cls).get(cls, Backlog(cls))
            room = target_depth(session, cls) - len(backlog.dispatched)
            # Accelerator work is dispatched only while live nodes have devices free for it (devices that
            # dispatched jobs will take count as taken), so a job never wakes to find none and bounce.
            free = None
            if cls != "cpu":
                free = seams.free_devices(session, cls, [n.name for n in live_workers(session, cls)])
                free -= sum(backlog.challenges[s.challenge_id].accelerators for s in backlog.dispatched)
            for sub in fair_order(backlog, challenge_cap()):
                if room <= 0:
                    break
                challenge = backlog.challenges[sub.challenge_id]
                if free is not None:
                    if challenge.accelerators > free:
                        continue
                    free -= challenge.accelerators
                room -= 1
                attempt = state.mark_dispatched(session, sub.id, sub.attempt, queues.queue_name(cls))  # type: ignore[arg-type]
                if attempt is None:
                    continue
                # The row says "dispatched" before the job exists; if we die in between, the reaper
                # sees a dispatched row without a job and makes it waiting again.
                queues.enqueue(conn, sub.id, attempt, cls, challenge.time_limit_s)  # type: ignore[arg-type]
                dispatched.append(sub.id)  # type: ignore[arg-type]
        finally:
            try:
                lock.release()
            except LockError:
                pass
    return dispatched


@dataclass
class QueueInfo:
    """What a team sees about a queued submission."""

    status: str
    position: int | None          # 1 = next to start; None once it runs or has finished
    workers: int                  # live workers that serve its class
    est_wait_s: float | None


def average_runtime(session: Session, accel_class: str, last: int = 20) -> float:
    stmt = (select(Submission, Challenge).join(Challenge, Challenge.id == Submission.challenge_id)  # type: ignore[arg-type]
            .where(Submission.runtime_s.is_not(None))  # type: ignore[union-attr]
            .order_by(Submission.finished_at.desc()).limit(200))  # type: ignore[union-attr]
    runtimes = [s.runtime_s for s, c in session.exec(stmt)
                if queues.accel_class_of(c.accelerators, c.accelerator_class) == accel_class][:last]
    if not runtimes:
        return DEFAULT_RUNTIME_S
    return sum(runtimes) / len(runtimes) + 1.0  # plus the platform's own second


def queue_position(session: Session, submission_id: int) -> QueueInfo:
    sub = state.get(session, submission_id)
    challenge = session.get(Challenge, sub.challenge_id)
    cls = queues.accel_class_of(challenge.accelerators, challenge.accelerator_class)  # type: ignore[union-attr]
    workers = len(live_workers(session, cls))
    if sub.status != SubmissionStatus.QUEUED:
        return QueueInfo(sub.status, None, workers, None)
    backlog = backlogs(session, cls).get(cls, Backlog(cls))
    ahead = sorted(backlog.dispatched, key=lambda s: (s.queued_at or utcnow(), s.id))
    ids = [s.id for s in ahead]
    if sub.id in ids:
        position = ids.index(sub.id) + 1
    else:
        order = [s.id for s in fair_order(backlog)]
        position = len(ids) + (order.index(sub.id) + 1 if sub.id in order else len(order) + 1)
    per_run = average_runtime(session, cls)
    rounds = math.ceil(position / max(1, workers))
    # Work already running finishes, on average, half a run from now.
    est = rounds * per_run - (per_run / 2 if backlog.running else 0.0)
    return QueueInfo(sub.status, position, workers, max(0.0, est) if workers else None)
