"""The reaper: a sweep every few seconds so that nothing stays stuck and nothing is lost.

One sweep, in order:
1. lost work: a running submission whose worker stopped heart-beating (kill -9 of the worker) or whose RQ
   job is no longer running (kill -9 of its work horse), and a dispatched submission whose RQ job Redis
   no longer knows (a Redis restart, an eviction), go back to waiting; the dispatcher gives them a new
   attempt. After MAX_ATTEMPTS the submission fails as the platform's fault (infra_error, never counted);
2. leases held by an attempt that is over are released, expired ones ended;
3. waiting work that no live node can run (more devices than any node of the class has) fails with why;
4. containers of this platform instance on this node's engine whose attempt is over (orphans) are killed
   and removed; another instance's containers on the same engine are never touched (evaluator.instance);
5. the dispatcher tops up the queues.
Steps 1–3 run on one node at a time (a Redis lock); step 4 runs on every node, for its own Docker engine.
It runs inside each worker (`flask --app app worker`, every `--reaper-interval` seconds) and on its own as
`flask --app app reaper`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from redis import Redis
from sqlmodel import Session

from challenges.models import Challenge, Outcome, Submission, SubmissionStatus
from evaluator import dispatch, instance, queues, seams, state
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
            report.leases_released += seams.release_attempt_leases(session, sub.id, sub.attempt)  # type: ignore[arg-type]
        return
    if state.requeue(session, sub.id, sub.attempt, infra=True, seen=sub):  # type: ignore[arg-type]
        # The attempt is over: its devices go back now, so the next attempt can have them.
        report.leases_released += seams.release_attempt_leases(session, sub.id, sub.attempt)  # type: ignore[arg-type]
        log.warning("submission %s attempt %s handed back: %s", sub.id, sub.attempt, why)
        report.requeued.append(sub.id)  # type: ignore[arg-type]


def recover_lost_work(session: Session, conn: Redis, report: SweepReport, now: datetime | None = None) -> None:
    now = now or utcnow()
    live = {n.name for n in dispatch.live_workers(session)}
    for sub in state.unfinished(session):
        if sub.status == SubmissionStatus.RUNNING:
            if not _old_enough(sub.started_at, now):
                continue
            job_state = queues.job_status(conn, sub.job_id)
            if sub.worker not in live:
                give_back(session, sub, f"worker {sub.worker or '?'} stopped answering", report)
            elif job_state != "started":
                give_back(session, sub, f"its job ended without a result ({job_state or 'lost'})", report)
        elif sub.job_id:
            if not _old_enough(sub.queued_at, now):
                continue
            job_state = queues.job_status(conn, sub.job_id)
            if job_state not in ALIVE_JOB_STATES:
                give_back(session, sub, f"its queued job was lost ({job_state or 'not in Redis'})", report)


def release_finished_leases(session: Session, report: SweepReport) -> None:
    seams.expire_stale_leases(session)
    for lease in seams.active_leases(session):
        # A fresh read: a row cached earlier in this sweep may predate the claim that took this lease.
        sub = session.get(Submission, lease.submission_id, populate_existing=True)
        current = sub is not None and sub.attempt == lease.attempt and (
            sub.status == SubmissionStatus.RUNNING
            # dispatched again after an infrastructure error: RQ reruns this attempt, which keeps its lease
            or (sub.status == SubmissionStatus.QUEUED and sub.job_id != ""))
        if not current:
            seams.release_lease(session, lease.id)
            report.leases_released.append(lease.id)


def fail_unrunnable(session: Session, report: SweepReport) -> None:
    """Waiting work that needs more devices than any live node of its class has cannot ever start."""
    for cls, backlog in dispatch.backlogs(session).items():
        if cls == "cpu" or not backlog.waiting:
            continue
        nodes = dispatch.live_workers(session, cls)
        if not nodes:
            continue  # no node of the class is up right now; it may come back
        most = max(dispatch.devices_of_class(n.accelerators, cls) for n in nodes)
        for sub in backlog.waiting:
            challenge: Challenge = backlog.challenges[sub.challenge_id]
            if challenge.accelerators > most:
                reason = (f"No worker node has {challenge.accelerators} devices of class {cls} "
                          f"(the largest has {most}).")
                if state.fail(session, sub.id, Outcome.INFRA_ERROR, reason, attempt=sub.attempt):  # type: ignore[arg-type]
                    report.failed.append(sub.id)  # type: ignore[arg-type]


def remove_orphan_containers(session: Session, client: Any, report: SweepReport) -> None:
    """Kill and remove this instance's containers whose attempt is not running.

    Only this platform instance's (by its label and its name, evaluator.instance): another instance on the
    same engine has its own database, in which its live runs are running, and its own reaper.
    """
    from evaluator import sandbox

    own = instance.of_session(session)
    for name in seams.hub_container_names(client, {instance.LABEL: own}):
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
            fail_unrunnable(session, report)
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
