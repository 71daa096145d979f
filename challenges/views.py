"""Challenge pages: thin handlers that read the request, call a service and render."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import (Blueprint, Response, abort, current_app, flash, redirect, render_template, request, send_file,
                   url_for)
from flask_babel import get_locale, gettext
from flask_login import current_user
from markupsafe import Markup
from sqlmodel import select

from challenges import (access, challenges, charts, datasets, judging, leaderboard, outcomes, phases,
                        registration, submissions, teams)
from challenges.forms import (AnswerForm, ChallengeForm, ConflictForm, DatasetForm, InviteForm, JudgeForm,
                              NoticeForm, ObjectionForm, PhaseForm, ReasonForm, RegistrationForm, ReviewForm,
                              TeamForm)
from challenges.models import Challenge, Phase, Team, TeamMember
from evaluator.metrics import REGISTRY
from hub import audit
from hub.cache import VersionedCache
from hub.errors import N_, DomainError, NotFound
from hub.forms import EmptyForm
from hub.models import Organisation, OrgKind, Role, User, utcnow
from hub.web import (cached_response, db, flash_error, id_arg, login_required, request_version, role_required,
                     translate_error)
from marketplace.models import Scenario

bp = Blueprint("challenges", __name__)
LOCAL_TZ = ZoneInfo("Asia/Shanghai")

from challenges.api import api  # noqa: E402,F401  (app.py imports both blueprints from here)


# ---------------------------------------------------------------- helpers
def viewer() -> User | None:
    return current_user if current_user.is_authenticated else None  # type: ignore[return-value]


def _challenge(slug: str) -> Challenge:
    challenge = challenges.get_by_slug(db(), slug)
    challenges.require_visible(viewer(), challenge)
    return challenge


def _organiser(slug: str) -> Challenge:
    challenge = _challenge(slug)
    access.require_organiser(viewer(), challenge)
    return challenge


def to_utc(value: datetime | None) -> datetime | None:
    """Form values are Beijing wall-clock times; the database keeps aware UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=LOCAL_TZ).astimezone(timezone.utc)


def to_local(value: datetime | None) -> datetime | None:
    return value.astimezone(LOCAL_TZ).replace(tzinfo=None) if value else None


@bp.app_template_filter("bj")
def beijing_time(value: datetime | None) -> str:
    """A UTC datetime shown in Beijing time."""
    return value.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M") if value else "—"


@bp.app_template_filter("score")
def score_filter(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def form_error(form: Any, err: DomainError) -> None:
    """Show a service's refusal next to its field, or as a message when no field matches."""
    target = getattr(form, err.field, None) if err.field else None
    if target is not None and hasattr(target, "errors"):
        target.errors = list(target.errors or []) + [translate_error(err)]
    else:
        flash_error(err)


def _back(endpoint: str = "challenges.detail", **kw: Any):  # type: ignore[no-untyped-def]
    return redirect(url_for(endpoint, **kw))


def _metric_label(key: str) -> str:
    from flask_babel import get_locale

    metric = REGISTRY.get(key)
    if metric is None:
        return key
    return metric.label_zh if str(get_locale()).startswith("zh") else metric.label_en


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"metric_label": _metric_label, "describe_outcome": lambda s, o: gettext(outcomes.describe_submission(s, o)),
            "challenge_status_label": lambda s: gettext(STATUS_LABELS.get(s, s))}


STATUS_LABELS = {"draft": N_("Draft"), "open": N_("Open"), "frozen": N_("Submissions closed"),
                 "final_review": N_("Final review"), "awarded": N_("Awarded"), "archived": N_("Archived")}
# Words the templates translate from the data: team, membership, registration and submission states.
DYNAMIC_WORDS = (N_("forming"), N_("applied"), N_("approved"), N_("rejected"), N_("cut"), N_("disqualified"),
                 N_("pending"), N_("invited"), N_("active"), N_("captain"), N_("member"), N_("queued"),
                 N_("running"), N_("scored"), N_("failed"), N_("cancelled"))


# ---------------------------------------------------------------- challenges
@bp.get("/challenges")
def index():
    rows = challenges.visible_challenges(db(), viewer())
    can_create = viewer() is not None and viewer().role == Role.GOV
    return render_template("challenges/index.html", rows=rows, can_create=can_create)


