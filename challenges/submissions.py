"""Submission limits, the Submission record's creation, and who may look at a submission."""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, text, true
from sqlmodel import Session, select

from challenges import access
from challenges.access import active_team_id
from challenges.datasets import SAMPLE_NAME, for_split
from challenges.models import (Challenge, ChallengeStatus, Dataset, Outcome, Phase, Submission, SubmissionKind,
                               SubmissionStatus, Team, TeamStatus)
from challenges.phases import ensure_cuts
from hub.errors import DomainError, N_, NotFound
from hub.models import User, utcnow

# Limits reset at midnight in the district's time zone (Beijing time), as contests there announce them.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
IN_PROGRESS = (SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)
# Failures the team's image caused; the platform's own failures (PLATFORM_OUTCOMES) and quota refusals never count.
IMAGE_OUTCOMES = (Outcome.TIME_LIMIT, Outcome.MEMORY_LIMIT, Outcome.NONZERO_EXIT, Outcome.MISSING_OUTPUT,
                  Outcome.BAD_OUTPUT, Outcome.IMAGE_REJECTED)
# Check runs a team may start per (Beijing) day when the platform sets no other cap (HUB_CHECK_RUNS_PER_DAY).
CHECK_RUNS_PER_DAY = 10


def counts_condition(challenge: Challenge):  # type: ignore[no-untyped-def]
    """SQL condition: this submission uses up one of the team's slots."""
    S = Submission
    counted = [S.status.in_(IN_PROGRESS + (SubmissionStatus.SCORED,))]
    if challenge.image_failures_count:
        counted.append(and_(S.status == SubmissionStatus.FAILED, S.outcome.in_(IMAGE_OUTCOMES)))
    return and_(S.counts_against_limit == true(), or_(*counted))


def _local_day_start(now: datetime) -> datetime:
    local = now.astimezone(LOCAL_TZ)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)


def _fmt_local(at: datetime) -> str:
    return at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"


def usage(session: Session, challenge: Challenge, team_id: int, phase: Phase,
          now: datetime | None = None) -> dict[str, int]:
    """Counted submissions today and in total, and those still queued or running (one query)."""
    now = now or utcnow()
    S = Submission
    counted = counts_condition(challenge)
    day_start = _local_day_start(now)
    row = session.execute(select(
        func.coalesce(func.sum(case((counted, 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(counted, S.created_at >= day_start), 1), else_=0)), 0),
        func.coalesce(func.sum(case((S.status.in_(IN_PROGRESS), 1), else_=0)), 0),
    ).where(S.team_id == team_id, S.phase_id == phase.id, S.kind == SubmissionKind.SUBMISSION)).one()
    return {"total": int(row[0]), "today": int(row[1]), "running": int(row[2])}


def check_can_submit(session: Session, team_id: int, phase_id: int, now: datetime | None = None, *,
                     kind: str = SubmissionKind.SUBMISSION, check_runs_per_day: int = CHECK_RUNS_PER_DAY) -> None:
    """Raise DomainError saying why this team may not submit to this phase now (and when it may again).

    A check run passes the same doors (open challenge and phase, approved team) but not the submission
    limits: it has its own cap instead (check_run_allowed).
    """

    now = now or utcnow()
    team = session.get(Team, team_id)
    phase = session.get(Phase, phase_id)
    if team is None:
        raise NotFound(N_("No such team."))
    if phase is None or phase.challenge_id != team.challenge_id:
        raise NotFound(N_("No such phase."))
    challenge = session.get(Challenge, phase.challenge_id)
    assert challenge is not None
    if challenge.status != ChallengeStatus.OPEN:
        raise DomainError(N_("The challenge does not take submissions now (it is %(status)s)."),
                          code="closed", status=challenge.status)
    if now < phase.starts_at:
        raise DomainError(N_("Phase %(phase)s opens at %(when)s."), code="not_open", phase=phase.name,
                          when=_fmt_local(phase.starts_at))
    if now >= phase.ends_at:
        raise DomainError(N_("Phase %(phase)s closed at %(when)s."), code="closed", phase=phase.name,
                          when=_fmt_local(phase.ends_at))
    ensure_cuts(session, challenge, now)  # 赛马制: a due cut is applied before any later phase takes work
    session.refresh(team)
    if team.status == TeamStatus.CUT:
        raise DomainError(N_("Your team was cut after an earlier phase and cannot submit any more."), code="cut")
    if team.status == TeamStatus.DISQUALIFIED:
        raise DomainError(N_("Your team was disqualified: %(reason)s"), code="disqualified", reason=team.reason)
    if team.status != TeamStatus.APPROVED:
        raise DomainError(N_("Your team may submit once the city has approved its registration (形式审查)."),
                          code="not_approved")
    if kind == SubmissionKind.CHECK:
        check_run_allowed(session, challenge, team.id, phase, now, check_runs_per_day)  # type: ignore[arg-type]
        return
    used = usage(session, challenge, team.id, phase, now)
    if used["running"] >= phase.concurrent_limit:
        raise DomainError(N_("Your team already has %(n)s submissions queued or running (the limit is %(limit)s). "
                             "The next slot frees when one of them finishes."), code="concurrent_limit",
                          n=used["running"], limit=phase.concurrent_limit)
    if used["total"] >= phase.total_limit:
        raise DomainError(N_("Your team has used all %(limit)s submissions of phase %(phase)s."),
                          code="total_limit", limit=phase.total_limit, phase=phase.name)
    if used["today"] >= phase.per_day_limit:
        next_slot = _local_day_start(now) + timedelta(days=1)
        raise DomainError(N_("Your team has used today's %(limit)s submissions. The next slot frees at %(when)s."),
                          code="daily_limit", limit=phase.per_day_limit, when=_fmt_local(next_slot))


