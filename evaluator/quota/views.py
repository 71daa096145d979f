"""Pages and API of accelerator quota and 算力券: team usage, company statements, operators' desk.

Blueprint names: `quota` (pages) and `quota_api` (/api/v1/quota/...). The menu entries are
`quota.usage` (teams) and `quota.vouchers_admin` (operators).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlmodel import col, func, select

from challenges.models import Challenge, Team, TeamMember
from evaluator.quota import leases, ledger, reservations, statements, team_quota, vouchers
from evaluator.quota.forms import PriceForm, QuotaForm, ReservationForm, VoucherForm
from evaluator.quota.locking import as_utc
from evaluator.quota.models import LedgerLine
from evaluator.quota.vouchers import CHINA, HOLDER_KINDS
from hub.errors import DomainError
from hub.forms import EmptyForm
from hub.models import Organisation, OrgKind, Role, utcnow
from hub.web import date_arg, db, flash_error, id_arg, json_error, role_required, translate_error

bp = Blueprint("quota", __name__)
api = Blueprint("quota_api", __name__, url_prefix="/api/v1/quota")

OPS = (Role.OPERATOR, Role.ADMIN)


# ---------------------------------------------------------------- template helpers
@bp.app_template_filter("yuan")
def _yuan(fen: int | None) -> str:
    fen = fen or 0
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


@bp.app_template_filter("cn_time")
def _cn_time(value: datetime | None, seconds: bool = True) -> str:
    if value is None:
        return "—"
    return as_utc(value).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


@bp.app_template_filter("hours")
def _hours(seconds: float | None) -> str:
    return f"{(seconds or 0) / 3600:,.2f}"


def _day_start(d: date) -> datetime:
    return as_utc(datetime(d.year, d.month, d.day, tzinfo=CHINA))


def _today() -> date:
    return utcnow().astimezone(CHINA).date()


# ---------------------------------------------------------------- teams
def _my_teams() -> list[tuple[Team, Challenge]]:
    rows = db().exec(select(Team, Challenge).join(TeamMember, TeamMember.team_id == Team.id)
                     .join(Challenge, Challenge.id == Team.challenge_id)
                     .where(TeamMember.user_id == current_user.id, TeamMember.status == "active")
                     .order_by(col(Team.created_at).desc()))
    return list(rows.all())


def _usage(team: Team, challenge: Challenge) -> dict:
    session = db()
    found = team_quota.statuses(session, team, challenge.id)
    lines = list(session.exec(select(LedgerLine).where(LedgerLine.team_id == team.id)
                              .order_by(col(LedgerLine.started_at).desc()).limit(20)))
    used = float(session.exec(select(func.coalesce(func.sum(LedgerLine.device_seconds), 0.0))
                              .where(LedgerLine.team_id == team.id)).one())
    tightest = min(found, key=lambda s: s.remaining) if found else None
    return {"team": team, "challenge": challenge, "quotas": found, "tightest": tightest, "used": used,
            "lines": lines}


@bp.get("/compute/usage")
@role_required(Role.TEAM)
def usage():
    rows = [_usage(team, ch) for team, ch in _my_teams()]
    org = db().get(Organisation, current_user.org_id) if current_user.org_id else None
    return render_template("evaluator/quota/usage.html", rows=rows, org=org,
                           holder=org is not None and org.kind in HOLDER_KINDS)


@api.get("/usage")
@role_required(Role.TEAM)
def api_usage():
    out = []
    for team, ch in _my_teams():
        u = _usage(team, ch)
        out.append({"team_id": team.id, "team": team.name, "challenge": ch.slug,
                    "used_device_seconds": round(u["used"], 3),
                    "remaining_device_seconds": None if u["tightest"] is None else round(u["tightest"].remaining, 3),
                    "allowed_device_seconds": None if u["tightest"] is None else u["tightest"].quota.allowed_seconds})
    return jsonify({"teams": out})


# ---------------------------------------------------------------- companies: vouchers and statements
def _statement_org() -> Organisation:
    """The organisation whose statement is asked for: one's own, or any for operators."""
    wanted = id_arg("org")
    if current_user.role in OPS:
        org = db().get(Organisation, wanted) if wanted else None
        if org is None:
            abort(404)
        return org
    if current_user.role != Role.TEAM or current_user.org_id is None:
        abort(403)
    if wanted is not None and wanted != current_user.org_id:
        abort(403)  # a company never sees another company's statement
    org = db().get(Organisation, current_user.org_id)
    if org is None or org.kind not in HOLDER_KINDS:
        abort(403)
    return org


