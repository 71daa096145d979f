"""The dispatcher: the database decides what runs next, fairly between challenges; Redis only carries it.

How fairness works. A new submission is *waiting* in the database. `feed()` moves waiting submissions into
the RQ queue of their accelerator class, but keeps that queue short: at most one job per live worker of the
class, plus one (`target_depth`). Each free slot goes to the challenge with the fewest submissions in
flight (dispatched or running) in that class, ties to the challenge whose oldest waiting submission is
oldest; within a challenge, oldest first. So one challenge that sends a hundred submissions gets its
fair share of the workers, and a newcomer waits behind at most `target_depth` jobs, never behind the whole
backlog. An optional per-challenge cap (`HUB_CHALLENGE_CAP`, default off) bounds how many workers one
challenge may hold at once.

One dispatcher at a time: `feed()` runs under one platform-wide lock taken without waiting. Whoever finds it
held (a submit, a finished job, another node's sweep) leaves a nudge instead, and the holder makes one more
pass before it lets go. A pass costs in proportion to the free slots, not to the backlog: one GROUP BY gives each
challenge's waiting count, oldest waiting id and runs in flight, the live nodes come from Redis
(evaluator.nodes), and only the heads that can be sent are read (per challenge, by id, LIMIT). Rows move
by compare-and-set (evaluator.state), so even two dispatchers would send a submission once.

Because Redis holds only this short buffer, losing Redis loses nothing: the reaper finds dispatched
submissions whose job is gone and makes them waiting again (see evaluator.reaper).
"""
from __future__ import annotations

import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import LockError, RedisError
from sqlalchemy import and_, func, or_, union_all
from sqlmodel import Session, col, select

from challenges.models import Challenge, Submission, SubmissionStatus
from evaluator import nodes, queues, state
from evaluator.quota import inventory
from hub.models import utcnow

DEFAULT_RUNTIME_S = 30.0
LEADER_KEY = "hub:dispatcher"
NUDGE_KEY = "hub:dispatch:again"
MAX_PASSES = 3               # nudges that keep coming are picked up by the next sweep
RUNTIME_CACHE_S = 30.0
dead_after_s = nodes.dead_after_s


def challenge_cap() -> int:
    return int(os.environ.get("HUB_CHALLENGE_CAP", "0"))


def live_workers(session: Session, accel_class: str | None = None, conn: Redis | None = None) -> list[nodes.LiveNode]:
    """The live nodes (serving `accel_class` when given), from their Redis keys; none without Redis."""
    if conn is None:
        return []
    return nodes.live(conn, accel_class)


def devices_of_class(devices: list[dict[str, Any]] | tuple[dict[str, Any], ...] | None, accel_class: str) -> int:
    """How many of a node's declared devices are of this class."""
    return sum(1 for d in (devices or []) if d.get("accel_class") == accel_class)


def largest_node(session: Session, accel_class: str, conn: Redis | None = None) -> int:
    """The most devices of a class that one live node has."""
    return max((devices_of_class(n.accelerators, accel_class) for n in live_workers(session, accel_class, conn)),
               default=0)


def target_depth(session: Session, accel_class: str, conn: Redis | None = None) -> int:
    return (nodes.live_count(conn, accel_class) if conn is not None else 0) + 1


# ---------------------------------------------------------------- the backlog, by counts
@dataclass
class Group:
    """One challenge's submissions in the dispatcher's eyes (a fairness group)."""

    challenge_id: int
    accelerators: int = 0
    time_limit_s: int = 0
    waiting: int = 0
    head: int | None = None       # its oldest waiting submission
    dispatched: int = 0
    running: int = 0

    @property
    def inflight(self) -> int:
        return self.dispatched + self.running


def groups(session: Session, accel_class: str | None = None) -> dict[str, dict[int, Group]]:
    """Each class's groups with work waiting or in flight, from two GROUP BYs on the index ix_submission_queue
    (the waiting rows are counted in the index, never read)."""
    waiting = session.exec(select(Submission.challenge_id, func.count(), func.min(Submission.id))
                           .where(Submission.status == SubmissionStatus.QUEUED, Submission.job_id == "")
                           .group_by(Submission.challenge_id)).all()
    flying = session.exec(select(Submission.challenge_id, Submission.status, func.count()).where(or_(
        Submission.status == SubmissionStatus.RUNNING,
        and_(Submission.status == SubmissionStatus.QUEUED, col(Submission.job_id) > "")))
        .group_by(Submission.challenge_id, Submission.status)).all()
    ids = {r[0] for r in waiting} | {r[0] for r in flying}
    if not ids:
        return {}
    info = {cid: (cls_of(acc, acls), acc, limit) for cid, acc, acls, limit in session.exec(
        select(Challenge.id, Challenge.accelerators, Challenge.accelerator_class, Challenge.time_limit_s)
        .where(col(Challenge.id).in_(ids))).all()}
    out: dict[str, dict[int, Group]] = {}

    def group(cid: int) -> Group | None:
        cls, acc, limit = info[cid]
        if accel_class is not None and cls != accel_class:
            return None
        return out.setdefault(cls, {}).setdefault(cid, Group(cid, acc, limit))

    for cid, n, first in waiting:
        if (g := group(cid)) is not None:
            g.waiting, g.head = n, first
    for cid, status, n in flying:
        if (g := group(cid)) is not None:
            if status == SubmissionStatus.RUNNING:
                g.running += n
            else:
                g.dispatched += n
    return out