def create_submission(session: Session, *, team_id: int, phase_id: int, user_id: int, image_source: str,
                      image_ref: str, image_id: str, image_pull: str = "", status: str = SubmissionStatus.QUEUED,
                      outcome: str | None = None, reason: str = "", kind: str = SubmissionKind.SUBMISSION,
                      check_runs_per_day: int = CHECK_RUNS_PER_DAY, image_bytes: int = 0,
                      max_team_image_bytes: int | None = None,
                      on_slot: Callable[[], None] | None = None) -> Submission:
    """Check the limits, then write the Submission row (queued, or already ended for a refused image).

    The limits (and the team's image storage cap, with `max_team_image_bytes`) are counted again and the row
    written in one write transaction that holds the team's lock, so parallel submissions cannot all pass the
    count before any of them is written. `on_slot` runs inside that transaction once the slot is taken, just
    before the commit (the upload path moves its archive into place there); if it raises, nothing is written.
    """
    now = utcnow()
    if kind not in {k.value for k in SubmissionKind}:
        raise DomainError(N_("Unknown kind of run."), field="kind")
    check_can_submit(session, team_id, phase_id, now, kind=kind, check_runs_per_day=check_runs_per_day)
    if image_source not in ("upload", "registry"):
        raise DomainError(N_("The image comes from an upload or from the registry."), field="image_source")
    if len(image_ref) > 300 or len(image_id) > 100 or len(image_pull) > 300:
        raise DomainError(N_("The image reference is too long."), field="image_ref")
    if status not in {s.value for s in SubmissionStatus}:
        raise DomainError(N_("Unknown submission status."), field="status")
    if outcome is not None and outcome not in {o.value for o in Outcome}:
        raise DomainError(N_("Unknown outcome."), field="outcome")

    phase = session.get(Phase, phase_id)
    assert phase is not None
    if active_team_id(session, phase.challenge_id, user_id) != team_id:
        raise DomainError(N_("Only active members of the team may submit for it."), code="forbidden")
    _lock_team_for_submit(session, team_id)
    try:
        check_can_submit(session, team_id, phase_id, now, kind=kind, check_runs_per_day=check_runs_per_day)
        if max_team_image_bytes is not None and image_bytes:
            check_image_storage(session, team_id, max_team_image_bytes, image_id=image_id, size=image_bytes)
        ended = status in (SubmissionStatus.FAILED, SubmissionStatus.CANCELLED, SubmissionStatus.SCORED)
        sub = Submission(challenge_id=phase.challenge_id, phase_id=phase_id, team_id=team_id, submitted_by=user_id,
                         created_at=now, kind=kind, image_source=image_source, image_ref=image_ref,
                         image_pull=image_pull, image_id=image_id, image_bytes=image_bytes, status=status, outcome=outcome, reason=reason,
                         queued_at=now, finished_at=now if ended else None,
                         counts_against_limit=outcome not in (Outcome.INFRA_ERROR, Outcome.CANCELLED))
        session.add(sub)
        session.flush()
        if on_slot is not None:
            on_slot()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return sub


def _lock_team_for_submit(session: Session, team_id: int) -> None:
    """Open the write transaction in which a submission's limits are counted and its row is written.

    PostgreSQL: the team's row is locked (SELECT … FOR UPDATE), so a team's submissions are written one at a
    time and each counts the rows committed before it. SQLite: BEGIN IMMEDIATE takes the database's write
    lock before the count (its default transaction would take it only at the INSERT, after every parallel
    request had counted). Whatever the session had open is committed first: services commit their own work.
    """
    session.commit()
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("BEGIN IMMEDIATE"))
    else:
        session.execute(select(Team.id).where(Team.id == team_id).with_for_update())


MIB = 1 << 20