def _fill_challenge_form(form: ChallengeForm, scenarios: list[Scenario]) -> None:
    form.scenario_id.choices = [(s.id, s.title) for s in scenarios]
    form.metric.choices = [(k, _metric_label(k)) for k in REGISTRY]
    form.extra_metrics.choices = [(k, _metric_label(k)) for k in REGISTRY]


def _rubric_from_text(text: str) -> list[dict[str, Any]] | None:
    rows = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        rows.append({"key": parts[0], "label": parts[1] if len(parts) > 1 else parts[0],
                     "label_en": parts[2] if len(parts) > 2 else parts[0], "max": parts[3] if len(parts) > 3 else 10})
    return rows or None


def _rubric_text(rubric: list[dict[str, Any]]) -> str:
    return "\n".join(f"{c['key']} | {c['label']} | {c['label_en']} | {c['max']:g}" for c in rubric)


def _challenge_values(form: ChallengeForm) -> dict[str, Any]:
    return {
        "title": form.title.data, "title_en": form.title_en.data or "", "description": form.description.data or "",
        "rules": form.rules.data or "", "prize": form.prize.data or "", "funding_yuan": form.funding_yuan.data,
        "opens_at": to_utc(form.opens_at.data), "closes_at": to_utc(form.closes_at.data),
        "input_format": form.input_format.data or "", "output_format": form.output_format.data or "",
        "id_column": form.id_column.data, "prediction_column": form.prediction_column.data,
        "output_file": form.output_file.data, "metric": form.metric.data, "extra_metrics": form.extra_metrics.data,
        "time_limit_s": form.time_limit_s.data, "memory_mb": form.memory_mb.data,
        "cpus": float(form.cpus.data) if form.cpus.data is not None else None,
        "accelerators": form.accelerators.data, "accelerator_class": form.accelerator_class.data or "cpu",
        "leaderboard_mode": form.leaderboard_mode.data, "image_failures_count": bool(form.image_failures_count.data),
        "max_team_size": form.max_team_size.data, "per_applicant_cap": form.per_applicant_cap.data,
        "consortium_max_partners": form.consortium_max_partners.data,
        "objective_weight": float(form.objective_weight.data) if form.objective_weight.data is not None else None,
        "rubric": _rubric_from_text(form.rubric_text.data or ""),
    }


@bp.route("/challenges/new", methods=["GET", "POST"])
@role_required(Role.GOV)
def new():
    scenarios = list(db().exec(select(Scenario).where(Scenario.city_id == current_user.org_id)
                               .order_by(Scenario.created_at.desc())))
    form = ChallengeForm()
    _fill_challenge_form(form, scenarios)
    if form.validate_on_submit():
        values = _challenge_values(form)
        try:
            challenge = challenges.create_challenge(db(), current_user, scenario_id=form.scenario_id.data,
                                                    slug=form.slug.data, **values)
        except DomainError as err:
            db().rollback()
            form_error(form, err)
        else:
            flash(gettext("The challenge was created as a draft."), "success")
            return _back(slug=challenge.slug)
    return render_template("challenges/edit.html", form=form, challenge=None), (400 if form.is_submitted() else 200)


@bp.get("/challenges/<slug>")
def detail(slug: str):
    session = db()
    challenge = _challenge(slug)
    phase_rows = challenges.phases_of(session, challenge.id)
    me = viewer()
    my_row = teams.membership(session, challenge.id, me.id) if me else None
    my_team = session.get(Team, my_row.team_id) if my_row else None
    return render_template(
        "challenges/detail.html", challenge=challenge, phases=phase_rows,
        current=challenges.current_phase(session, challenge),
        datasets=datasets.of_challenge(session, challenge.id), my_row=my_row, my_team=my_team,
        is_organiser=access.is_organiser(me, challenge), is_judge=access.is_panel_judge(session, me, challenge),
        locked=challenges.locked_since(session, challenge), scenario=session.get(Scenario, challenge.scenario_id),
        city=session.get(Organisation, challenge.city_id), metrics=leaderboard.metrics_of(challenge),
        winner=session.get(Team, challenge.winner_team_id) if challenge.winner_team_id else None,
        transitions=[a for a, (src, _to) in challenges.TRANSITIONS.items() if challenge.status in src],
        can_submit_link="evaluator.submit" in current_app.view_functions, form=EmptyForm())


