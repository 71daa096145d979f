"""Compare-and-set transitions of a Submission while it is evaluated.

A submission moves queued → running → scored / failed / cancelled. Every move is one guarded UPDATE
(`WHERE id = ? AND status = ? AND attempt = ?`), so two processes that race on the same row cannot both
win: a job that runs twice, or an old job that wakes up after the reaper gave its work to a new attempt,
simply finds nothing to update and stops. That is how a submission is scored once.

A queued submission is either *waiting* (`job_id == ""`: only in the database) or *dispatched*
(`job_id == "sub-<id>-a<attempt>"`: an RQ job carries it). `attempt` counts dispatches; the job id
carries it, and only the job of the current attempt may claim and finish the row.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from challenges.models import PLATFORM_OUTCOMES, Outcome, Submission, SubmissionStatus
from evaluator.contract import run_settled
from hub.errors import Conflict, N_, NotFound
from hub.models import utcnow

TERMINAL = (SubmissionStatus.SCORED, SubmissionStatus.FAILED, SubmissionStatus.CANCELLED)
LOG_EXCERPT_CHARS = 64 * 1024  # what a submission keeps of its container's log


def job_id_for(submission_id: int, attempt: int) -> str:
    """The deterministic RQ job id of one attempt."""
    return f"sub-{submission_id}-a{attempt}"


def parse_job_id(job_id: str) -> tuple[int, int] | None:
    """(submission id, attempt) of a job id made by job_id_for, else None."""
    m = _JOB_RE.match(job_id or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


_JOB_RE = re.compile(r"^sub-(\d+)-a(\d+)$")


def container_name_for(submission_id: int, attempt: int, *, instance: str) -> str:
    """The fixed container name of one attempt of one platform instance (the reaper finds orphans by it).

    The instance id (evaluator.instance) keeps two instances that share a Docker engine, whose submission
    ids overlap, from ever naming (and so replacing or removing) each other's containers.
    """
    return f"hub-{instance}-sub-{submission_id}-a{attempt}"


def parse_container_name(name: str) -> tuple[str, int, int] | None:
    """(instance, submission id, attempt) from a name made by container_name_for (with an optional -suffix)."""
    m = _NAME_RE.match(name.lstrip("/"))
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


_NAME_RE = re.compile(r"^hub-([a-z0-9]{1,16})-sub-(\d+)-a(\d+)(?:-[a-z]+)?$")


def _cas(session: Session, where: list[Any], values: dict[str, Any],
         also: Callable[[], None] | None = None) -> bool:
    """One guarded UPDATE of a submission (then `also()`, only if it won, in the same transaction), committed;
    True if it won."""
    stmt = (update(Submission).where(*where).values(**values)
            .execution_options(synchronize_session=False))
    result = session.exec(stmt)  # type: ignore[call-overload]
    changed = (result.rowcount or 0) == 1
    if changed and also is not None:
        session.expire_all()  # receivers read the row as just written
        also()
    session.commit()
    if changed:
        session.expire_all()
    return changed


def get(session: Session, submission_id: int) -> Submission:
    sub = session.get(Submission, submission_id, populate_existing=True)
    if sub is None:
        raise NotFound(N_("No such submission."))
    return sub


def mark_dispatched(session: Session, submission_id: int, attempt: int, queue: str) -> int | None:
    """waiting → dispatched under a new attempt; returns that attempt, or None if someone else won."""
    won = mark_dispatched_many(session, [(submission_id, attempt)], queue)
    return won[0][1] if won else None


def mark_dispatched_many(session: Session, picks: list[tuple[int, int]], queue: str) -> list[tuple[int, int]]:
    """mark_dispatched for many (id, attempt) at once, in one transaction; returns the (id, new attempt) that won."""
    won = []
    now = utcnow()
    for submission_id, attempt in picks:
        stmt = (update(Submission).where(Submission.id == submission_id, Submission.status == SubmissionStatus.QUEUED,
                                         Submission.job_id == "", Submission.attempt == attempt)
                .values(attempt=attempt + 1, job_id=job_id_for(submission_id, attempt + 1), queue=queue, queued_at=now)
                .execution_options(synchronize_session=False))
        if (session.exec(stmt).rowcount or 0) == 1:  # type: ignore[call-overload]
            won.append((submission_id, attempt + 1))
    session.commit()
    if won:
        session.expire_all()
    return won


def claim(session: Session, submission_id: int, attempt: int, worker: str) -> bool:
    """dispatched(attempt) → running; False when this attempt is no longer the current one."""
    return _cas(session,
                [Submission.id == submission_id, Submission.status == SubmissionStatus.QUEUED,
                 Submission.attempt == attempt, Submission.job_id == job_id_for(submission_id, attempt)],
                {"status": SubmissionStatus.RUNNING, "worker": worker[:120], "started_at": utcnow()})


def record_container(session: Session, submission_id: int, attempt: int, started_at: datetime | None) -> bool:
    return _cas(session,
                [Submission.id == submission_id, Submission.status == SubmissionStatus.RUNNING,
                 Submission.attempt == attempt],
                {"container_started_at": started_at})


@dataclass
class Result:
    """What one finished attempt wrote to its submission."""

    status: str
    outcome: str
    reason: str = ""
    exit_code: int | None = None
    scores: dict[str, float] | None = None
    primary_score: float | None = None
    log_excerpt: str = ""
    runtime_s: float | None = None
    container_started_at: datetime | None = None
    container_finished_at: datetime | None = None
    counts_against_limit: bool = True


def finish(session: Session, submission_id: int, attempt: int, result: Result) -> bool:
    """running(attempt) → scored / failed; False (nothing written) when the attempt lost its claim."""
    values: dict[str, Any] = {
        "status": result.status, "outcome": result.outcome, "reason": result.reason[:4000],
        "exit_code": result.exit_code, "scores": dict(result.scores or {}),
        "primary_score": result.primary_score, "log_excerpt": cap_log(result.log_excerpt),
        "runtime_s": result.runtime_s, "container_started_at": result.container_started_at,
        "container_finished_at": result.container_finished_at,
        "counts_against_limit": result.counts_against_limit and result.outcome not in PLATFORM_OUTCOMES,
        "finished_at": utcnow(),
    }
    where = [Submission.id == submission_id, Submission.status == SubmissionStatus.RUNNING,
             Submission.attempt == attempt]
    return _cas(session, where, values, also=lambda: _settled(session, submission_id, attempt, result.outcome,
                                                              scored=result.status == SubmissionStatus.SCORED))


def _settled(session: Session, submission_id: int, attempt: int, outcome: str, *, scored: bool = False) -> None:
    """Tell the submission's owner, inside this transaction, that its run ended for good (exactly once:
    only the compare-and-set that won calls this)."""
    run_settled.send(session, run_id=None, owner=f"submission:{submission_id}", attempt=attempt, result=None,
                     outcome=outcome, scored=scored)


def retry_later(session: Session, submission_id: int, attempt: int) -> bool:
    """running(attempt) → dispatched(attempt) again: RQ re-runs the same job after an infrastructure error."""
    sub = get(session, submission_id)
    return _cas(session,
                [Submission.id == submission_id, Submission.status == SubmissionStatus.RUNNING,
                 Submission.attempt == attempt],
                {"status": SubmissionStatus.QUEUED, "worker": "", "started_at": None,
                 "infra_failures": sub.infra_failures + 1})


def requeue(session: Session, submission_id: int, attempt: int, *, infra: bool = False,
            seen: Submission | None = None) -> bool:
    """running / dispatched (attempt) → waiting: the dispatcher gives it a new attempt and job.

    Used when the worker or the Redis job of this attempt vanished. With `seen` (the row as the caller
    observed it) the move only happens if the row has not changed since: a job that was retried and
    claimed again meanwhile is left alone.
    """
    sub = get(session, submission_id)
    values: dict[str, Any] = {"status": SubmissionStatus.QUEUED, "job_id": "", "worker": "", "started_at": None,
                              "container_started_at": None}
    if infra:
        values["infra_failures"] = sub.infra_failures + 1
    where = [Submission.id == submission_id, Submission.attempt == attempt,
             Submission.status.in_([SubmissionStatus.QUEUED, SubmissionStatus.RUNNING])]  # type: ignore[attr-defined]
    if seen is not None:
        where += [Submission.status == seen.status, Submission.job_id == seen.job_id,
                  Submission.worker == seen.worker]
        where.append(Submission.started_at.is_(None) if seen.started_at is None  # type: ignore[union-attr]
                     else Submission.started_at == seen.started_at)
    return _cas(session, where, values)


def fail(session: Session, submission_id: int, outcome: str, reason: str, *, attempt: int | None = None,
         counts: bool | None = None) -> bool:
    """Any unfinished state → failed with a reason the team can read (platform outcomes never count)."""
    where = [Submission.id == submission_id,
             Submission.status.in_([SubmissionStatus.QUEUED, SubmissionStatus.RUNNING])]  # type: ignore[attr-defined]
    if attempt is not None:
        where.append(Submission.attempt == attempt)
    counts_against = (outcome not in PLATFORM_OUTCOMES) if counts is None else counts
    return _cas(session, where, {"status": SubmissionStatus.FAILED, "outcome": outcome, "reason": reason[:4000],
                                 "counts_against_limit": counts_against, "finished_at": utcnow()},
                also=lambda: _settled(session, submission_id, attempt or 0, outcome))


def cancel(session: Session, submission_id: int, reason: str = "") -> Submission:
    """queued / running → cancelled; returns the row as it was before, so its container can be stopped."""
    before = get(session, submission_id)
    if before.status in TERMINAL:
        raise Conflict(N_("This submission has already finished."))
    snapshot = Submission.model_validate(before.model_dump())
    ok = _cas(session,
              [Submission.id == submission_id, Submission.attempt == before.attempt,
               Submission.status == before.status],
              {"status": SubmissionStatus.CANCELLED, "outcome": Outcome.CANCELLED,
               "reason": reason[:4000] or "cancelled by an operator", "counts_against_limit": False,
               "finished_at": utcnow()},
              also=lambda: _settled(session, submission_id, before.attempt, Outcome.CANCELLED))
    if not ok:
        raise Conflict(N_("The submission changed meanwhile. Reload the page and try again."))
    return snapshot


def rerun(session: Session, submission_id: int) -> Submission:
    """A finished submission → waiting again, for an operator's re-run (same image, a new attempt)."""
    before = get(session, submission_id)
    if before.status not in TERMINAL:
        raise Conflict(N_("This submission is still queued or running."))
    ok = _cas(session,
              [Submission.id == submission_id, Submission.attempt == before.attempt,
               Submission.status == before.status],
              {"status": SubmissionStatus.QUEUED, "outcome": None, "reason": "", "exit_code": None, "scores": {},
               "primary_score": None, "log_excerpt": "", "runtime_s": None, "job_id": "", "worker": "",
               "started_at": None, "finished_at": None, "container_started_at": None,
               "container_finished_at": None, "infra_failures": 0, "counts_against_limit": True})
    if not ok:
        raise Conflict(N_("The submission changed meanwhile. Reload the page and try again."))
    return get(session, submission_id)


def cap_log(text: str, limit: int = LOG_EXCERPT_CHARS) -> str:
    """The end of a long log is what explains a failure, so keep the head and the tail."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head - 40
    return text[:head] + "\n… [log truncated] …\n" + text[-tail:]


def unfinished(session: Session, status: str | None = None) -> list[Submission]:
    stmt = select(Submission).where(Submission.status.in_([SubmissionStatus.QUEUED,  # type: ignore[attr-defined]
                                                            SubmissionStatus.RUNNING]))
    if status:
        stmt = select(Submission).where(Submission.status == status)
    return list(session.exec(stmt.order_by(Submission.id)  # type: ignore[attr-defined]
                             .execution_options(populate_existing=True)))
