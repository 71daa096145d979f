"""Statements read from the ledger: a company's 智能算力交付凭证, monthly exports, plots and utilisation."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlmodel import Session, col, select

from challenges.models import Challenge, Team
from evaluator.quota.locking import as_utc
from evaluator.quota.models import Device, LedgerLine, Lease, Voucher
from evaluator.quota.vouchers import CHINA
from hub import csvsafe
from hub.errors import DomainError, N_
from hub.models import Organisation, utcnow

MAX_PERIOD = timedelta(days=400)


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Whole China-time days [start, end] as UTC bounds [from, to)."""
    if end < start:
        raise DomainError(N_("The period must end after it starts."), field="to")
    lo = datetime(start.year, start.month, start.day, tzinfo=CHINA)
    hi = datetime(end.year, end.month, end.day, tzinfo=CHINA) + timedelta(days=1)
    if hi - lo > MAX_PERIOD:
        raise DomainError(N_("A statement covers at most 400 days."), field="to")
    return as_utc(lo), as_utc(hi)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    if not (2000 <= year <= 2100 and 1 <= month <= 12):
        raise DomainError(N_("Choose a month."), field="month")
    lo = datetime(year, month, 1, tzinfo=CHINA)
    hi = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=CHINA)
    return as_utc(lo), as_utc(hi)


@dataclass
class Totals:
    runs: int = 0
    seconds: float = 0.0
    device_seconds: float = 0.0
    amount_fen: int = 0
    voucher_fen: int = 0
    payable_fen: int = 0

    def add(self, line: LedgerLine) -> None:
        self.runs += 1 if line.kind == "run" else (-1 if line.kind == "correction" else 0)
        self.seconds += line.seconds
        self.device_seconds += line.device_seconds
        self.amount_fen += line.amount_fen
        self.voucher_fen += line.voucher_fen
        self.payable_fen += line.payable_fen


@dataclass
class Statement:
    org: Organisation
    start: datetime
    end: datetime
    lines: list[LedgerLine]
    totals: Totals
    by_class: dict[str, Totals]
    vouchers: dict[int, Voucher]
    teams: dict[int, Team]
    challenges: dict[int, Challenge]
    supplier: Organisation | None
    generated_at: datetime = field(default_factory=utcnow)


def lines_between(session: Session, start: datetime, end: datetime, org_id: int | None = None) -> list[LedgerLine]:
    q = select(LedgerLine).where(LedgerLine.started_at >= start, LedgerLine.started_at < end)
    if org_id is not None:
        q = q.where(LedgerLine.org_id == org_id)
    return list(session.exec(q.order_by(LedgerLine.started_at, LedgerLine.id)))


def _by_id(session: Session, model, ids: set[int]) -> dict:  # type: ignore[no-untyped-def]
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {row.id: row for row in session.exec(select(model).where(col(model.id).in_(ids)))}


def statement(session: Session, org_id: int, start: datetime, end: datetime) -> Statement:
    """One organisation's lines in [start, end), with totals: reproducible from the ledger alone."""
    org = session.get(Organisation, org_id)
    if org is None:
        raise DomainError(N_("Unknown organisation."), field="org")
    lines = lines_between(session, start, end, org_id)
    totals, by_class = Totals(), defaultdict(Totals)
    for line in lines:
        totals.add(line)
        by_class[line.device_class].add(line)
    vouchers = _by_id(session, Voucher, {ln.voucher_id for ln in lines})
    own = session.exec(select(Voucher).where(Voucher.company_id == org_id, Voucher.valid_from < end,
                                             Voucher.valid_until > start)).all()
    vouchers.update({v.id: v for v in own})
    supplier_ids = {v.supplier_id for v in vouchers.values()}
    supplier = session.get(Organisation, min(supplier_ids)) if supplier_ids else session.exec(
        select(Organisation).where(Organisation.kind == "center").order_by(Organisation.id)).first()
    return Statement(org=org, start=start, end=end, lines=lines, totals=totals, by_class=dict(by_class),
                     vouchers=vouchers, teams=_by_id(session, Team, {ln.team_id for ln in lines}),
                     challenges=_by_id(session, Challenge, {ln.challenge_id for ln in lines}), supplier=supplier)


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def iso(value: datetime) -> str:
    return as_utc(value).isoformat(timespec="microseconds").replace("+00:00", "Z")


