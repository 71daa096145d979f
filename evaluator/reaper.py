"""The reaper: a sweep every few seconds so that nothing stays stuck and nothing is lost.

One sweep, in order:
1. lost work: a running submission whose node's key expired (kill -9 of the node, evaluator.nodes), or whose
   node no longer lists it while Redis has lost its job, or whose RQ job ended (kill -9 of its work horse), and a
   dispatched submission whose RQ job Redis no longer knows (a Redis restart, an eviction), go back to waiting; the
   dispatcher gives them a new attempt. After MAX_ATTEMPTS the submission fails as the platform's fault
   (infra_error, never counted). Right after a Redis restart nobody is declared dead until every live node could
   beat again (`nodes.may_declare_dead`);
2. leases held by an attempt that is over are released, expired ones ended;
3. waiting work that no live node can run (more devices than any node of the class has) fails with why;
4. containers of this platform instance on this node's engine whose attempt is over (orphans) are killed
   and removed; another instance's containers on the same engine are never touched (evaluator.instance);
5. the dispatcher tops up the queues.
Steps 1–3 run on one node at a time (a Redis lock); step 4 runs on every node, for its own Docker engine.
It runs inside each worker (`flask --app app worker`, every `--reaper-interval` seconds) and on its own as
`flask --app app reaper`. Its cost follows the runs in flight, not the backlog: one query for them, one MGET of
the node keys, one pipeline of job states, and one UPDATE per kind of hand-back with the leases released together.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from redis import Redis
from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from challenges.models import Outcome, Submission, SubmissionStatus
from evaluator import dispatch, instance, nodes, queues, sandbox, state
from evaluator.quota import leases
from evaluator.quota.models import Lease
from hub.models import utcnow

log = logging.getLogger(__name__)

GRACE_S = 3.0           # a row younger than this may be mid-transition; look again next sweep
ALIVE_JOB_STATES = {"queued", "scheduled", "started", "deferred"}


def max_attempts() -> int:
    return int(os.environ.get("HUB_MAX_ATTEMPTS", "5"))


@dataclass
class SweepReport:
    requeued: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    leases_released: list[int] = field(default_factory=list)
    containers_removed: list[str] = field(default_factory=list)
    dispatched: list[int] = field(default_factory=list)


def _old_enough(at: datetime | None, now: datetime) -> bool:
    return at is None or (now - at) >= timedelta(seconds=GRACE_S)


def give_back(session: Session, sub: Submission, why: str, report: SweepReport) -> None:
    """Hand an attempt's work to a new attempt, or fail it as the platform's fault after too many."""
    seen = Submission.model_validate(sub.model_dump())  # the version this decision was made on
    sub = seen
    if sub.attempt >= max_attempts():
        if state.fail(session, sub.id, Outcome.INFRA_ERROR,  # type: ignore[arg-type]
                      f"The platform gave up after {sub.attempt} attempts: {why}", attempt=sub.attempt):
            report.failed.append(sub.id)  # type: ignore[arg-type]
            report.leases_released += leases.release_attempt(session, sub.id, sub.attempt)  # type: ignore[arg-type]
        return
    if state.requeue(session, sub.id, sub.attempt, infra=True, seen=sub):  # type: ignore[arg-type]
        # The attempt is over: its devices go back now, so the next attempt can have them.
        report.leases_released += leases.release_attempt(session, sub.id, sub.attempt)  # type: ignore[arg-type]
        log.warning("submission %s attempt %s handed back: %s", sub.id, sub.attempt, why)
        report.requeued.append(sub.id)  # type: ignore[arg-type]


class Flight(NamedTuple):
    """A running or dispatched submission as the reaper reads it (columns, not the wide row)."""

    id: int
    status: str
    attempt: int
    job_id: str
    worker: str
    started_at: datetime | None
    queued_at: datetime | None


def in_flight(session: Session) -> list[Flight]:
    """Running and dispatched submissions (never the waiting backlog): one indexed query."""
    rows = session.exec(select(Submission.id, Submission.status, Submission.attempt, Submission.job_id,
                               Submission.worker, Submission.started_at, Submission.queued_at).where(or_(
        Submission.status == SubmissionStatus.RUNNING,
        and_(Submission.status == SubmissionStatus.QUEUED, col(Submission.job_id) > ""))).order_by(Submission.id))
    return [Flight(*row) for row in rows]


def recover_lost_work(session: Session, conn: Redis, report: SweepReport, now: datetime | None = None) -> None:
    now = now or utcnow()
    rows = [s for s in in_flight(session)
            if _old_enough(s.started_at if s.status == SubmissionStatus.RUNNING else s.queued_at, now)]
    session.rollback()   # end the read transaction before the hand-back writes
    if not rows:
        return
    live = {n.name: n.runs for n in nodes.live(conn)}
    may_declare_dead = nodes.may_declare_dead(conn)
    jobs = queues.job_statuses(conn, [s.job_id for s in rows])
    lost: list[tuple[Flight, str]] = []
    for sub in rows:
        job_state = jobs[sub.job_id]
        if sub.status == SubmissionStatus.RUNNING:
            listed = sub.worker in live and (sub.id, sub.attempt) in live[sub.worker]
            if sub.worker not in live:
                if may_declare_dead:
                    lost.append((sub, f"worker {sub.worker or '?'} stopped answering"))
            elif job_state is not None and job_state != "started":
                lost.append((sub, f"its job ended without a result ({job_state})"))
            elif job_state is None and not listed and may_declare_dead:
                # Redis lost the job (a restart) and the node says it is not running it: nothing will finish it.
                lost.append((sub, "its job ended without a result (lost)"))
        elif job_state not in ALIVE_JOB_STATES:
            lost.append((sub, f"its queued job was lost ({job_state or 'not in Redis'})"))
    hand_back(session, lost, report)


def hand_back(session: Session, lost: list[tuple[Flight, str]], report: SweepReport) -> None:
    """give_back for many at once: one UPDATE for the runs handed to a new attempt, leases released together."""
    again = [(s, why) for s, why in lost if s.attempt < max_attempts()]
    for sub, why in lost:
        if sub.attempt >= max_attempts():
            give_back(session, state.get(session, sub.id), why, report)   # rare: each failure is settled alone
    if not again:
        return
    newest = max((s.started_at for s, _ in again if s.started_at is not None), default=None)
    # Compare-and-set on what this sweep saw: the same attempt (its job id), status and node, and not claimed
    # again since (a re-claim stamps a later started_at).
    seen = or_(*[and_(Submission.job_id == s.job_id, Submission.status == s.status, Submission.worker == s.worker,
                      Submission.started_at.is_(None) if s.started_at is None  # type: ignore[union-attr]
                      else col(Submission.started_at) <= newest)
                 for s, _ in again])
    stmt = (update(Submission).where(col(Submission.id).in_([s.id for s, _ in again]), seen,
                                     col(Submission.status).in_([SubmissionStatus.QUEUED, SubmissionStatus.RUNNING]))
            .values(status=SubmissionStatus.QUEUED, job_id="", worker="", started_at=None, container_started_at=None,
                    infra_failures=Submission.infra_failures + 1)
            .returning(Submission.id, Submission.attempt).execution_options(synchronize_session=False))
    won = [(int(i), int(a)) for i, a in session.execute(stmt).all()]
    session.commit()
    session.expire_all()
    why = {s.id: reason for s, reason in again}
    for sid, attempt in won:
        log.warning("submission %s attempt %s handed back: %s", sid, attempt, why[sid])
    report.requeued += [sid for sid, _ in won]
    # The attempts are over: their devices go back now, so the next attempts can have them.
    report.leases_released += leases.release_many(session, attempts=won)


def release_finished_leases(session: Session, report: SweepReport) -> None:
    leases.expire_stale(session)
    # One statement: active leases whose attempt is no longer the current running or dispatched one (RQ reruns a
    # dispatched attempt after an infrastructure error, which keeps its lease).
    current = and_(Submission.attempt == Lease.attempt, or_(
        Submission.status == SubmissionStatus.RUNNING,
        and_(Submission.status == SubmissionStatus.QUEUED, Submission.job_id != "")))
    over = list(session.exec(select(Lease.id).join(Submission, Submission.id == Lease.submission_id)  # type: ignore[arg-type]
                             .where(Lease.released_at == None, ~current)))  # noqa: E711
    report.leases_released += leases.release_many(session, lease_ids=over)


def fail_unrunnable(session: Session, report: SweepReport, conn: Redis | None = None) -> None:
    """Waiting work that needs more devices than any live node of its class has cannot ever start."""
    for cls, gs in dispatch.groups(session).items():
        if cls == "cpu" or not any(g.waiting for g in gs.values()):
            continue
        live = dispatch.live_workers(session, cls, conn)
        if not live:
            continue  # no node of the class is up right now; it may come back
        most = max(dispatch.devices_of_class(n.accelerators, cls) for n in live)
        too_big = [g for g in gs.values() if g.waiting and g.accelerators > most]
        for g in too_big:
            reason = (f"No worker node has {g.accelerators} devices of class {cls} "
                      f"(the largest has {most}).")
            for sid, attempt in session.exec(dispatch.waiting_query(g.challenge_id)).all():
                if state.fail(session, sid, Outcome.INFRA_ERROR, reason, attempt=attempt):
                    report.failed.append(sid)


def remove_orphan_containers(session: Session, client: Any, report: SweepReport) -> None:
    """Kill and remove this instance's containers whose attempt is not running.

    Only this platform instance's (by its label and its name, evaluator.instance): another instance on the
    same engine has its own database, in which its live runs are running, and its own reaper.
    """
    own = instance.of_session(session)
    for name in [c.name for c in sandbox.list_hub_containers(client, {instance.LABEL: own})]:
        parsed = state.parse_container_name(name)
        if parsed is None or parsed[0] != own:
            continue
        _own, sub_id, attempt = parsed
        sub = session.get(Submission, sub_id, populate_existing=True)
        if sub is not None and sub.status == SubmissionStatus.RUNNING and sub.attempt == attempt:
            continue
        sandbox.kill_and_remove(client, name)
        report.containers_removed.append(name)


def sweep(session: Session, conn: Redis, client: Any | None = None) -> SweepReport:
    """One pass of the reaper (see the module docstring)."""
    report = SweepReport()
    lock = conn.lock("hub:reaper", timeout=60)
    if lock.acquire(blocking=False):
        try:
            recover_lost_work(session, conn, report)
            release_finished_leases(session, report)
            fail_unrunnable(session, report, conn)
        finally:
            try:
                lock.release()
            except Exception:  # noqa: BLE001 - the lock expires by itself
                pass
    if client is not None:
        try:
            remove_orphan_containers(session, client, report)
        except Exception:  # noqa: BLE001 - a Docker failure must not stop the rest of the sweep
            log.warning("orphan containers not swept: Docker failed", exc_info=True)
    report.dispatched = dispatch.feed(session, conn)
    return report