def cls_of(accelerators: int, accelerator_class: str) -> str:
    return queues.accel_class_of(accelerators, accelerator_class)


def waiting_query(challenge_id: int) -> Any:
    return select(Submission.id, Submission.attempt).where(
        Submission.status == SubmissionStatus.QUEUED, Submission.job_id == "", Submission.challenge_id == challenge_id)


class _Line:
    """A group's waiting submissions, read from the database a batch at a time, oldest first."""

    def __init__(self, session: Session, group: Group, batch: int) -> None:
        self.session, self.group, self.batch = session, group, max(1, batch)
        self.rows: deque[tuple[int, int]] = deque()
        self.left = group.waiting
        self.after = (group.head or 1) - 1

    def head(self) -> int:
        if not self.rows:
            self._fetch()
        return self.rows[0][0] if self.rows else (self.group.head or 0)

    def pop(self) -> tuple[int, int] | None:
        if not self.rows:
            self._fetch()
        if not self.rows:
            self.left = 0
            return None
        self.left -= 1
        return self.rows.popleft()

    def _fetch(self) -> None:
        got = self.session.exec(waiting_query(self.group.challenge_id).where(Submission.id > self.after)
                                .order_by(Submission.id).limit(self.batch)).all()
        self.rows.extend((int(i), int(a)) for i, a in got)
        if got:
            self.after = got[-1][0]


