"""Quota tables: devices, reservations, leases, team quotas, prices, 算力券 vouchers and the ledger.

Money is kept in integer fen (分) so that sums reconcile exactly on every backend.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, event, inspect
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel

from hub.models import utcnow


class Device(SQLModel, table=True):
    """One accelerator as its node last reported it; `lease_id` is the run holding it (NULL when free)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    uuid: str = Field(index=True, unique=True, max_length=120)
    node: str = Field(index=True, max_length=120)
    accel_class: str = Field(index=True, max_length=40)
    index: int = Field(default=0)
    name: str = Field(default="", max_length=120)
    source: str = Field(default="config", max_length=20)      # nvidia-smi | config
    active: bool = Field(default=True, index=True)             # still reported by its node
    last_seen: datetime = Field(default_factory=utcnow)
    # The "holder" column: set only by a conditional UPDATE ... WHERE lease_id IS NULL (see leases.py).
    lease_id: Optional[int] = Field(default=None, foreign_key="lease.id", index=True)


class Reservation(SQLModel, table=True):
    """A challenge's pool: `count` devices of a class for [starts_at, ends_at)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    accel_class: str = Field(index=True, max_length=40)
    count: int
    starts_at: datetime
    ends_at: datetime
    created_by: Optional[int] = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    cancelled_at: Optional[datetime] = Field(default=None)


class Lease(SQLModel, table=True):
    """Devices held by one attempt of one submission; ends by release or expiry."""

    __table_args__ = (UniqueConstraint("submission_id", "attempt"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    attempt: int = Field(default=0)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    accel_class: str = Field(max_length=40)
    node: str = Field(max_length=120)
    count: int = Field(default=0)
    device_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # uuids
    acquired_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)
    released_at: Optional[datetime] = Field(default=None, index=True)
    end_reason: str = Field(default="", max_length=20)      # released | expired


class TeamQuota(SQLModel, table=True):
    """Accelerator-seconds (device-seconds) allowed to a team or a whole organisation.

    Scope: exactly one of team_id / org_id; optionally one challenge; optionally a period.
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    team_id: Optional[int] = Field(default=None, foreign_key="team.id", index=True)
    org_id: Optional[int] = Field(default=None, foreign_key="organisation.id", index=True)
    challenge_id: Optional[int] = Field(default=None, foreign_key="challenge.id", index=True)
    period_start: Optional[datetime] = Field(default=None)
    period_end: Optional[datetime] = Field(default=None)
    allowed_seconds: float
    created_by: Optional[int] = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    cancelled_at: Optional[datetime] = Field(default=None)


class Price(SQLModel, table=True):
    """Price list: yuan per device-hour of a class, in fen, from `valid_from` on (history is kept)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    accel_class: str = Field(index=True, max_length=40)
    fen_per_device_hour: int
    valid_from: datetime = Field(default_factory=utcnow, index=True)
    created_by: Optional[int] = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Voucher(SQLModel, table=True):
    """A 算力券 issued by a bureau to one company for compute from one supplier (the center)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=40)
    scheme: str = Field(max_length=120)                      # e.g. "西咸新区算力券 2026"
    company_id: int = Field(foreign_key="organisation.id", index=True)
    bureau_id: int = Field(foreign_key="organisation.id", index=True)
    supplier_id: int = Field(foreign_key="organisation.id", index=True)
    percent: int                                             # share of the metered fee, 1..100
    cap_fen: int                                             # yearly cap per company
    valid_from: datetime
    valid_until: datetime
    # Running sum of the voucher shares of its ledger lines; reconcile() checks it against the ledger.
    used_fen: int = Field(default=0)
    issued_by: Optional[int] = Field(default=None, foreign_key="user.id")
    issued_at: datetime = Field(default_factory=utcnow)
    revoked_at: Optional[datetime] = Field(default=None)


class LedgerLine(SQLModel, table=True):
    """One metered run (or a correction of one). Append-only: never updated, never deleted."""

    __table_args__ = (Index("ix_ledgerline_org_started", "org_id", "started_at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    # lease:<id> or sub:<id>:<attempt> for runs, corr:<line id> for corrections: a run meters once.
    meter_key: str = Field(unique=True, max_length=80)
    kind: str = Field(default="run", max_length=20)          # run | correction
    corrects_id: Optional[int] = Field(default=None, foreign_key="ledgerline.id")
    created_at: datetime = Field(default_factory=utcnow)
    submission_id: Optional[int] = Field(default=None, foreign_key="submission.id", index=True)
    attempt: Optional[int] = Field(default=None)
    lease_id: Optional[int] = Field(default=None, foreign_key="lease.id")
    team_id: Optional[int] = Field(default=None, foreign_key="team.id", index=True)
    challenge_id: Optional[int] = Field(default=None, foreign_key="challenge.id", index=True)
    org_id: Optional[int] = Field(default=None, foreign_key="organisation.id")   # the paying organisation
    voucher_id: Optional[int] = Field(default=None, foreign_key="voucher.id", index=True)
    device_class: str = Field(max_length=40)
    device_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    device_count: int = Field(default=1)
    started_at: datetime                                      # the container's own start
    finished_at: datetime                                     # the container's own finish
    seconds: float                                            # wall seconds of the container
    device_seconds: float                                     # seconds x devices (what quotas count)
    fen_per_device_hour: int = Field(default=0)
    amount_fen: int = Field(default=0)
    voucher_fen: int = Field(default=0)
    payable_fen: int = Field(default=0)
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    actor_id: Optional[int] = Field(default=None, foreign_key="user.id")


class QuotaLock(SQLModel, table=True):
    """Named rows that serialise pool and cap accounting (an upsert locks one row, on SQLite and PostgreSQL)."""

    name: str = Field(primary_key=True, max_length=120)
    n: int = Field(default=0)


# ---------------------------------------------------------------- guards on every Session
class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or delete a ledger line, or move a voucher to another holder."""


@event.listens_for(OrmSession, "before_flush")
def _guard_flush(session: OrmSession, _ctx, _instances) -> None:  # type: ignore[no-untyped-def]
    for obj in session.deleted:
        if isinstance(obj, LedgerLine):
            raise AppendOnlyError("ledger lines are append-only: write a correction line instead")
    for obj in session.dirty:
        if isinstance(obj, LedgerLine) and session.is_modified(obj):
            raise AppendOnlyError("ledger lines are append-only: write a correction line instead")
        if isinstance(obj, Voucher) and inspect(obj).attrs.company_id.history.has_changes():
            raise AppendOnlyError("vouchers are not transferable")


@event.listens_for(OrmSession, "do_orm_execute")
def _guard_bulk(state) -> None:  # type: ignore[no-untyped-def]
    if (state.is_update or state.is_delete) and state.bind_mapper is not None \
            and state.bind_mapper.class_ is LedgerLine:
        raise AppendOnlyError("ledger lines are append-only: write a correction line instead")