@bp.route("/challenges/<slug>/edit", methods=["GET", "POST"])
@role_required(Role.GOV)
def edit(slug: str):
    challenge = _organiser(slug)
    scenarios = [db().get(Scenario, challenge.scenario_id)]
    form = ChallengeForm(obj=challenge) if request.method == "GET" else ChallengeForm()
    _fill_challenge_form(form, [s for s in scenarios if s])
    if request.method == "GET":
        form.opens_at.data, form.closes_at.data = to_local(challenge.opens_at), to_local(challenge.closes_at)
        form.rubric_text.data = _rubric_text(challenge.rubric)
    form.slug.data = challenge.slug
    form.scenario_id.data = challenge.scenario_id
    if form.validate_on_submit():
        try:
            challenges.update_challenge(db(), current_user, challenge, **_challenge_values(form))
        except DomainError as err:
            db().rollback()
            form_error(form, err)
        else:
            flash(gettext("Saved."), "success")
            return _back(slug=challenge.slug)
    return (render_template("challenges/edit.html", form=form, challenge=challenge,
                            locked=challenges.locked_since(db(), challenge)),
            400 if form.is_submitted() else 200)


@bp.post("/challenges/<slug>/status")
@role_required(Role.GOV)
def change_status(slug: str):
    EmptyForm()
    challenge = _organiser(slug)
    try:
        challenges.change_status(db(), current_user, challenge, request.form.get("action", ""))
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("The challenge is now: %(status)s", status=gettext(STATUS_LABELS[challenge.status])),
              "success")
    return _back(slug=slug)


# ---------------------------------------------------------------- phases
def _phase_values(form: PhaseForm) -> dict[str, Any]:
    return {"name": form.name.data, "name_en": form.name_en.data or "", "starts_at": to_utc(form.starts_at.data),
            "ends_at": to_utc(form.ends_at.data), "split": form.split.data, "per_day_limit": form.per_day_limit.data,
            "total_limit": form.total_limit.data, "concurrent_limit": form.concurrent_limit.data,
            "scores_visible": form.scores_visible.data, "freeze_at": to_utc(form.freeze_at.data),
            "cut_bar": form.cut_bar.data or None}


@bp.route("/challenges/<slug>/phases/new", methods=["GET", "POST"], endpoint="phase_new")
@bp.route("/challenges/<slug>/phases/<int:phase_id>/edit", methods=["GET", "POST"], endpoint="phase_edit")
@role_required(Role.GOV)
def phase_form(slug: str, phase_id: int | None = None):
    challenge = _organiser(slug)
    phase = phases.get(db(), phase_id, challenge) if phase_id else None
    form = PhaseForm(obj=phase) if (phase and request.method == "GET") else PhaseForm()
    if phase and request.method == "GET":
        form.starts_at.data, form.ends_at.data = to_local(phase.starts_at), to_local(phase.ends_at)
        form.freeze_at.data = to_local(phase.freeze_at)
        form.cut_bar.data = "" if phase.cut_bar is None else f"{phase.cut_bar:g}"
    if form.validate_on_submit():
        try:
            if phase is None:
                phases.create_phase(db(), current_user, challenge, **_phase_values(form))
            else:
                phases.update_phase(db(), current_user, challenge, phase, **_phase_values(form))
        except DomainError as err:
            db().rollback()
            form_error(form, err)
        else:
            flash(gettext("Saved."), "success")
            return _back(slug=slug)
    return (render_template("challenges/phase_form.html", form=form, challenge=challenge, phase=phase),
            400 if form.is_submitted() else 200)


@bp.post("/challenges/<slug>/phases/<int:phase_id>/<any(cut, reveal):action>")
@role_required(Role.GOV)
def phase_action(slug: str, phase_id: int, action: str):
    EmptyForm()
    challenge = _organiser(slug)
    phase = phases.get(db(), phase_id, challenge)
    try:
        if action == "cut":
            access.require_organiser(current_user, challenge)
            cut = phases.apply_cut(db(), current_user.id, challenge, phase)
            flash(gettext("The cut was applied: %(n)s teams were cut.", n=len(cut)), "success")
        else:
            phases.reveal(db(), current_user, challenge, phase)
            flash(gettext("The board was revealed."), "success")
    except DomainError as err:
        db().rollback()
        flash_error(err)
    return _back(slug=slug)