def stored_image_bytes(session: Session, team_id: int) -> int:
    """Bytes of the distinct image archives the platform keeps for the team's uploads."""
    S = Submission
    per_image = (select(S.image_id, func.max(S.image_bytes).label("size"))
                 .where(S.team_id == team_id, S.image_bytes > 0).group_by(S.image_id).subquery())
    return int(session.execute(select(func.coalesce(func.sum(per_image.c.size), 0))).scalar_one())


def check_image_storage(session: Session, team_id: int, cap: int, *, image_id: str = "", size: int = 0) -> int:
    """Raise DomainError if the team may not store `size` more bytes (or, with size 0, any more); return the
    bytes it stores now. An image the team already stores adds nothing."""
    used = stored_image_bytes(session, team_id)
    if size and image_id and session.exec(select(Submission.id).where(
            Submission.team_id == team_id, Submission.image_id == image_id, Submission.image_bytes > 0)).first():
        return used
    mib = lambda n: f"{n / MIB:.1f}"  # noqa: E731
    if not size and used >= cap:
        raise DomainError(N_("Your team's stored images already take %(used)s MiB, its cap of %(cap)s MiB. Submit "
                             "an image you uploaded before, or ask the computing center's operators to free space "
                             "or raise the cap."), code="storage_limit", field="image", used=mib(used), cap=mib(cap))
    if used + size > cap:
        raise DomainError(N_("Your team's stored images take %(used)s MiB of its cap of %(cap)s MiB, so this image "
                             "(%(size)s MiB) does not fit. Submit an image you uploaded before, or ask the computing "
                             "center's operators to free space or raise the cap."), code="storage_limit",
                          field="image", used=mib(used), cap=mib(cap), size=mib(size))
    return used


# ---------------------------------------------------------------- check runs
def sample_dataset(session: Session, phase: Phase) -> Dataset | None:
    """The dataset of the phase's split when it has a public sample that a check run can read, else None."""

    ds = for_split(session, phase.challenge_id, phase.split)
    if ds is None or not ds.sample_dir or not (Path(ds.sample_dir) / SAMPLE_NAME).is_file():
        return None
    return ds


def check_run_allowed(session: Session, challenge: Challenge, team_id: int, phase: Phase, now: datetime,
                      per_day: int) -> None:
    """Raise DomainError unless the team may start a check run now: the phase has a public sample, the team
    has no other check run in flight, and today's cap is not used up (the platform's failures never count)."""
    if sample_dataset(session, phase) is None:
        raise DomainError(N_("Phase %(phase)s has no public sample, so check runs are not available. Ask the "
                             "organisers to publish a sample, or submit the image as a regular submission."),
                          code="no_sample", phase=phase.name)
    S = Submission
    day_start = _local_day_start(now)
    row = session.execute(select(
        func.coalesce(func.sum(case((S.status.in_(IN_PROGRESS), 1), else_=0)), 0),
        func.coalesce(func.sum(case((and_(S.created_at >= day_start, S.counts_against_limit == true()), 1),
                                    else_=0)), 0),
    ).where(S.team_id == team_id, S.kind == SubmissionKind.CHECK)).one()
    if int(row[0]) >= 1:
        raise DomainError(N_("Your team already has a check run queued or running. Start the next one when it "
                             "has finished."), code="check_running")
    if int(row[1]) >= per_day:
        raise DomainError(N_("Your team has used today's %(limit)s check runs. The next one can start at "
                             "%(when)s."), code="check_limit", limit=per_day,
                          when=_fmt_local(day_start + timedelta(days=1)))


# ---------------------------------------------------------------- who may read a run's log
LOG_WITHHELD = N_("This run read the phase's hidden test data, so its log is shown only to the judges and the "
                  "organisers. Your team sees the outcome, the reason, the exit code and the timings. To debug "
                  "with a full log, start a check run: it runs your image on the phase's public sample inputs.")


# A quoted value in a reason (challenges.scoring.files quotes ids and headers as Python reprs) and the text an organiser's
# scorer printed after its refusal: both can carry what the run read from its inputs.
_QUOTED = re.compile(r"""'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*\"""")
_SCORER_SAID = re.compile(r"(The organiser's scorer refused the predictions): .*", re.S)


def visible_reason(sub: Submission, show_log: bool) -> str:
    """The run's reason as its viewer may read it: whole with the log, else without the values it quotes.

    A run on hidden data could otherwise write its inputs as ids or column names and read them back in the
    reason ("first: 'secret…'"), or have the truth's ids quoted to it; counts and line numbers stay.
    """
    if show_log or not sub.reason:
        return sub.reason
    return _QUOTED.sub("'…'", _SCORER_SAID.sub(r"\1 (its words are kept with the log).", sub.reason))


