"""算力券: issuing compute vouchers under the rules of the schemes, and finding the one a run may use.

Rules (../shared/DOMAIN.md): issued by a bureau to one company for compute from a supplier that is not a
related party; a percentage of metered fees (within the policy's 20–60 %) up to a yearly cap per company
(within 2,000,000–10,000,000 yuan); valid about 12 months; not
transferable (the holder never changes, see ledger.py's guard); one scheme per company and period.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from evaluator.quota.locking import as_utc
from evaluator.quota.models import LedgerLine, Voucher
from hub import audit
from hub.errors import DomainError, N_, NotFound
from hub.models import Organisation, OrgKind, OrgRelation, utcnow

HOLDER_KINDS = {OrgKind.COMPANY, OrgKind.UNIVERSITY, OrgKind.LAB}
MAX_VALIDITY = timedelta(days=366)
CHINA = ZoneInfo("Asia/Shanghai")

# The policy's bounds (../shared/DOMAIN.md, 算力券: "a percentage of the compute contract (20 %–60 %) with a
# per-company yearly cap (from 2,000,000 to 10,000,000 yuan)"). Operators set each voucher inside them.
PERCENT_MIN, PERCENT_MAX = 20, 60
CAP_MIN_FEN, CAP_MAX_FEN = 2_000_000 * 100, 10_000_000 * 100
PERCENT_RANGE_MSG = N_("The voucher share must be between %(low)s%% and %(high)s%% of the metered fees (the "
                       "policy's range); enter a value inside it.")
CAP_RANGE_MSG = N_("The yearly cap per company must be between %(low)s and %(high)s yuan (the policy's range); "
                   "enter a value inside it.")


def _yuan_text(fen: int) -> str:
    return f"{fen // 100:,}"


def policy_bounds() -> dict[str, int | str]:
    """The bounds as the operators' form states them."""
    return {"percent_min": PERCENT_MIN, "percent_max": PERCENT_MAX, "cap_min": _yuan_text(CAP_MIN_FEN),
            "cap_max": _yuan_text(CAP_MAX_FEN)}


def related(session: Session, a: int, b: int) -> bool:
    """A related-party tie recorded in either direction."""
    return session.exec(select(OrgRelation.id).where(or_(
        (OrgRelation.org_id == a) & (OrgRelation.related_org_id == b),
        (OrgRelation.org_id == b) & (OrgRelation.related_org_id == a)))).first() is not None


def _org(session: Session, org_id: int | None, field: str) -> Organisation:
    org = session.get(Organisation, org_id) if org_id is not None else None
    if org is None:
        raise NotFound(N_("Unknown organisation."), field=field)
    return org