# ---------------------------------------------------------------- datasets
@bp.route("/challenges/<slug>/datasets", methods=["GET", "POST"])
@role_required(Role.GOV)
def datasets_page(slug: str):
    challenge = _organiser(slug)
    form = DatasetForm()
    status = 200
    if form.validate_on_submit():
        files = request.files
        if not files.get("inputs") or not files.get("truth"):
            form.inputs.errors = [gettext("Choose the test inputs and the truth CSV files.")]
            status = 400
        else:
            def opt(name: str):  # type: ignore[no-untyped-def]
                f = files.get(name)
                return f.stream if f and f.filename else None
            try:
                datasets.upload(db(), current_user, challenge, form.split.data, inputs_csv=files["inputs"].stream,
                                truth_csv=files["truth"].stream, files_zip=opt("files"),
                                sample_inputs_csv=opt("sample_inputs"), sample_truth_csv=opt("sample_truth"),
                                data_dir=current_app.config["DATA_DIR"],
                                max_bytes=current_app.config["MAX_DATASET_BYTES"])
            except DomainError as err:
                db().rollback()
                form_error(form, err)
                status = 400
            else:
                flash(gettext("The data was stored and checksummed."), "success")
                return redirect(url_for("challenges.datasets_page", slug=slug))
    elif form.is_submitted():
        status = 400
    return render_template("challenges/datasets.html", form=form, challenge=challenge,
                           rows=datasets.of_challenge(db(), challenge.id),
                           locked=challenges.locked_since(db(), challenge)), status


@bp.get("/challenges/<slug>/samples/<split>.zip")
def sample(slug: str, split: str):
    challenge = _challenge(slug)
    path = datasets.sample_file(db(), challenge, split)
    return send_file(path, mimetype="application/zip", as_attachment=True,
                     download_name=f"{challenge.slug}-{split}-sample.zip")


# ---------------------------------------------------------------- leaderboards
def _board_phase(challenge: Challenge, now: datetime | None = None) -> Phase:
    phase_id = id_arg("phase")
    if phase_id:
        return phases.get(db(), phase_id, challenge)
    phase = challenges.current_phase(db(), challenge, now)
    if phase is None:
        raise NotFound("No such phase.")
    return phase


# The board's table and chart as HTML, per board view (visibility class, own team) and locale.
BOARD_HTML = VersionedCache("board-html", max_entries=256, max_bytes=32 * 1024 * 1024)


@bp.get("/challenges/<slug>/leaderboard")
def leaderboard_page(slug: str):
    return cached_response(lambda: _leaderboard_page(slug))


def _leaderboard_page(slug: str) -> tuple[str, datetime | None]:
    now = utcnow()
    challenge = _challenge(slug)
    phase_rows = challenges.phases_of(db(), challenge.id)
    phase = _board_phase(challenge, now)
    version = request_version()
    board = leaderboard.cached_build(db(), challenge, phase, viewer=viewer(), now=now, version=version)
    key = (board.view_key, str(get_locale()))
    parts = BOARD_HTML.get(key, version)
    if parts is None:
        table = Markup("" if board.hidden else render_template("challenges/_board_table.html", board=board))
        svg = Markup(charts.best_over_time_svg(leaderboard.score_history(db(), board),
                                               title=gettext("Best score over time"),
                                               empty_text=gettext("No scores to show yet.")))
        parts = (table, svg)
        BOARD_HTML.put(key, version, parts, size=len(table) + len(svg))
    html = render_template("challenges/leaderboard.html", challenge=challenge, board=board, phases=phase_rows,
                           board_table=parts[0], chart=parts[1])
    return html, leaderboard.clock_changes(phase_rows, now)