def run_has_hidden_inputs(session: Session, sub: Submission, phase: Phase) -> bool:
    """Whether the run's /input held data that its team may not see.

    A check run reads the public sample. Any other run reads its split's test inputs, which are hidden when
    its phase's board is private (scores at the reveal) or when a private phase of the challenge is
    evaluated on the same split: what the container printed may be those inputs.
    """
    if sub.kind == SubmissionKind.CHECK:
        return False
    if phase.scores_visible == "reveal":
        return True
    return session.exec(select(Phase.id).where(Phase.challenge_id == phase.challenge_id, Phase.split == phase.split,
                                               Phase.scores_visible == "reveal")).first() is not None


def can_read_log(session: Session, viewer: User | None, sub: Submission, phase: Phase, challenge: Challenge) -> bool:
    """The one rule for every log path (page, API, live tail, CLI): those who may see the submission read its
    log, except its own team when the run's inputs were hidden; organisers, panel judges, the admin read all."""
    if not can_view(session, viewer, sub, challenge):
        return False
    if access.is_privileged(session, viewer, challenge):
        return True
    return not run_has_hidden_inputs(session, sub, phase)


# ---------------------------------------------------------------- reading
def history(session: Session, challenge_id: int, team_id: int) -> list[Submission]:
    return list(session.exec(select(Submission).where(Submission.challenge_id == challenge_id,
                                                      Submission.team_id == team_id)
                             .order_by(Submission.created_at.desc(), Submission.id.desc())))


def can_view(session: Session, viewer: User | None, sub: Submission, challenge: Challenge) -> bool:
    """Own team, organisers, admin, and panel judges without a declared conflict with the team."""
    if viewer is None:
        return False
    if access.is_privileged(session, viewer, challenge):
        return access.official_reader_of_team(session, viewer, challenge, sub.team_id)
    return access.active_team_id(session, challenge.id, viewer.id) == sub.team_id


def scores_shown(session: Session, viewer: User | None, sub: Submission, phase: Phase,
                 challenge: Challenge, now: datetime | None = None) -> bool:
    """A private phase's scores stay hidden from teams until the reveal; the privileged always see them.

    A check run's scores are measured on the public sample and are never hidden."""
    if sub.kind == SubmissionKind.CHECK or access.is_privileged(session, viewer, challenge):
        return True
    if phase.scores_visible != "reveal":
        return True
    return phase.revealed_at is not None and phase.revealed_at <= (now or utcnow())


def get_for_viewer(session: Session, submission_id: int, viewer: User | None) -> tuple[Submission, Phase, Challenge]:
    sub = session.get(Submission, submission_id)
    if sub is None:
        raise NotFound(N_("No such submission."))
    challenge = session.get(Challenge, sub.challenge_id)
    phase = session.get(Phase, sub.phase_id)
    assert challenge is not None and phase is not None
    if not can_view(session, viewer, sub, challenge):
        # Not found rather than forbidden: another team's submissions do not exist as far as a team can tell.
        raise NotFound(N_("No such submission."))
    return sub, phase, challenge


FINISHED = (SubmissionStatus.SCORED, SubmissionStatus.FAILED, SubmissionStatus.CANCELLED)


def is_done(sub: Submission) -> bool:
    """Whether the submission ended for good (scored, failed or cancelled)."""
    return sub.status in FINISHED


def as_dict(sub: Submission, phase: Phase, challenge: Challenge, team: Team | None, show_scores: bool,
            outcome_text: str, *, show_log: bool) -> dict[str, Any]:
    """The submission as JSON; `show_log` comes from can_read_log (a withheld log is left out, not blanked later)."""
    iso = lambda d: d.isoformat() if d else None  # noqa: E731
    return {
        "id": sub.id, "challenge": challenge.slug, "phase": {"id": phase.id, "name": phase.name},
        "team": {"id": sub.team_id, "name": team.name if team else None},
        "kind": sub.kind, "status": sub.status, "outcome": sub.outcome, "outcome_text": outcome_text,
        "reason": visible_reason(sub, show_log),
        "exit_code": sub.exit_code,
        "scores": dict(sub.scores) if show_scores else None,
        "primary_score": sub.primary_score if show_scores else None,
        "scores_hidden_until_reveal": not show_scores,
        "runtime_s": sub.runtime_s, "attempt": sub.attempt, "image_ref": sub.image_ref, "image_id": sub.image_id,
        "created_at": iso(sub.created_at), "queued_at": iso(sub.queued_at), "started_at": iso(sub.started_at),
        "finished_at": iso(sub.finished_at), "log_excerpt": sub.log_excerpt if show_log else "",
        "log_withheld": not show_log,
        "counts_against_limit": sub.counts_against_limit,
        "disqualified": sub.disqualified, "dq_reason": sub.dq_reason,
    }
