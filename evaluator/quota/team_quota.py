"""Accelerator-seconds a team (or its whole organisation) may use, per challenge or period.

A quota counts device-seconds: a 100 s run on 2 devices uses 200. What is used is what the ledger has
metered plus the time already run by the scope's live leases, so parallel runs cannot overdraw unseen.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from math import floor

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from challenges.models import Submission, Team
from evaluator.quota.locking import as_utc
from evaluator.quota.models import LedgerLine, Lease, TeamQuota
from hub import audit
from hub.errors import DomainError, N_, NotFound
from hub.models import Organisation, utcnow


@dataclass(frozen=True)
class QuotaStatus:
    quota: TeamQuota
    used: float
    remaining: float


def set_quota(session: Session, *, allowed_seconds: float, actor_id: int | None, team_id: int | None = None,
              org_id: int | None = None, challenge_id: int | None = None, period_start: datetime | None = None,
              period_end: datetime | None = None) -> TeamQuota:
    """Set (replace) the quota of one scope: a team or an organisation, optionally a challenge and a period."""
    if (team_id is None) == (org_id is None):
        raise DomainError(N_("Set a quota for either a team or an organisation."), field="team_id")
    if allowed_seconds is None or allowed_seconds < 0:
        raise DomainError(N_("The allowed accelerator-seconds must be zero or more."), field="allowed_seconds")
    if team_id is not None and session.get(Team, team_id) is None:
        raise NotFound(N_("Unknown team."), field="team_id")
    if org_id is not None and session.get(Organisation, org_id) is None:
        raise NotFound(N_("Unknown organisation."), field="org_id")
    period_start = as_utc(period_start) if period_start else None
    period_end = as_utc(period_end) if period_end else None
    if period_start and period_end and period_end <= period_start:
        raise DomainError(N_("The period must end after it starts."), field="period_end")
    now = utcnow()
    for old in session.exec(select(TeamQuota).where(
            TeamQuota.cancelled_at == None, TeamQuota.team_id == team_id, TeamQuota.org_id == org_id,  # noqa: E711
            TeamQuota.challenge_id == challenge_id, TeamQuota.period_start == period_start,
            TeamQuota.period_end == period_end)):
        old.cancelled_at = now
        session.add(old)
    row = TeamQuota(team_id=team_id, org_id=org_id, challenge_id=challenge_id, period_start=period_start,
                    period_end=period_end, allowed_seconds=float(allowed_seconds), created_by=actor_id)
    session.add(row)
    session.flush()
    audit.record(session, actor_id, "quota.set", "team_quota", row.id, team_id=team_id, target_org_id=org_id,
                 challenge_id=challenge_id, allowed_seconds=float(allowed_seconds))
    session.commit()
    return row


def cancel_quota(session: Session, quota_id: int, actor_id: int | None) -> None:
    row = session.get(TeamQuota, quota_id)
    if row is None or row.cancelled_at is not None:
        raise NotFound(N_("Unknown quota."))
    row.cancelled_at = utcnow()
    session.add(row)
    audit.record(session, actor_id, "quota.cancel", "team_quota", row.id)
    session.commit()


def applicable(session: Session, team: Team, challenge_id: int, at: datetime | None = None) -> list[TeamQuota]:
    at = at or utcnow()
    return list(session.exec(select(TeamQuota).where(
        TeamQuota.cancelled_at == None,  # noqa: E711
        or_(TeamQuota.team_id == team.id, TeamQuota.org_id == team.lead_org_id),
        or_(TeamQuota.challenge_id == None, TeamQuota.challenge_id == challenge_id),  # noqa: E711
        or_(TeamQuota.period_start == None, TeamQuota.period_start <= at),  # noqa: E711
        or_(TeamQuota.period_end == None, TeamQuota.period_end > at))))  # noqa: E711


def used_seconds(session: Session, quota: TeamQuota, at: datetime | None = None) -> float:
    """Device-seconds metered in the quota's scope plus those already run by its live leases."""
    at = at or utcnow()
    q = select(func.coalesce(func.sum(LedgerLine.device_seconds), 0.0))
    if quota.team_id is not None:
        q = q.where(LedgerLine.team_id == quota.team_id)
    else:
        q = q.where(LedgerLine.org_id == quota.org_id)
    if quota.challenge_id is not None:
        q = q.where(LedgerLine.challenge_id == quota.challenge_id)
    if quota.period_start is not None:
        q = q.where(LedgerLine.started_at >= quota.period_start)
    if quota.period_end is not None:
        q = q.where(LedgerLine.started_at < quota.period_end)
    metered = float(session.exec(q).one())
    lq = (select(Lease).join(Submission, Submission.id == Lease.submission_id)
          .join(Team, Team.id == Submission.team_id).where(Lease.released_at == None))  # noqa: E711
    if quota.team_id is not None:
        lq = lq.where(Team.id == quota.team_id)
    else:
        lq = lq.where(Team.lead_org_id == quota.org_id)
    if quota.challenge_id is not None:
        lq = lq.where(Lease.challenge_id == quota.challenge_id)
    running = sum(max(0.0, (at - as_utc(lease.acquired_at)).total_seconds()) * max(1, lease.count)
                  for lease in session.exec(lq))
    return metered + running


def statuses(session: Session, team: Team, challenge_id: int, at: datetime | None = None) -> list[QuotaStatus]:
    out = []
    for quota in applicable(session, team, challenge_id, at):
        used = used_seconds(session, quota, at)
        out.append(QuotaStatus(quota, used, max(0.0, quota.allowed_seconds - used)))
    return out


def remaining_seconds(session: Session, team_id: int, challenge_id: int) -> float | None:
    """Accelerator-seconds the team may still use in this challenge (the tightest scope); None = unlimited."""
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(N_("Unknown team."), field="team_id")
    found = statuses(session, team, challenge_id)
    return min((s.remaining for s in found), default=None)


def check_submit_quota(session: Session, team_id: int, challenge_id: int) -> None:
    """Refuse a submission when the team's quota (or its organisation's) has nothing left."""
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(N_("Unknown team."), field="team_id")
    found = statuses(session, team, challenge_id)
    if not found:
        return
    tightest = min(found, key=lambda s: s.remaining)
    if tightest.remaining < 1.0:
        raise DomainError(N_("Your compute quota is used up: %(remaining)s of %(allowed)s accelerator-seconds "
                             "left. Ask the computing center for more."), code="quota_exceeded", field="image",
                          remaining=floor(tightest.remaining), allowed=floor(tightest.quota.allowed_seconds))


def run_time_cap(session: Session, team_id: int, challenge_id: int, devices: int, time_limit_s: float) -> float:
    """A run's wall-clock limit: the challenge's limit, cut so `devices` devices cannot overdraw the quota."""
    remaining = remaining_seconds(session, team_id, challenge_id)
    if remaining is None:
        return float(time_limit_s)
    return max(0.0, min(float(time_limit_s), remaining / max(1, devices)))


def quotas(session: Session) -> list[TeamQuota]:
    return list(session.exec(select(TeamQuota).where(TeamQuota.cancelled_at == None)  # noqa: E711
                             .order_by(col(TeamQuota.id).desc())))