@bp.get("/challenges/<slug>/leaderboard.csv")
def leaderboard_csv(slug: str):
    challenge = _challenge(slug)
    phase = _board_phase(challenge)
    board = leaderboard.build(db(), phase.id, viewer=viewer())
    if board.hidden:
        abort(404)
    return Response("\ufeff" + leaderboard.to_csv(board), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename={challenge.slug}-phase{phase.position}.csv"})


@bp.get("/challenges/<slug>/leaderboard.svg")
def leaderboard_svg(slug: str):
    challenge = _challenge(slug)
    board = leaderboard.build(db(), _board_phase(challenge).id, viewer=viewer())
    svg = charts.best_over_time_svg(leaderboard.score_history(db(), board), title=gettext("Best score over time"),
                                    empty_text=gettext("No scores to show yet."))
    return Response(svg, mimetype="image/svg+xml")


# ---------------------------------------------------------------- teams
@bp.route("/challenges/<slug>/teams/new", methods=["GET", "POST"])
@role_required(Role.TEAM)
def team_new(slug: str):
    challenge = _challenge(slug)
    form = TeamForm()
    if form.validate_on_submit():
        try:
            team = teams.create_team(db(), current_user, challenge, form.name.data)
        except DomainError as err:
            db().rollback()
            form_error(form, err)
        else:
            flash(gettext("Your team was created. Invite members with the link on this page."), "success")
            return redirect(url_for("challenges.team", team_id=team.id))
    return (render_template("challenges/team_new.html", form=form, challenge=challenge),
            400 if form.is_submitted() else 200)


def _team_visible(team: Team, challenge: Challenge) -> None:
    me = viewer()
    if me is None:
        abort(404)
    in_team = db().exec(select(TeamMember.id).where(TeamMember.team_id == team.id,
                                                    TeamMember.user_id == me.id)).first() is not None
    if not (in_team or access.official_reader_of_team(db(), me, challenge, team.id)):
        abort(404)


@bp.get("/teams/<int:team_id>")
@login_required
def team(team_id: int):
    session = db()
    t = teams.get_team(session, team_id)
    challenge = challenges.get(session, t.challenge_id)
    _team_visible(t, challenge)
    reg = registration.for_team(session, t.id)
    return render_template("challenges/team.html", team=t, challenge=challenge, members=teams.members(session, t.id),
                           is_captain=teams.is_captain(t, current_user), reg=reg,
                           cut_notice=phases.cut_notice(session, current_user, t),
                           lead=session.get(Organisation, t.lead_org_id),
                           problems=registration.formal_check(session, reg) if reg and reg.status == "pending" else [],
                           invite_form=InviteForm(), form=EmptyForm(),
                           join_url=url_for("challenges.join", token=t.invite_token, _external=True))


@bp.post("/teams/<int:team_id>/<any(approve, decline, captain):action>/<int:user_id>")
@login_required
def team_member_action(team_id: int, action: str, user_id: int):
    EmptyForm()
    t = teams.get_team(db(), team_id)
    fn = {"approve": teams.approve_member, "decline": teams.decline_member, "captain": teams.make_captain}[action]
    try:
        fn(db(), current_user, t, user_id)
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("Saved."), "success")
    return redirect(url_for("challenges.team", team_id=team_id))


@bp.post("/teams/<int:team_id>/<any(invite, new_link, leave, accept, decline_invitation):action>")
@login_required
def team_action(team_id: int, action: str):
    t = teams.get_team(db(), team_id)
    challenge = challenges.get(db(), t.challenge_id)
    try:
        if action == "invite":
            form = InviteForm()
            teams.invite_by_email(db(), current_user, t, form.email.data or "")
            flash(gettext("The invitation was sent; it appears on the invitee's teams page."), "success")
        elif action == "new_link":
            EmptyForm()
            teams.new_invite_link(db(), current_user, t)
            flash(gettext("A new invitation link replaces the old one."), "success")
        elif action == "leave":
            EmptyForm()
            dissolved = teams.leave(db(), current_user, t)
            flash(gettext("The team was dissolved.") if dissolved else gettext("You left the team."), "success")
            return redirect(url_for("challenges.detail", slug=challenge.slug))
        elif action == "accept":
            EmptyForm()
            teams.accept_invitation(db(), current_user, t)
            flash(gettext("Welcome to the team."), "success")
        else:
            EmptyForm()
            teams.decline_invitation(db(), current_user, t)
            return redirect(url_for("challenges.my_teams"))
    except DomainError as err:
        db().rollback()
        flash_error(err)
        if action in ("accept", "decline_invitation"):
            return redirect(url_for("challenges.my_teams"))
    return redirect(url_for("challenges.team", team_id=team_id))


@bp.route("/teams/join/<token>", methods=["GET", "POST"])
@role_required(Role.TEAM)
def join(token: str):
    t = teams.by_invite_token(db(), token)
    challenge = challenges.get(db(), t.challenge_id)
    form = EmptyForm()
    if form.validate_on_submit():
        try:
            teams.request_join(db(), current_user, token)
        except DomainError as err:
            db().rollback()
            flash_error(err)
        else:
            flash(gettext("Your request was sent to the captain."), "success")
            return redirect(url_for("challenges.my_teams"))
    return render_template("challenges/join.html", team=t, challenge=challenge, form=form)


