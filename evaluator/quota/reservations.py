"""Challenge pools: reserving devices of a class for a period without over-committing the inventory."""
from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from challenges.models import Challenge
from evaluator.quota.inventory import capacity
from evaluator.quota.locking import as_utc, lock
from evaluator.quota.models import Reservation
from hub import audit
from hub.errors import DomainError, N_, NotFound
from hub.models import utcnow


def overlapping(session: Session, accel_class: str, starts_at: datetime, ends_at: datetime,
                exclude_id: int | None = None) -> list[Reservation]:
    q = select(Reservation).where(Reservation.accel_class == accel_class, Reservation.cancelled_at == None,  # noqa: E711
                                  Reservation.starts_at < ends_at, Reservation.ends_at > starts_at)
    if exclude_id is not None:
        q = q.where(Reservation.id != exclude_id)
    return list(session.exec(q.order_by(Reservation.starts_at, Reservation.id)))


def peak_reserved(reservations: list[Reservation], starts_at: datetime, ends_at: datetime) -> int:
    """The most devices reserved at any one moment of [starts_at, ends_at)."""
    events: list[tuple[datetime, int]] = []
    for r in reservations:
        events.append((max(as_utc(r.starts_at), starts_at), r.count))
        events.append((min(as_utc(r.ends_at), ends_at), -r.count))
    peak = level = 0
    for _at, delta in sorted(events, key=lambda e: (e[0], e[1])):  # ends before starts at the same instant
        level += delta
        peak = max(peak, level)
    return peak


def reserve(session: Session, *, challenge_id: int, accel_class: str, count: int, starts_at: datetime,
            ends_at: datetime, actor_id: int | None) -> Reservation:
    """Reserve `count` devices of a class for a challenge; refuses to over-commit the inventory."""
    accel_class = (accel_class or "").strip().lower()
    if not accel_class:
        raise DomainError(N_("Choose a device class."), field="accel_class")
    if count is None or count < 1:
        raise DomainError(N_("Reserve at least one device."), field="count")
    starts_at, ends_at = as_utc(starts_at), as_utc(ends_at)
    if ends_at <= starts_at:
        raise DomainError(N_("The reservation must end after it starts."), field="ends_at")
    challenge = session.get(Challenge, challenge_id)
    if challenge is None:
        raise NotFound(N_("Unknown challenge."), field="challenge_id")
    lock(session, f"class:{accel_class}")
    try:
        others = overlapping(session, accel_class, starts_at, ends_at)
        if any(r.challenge_id == challenge_id for r in others):
            raise DomainError(N_("This challenge already has a reservation of %(cls)s in that period; cancel it "
                                 "first."), field="starts_at", cls=accel_class)
        total = capacity(session, accel_class)
        reserved = peak_reserved(others, starts_at, ends_at)
        if reserved + count > total:
            slugs = sorted({c.slug for c in session.exec(
                select(Challenge).where(Challenge.id.in_([r.challenge_id for r in others])))}) if others else []
            raise DomainError(
                N_("Not enough %(cls)s devices: %(total)s exist, %(reserved)s are already reserved in that "
                   "period (%(by)s), so at most %(free)s can be reserved, not %(count)s."),
                field="count", cls=accel_class, total=total, reserved=reserved, by=", ".join(slugs) or "-",
                free=max(0, total - reserved), count=count)
    except DomainError:
        session.rollback()
        raise
    row = Reservation(challenge_id=challenge_id, accel_class=accel_class, count=count, starts_at=starts_at,
                      ends_at=ends_at, created_by=actor_id)
    session.add(row)
    session.flush()
    audit.record(session, actor_id, "quota.reserve", "reservation", row.id, org_id=challenge.city_id,
                 challenge_id=challenge_id, accel_class=accel_class, count=count,
                 starts_at=starts_at.isoformat(), ends_at=ends_at.isoformat())
    session.commit()
    return row


def cancel(session: Session, reservation_id: int, actor_id: int | None) -> Reservation:
    row = session.get(Reservation, reservation_id)
    if row is None or row.cancelled_at is not None:
        raise NotFound(N_("Unknown reservation."))
    row.cancelled_at = utcnow()
    session.add(row)
    audit.record(session, actor_id, "quota.reservation_cancel", "reservation", row.id,
                 challenge_id=row.challenge_id)
    session.commit()
    return row


def active_for(session: Session, challenge_id: int, accel_class: str, at: datetime | None = None) -> Reservation | None:
    """The challenge's pool of a class at a moment, if it has one."""
    at = at or utcnow()
    return session.exec(select(Reservation).where(
        Reservation.challenge_id == challenge_id, Reservation.accel_class == accel_class,
        Reservation.cancelled_at == None, Reservation.starts_at <= at, Reservation.ends_at > at)).first()  # noqa: E711


def active_all(session: Session, accel_class: str, at: datetime | None = None) -> list[Reservation]:
    at = at or utcnow()
    return list(session.exec(select(Reservation).where(
        Reservation.accel_class == accel_class, Reservation.cancelled_at == None,  # noqa: E711
        Reservation.starts_at <= at, Reservation.ends_at > at)))


def listing(session: Session, include_past: bool = False) -> list[Reservation]:
    q = select(Reservation).where(Reservation.cancelled_at == None)  # noqa: E711
    if not include_past:
        q = q.where(Reservation.ends_at > utcnow())
    return list(session.exec(q.order_by(Reservation.starts_at, Reservation.id)))
