"""Metering: the price list and the append-only ledger of metered runs, and its reconciliation.

Each metered run is evidence for a voucher claim, so a ledger line is never changed or deleted (a guard
on every Session refuses it); a mistake is undone by a correction line that reverses it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from challenges.models import Submission, Team
from evaluator.quota import vouchers
from evaluator.quota.locking import as_utc, lock
from evaluator.quota.models import AppendOnlyError, LedgerLine, Lease, Price, Voucher  # noqa: F401
from hub import audit
from hub.errors import DomainError, N_, NotFound
from hub.models import utcnow


# ---------------------------------------------------------------- prices
def parse_yuan(value: str | float | Decimal, field: str = "price") -> int:
    """'12.5' yuan -> 1250 fen; refuses negatives and more than two decimals."""
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise DomainError(N_("Enter an amount in yuan, e.g. 12.50."), field=field) from None
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise DomainError(N_("Enter an amount in yuan, e.g. 12.50."), field=field)
    if amount > Decimal("1000000000"):
        raise DomainError(N_("The amount is too large."), field=field)
    return int(amount * 100)


def set_price(session: Session, *, accel_class: str, fen_per_device_hour: int, actor_id: int | None,
              valid_from: datetime | None = None) -> Price:
    """Add a price from `valid_from` (default now) on; earlier runs keep the price they were metered at."""
    accel_class = (accel_class or "").strip().lower()
    if not accel_class or len(accel_class) > 40:
        raise DomainError(N_("Choose a device class."), field="accel_class")
    if fen_per_device_hour < 0:
        raise DomainError(N_("Enter an amount in yuan, e.g. 12.50."), field="price")
    row = Price(accel_class=accel_class, fen_per_device_hour=fen_per_device_hour,
                valid_from=as_utc(valid_from) if valid_from else utcnow(), created_by=actor_id)
    session.add(row)
    session.flush()
    audit.record(session, actor_id, "quota.price", "price", row.id, accel_class=accel_class,
                 fen_per_device_hour=fen_per_device_hour)
    session.commit()
    return row


def price_at(session: Session, accel_class: str, at: datetime) -> int:
    """Fen per device-hour of a class at a moment (0 when the class has no price yet)."""
    row = session.exec(select(Price).where(Price.accel_class == accel_class, Price.valid_from <= at)
                       .order_by(col(Price.valid_from).desc(), col(Price.id).desc())).first()
    return row.fen_per_device_hour if row else 0


def price_list(session: Session) -> list[Price]:
    """The current price of each class."""
    now = utcnow()
    out: dict[str, Price] = {}
    for row in session.exec(select(Price).where(Price.valid_from <= now)
                            .order_by(col(Price.valid_from), col(Price.id))):
        out[row.accel_class] = row
    return [out[k] for k in sorted(out)]


def amount_fen(device_seconds: float, fen_per_device_hour: int) -> int:
    """The fee of a line, reproducible from the line itself: device-seconds x price / 3600, half up."""
    value = Decimal(repr(device_seconds)) * fen_per_device_hour / Decimal(3600)
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def voucher_share(amount: int, percent: int) -> int:
    return int((Decimal(amount) * percent / Decimal(100)).quantize(Decimal(1), rounding=ROUND_DOWN))


# ---------------------------------------------------------------- metering
def meter_run(session: Session, *, submission_id: int, lease_id: int | None, device_class: str,
              device_ids: list[str], started_at: datetime, finished_at: datetime) -> LedgerLine:
    """Write the ledger line of one run from its container's own start and finish; a run meters once.

    Idempotent per lease (or per submission attempt when the run had no lease): a second call returns
    the first line unchanged.
    """
    submission = session.get(Submission, submission_id)
    if submission is None:
        raise NotFound(N_("Unknown submission."), field="submission_id")
    lease = session.get(Lease, lease_id) if lease_id is not None else None
    if lease_id is not None and lease is None:
        raise NotFound(N_("Unknown lease."), field="lease_id")
    attempt = lease.attempt if lease is not None else submission.attempt
    key = f"lease:{lease_id}" if lease_id is not None else f"sub:{submission_id}:{attempt}"
    existing = _line_by_key(session, key)
    if existing is not None:
        return existing
    started_at, finished_at = as_utc(started_at), as_utc(finished_at)
    if finished_at < started_at:
        raise DomainError(N_("A run cannot finish before it starts."), field="finished_at")
    team = session.get(Team, submission.team_id)
    org_id = team.lead_org_id if team is not None else None
    # One company's lines are written one at a time so that its yearly cap cannot be overdrawn.
    lock(session, f"org:{org_id}")
    existing = _line_by_key(session, key)
    if existing is not None:
        session.rollback()
        return existing
    count = max(1, len(device_ids))
    seconds = (finished_at - started_at).total_seconds()
    device_seconds = seconds * count
    price = price_at(session, device_class, started_at)
    amount = amount_fen(device_seconds, price)
    voucher = vouchers.voucher_for(session, org_id, started_at) if org_id is not None else None
    share = 0
    if voucher is not None:
        share = min(voucher_share(amount, voucher.percent), vouchers.cap_left(session, voucher, started_at))
    line = LedgerLine(meter_key=key, kind="run", submission_id=submission_id, attempt=attempt, lease_id=lease_id,
                      team_id=submission.team_id, challenge_id=submission.challenge_id, org_id=org_id,
                      voucher_id=voucher.id if voucher is not None and share > 0 else None,
                      device_class=device_class, device_ids=list(device_ids), device_count=count,
                      started_at=started_at, finished_at=finished_at, seconds=seconds,
                      device_seconds=device_seconds, fen_per_device_hour=price, amount_fen=amount,
                      voucher_fen=share, payable_fen=amount - share)
    session.add(line)
    if voucher is not None and share:
        voucher.used_fen += share
        session.add(voucher)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = _line_by_key(session, key)
        if existing is None:
            raise
        return existing
    return line


def _line_by_key(session: Session, key: str) -> LedgerLine | None:
    return session.exec(select(LedgerLine).where(LedgerLine.meter_key == key)).first()


def reverse_line(session: Session, line_id: int, *, reason: str, actor_id: int | None) -> LedgerLine:
    """Undo a run line by appending its negative (once); the voucher gets its share back."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(N_("Give the reason for the correction."), field="reason")
    original = session.get(LedgerLine, line_id)
    if original is None or original.kind != "run":
        raise NotFound(N_("Unknown ledger line."))
    key = f"corr:{original.id}"
    if _line_by_key(session, key) is not None:
        raise DomainError(N_("This line has already been corrected."))
    lock(session, f"org:{original.org_id}")
    line = LedgerLine(meter_key=key, kind="correction", corrects_id=original.id,
                      submission_id=original.submission_id, attempt=original.attempt, lease_id=original.lease_id,
                      team_id=original.team_id, challenge_id=original.challenge_id, org_id=original.org_id,
                      voucher_id=original.voucher_id, device_class=original.device_class,
                      device_ids=list(original.device_ids), device_count=original.device_count,
                      started_at=original.started_at, finished_at=original.finished_at,
                      seconds=-original.seconds, device_seconds=-original.device_seconds,
                      fen_per_device_hour=original.fen_per_device_hour, amount_fen=-original.amount_fen,
                      voucher_fen=-original.voucher_fen, payable_fen=-original.payable_fen, note=reason[:2000],
                      actor_id=actor_id)
    session.add(line)
    if original.voucher_id is not None and original.voucher_fen:
        voucher = session.get(Voucher, original.voucher_id)
        voucher.used_fen -= original.voucher_fen  # type: ignore[union-attr]
        session.add(voucher)
    session.flush()
    audit.record(session, actor_id, "ledger.correct", "ledger_line", line.id, corrects=original.id, reason=reason)
    session.commit()
    return line