@bp.get("/my/teams")
@role_required(Role.TEAM)
def my_teams():
    return render_template("challenges/my_teams.html", rows=teams.teams_of_user(db(), current_user.id),
                           form=EmptyForm())


# ---------------------------------------------------------------- registration (揭榜) and formal check
@bp.route("/teams/<int:team_id>/registration", methods=["GET", "POST"])
@role_required(Role.TEAM)
def register(team_id: int):
    session = db()
    t = teams.get_team(session, team_id)
    challenge = challenges.get(session, t.challenge_id)
    _team_visible(t, challenge)
    reg = registration.for_team(session, t.id)
    form = RegistrationForm(obj=reg) if (reg and request.method == "GET") else RegistrationForm()
    orgs = list(session.exec(select(Organisation).where(
        Organisation.kind.in_([OrgKind.COMPANY, OrgKind.UNIVERSITY, OrgKind.LAB]),
        Organisation.id != t.lead_org_id).order_by(Organisation.name)))
    form.partner_org_ids.choices = [(o.id, o.name) for o in orgs]
    if form.validate_on_submit():
        try:
            registration.submit(session, current_user, t, tech_route=form.tech_route.data,
                                indicator_plan=form.indicator_plan.data, budget_yuan=form.budget_yuan.data,
                                partner_org_ids=form.partner_org_ids.data)
        except DomainError as err:
            session.rollback()
            form_error(form, err)
        else:
            flash(gettext("Your registration was filed; the city's formal check follows."), "success")
            return redirect(url_for("challenges.team", team_id=t.id))
    return (render_template("challenges/register.html", form=form, team=t, challenge=challenge),
            400 if form.is_submitted() else 200)


@bp.get("/challenges/<slug>/registrations")
@role_required(Role.GOV, Role.ADMIN)
def registrations(slug: str):
    session = db()
    challenge = _challenge(slug)
    if not (access.is_organiser(current_user, challenge) or access.is_admin(current_user)):
        abort(403)
    rows = [(r, t, o, registration.formal_check(session, r) if r.status == "pending" else [])
            for r, t, o in registration.for_challenge(session, challenge.id)]
    partners = {o.id: o.name for o in session.exec(select(Organisation))}
    return render_template("challenges/registrations.html", challenge=challenge, rows=rows, partners=partners,
                           form=ReviewForm())


@bp.post("/registrations/<int:reg_id>/review")
@role_required(Role.GOV)
def review_registration(reg_id: int):
    form = ReviewForm()
    reg = registration.get(db(), reg_id)
    challenge = challenges.get(db(), reg.challenge_id)
    try:
        registration.review(db(), current_user, reg, approve=form.decision.data == "approve",
                            reason=form.reason.data or "")
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("The decision was recorded."), "success")
    return redirect(url_for("challenges.registrations", slug=challenge.slug))


# ---------------------------------------------------------------- submissions
@bp.get("/challenges/<slug>/submissions/mine")
@login_required
def my_submissions(slug: str):
    session = db()
    challenge = _challenge(slug)
    t = teams.team_for_user(session, challenge.id, current_user.id)
    rows = submissions.history(session, challenge.id, t.id) if t else []
    phase_rows = {p.id: p for p in challenges.phases_of(session, challenge.id)}
    shown = {s.id: submissions.scores_shown(session, current_user, s, phase_rows[s.phase_id], challenge)
             for s in rows}
    usage = {}
    current = challenges.current_phase(session, challenge)
    if t and current:
        usage = submissions.usage(session, challenge, t.id, current)
    return render_template("challenges/my_submissions.html", challenge=challenge, team=t, rows=rows,
                           phases=phase_rows, shown=shown, usage=usage, current=current,
                           can_submit_link="evaluator.submit" in current_app.view_functions)