def issue(session: Session, *, company_id: int, bureau_id: int, supplier_id: int, scheme: str, percent: int,
          cap_fen: int, valid_from: datetime, valid_until: datetime, actor_id: int | None) -> Voucher:
    """Issue a voucher, refusing what the schemes refuse."""
    scheme = (scheme or "").strip()
    if not scheme or len(scheme) > 120:
        raise DomainError(N_("Name the voucher scheme (at most 120 characters)."), field="scheme")
    company = _org(session, company_id, "company_id")
    bureau = _org(session, bureau_id, "bureau_id")
    supplier = _org(session, supplier_id, "supplier_id")
    if company.kind not in HOLDER_KINDS:
        raise DomainError(N_("Vouchers are issued to companies, universities and labs only."), field="company_id")
    if bureau.kind != OrgKind.DISTRICT:
        raise DomainError(N_("Vouchers are issued by a district bureau."), field="bureau_id")
    if supplier.kind != OrgKind.CENTER:
        raise DomainError(N_("The supplier must be a computing center."), field="supplier_id")
    if isinstance(percent, bool) or not isinstance(percent, int) or not PERCENT_MIN <= percent <= PERCENT_MAX:
        raise DomainError(PERCENT_RANGE_MSG, field="percent", low=PERCENT_MIN, high=PERCENT_MAX)
    if isinstance(cap_fen, bool) or not isinstance(cap_fen, int) or not CAP_MIN_FEN <= cap_fen <= CAP_MAX_FEN:
        raise DomainError(CAP_RANGE_MSG, field="cap_yuan", low=_yuan_text(CAP_MIN_FEN), high=_yuan_text(CAP_MAX_FEN))
    valid_from, valid_until = as_utc(valid_from), as_utc(valid_until)
    if valid_until <= valid_from:
        raise DomainError(N_("The voucher must end after it starts."), field="valid_until")
    if valid_until - valid_from > MAX_VALIDITY:
        raise DomainError(N_("A voucher is valid for at most 12 months."), field="valid_until")
    if related(session, company.id, supplier.id):  # type: ignore[arg-type]
        raise DomainError(N_("%(company)s is a related party of the supplier %(supplier)s: no voucher may be "
                             "used for this compute."), field="company_id", company=company.name,
                          supplier=supplier.name)
    clash = session.exec(select(Voucher).where(
        Voucher.company_id == company.id, Voucher.revoked_at == None,  # noqa: E711
        Voucher.valid_from < valid_until, Voucher.valid_until > valid_from)).first()
    if clash is not None:
        raise DomainError(N_("%(company)s already holds voucher %(voucher)s (%(scheme)s) for part of that period: "
                             "one scheme per company and period, no double subsidy."), field="valid_from",
                          company=company.name, voucher=clash.code, scheme=clash.scheme)
    voucher = Voucher(code=f"SLQ-{valid_from.astimezone(CHINA):%Y}-{secrets.token_hex(4).upper()}", scheme=scheme,
                      company_id=company.id, bureau_id=bureau.id, supplier_id=supplier.id, percent=percent,
                      cap_fen=cap_fen, valid_from=valid_from, valid_until=valid_until, issued_by=actor_id)
    session.add(voucher)
    session.flush()
    audit.record(session, actor_id, "voucher.issue", "voucher", voucher.id, org_id=bureau.id, code=voucher.code,
                 company_id=company.id, percent=percent, cap_fen=cap_fen)
    session.commit()
    return voucher


def revoke(session: Session, voucher_id: int, actor_id: int | None) -> Voucher:
    voucher = session.get(Voucher, voucher_id)
    if voucher is None or voucher.revoked_at is not None:
        raise NotFound(N_("Unknown voucher."))
    voucher.revoked_at = utcnow()
    session.add(voucher)
    audit.record(session, actor_id, "voucher.revoke", "voucher", voucher.id, org_id=voucher.bureau_id,
                 code=voucher.code)
    session.commit()
    return voucher


def voucher_for(session: Session, company_id: int, at: datetime) -> Voucher | None:
    """The company's own voucher valid at that moment (never another company's)."""
    return session.exec(select(Voucher).where(
        Voucher.company_id == company_id, Voucher.revoked_at == None,  # noqa: E711
        Voucher.valid_from <= at, Voucher.valid_until > at)).first()


def year_bounds(at: datetime) -> tuple[datetime, datetime]:
    """The calendar year (China time) that contains `at`, as UTC bounds."""
    local = as_utc(at).astimezone(CHINA)
    start = datetime(local.year, 1, 1, tzinfo=CHINA)
    end = datetime(local.year + 1, 1, 1, tzinfo=CHINA)
    return as_utc(start), as_utc(end)


def cap_left(session: Session, voucher: Voucher, at: datetime) -> int:
    """Fen the voucher may still pay: its own cap, and the company's yearly cap across its vouchers."""
    start, end = year_bounds(at)
    company_year = int(session.exec(select(func.coalesce(func.sum(LedgerLine.voucher_fen), 0)).where(
        LedgerLine.org_id == voucher.company_id, LedgerLine.voucher_id != None,  # noqa: E711
        LedgerLine.started_at >= start, LedgerLine.started_at < end)).one())
    return max(0, min(voucher.cap_fen - voucher.used_fen, voucher.cap_fen - company_year))


def for_company(session: Session, company_id: int) -> list[Voucher]:
    return list(session.exec(select(Voucher).where(Voucher.company_id == company_id)
                             .order_by(col(Voucher.valid_from).desc())))


def listing(session: Session) -> list[Voucher]:
    return list(session.exec(select(Voucher).order_by(col(Voucher.issued_at).desc())))


def is_valid(voucher: Voucher, at: datetime | None = None) -> bool:
    at = at or utcnow()
    return voucher.revoked_at is None and as_utc(voucher.valid_from) <= at < as_utc(voucher.valid_until)