def _period() -> tuple[date, date]:
    today = _today()
    default_from = date(today.year, ((today.month - 1) // 3) * 3 + 1, 1)  # this quarter so far
    return date_arg("from", default_from), date_arg("to", today)


@bp.get("/compute/vouchers")
@role_required(Role.TEAM, Role.OPERATOR, Role.ADMIN)
def company():
    org = _statement_org()
    start, end = _period()
    return render_template("evaluator/quota/company.html", org=org, vouchers=vouchers.for_company(db(), org.id),
                           start=start, end=end, now=utcnow(), is_valid=vouchers.is_valid)


def _statement() -> statements.Statement:
    org = _statement_org()
    start, end = _period()
    lo, hi = statements.period_bounds(start, end)
    return statements.statement(db(), org.id, lo, hi)


@bp.get("/compute/statement")
@role_required(Role.TEAM, Role.OPERATOR, Role.ADMIN)
def statement():
    try:
        stmt = _statement()
    except DomainError as err:
        flash_error(err)
        return redirect(url_for("quota.company", org=request.args.get("org")))
    chart = statements.usage_chart(stmt.lines, stmt.start, stmt.end)
    return render_template("evaluator/quota/statement.html", s=stmt, chart=chart,
                           last_day=(stmt.end - timedelta(days=1)), csv_args=request.args.to_dict())


@bp.get("/compute/statement.csv")
@role_required(Role.TEAM, Role.OPERATOR, Role.ADMIN)
def statement_csv():
    stmt = _statement()
    name = f"statement-{stmt.org.code}-{request.args.get('from', 'start')}-{request.args.get('to', 'today')}.csv"
    return Response(statements.statement_csv(stmt), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api.get("/statement")
@role_required(Role.TEAM, Role.OPERATOR, Role.ADMIN)
def api_statement():
    stmt = _statement()
    t = stmt.totals
    return jsonify({
        "organisation": {"id": stmt.org.id, "name": stmt.org.name},
        "from": statements.iso(stmt.start), "to": statements.iso(stmt.end),
        "totals": {"runs": t.runs, "device_seconds": round(t.device_seconds, 6), "amount_fen": t.amount_fen,
                   "voucher_fen": t.voucher_fen, "payable_fen": t.payable_fen},
        "lines": [{"id": ln.id, "kind": ln.kind, "corrects": ln.corrects_id, "submission_id": ln.submission_id,
                   "device_class": ln.device_class, "device_ids": ln.device_ids,
                   "started_at": statements.iso(ln.started_at), "finished_at": statements.iso(ln.finished_at),
                   "seconds": ln.seconds, "device_seconds": ln.device_seconds,
                   "fen_per_device_hour": ln.fen_per_device_hour, "amount_fen": ln.amount_fen,
                   "voucher_fen": ln.voucher_fen, "payable_fen": ln.payable_fen} for ln in stmt.lines]})


# ---------------------------------------------------------------- operators: devices and utilisation
def _window() -> tuple[int, datetime, datetime]:
    days = max(1, min(90, request.args.get("days", 7, type=int) or 7))
    end = utcnow()
    return days, end - timedelta(days=days), end


@bp.get("/ops/devices")
@role_required(*OPS)
def devices():
    days, start, end = _window()
    session = db()
    return render_template("evaluator/quota/devices.html", days=days,
                           devices=statements.device_utilisation(session, start, end),
                           challenges=statements.challenge_utilisation(session, start, end),
                           active=leases.active_leases(session))


@api.get("/devices")
@role_required(*OPS)
def api_devices():
    _days, start, end = _window()
    return jsonify({"devices": [{
        "uuid": u.device.uuid, "node": u.device.node, "class": u.device.accel_class, "index": u.device.index,
        "active": u.device.active, "last_seen": statements.iso(u.device.last_seen),
        "lease_id": u.device.lease_id, "submission_id": u.holder.submission_id if u.holder else None,
        "leased_seconds": round(u.leased_s, 3), "metered_seconds": round(u.metered_s, 3),
        "utilisation": round(u.utilisation, 4)} for u in statements.device_utilisation(db(), start, end)]})


# ---------------------------------------------------------------- operators: reservations, quotas, prices
def _challenge_choices() -> list[tuple[int, str]]:
    return [(c.id, f"{c.title} ({c.slug})") for c in db().exec(select(Challenge).order_by(col(Challenge.id).desc()))]


def _forms() -> dict:
    session = db()
    rform, qform, pform = ReservationForm(prefix="r"), QuotaForm(prefix="q"), PriceForm(prefix="p")
    challenges = _challenge_choices()
    rform.challenge_id.choices = challenges
    qform.challenge_id.choices = [(0, gettext("All challenges"))] + challenges
    qform.team_id.choices = [(0, "—")] + [
        (t.id, f"{t.name} · {c.slug}") for t, c in session.exec(
            select(Team, Challenge).join(Challenge, Challenge.id == Team.challenge_id).order_by(col(Team.id).desc()))]
    qform.org_id.choices = [(0, "—")] + [(o.id, o.name) for o in session.exec(
        select(Organisation).where(col(Organisation.kind).in_(list(HOLDER_KINDS))).order_by(Organisation.name))]
    return {"rform": rform, "qform": qform, "pform": pform}


def _admin_page(status: int = 200, **forms):  # type: ignore[no-untyped-def]
    session = db()
    ctx = {**_forms(), **forms}
    challenges = {c.id: c for c in session.exec(select(Challenge))}
    teams = {t.id: t for t in session.exec(select(Team))}
    orgs = {o.id: o for o in session.exec(select(Organisation))}
    return render_template("evaluator/quota/admin.html", reservations=reservations.listing(session),
                           quotas=team_quota.quotas(session), prices=ledger.price_list(session),
                           challenges=challenges, teams=teams, orgs=orgs, cancel_form=EmptyForm(), **ctx), status


@bp.get("/ops/quota")
@role_required(*OPS)
def quota_admin():
    return _admin_page()


def _field_error(form, err: DomainError, default: str) -> None:  # type: ignore[no-untyped-def]
    field = getattr(form, err.field or default, None) or getattr(form, default)
    field.errors = [*field.errors, translate_error(err)] if isinstance(field.errors, list) else [translate_error(err)]


@bp.post("/ops/quota/reservations")
@role_required(*OPS)
def reserve():
    rform = _forms()["rform"]
    if rform.validate_on_submit():
        try:
            reservations.reserve(db(), challenge_id=rform.challenge_id.data, accel_class=rform.accel_class.data,
                                 count=rform.count.data, starts_at=_day_start(rform.starts_on.data),
                                 ends_at=_day_start(rform.ends_on.data + timedelta(days=1)),
                                 actor_id=current_user.id)
        except DomainError as err:
            _field_error(rform, err, "count")
        else:
            flash(gettext("Reservation saved."), "success")
            return redirect(url_for("quota.quota_admin"))
    return _admin_page(400, rform=rform)


@bp.post("/ops/quota/reservations/<int:reservation_id>/cancel")
@role_required(*OPS)
def cancel_reservation(reservation_id: int):
    form = EmptyForm()
    if form.validate_on_submit():
        reservations.cancel(db(), reservation_id, current_user.id)
        flash(gettext("Reservation cancelled."), "success")
    return redirect(url_for("quota.quota_admin"))


@bp.post("/ops/quota/team-quotas")
@role_required(*OPS)
def set_quota():
    qform = _forms()["qform"]
    if qform.validate_on_submit():
        try:
            team_quota.set_quota(db(), team_id=qform.team_id.data or None, org_id=qform.org_id.data or None,
                                 challenge_id=qform.challenge_id.data or None,
                                 allowed_seconds=float(Decimal(qform.hours.data) * 3600), actor_id=current_user.id)
        except DomainError as err:
            _field_error(qform, err, "hours")
        else:
            flash(gettext("Quota saved."), "success")
            return redirect(url_for("quota.quota_admin"))
    return _admin_page(400, qform=qform)


@bp.post("/ops/quota/prices")
@role_required(*OPS)
def set_price():
    pform = _forms()["pform"]
    if pform.validate_on_submit():
        try:
            fen = ledger.parse_yuan(pform.yuan.data, field="yuan")
            ledger.set_price(db(), accel_class=pform.accel_class.data, fen_per_device_hour=fen,
                             actor_id=current_user.id)
        except DomainError as err:
            _field_error(pform, err, "yuan")
        else:
            flash(gettext("Price saved."), "success")
            return redirect(url_for("quota.quota_admin"))
    return _admin_page(400, pform=pform)


# ---------------------------------------------------------------- operators: vouchers and monthly export
def _voucher_form() -> VoucherForm:
    form = VoucherForm(prefix="v")
    session = db()

    def orgs(kinds):  # type: ignore[no-untyped-def]
        return [(o.id, o.name) for o in session.exec(select(Organisation).where(col(Organisation.kind).in_(kinds))
                                                      .order_by(Organisation.name))]

    form.company_id.choices = orgs(list(HOLDER_KINDS))
    form.bureau_id.choices = orgs([OrgKind.DISTRICT])
    form.supplier_id.choices = orgs([OrgKind.CENTER])
    if not form.is_submitted():
        today = _today()
        form.valid_from.data = today
        form.valid_until.data = today.replace(year=today.year + 1) - timedelta(days=1) \
            if not (today.month == 2 and today.day == 29) else date(today.year + 1, 2, 28)
        if current_user.org_id is not None:
            form.supplier_id.data = current_user.org_id
    return form


def _vouchers_page(form: VoucherForm, status: int = 200):  # type: ignore[no-untyped-def]
    session = db()
    today = _today()
    last_month = (today.replace(day=1) - timedelta(days=1))
    return render_template("evaluator/quota/vouchers_admin.html", form=form, vouchers=vouchers.listing(session),
                           orgs={o.id: o for o in session.exec(select(Organisation))},
                           mismatches=ledger.reconcile(session), revoke_form=EmptyForm(), now=utcnow(),
                           is_valid=vouchers.is_valid, default_month=f"{last_month:%Y-%m}",
                           policy=vouchers.policy_bounds()), status


@bp.route("/ops/vouchers", methods=["GET", "POST"])
@role_required(*OPS)
def vouchers_admin():
    form = _voucher_form()
    if form.is_submitted():
        if form.validate():
            try:
                vouchers.issue(db(), company_id=form.company_id.data, bureau_id=form.bureau_id.data,
                               supplier_id=form.supplier_id.data, scheme=form.scheme.data, percent=form.percent.data,
                               cap_fen=ledger.parse_yuan(form.cap_yuan.data, field="cap_yuan"),
                               valid_from=_day_start(form.valid_from.data),
                               valid_until=_day_start(form.valid_until.data + timedelta(days=1)),
                               actor_id=current_user.id)
            except DomainError as err:
                _field_error(form, err, "company_id")
            else:
                flash(gettext("Voucher issued."), "success")
                return redirect(url_for("quota.vouchers_admin"))
        return _vouchers_page(form, 400)
    return _vouchers_page(form)


@bp.post("/ops/vouchers/<int:voucher_id>/revoke")
@role_required(*OPS)
def revoke_voucher(voucher_id: int):
    if EmptyForm().validate_on_submit():
        vouchers.revoke(db(), voucher_id, current_user.id)
        flash(gettext("Voucher revoked."), "success")
    return redirect(url_for("quota.vouchers_admin"))


@bp.get("/ops/statement.csv")
@role_required(*OPS)
def month_csv():
    raw = request.args.get("month", "")
    try:
        year, month = (int(p) for p in raw.split("-"))
        body = statements.month_csv(db(), year, month)
    except (ValueError, DomainError):
        message = gettext("Choose a month (YYYY-MM).")
        if request.accept_mimetypes.best == "application/json":
            return json_error(400, "invalid", message, "month")
        flash(message, "error")
        return redirect(url_for("quota.vouchers_admin"))
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="compute-statement-{year:04d}-{month:02d}.csv"'})


@api.errorhandler(DomainError)
def _api_domain_error(err: DomainError):  # type: ignore[no-untyped-def]
    return json_error(err.status, err.code, translate_error(err), err.field)