@bp.get("/submissions/<int:submission_id>")
@login_required
def submission(submission_id: int):
    session = db()
    sub, phase, challenge = submissions.get_for_viewer(session, submission_id, current_user)
    log_url = (url_for("evaluator_api.submission_log", submission_id=sub.id)
               if "evaluator_api.submission_log" in current_app.view_functions
               else f"/api/v1/submissions/{sub.id}/log")
    can_read_log = submissions.can_read_log(session, current_user, sub, phase, challenge)
    return render_template("challenges/submission.html", sub=sub, phase=phase, challenge=challenge,
                           team=session.get(Team, sub.team_id),
                           show_scores=submissions.scores_shown(session, current_user, sub, phase, challenge),
                           can_judge=(access.is_organiser(current_user, challenge)
                                      or access.is_panel_judge(session, current_user, challenge)),
                           can_read_log=can_read_log, reason=submissions.visible_reason(sub, can_read_log),
                           log_withheld_text=submissions.LOG_WITHHELD,
                           check_url=(url_for("evaluator.submit", slug=challenge.slug, kind="check")
                                      if "evaluator.submit" in current_app.view_functions
                                      and submissions.sample_dataset(session, phase) is not None else None),
                           metrics=leaderboard.metrics_of(challenge), log_url=log_url, form=ReasonForm())


@bp.post("/submissions/<int:submission_id>/disqualify")
@role_required(Role.GOV, Role.JUDGE)
def disqualify_submission(submission_id: int):
    form = ReasonForm()
    sub, _phase, _challenge = submissions.get_for_viewer(db(), submission_id, current_user)
    try:
        judging.disqualify_submission(db(), current_user, sub, form.reason.data or "")
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("The submission was disqualified."), "success")
    return redirect(url_for("challenges.submission", submission_id=submission_id))


# ---------------------------------------------------------------- judging
@bp.get("/judging")
@role_required(Role.JUDGE)
def judge_home():
    return render_template("challenges/judge_home.html", rows=judging.challenges_of_judge(db(), current_user.id))


@bp.route("/challenges/<slug>/judges", methods=["GET", "POST"])
@role_required(Role.GOV)
def judges(slug: str):
    session = db()
    challenge = _organiser(slug)
    form = JudgeForm()
    candidates = list(session.exec(select(User).where(User.role == Role.JUDGE, User.active == True)  # noqa: E712
                                   .order_by(User.display_name)))
    form.judge_id.choices = [(u.id, f"{u.display_name} ({u.email})") for u in candidates]
    if form.validate_on_submit():
        try:
            if request.form.get("remove"):
                judging.remove_judge(session, current_user, challenge, form.judge_id.data)
            else:
                judging.assign_judge(session, current_user, challenge, form.judge_id.data)
        except DomainError as err:
            session.rollback()
            flash_error(err)
        else:
            flash(gettext("Saved."), "success")
        return redirect(url_for("challenges.judges", slug=slug))
    return render_template("challenges/judges.html", challenge=challenge, form=form,
                           panel=judging.panel(session, challenge.id))


@bp.get("/challenges/<slug>/review")
@role_required(Role.GOV, Role.JUDGE, Role.ADMIN)
def review(slug: str):
    session = db()
    challenge = _challenge(slug)
    if not access.is_privileged(session, current_user, challenge):
        abort(403)
    final = challenges.final_phase(session, challenge)
    board = leaderboard.build(session, final.id, viewer=current_user) if final else None
    team_rows = list(session.exec(select(Team).where(Team.challenge_id == challenge.id).order_by(Team.name)))
    is_judge = access.is_panel_judge(session, current_user, challenge)
    conflicts = access.conflicted_team_ids(session, challenge.id, current_user.id) if is_judge else set()
    mine: dict[tuple[int, str], Any] = {}
    if is_judge:
        mine = {(r.team_id, r.criterion): r for r in judging.rubric_of(session, challenge.id, current_user.id)}
    conflict_form = ConflictForm()
    conflict_form.team_id.choices = [(t.id, t.name) for t in team_rows if t.id not in conflicts]
    return render_template("challenges/review.html", challenge=challenge, board=board, teams=team_rows,
                           ranking=judging.final_ranking(session, challenge), is_judge=is_judge,
                           is_organiser=access.is_organiser(current_user, challenge), conflicts=conflicts,
                           mine=mine, panel=judging.panel(session, challenge.id), conflict_form=conflict_form,
                           form=EmptyForm(), reason_form=ReasonForm(), notice_form=NoticeForm(),
                           published=challenge.notice_starts_at is not None)


@bp.post("/challenges/<slug>/teams/<int:team_id>/rubric")
@role_required(Role.JUDGE)
def rubric(slug: str, team_id: int):
    EmptyForm()
    challenge = _challenge(slug)
    scores = {c["key"]: (request.form.get(f"score_{c['key']}", ""), request.form.get(f"comment_{c['key']}", ""))
              for c in challenge.rubric}
    try:
        judging.score_team(db(), current_user, challenge, team_id, scores)
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("Your rubric scores were saved."), "success")
    return redirect(url_for("challenges.review", slug=slug) + f"#team-{team_id}")