# ---------------------------------------------------------------- reconciliation
@dataclass(frozen=True)
class Mismatch:
    voucher_id: int
    code: str
    used_fen: int
    ledger_fen: int


def voucher_ledger_fen(session: Session, voucher_id: int) -> int:
    return int(session.exec(select(func.coalesce(func.sum(LedgerLine.voucher_fen), 0))
                            .where(LedgerLine.voucher_id == voucher_id)).one())


def reconcile(session: Session) -> list[Mismatch]:
    """Vouchers whose used amount differs from the sum of their ledger lines (empty when all agree)."""
    sums = dict(session.exec(select(LedgerLine.voucher_id, func.sum(LedgerLine.voucher_fen))
                             .where(LedgerLine.voucher_id != None).group_by(LedgerLine.voucher_id)).all())  # noqa: E711
    out = []
    for v in session.exec(select(Voucher).order_by(Voucher.id)):
        ledger = int(sums.get(v.id, 0) or 0)
        if ledger != v.used_fen:
            out.append(Mismatch(v.id, v.code, v.used_fen, ledger))  # type: ignore[arg-type]
    return out


def line_is_consistent(line: LedgerLine) -> bool:
    """A line's figures follow from its own times, devices and price (what an auditor re-computes)."""
    if line.kind != "run":
        return True
    seconds = (as_utc(line.finished_at) - as_utc(line.started_at)).total_seconds()
    return (abs(seconds - line.seconds) < 1e-6 and abs(line.device_seconds - seconds * line.device_count) < 1e-6
            and line.amount_fen == amount_fen(line.device_seconds, line.fen_per_device_hour)
            and line.voucher_fen + line.payable_fen == line.amount_fen)
