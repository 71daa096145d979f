"""Leasing exactly the devices a run needs, atomically, with heartbeat and expiry.

Two guards, both correct on SQLite and PostgreSQL:
* a device is claimed only by `UPDATE device SET lease_id=:me WHERE id=:d AND lease_id IS NULL`, and the
  claim counts only when that statement changed one row, so two runs can never hold one device;
* pool accounting (how many devices a challenge or the shared remainder already holds) runs under the
  per-class QuotaLock, so two runs of one challenge cannot both take its last reserved device.
On PostgreSQL the candidates are also picked with FOR UPDATE SKIP LOCKED so waiting runs pass over rows
another transaction is claiming instead of queueing on them.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from evaluator.quota.inventory import capacity
from evaluator.quota.locking import dialect, lock
from evaluator.quota.models import Device, Lease
from evaluator.quota.reservations import active_all, active_for
from hub.errors import DomainError, N_
from hub.models import utcnow

MIN_TTL_S = 5


def _held_by(session: Session, accel_class: str, challenge_ids: list[int] | None, exclude: list[int] | None) -> int:
    """Devices of a class held by active leases of these challenges (or of all but `exclude`)."""
    q = select(func.count(Device.id)).join(Lease, Lease.id == Device.lease_id).where(
        Device.accel_class == accel_class, Lease.released_at == None)  # noqa: E711
    if challenge_ids is not None:
        q = q.where(col(Lease.challenge_id).in_(challenge_ids))
    if exclude:
        q = q.where(col(Lease.challenge_id).not_in(exclude))
    return int(session.exec(q).one())


def pool_room(session: Session, challenge_id: int, accel_class: str, now: datetime | None = None) -> int:
    """How many more devices of a class this challenge's runs may hold right now.

    A challenge with a reservation draws only from its pool; the others share what no active
    reservation holds back.
    """
    now = now or utcnow()
    own = active_for(session, challenge_id, accel_class, now)
    if own is not None:
        return max(0, own.count - _held_by(session, accel_class, [challenge_id], None))
    reserved = active_all(session, accel_class, now)
    shared = capacity(session, accel_class) - sum(r.count for r in reserved)
    used = _held_by(session, accel_class, None, [r.challenge_id for r in reserved])
    return max(0, shared - used)


def _expire(session: Session, now: datetime, accel_class: str | None = None) -> int:
    q = select(Lease.id).where(Lease.released_at == None, Lease.expires_at < now)  # noqa: E711
    if accel_class is not None:
        q = q.where(Lease.accel_class == accel_class)
    return sum(_end(session, lease_id, now, "expired") for lease_id in session.exec(q).all())


def _end(session: Session, lease_id: int, now: datetime, reason: str) -> bool:
    """End a lease once (a conditional UPDATE, so release and expiry may race harmlessly)."""
    ended = session.exec(update(Lease).where(Lease.id == lease_id, Lease.released_at == None)  # type: ignore[call-overload]  # noqa: E711
                         .values(released_at=now, end_reason=reason))
    if ended.rowcount != 1:
        return False
    session.exec(update(Device).where(Device.lease_id == lease_id).values(lease_id=None))  # type: ignore[call-overload]
    return True


def _claimable(session: Session, accel_class: str, node: str, now: datetime) -> int:
    """Devices on the node that are free or held by an expired lease (a lock-free first look)."""
    stale = select(Lease.id).where(Lease.released_at == None, Lease.expires_at < now)  # noqa: E711
    return int(session.exec(select(func.count(Device.id)).where(
        Device.accel_class == accel_class, Device.node == node, Device.active == True,  # noqa: E712
        (Device.lease_id == None) | col(Device.lease_id).in_(stale))).one())  # noqa: E711


def acquire(session: Session, *, submission_id: int, attempt: int, challenge_id: int, accel_class: str,
            count: int, node: str, ttl_s: float) -> Lease | None:
    """Lease `count` free devices of a class on `node` for one attempt, or None when none are free now.

    Idempotent: the same (submission_id, attempt) gets its existing active lease back; None once that
    lease has ended (the attempt is over). `count` 0 gives an empty lease (a CPU run).
    """
    if count < 0:
        raise DomainError(N_("A run cannot lease a negative number of devices."), field="count")
    ttl = timedelta(seconds=max(MIN_TTL_S, float(ttl_s)))
    existing = _lease_of(session, submission_id, attempt)
    if existing is not None:
        return existing if existing.released_at is None else None
    if count and _claimable(session, accel_class, node, utcnow()) < count:
        # Nothing to win: answer without queueing on the class lock (waiting workers poll often).
        session.rollback()
        return None
    lock(session, f"class:{accel_class}")
    now = utcnow()
    _expire(session, now, accel_class)
    lease = Lease(submission_id=submission_id, attempt=attempt, challenge_id=challenge_id, accel_class=accel_class,
                  node=node, count=count, acquired_at=now, heartbeat_at=now, expires_at=now + ttl)
    session.add(lease)
    try:
        session.flush()
    except IntegrityError:
        # Another worker created this attempt's lease first: hand back theirs.
        session.rollback()
        existing = _lease_of(session, submission_id, attempt)
        return existing if existing is not None and existing.released_at is None else None
    if count and pool_room(session, challenge_id, accel_class, now) < count:
        session.rollback()
        return None
    claimed: list[str] = []
    if count:
        q = select(Device.id, Device.uuid).where(Device.accel_class == accel_class, Device.node == node,
                                                 Device.active == True, Device.lease_id == None)  # noqa: E711,E712
        q = q.order_by(Device.index, Device.id)
        if dialect(session) == "postgresql":
            q = q.with_for_update(skip_locked=True)
        for device_id, uuid in session.exec(q).all():
            result = session.exec(update(Device).where(Device.id == device_id, Device.lease_id == None)  # type: ignore[call-overload]  # noqa: E711
                                  .values(lease_id=lease.id))
            if result.rowcount == 1:
                claimed.append(uuid)
                if len(claimed) == count:
                    break
    if len(claimed) < count:
        session.rollback()
        return None
    lease.device_ids = claimed
    # Stamped once the devices are ours, so a lease's recorded span never overlaps the previous holder's.
    lease.acquired_at = lease.heartbeat_at = utcnow()
    lease.expires_at = lease.acquired_at + ttl
    session.add(lease)
    session.commit()
    return lease


def _lease_of(session: Session, submission_id: int, attempt: int) -> Lease | None:
    return session.exec(select(Lease).where(Lease.submission_id == submission_id, Lease.attempt == attempt)).first()


def heartbeat(session: Session, lease_id: int, ttl_s: float) -> bool:
    """Extend a live lease; False when it has already ended (the worker must stop its container)."""
    now = utcnow()
    result = session.exec(update(Lease).where(Lease.id == lease_id, Lease.released_at == None,  # type: ignore[call-overload]  # noqa: E711
                                              Lease.expires_at >= now)
                          .values(heartbeat_at=now, expires_at=now + timedelta(seconds=max(MIN_TTL_S, ttl_s))))
    session.commit()
    return result.rowcount == 1


def release(session: Session, lease_id: int) -> None:
    """Give the lease's devices back; releasing an ended lease does nothing.

    No class lock: giving devices back can never over-commit a pool.
    """
    _end(session, lease_id, utcnow(), "released")
    session.commit()


def release_many(session: Session, *, attempts: list[tuple[int, int]] | None = None,
                 lease_ids: list[int] | None = None) -> list[int]:
    """End the active leases of these (submission id, attempt) pairs, or with these ids, in one statement each
    for the leases and their devices; committed; returns the ids of the leases ended."""
    if not attempts and not lease_ids:
        return []
    now = utcnow()
    stmt = update(Lease).where(Lease.released_at == None)  # noqa: E711
    if attempts:
        stmt = stmt.where(tuple_(Lease.submission_id, Lease.attempt).in_(attempts))
    if lease_ids:
        stmt = stmt.where(col(Lease.id).in_(lease_ids))
    ended = [row[0] for row in session.execute(stmt.values(released_at=now, end_reason="released")
                                               .returning(Lease.id)).all()]
    if ended:
        session.exec(update(Device).where(col(Device.lease_id).in_(ended)).values(lease_id=None))  # type: ignore[call-overload]
    session.commit()
    return ended


def expire_stale(session: Session, now: datetime | None = None) -> int:
    """End leases whose heartbeat stopped (a dead worker) and free their devices; returns how many."""
    now = now or utcnow()
    ended = 0
    classes = session.exec(select(Lease.accel_class).where(Lease.released_at == None,  # noqa: E711
                                                           Lease.expires_at < now).distinct()).all()
    for accel_class in classes:
        lock(session, f"class:{accel_class}")
        ended += _expire(session, now, accel_class)
    session.commit()
    return ended


def active_leases(session: Session) -> list[Lease]:
    return list(session.exec(select(Lease).where(Lease.released_at == None).order_by(Lease.acquired_at)))  # noqa: E711


def release_attempt(session: Session, submission_id: int, attempt: int) -> list[int]:
    """End the leases still held by one attempt (its worker is gone); returns their ids."""
    return release_many(session, attempts=[(submission_id, attempt)])


def attempt_ended(session: Session, submission_id: int, attempt: int) -> bool:
    """Whether this attempt had a lease that has ended (released or expired): it can never get one back."""
    lease = session.exec(select(Lease).where(Lease.submission_id == submission_id, Lease.attempt == attempt)
                         .execution_options(populate_existing=True)).first()
    return lease is not None and lease.released_at is not None