@bp.post("/challenges/<slug>/conflicts")
@role_required(Role.JUDGE)
def conflict(slug: str):
    challenge = _challenge(slug)
    form = ConflictForm()
    try:
        judging.declare_conflict(db(), current_user, challenge, int(request.form.get("team_id", 0) or 0),
                                 form.note.data or "")
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("Your conflict of interest was recorded; you are kept off this team."), "success")
    return redirect(url_for("challenges.review", slug=slug))


@bp.post("/challenges/<slug>/teams/<int:team_id>/disqualify")
@role_required(Role.GOV, Role.JUDGE)
def disqualify_team(slug: str, team_id: int):
    form = ReasonForm()
    challenge = _challenge(slug)
    try:
        judging.disqualify_team(db(), current_user, challenge, team_id, form.reason.data or "")
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("The team was disqualified."), "success")
    return redirect(url_for("challenges.review", slug=slug))


# ---------------------------------------------------------------- 公示 and the award
@bp.get("/challenges/<slug>/notice")
def notice(slug: str):
    session = db()
    challenge = _challenge(slug)
    published = challenge.notice_starts_at is not None
    if not published and not access.is_privileged(session, viewer(), challenge):
        abort(404)
    return render_template("challenges/notice.html", challenge=challenge,
                           ranking=judging.final_ranking(session, challenge),
                           objections=judging.objections(session, challenge.id),
                           notice_open=judging.notice_open(challenge),
                           is_organiser=access.is_organiser(viewer(), challenge),
                           winner=session.get(Team, challenge.winner_team_id) if challenge.winner_team_id else None,
                           objection_form=ObjectionForm(), answer_form=AnswerForm(), form=EmptyForm())


@bp.post("/challenges/<slug>/notice/publish")
@role_required(Role.GOV)
def publish_notice(slug: str):
    form = NoticeForm()
    challenge = _organiser(slug)
    try:
        judging.publish_notice(db(), current_user, challenge, form.days.data if form.days.data is not None else 0)
    except DomainError as err:
        db().rollback()
        flash_error(err)
        return redirect(url_for("challenges.review", slug=slug))
    flash(gettext("The proposed ranking is published for its notice period."), "success")
    return redirect(url_for("challenges.notice", slug=slug))


@bp.post("/challenges/<slug>/objections")
@login_required
def objection(slug: str):
    form = ObjectionForm()
    challenge = _challenge(slug)
    try:
        judging.lodge_objection(db(), current_user, challenge, form.text.data or "")
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("Your objection was lodged; the city will answer it."), "success")
    return redirect(url_for("challenges.notice", slug=slug))


@bp.post("/challenges/<slug>/objections/<int:objection_id>/answer")
@role_required(Role.GOV)
def answer(slug: str, objection_id: int):
    form = AnswerForm()
    challenge = _organiser(slug)
    try:
        judging.answer_objection(db(), current_user, challenge, objection_id, form.answer.data or "")
    except DomainError as err:
        db().rollback()
        flash_error(err)
    else:
        flash(gettext("Saved."), "success")
    return redirect(url_for("challenges.notice", slug=slug))


@bp.post("/challenges/<slug>/announce")
@role_required(Role.GOV)
def announce(slug: str):
    EmptyForm()
    challenge = _organiser(slug)
    try:
        judging.announce(db(), current_user, challenge)
    except DomainError as err:
        db().rollback()
        flash_error(err)
        return redirect(url_for("challenges.notice", slug=slug))
    flash(gettext("The winner is announced (挂帅)."), "success")
    return redirect(url_for("challenges.detail", slug=slug))


# ---------------------------------------------------------------- audit log
@bp.get("/audit", endpoint="audit")
@role_required(Role.GOV, Role.ADMIN)
def audit_log():
    org_id = None if current_user.role == Role.ADMIN else current_user.org_id
    if org_id is None and current_user.role != Role.ADMIN:
        abort(403)  # staff with no active membership of a city: no city's log (None would mean every line)
    lines = audit.lines_for(db(), org_id=org_id, limit=300)
    actors = {u.id: u for u in db().exec(select(User).where(User.id.in_({ln.actor_id for ln in lines
                                                                          if ln.actor_id})))}
    return render_template("challenges/audit.html", lines=lines, actors=actors)