CSV_HEADER = ["line_id 流水号", "kind 类型", "corrects 冲正", "organisation 单位", "team 团队", "challenge 榜单",
              "submission 提交", "attempt 尝试", "device_class 设备类型", "device_ids 设备编号", "device_count 设备数",
              "container_start_utc 容器开始", "container_end_utc 容器结束", "seconds 秒", "device_seconds 卡秒",
              "price_yuan_per_device_hour 单价(元/卡时)", "amount_yuan 金额(元)", "voucher 算力券",
              "voucher_yuan 券抵扣(元)", "payable_yuan 应付(元)"]


def _rows(lines: list[LedgerLine], orgs: dict, teams: dict, challenges: dict, vouchers: dict):  # type: ignore[no-untyped-def]
    for ln in lines:
        org, team, ch = orgs.get(ln.org_id), teams.get(ln.team_id), challenges.get(ln.challenge_id)
        v = vouchers.get(ln.voucher_id)
        yield [ln.id, ln.kind, ln.corrects_id or "", org.name if org else "", team.name if team else "",
               ch.slug if ch else "", ln.submission_id or "", ln.attempt if ln.attempt is not None else "",
               ln.device_class, " ".join(ln.device_ids), ln.device_count, iso(ln.started_at), iso(ln.finished_at),
               Decimal(f"{ln.seconds:.6f}"), Decimal(f"{ln.device_seconds:.6f}"), _yuan_number(ln.fen_per_device_hour),
               _yuan_number(ln.amount_fen), v.code if v else "", _yuan_number(ln.voucher_fen),
               _yuan_number(ln.payable_fen)]


def _yuan_number(fen: int) -> Decimal:
    """Yuan with two decimals as a number: a correction's negative amount stays summable in a spreadsheet."""
    return Decimal(fen).scaleb(-2)


def _csv(rows) -> str:  # type: ignore[no-untyped-def]
    # Names that teams and organisations chose go through csvsafe; the figures above are numbers.
    return csvsafe.to_csv(CSV_HEADER, rows, bom=True)


def statement_csv(stmt: Statement) -> str:
    return _csv(_rows(stmt.lines, {stmt.org.id: stmt.org}, stmt.teams, stmt.challenges, stmt.vouchers))


def month_csv(session: Session, year: int, month: int) -> str:
    """Every organisation's lines started in a China-time month (the operators' monthly export)."""
    start, end = month_bounds(year, month)
    lines = lines_between(session, start, end)
    return _csv(_rows(lines, _by_id(session, Organisation, {ln.org_id for ln in lines}),
                      _by_id(session, Team, {ln.team_id for ln in lines}),
                      _by_id(session, Challenge, {ln.challenge_id for ln in lines}),
                      _by_id(session, Voucher, {ln.voucher_id for ln in lines})))


# ---------------------------------------------------------------- plots
@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    max_value: float
    axis_labels: list[tuple[float, str]]


