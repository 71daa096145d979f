"""Submission limits, the Submission record's creation, and who may look at a submission."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, true
from sqlmodel import Session, select

from challenges import access
from challenges.models import (Challenge, ChallengeStatus, Outcome, Phase, Submission, SubmissionStatus, Team,
                               TeamStatus)
from hub.errors import DomainError, N_, NotFound
from hub.models import User, utcnow

# Limits reset at midnight in the district's time zone (Beijing time), as contests there announce them.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")
IN_PROGRESS = (SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)
# Failures the team's image caused; the platform's own failures (PLATFORM_OUTCOMES) and quota refusals never count.
IMAGE_OUTCOMES = (Outcome.TIME_LIMIT, Outcome.MEMORY_LIMIT, Outcome.NONZERO_EXIT, Outcome.MISSING_OUTPUT,
                  Outcome.BAD_OUTPUT, Outcome.IMAGE_REJECTED)


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
    ).where(S.team_id == team_id, S.phase_id == phase.id)).one()
    return {"total": int(row[0]), "today": int(row[1]), "running": int(row[2])}


def check_can_submit(session: Session, team_id: int, phase_id: int, now: datetime | None = None) -> None:
    """Raise DomainError saying why this team may not submit to this phase now (and when it may again)."""
    from challenges.phases import ensure_cuts

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
                      image_ref: str, image_id: str, status: str = SubmissionStatus.QUEUED,
                      outcome: str | None = None, reason: str = "") -> Submission:
    """Check the limits, then write the Submission row (queued, or already ended for a refused image)."""
    now = utcnow()
    check_can_submit(session, team_id, phase_id, now)
    if image_source not in ("upload", "registry"):
        raise DomainError(N_("The image comes from an upload or from the registry."), field="image_source")
    if len(image_ref) > 300 or len(image_id) > 100:
        raise DomainError(N_("The image reference is too long."), field="image_ref")
    if status not in {s.value for s in SubmissionStatus}:
        raise DomainError(N_("Unknown submission status."), field="status")
    if outcome is not None and outcome not in {o.value for o in Outcome}:
        raise DomainError(N_("Unknown outcome."), field="outcome")
    from challenges.access import active_team_id

    phase = session.get(Phase, phase_id)
    assert phase is not None
    if active_team_id(session, phase.challenge_id, user_id) != team_id:
        raise DomainError(N_("Only active members of the team may submit for it."), code="forbidden")
    ended = status in (SubmissionStatus.FAILED, SubmissionStatus.CANCELLED, SubmissionStatus.SCORED)
    sub = Submission(challenge_id=phase.challenge_id, phase_id=phase_id, team_id=team_id, submitted_by=user_id,
                     created_at=now, image_source=image_source, image_ref=image_ref, image_id=image_id,
                     status=status, outcome=outcome, reason=reason, queued_at=now,
                     finished_at=now if ended else None,
                     counts_against_limit=outcome not in (Outcome.INFRA_ERROR, Outcome.CANCELLED))
    session.add(sub)
    session.commit()
    return sub


# ---------------------------------------------------------------- reading
def history(session: Session, challenge_id: int, team_id: int) -> list[Submission]:
    return list(session.exec(select(Submission).where(Submission.challenge_id == challenge_id,
                                                      Submission.team_id == team_id)
                             .order_by(Submission.created_at.desc(), Submission.id.desc())))


def can_view(session: Session, viewer: User | None, sub: Submission, challenge: Challenge) -> bool:
    """Own team, organisers, admin, and panel judges without a declared conflict with the team."""
    if viewer is None:
        return False
    if access.is_admin(viewer) or access.is_organiser(viewer, challenge):
        return True
    if access.is_panel_judge(session, viewer, challenge):
        return sub.team_id not in access.conflicted_team_ids(session, challenge.id, viewer.id)
    return access.active_team_id(session, challenge.id, viewer.id) == sub.team_id


def scores_shown(session: Session, viewer: User | None, sub: Submission, phase: Phase,
                 challenge: Challenge, now: datetime | None = None) -> bool:
    """A private phase's scores stay hidden from teams until the reveal; the privileged always see them."""
    if access.is_privileged(session, viewer, challenge):
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


def as_dict(sub: Submission, phase: Phase, challenge: Challenge, team: Team | None, show_scores: bool,
            outcome_text: str) -> dict[str, Any]:
    iso = lambda d: d.isoformat() if d else None  # noqa: E731
    return {
        "id": sub.id, "challenge": challenge.slug, "phase": {"id": phase.id, "name": phase.name},
        "team": {"id": sub.team_id, "name": team.name if team else None},
        "status": sub.status, "outcome": sub.outcome, "outcome_text": outcome_text, "reason": sub.reason,
        "exit_code": sub.exit_code,
        "scores": dict(sub.scores) if show_scores else None,
        "primary_score": sub.primary_score if show_scores else None,
        "scores_hidden_until_reveal": not show_scores,
        "runtime_s": sub.runtime_s, "attempt": sub.attempt, "image_ref": sub.image_ref, "image_id": sub.image_id,
        "created_at": iso(sub.created_at), "queued_at": iso(sub.queued_at), "started_at": iso(sub.started_at),
        "finished_at": iso(sub.finished_at), "log_excerpt": sub.log_excerpt,
        "counts_against_limit": sub.counts_against_limit,
        "disqualified": sub.disqualified, "dq_reason": sub.dq_reason,
    }