def pick(session: Session, gs: dict[int, Group], room: int, free: int | None, cap: int = 0) -> list[tuple[int, int]]:
    """The (id, attempt) that fill `room` slots (and `free` devices, None for CPU) in fair order."""
    if room <= 0:
        return []
    most = room
    if free is not None:
        smallest = min((g.accelerators for g in gs.values() if g.waiting), default=1) or 1
        most = min(room, max(0, free) // smallest)
    inflight = {cid: g.inflight for cid, g in gs.items()}
    lines = {cid: _Line(session, g, most + 1) for cid, g in gs.items() if g.waiting}
    picks: list[tuple[int, int]] = []
    while lines and room > 0:
        eligible = [c for c in lines if not cap or inflight[c] < cap]
        if not eligible:
            break
        cid = min(eligible, key=lambda c: (inflight[c], lines[c].head()))
        accelerators = gs[cid].accelerators
        if free is not None and accelerators > free:
            # None of this challenge's submissions fits the devices free now; the others' order is unchanged.
            del lines[cid]
            continue
        got = lines[cid].pop()
        if got is not None:
            picks.append(got)
            inflight[cid] += 1
            room -= 1
            if free is not None:
                free -= accelerators
        if lines[cid].left <= 0:
            del lines[cid]
    return picks


# ---------------------------------------------------------------- the dispatcher
def feed(session: Session, conn: Redis, accel_class: str | None = None) -> list[int]:
    """Top up the RQ queue of each class from the waiting submissions; returns the ids dispatched.

    Never waits: when another process holds the dispatcher, it is nudged to make one more pass."""
    lock = conn.lock(LEADER_KEY, timeout=30)
    dispatched: list[int] = []
    for _ in range(MAX_PASSES):
        if not lock.acquire(blocking=False):
            conn.set(NUDGE_KEY, 1, px=30_000)
            return dispatched
        try:
            conn.delete(NUDGE_KEY)
            dispatched += _pass(session, conn, accel_class)
        finally:
            try:
                lock.release()
            except LockError:
                pass
        if not conn.exists(NUDGE_KEY):
            break
    return dispatched


def _pass(session: Session, conn: Redis, accel_class: str | None) -> list[int]:
    backlog = groups(session, accel_class)
    if not any(g.waiting for gs in backlog.values() for g in gs.values()):
        session.rollback()   # end the read transaction: SQLite writers must not wait on an idle reader
        return []
    sent: list[int] = []
    for cls, gs in sorted(backlog.items()):
        if not any(g.waiting for g in gs.values()):
            continue
        of_class = nodes.live_names(conn, cls)
        room = len(of_class) + 1 - sum(g.dispatched for g in gs.values())
        # Accelerator work is dispatched only while live nodes have devices free for it (devices that
        # dispatched jobs will take count as taken), so a job never wakes to find none and bounce.
        free = None
        if cls != "cpu":
            free = inventory.free_devices(session, cls, of_class) - sum(g.dispatched * g.accelerators for g in gs.values())
        picks = pick(session, gs, room, free, challenge_cap())
        if not picks:
            continue
        won = state.mark_dispatched_many(session, picks, queues.queue_name(cls))
        # The rows say "dispatched" before the jobs exist; if we die in between, the reaper sees dispatched
        # rows without a job and makes them waiting again.
        limits = _time_limits(session, [sid for sid, _ in won], gs)
        queues.enqueue_many(conn, [(sid, attempt, cls, limits[sid]) for sid, attempt in won])
        sent += [sid for sid, _ in won]
    session.rollback()
    return sent


def _time_limits(session: Session, ids: list[int], gs: dict[int, Group]) -> dict[int, int]:
    if not ids:
        return {}
    rows = session.exec(select(Submission.id, Submission.challenge_id).where(col(Submission.id).in_(ids))).all()
    return {sid: gs[cid].time_limit_s for sid, cid in rows}


@dataclass
class QueueInfo:
    """What a team sees about a queued submission."""

    status: str
    position: int | None          # 1 = next to start; None once it runs or has finished
    workers: int                  # live workers that serve its class
    est_wait_s: float | None


_runtimes: dict[str, tuple[float, float]] = {}   # class → (valid until, seconds): an estimate, read often


def average_runtime(session: Session, accel_class: str, last: int = 20) -> float:
    """Mean runtime of the class's latest runs plus the platform's own second (kept RUNTIME_CACHE_S)."""
    cached = _runtimes.get(accel_class)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    stmt = (select(Submission.runtime_s, Challenge.accelerators, Challenge.accelerator_class)
            .join(Challenge, Challenge.id == Submission.challenge_id)  # type: ignore[arg-type]
            .where(Submission.runtime_s.is_not(None))  # type: ignore[union-attr]
            .order_by(Submission.finished_at.desc()).limit(200))  # type: ignore[union-attr]
    runtimes = [r for r, acc, acls in session.exec(stmt) if cls_of(acc, acls) == accel_class][:last]
    value = sum(runtimes) / len(runtimes) + 1.0 if runtimes else DEFAULT_RUNTIME_S
    _runtimes[accel_class] = (time.monotonic() + RUNTIME_CACHE_S, value)
    return value


def queue_position(session: Session, submission_id: int, conn: Redis | None = None) -> QueueInfo:
    """Where a submission stands: the dispatched ahead of it, then its rank in fair_order, from counts."""
    sub = state.get(session, submission_id)
    challenge = session.get(Challenge, sub.challenge_id)
    cls = cls_of(challenge.accelerators, challenge.accelerator_class)  # type: ignore[union-attr]
    try:
        workers = nodes.live_count(conn, cls) if conn is not None else 0
    except RedisError:
        workers = 0      # the page still shows the rest; no estimate without knowing the workers
    if sub.status != SubmissionStatus.QUEUED:
        return QueueInfo(sub.status, None, workers, None)
    gs = groups(session, cls).get(cls, {})
    if sub.job_id:
        position = 1 + _dispatched_before(session, sub, list(gs))
    else:
        position = sum(g.dispatched for g in gs.values()) + 1 + _fair_rank(session, sub, gs)
    per_run = average_runtime(session, cls)
    rounds = math.ceil(position / max(1, workers))
    # Work already running finishes, on average, half a run from now.
    est = rounds * per_run - (per_run / 2 if any(g.running for g in gs.values()) else 0.0)
    return QueueInfo(sub.status, position, workers, max(0.0, est) if workers else None)


def _dispatched_before(session: Session, sub: Submission, challenge_ids: list[int]) -> int:
    at = sub.queued_at or utcnow()
    return int(session.exec(select(func.count()).where(
        Submission.status == SubmissionStatus.QUEUED, Submission.job_id != "",
        col(Submission.challenge_id).in_(challenge_ids),
        (col(Submission.queued_at) < at) | ((Submission.queued_at == at) & (col(Submission.id) < sub.id)))).one())


def _fair_rank(session: Session, sub: Submission, gs: dict[int, Group]) -> int:
    """How many waiting submissions fair_order puts before this one, without reading the backlog.

    Group g's j-th waiting submission (j from 0) is picked with the key (inflight_g + j, its id), and fair_order
    picks in increasing key order (each group's keys increase), so this one, the k-th of its group, is preceded by
    every (g, j) whose key is smaller than (inflight + k, its id): min(waiting_g, level − inflight_g) per other
    group, plus the one at the same level whose id is smaller.
    """
    own = gs[sub.challenge_id]
    k = int(session.exec(select(func.count()).where(
        Submission.status == SubmissionStatus.QUEUED, Submission.job_id == "",
        Submission.challenge_id == sub.challenge_id, col(Submission.id) < sub.id)).one())
    level = own.inflight + k
    ahead = k
    ties = []
    for cid, g in gs.items():
        if cid == sub.challenge_id or not g.waiting:
            continue
        j = level - g.inflight
        ahead += min(g.waiting, max(0, j))
        if 0 <= j < g.waiting:
            ties.append(select(waiting_query(cid).order_by(Submission.id).offset(j).limit(1).subquery()))
    if ties:
        # The other groups' submissions at the same level, in one statement: those with a smaller id go first.
        ahead += sum(1 for row in session.exec(union_all(*ties)) if row[0] < sub.id)  # type: ignore[call-overload]
    return ahead