def usage_chart(lines: list[LedgerLine], start: datetime, end: datetime, width: int = 720,
                height: int = 220) -> Chart:
    """Device-hours per China-time day (or per month for long periods), as bars ready for an SVG."""
    lo, hi = start.astimezone(CHINA).date(), (end - timedelta(microseconds=1)).astimezone(CHINA).date()
    monthly = (hi - lo).days > 62
    keys: list[date] = []
    d = lo.replace(day=1) if monthly else lo
    while d <= hi:
        keys.append(d)
        d = (d.replace(day=28) + timedelta(days=4)).replace(day=1) if monthly else d + timedelta(days=1)
    values = dict.fromkeys(keys, 0.0)
    for ln in lines:
        day = as_utc(ln.started_at).astimezone(CHINA).date()
        k = day.replace(day=1) if monthly else day
        if k in values:
            values[k] += ln.device_seconds / 3600
    top = max([v for v in values.values()] + [0.0])
    pad_l, pad_b, pad_t = 40, 24, 10
    inner_w, inner_h = width - pad_l - 4, height - pad_b - pad_t
    step = inner_w / max(1, len(keys))
    bars = []
    for i, k in enumerate(keys):
        h = (values[k] / top * inner_h) if top > 0 else 0.0
        bars.append(Bar(x=round(pad_l + i * step + step * 0.1, 2), y=round(pad_t + inner_h - h, 2),
                        width=round(max(1.0, step * 0.8), 2), height=round(h, 2),
                        label=k.strftime("%Y-%m") if monthly else k.isoformat(), value=round(values[k], 3)))
    every = max(1, len(keys) // 6)
    axis = [(round(b.x + b.width / 2, 2), b.label[5:] if not monthly else b.label) for b in bars[::every]]
    return Chart(width=width, height=height, bars=bars, max_value=round(top, 3), axis_labels=axis)


# ---------------------------------------------------------------- utilisation
@dataclass
class DeviceUse:
    device: Device
    holder: Lease | None
    leased_s: float
    metered_s: float
    utilisation: float          # metered seconds / window


def _clip(a: datetime, b: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(as_utc(b), hi) - max(as_utc(a), lo)).total_seconds())


def device_utilisation(session: Session, start: datetime, end: datetime) -> list[DeviceUse]:
    """Per device: seconds leased and seconds metered inside the window, and what holds it now."""
    now = utcnow()
    window = max(1.0, (end - start).total_seconds())
    leased: dict[str, float] = defaultdict(float)
    for lease in session.exec(select(Lease).where(Lease.acquired_at < end, (Lease.released_at == None)  # noqa: E711
                                                  | (Lease.released_at > start))):
        for uuid in lease.device_ids:
            leased[uuid] += _clip(lease.acquired_at, lease.released_at or now, start, end)
    metered: dict[str, float] = defaultdict(float)
    for ln in session.exec(select(LedgerLine).where(LedgerLine.started_at < end, LedgerLine.finished_at > start)):
        for uuid in ln.device_ids:
            sign = -1.0 if ln.kind == "correction" else 1.0
            metered[uuid] += sign * _clip(ln.started_at, ln.finished_at, start, end)
    holders = _by_id(session, Lease, {d.lease_id for d in session.exec(select(Device).where(Device.lease_id != None))})  # noqa: E711
    out = []
    for dev in session.exec(select(Device).order_by(Device.node, Device.accel_class, Device.index, Device.id)):
        out.append(DeviceUse(dev, holders.get(dev.lease_id), leased[dev.uuid], metered[dev.uuid],
                             metered[dev.uuid] / window))
    return out


@dataclass
class ChallengeUse:
    challenge: Challenge | None
    runs: int
    device_seconds: float
    amount_fen: int
    share_of_capacity: float


def challenge_utilisation(session: Session, start: datetime, end: datetime) -> list[ChallengeUse]:
    """Per challenge: runs and device-seconds metered in the window, and their share of all devices' time."""
    capacity_s = max(1.0, len(session.exec(select(Device.id).where(Device.active == True)).all())  # noqa: E712
                     * (end - start).total_seconds())
    acc: dict[int | None, Totals] = defaultdict(Totals)
    for ln in lines_between(session, start, end):
        acc[ln.challenge_id].add(ln)
    challenges = _by_id(session, Challenge, set(acc))  # type: ignore[arg-type]
    return sorted((ChallengeUse(challenges.get(cid), t.runs, t.device_seconds, t.amount_fen,
                                t.device_seconds / capacity_s) for cid, t in acc.items()),
                  key=lambda u: -u.device_seconds)
