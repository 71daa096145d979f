"""Scenario opportunity list pages and API: read the request, call a service, render or return JSON."""
from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import get_locale, gettext
from flask_login import current_user
from flask_wtf import FlaskForm

from hub.errors import DomainError
from hub.forms import EmptyForm
from hub.models import Organisation, User
from hub.web import Page, cached_response, db, login_required, page_arg, role_required
from marketplace import applications as apps
from marketplace import scenarios
from marketplace.attachments import ALLOWED_LABEL, MAX_FILES, AttachmentStore, Upload
from marketplace.forms import (
    ApplyForm,
    FilterForm,
    ReviewForm,
    ScenarioForm,
    StatusForm,
    industry_choices,
    status_choices,
)
from marketplace.models import (
    APPLICATION_STATUS_LABELS,
    INDUSTRY_LABELS,
    SCENARIO_STATUS_LABELS,
    SYSTEM_NOTES,
    Application,
    Scenario,
)

bp = Blueprint("marketplace", __name__)
api = Blueprint("marketplace_api", __name__, url_prefix="/api/v1")


def _flash_refusal(err: DomainError) -> None:
    """A button the rules refused: undo, and show why on the page it returns to (403/404 stay errors)."""
    db().rollback()
    if err.status in (403, 404):
        raise err
    flash(message(err), "error")


def _flash_form_errors(form) -> None:  # type: ignore[no-untyped-def]
    """A button form that failed validation: its errors go to the flash area of the page it returns to."""
    for errors in form.errors.values():
        for text in errors:
            flash(text, "error")


# ---------------------------------------------------------------- helpers
def viewer() -> User | None:
    return current_user if current_user.is_authenticated else None  # type: ignore[return-value]


def store() -> AttachmentStore:
    return AttachmentStore(current_app.config["DATA_DIR"], current_app.config["MAX_ATTACHMENT_BYTES"])


def city_map() -> dict[int, Organisation]:
    return {c.id: c for c in scenarios.cities(db())}


def message(err: DomainError) -> str:
    """The refusal in the user's language, with status keys shown as their labels."""
    labels = {**SCENARIO_STATUS_LABELS, **APPLICATION_STATUS_LABELS}
    params = {k: gettext(labels[v]) if isinstance(v, str) and v in labels else v for k, v in err.params.items()}
    return gettext(err.message, **params) if params else gettext(err.message)


def form_error(form: FlaskForm, err: DomainError) -> None:
    """Show a service's refusal next to its field, or at the top of the page."""
    field = getattr(form, err.field, None) if err.field else None
    if field is not None and hasattr(field, "errors"):
        field.errors = list(field.errors or []) + [message(err)]
    else:
        flash(message(err), "error")


@bp.app_context_processor
def _labels() -> dict[str, Any]:
    return {
        "industry_label": lambda key: gettext(INDUSTRY_LABELS[key]) if key in INDUSTRY_LABELS else key,
        "scenario_status_label": lambda key: gettext(SCENARIO_STATUS_LABELS.get(key, key)),
        "application_status_label": lambda key: gettext(APPLICATION_STATUS_LABELS.get(key, key)),
        "history_note": lambda note: gettext(note) if note in SYSTEM_NOTES else note,
    }


def _filter_form() -> FilterForm:
    form = FilterForm(request.args)
    form.city.choices = [("", gettext("All cities"))] + [(c.code, c.name if _is_zh() else (c.name_en or c.name))
                                                          for c in scenarios.cities(db())]
    form.industry.choices = industry_choices(gettext("All industries"))
    form.status.choices = status_choices(gettext("Any status"))
    return form


def _is_zh() -> bool:

    return str(get_locale()).startswith("zh")


def _browse(form: FilterForm, city: str | None = None) -> tuple[Page, int]:
    """Run the search from the filter form; a bad filter shows on the form and lists nothing."""
    per_page = current_app.config["PAGE_SIZE"]
    status = 200
    items: list[Scenario] = []
    total = 0
    if form.validate():
        try:
            items, total = scenarios.search_scenarios(
                db(), viewer(), city=city or form.city.data or None, industry=form.industry.data or None,
                status=form.status.data or None, q=form.q.data, sort=form.sort.data or None, page=page_arg(),
                per_page=per_page)
        except DomainError as err:
            form_error(form, err)
            status = 400
    else:
        status = 400
    return Page(items, total, page_arg(), per_page), status


# ---------------------------------------------------------------- start page (rendered for app.home)
def home_page() -> str:
    return render_template("home.html", cities=scenarios.cities(db()), latest=scenarios.latest_published(db(), 6),
                           counts=scenarios.counts_by_city(db()), city_by_id=city_map())


# ---------------------------------------------------------------- browse
# The cache scopes (hub.cache) the scenario lists read: the scenarios and the cities they belong to.
BROWSE_SCOPES = ("scenario", "organisation")


@bp.get("/scenarios")
def index():
    return cached_response(_index, depends=BROWSE_SCOPES)


def _index() -> tuple[Any, None]:
    form = _filter_form()
    page, status = _browse(form)
    return (render_template("marketplace/index.html", form=form, page=page, city_by_id=city_map(),
                            can_create=bool(scenarios.creatable_cities(db(), viewer()))), status), None


@bp.get("/cities/<code>")
def city(code: str):
    org = scenarios.city_by_code(db(), code)
    form = _filter_form()
    page, status = _browse(form, city=org.code)
    return render_template("marketplace/city.html", city=org, form=form, page=page, city_by_id=city_map(),
                           can_create=org.id in {c.id for c in scenarios.creatable_cities(db(), viewer())}), status


@bp.get("/scenarios/<int:scenario_id>")
def detail(scenario_id: int):
    scenario = scenarios.get_visible(db(), viewer(), scenario_id)
    user = viewer()
    manage = scenarios.can_manage(user, scenario)
    own_application = None
    apply_refusal = None
    if user is not None and user.org_id is not None:
        own_application = apps.active_application(db(), user.org_id, scenario.id) if user.role == "team" else None
    try:
        apps.check_can_apply(db(), user, scenario)
    except DomainError as err:
        apply_refusal = message(err)
    transitions = scenarios.allowed_transitions(scenario) if manage else ()
    return render_template("marketplace/detail.html", scenario=scenario,
                           city=db().get(Organisation, scenario.city_id), history=scenarios.history(db(), scenario.id),
                           manage=manage, transitions=transitions, status_form=StatusForm(),
                           own_application=own_application, apply_refusal=apply_refusal,
                           application_count=len(apps.applications_to(db(), user, scenario.id)) if manage else 0)


# ---------------------------------------------------------------- create and edit
def _scenario_form(obj: Scenario | None = None) -> ScenarioForm:
    form = ScenarioForm(obj=obj)
    cities = scenarios.creatable_cities(db(), viewer())
    form.city.choices = [(c.code, c.name) for c in cities]
    if obj is not None:
        form.city.choices = [(c.code, c.name) for c in scenarios.cities(db()) if c.id == obj.city_id]
        form.city.data = form.city.choices[0][0] if form.city.choices else ""
    elif len(cities) == 1 and not form.city.data:
        form.city.data = cities[0].code
    form.industry.choices = industry_choices(gettext("Choose an industry"))
    return form


@bp.route("/scenarios/new", methods=["GET", "POST"])
@role_required("gov", "admin")
def create():
    if not scenarios.creatable_cities(db(), viewer()):
        abort(403)
    form = _scenario_form()
    if form.validate_on_submit():
        try:
            scenario = scenarios.create_scenario(db(), current_user, form.city.data, form.to_input())
        except DomainError as err:
            db().rollback()
            form_error(form, err)
        else:
            flash(gettext("The scenario was saved as a draft. Publish it when it is ready."), "success")
            return redirect(url_for("marketplace.detail", scenario_id=scenario.id))
    return render_template("marketplace/form.html", form=form, scenario=None), (400 if form.is_submitted() else 200)


@bp.route("/scenarios/<int:scenario_id>/edit", methods=["GET", "POST"])
@role_required("gov", "admin")
def edit(scenario_id: int):
    scenario = scenarios.get_managed(db(), current_user, scenario_id)
    form = _scenario_form(scenario)
    if form.validate_on_submit():
        try:
            scenarios.update_scenario(db(), current_user, scenario.id, form.to_input())
        except DomainError as err:
            db().rollback()
            form_error(form, err)
        else:
            flash(gettext("The changes were saved."), "success")
            return redirect(url_for("marketplace.detail", scenario_id=scenario.id))
    return render_template("marketplace/form.html", form=form, scenario=scenario), (400 if form.is_submitted() else 200)


@bp.post("/scenarios/<int:scenario_id>/status")
@role_required("gov", "admin")
def set_status(scenario_id: int):
    form = StatusForm()
    if not form.validate():
        _flash_form_errors(form)
        return redirect(url_for("marketplace.detail", scenario_id=scenario_id))
    try:
        scenario = scenarios.change_status(db(), current_user, scenario_id, form.to.data, form.note.data or "")
    except DomainError as err:
        _flash_refusal(err)
    else:
        flash(gettext("The scenario is now: %(status)s.",
                      status=gettext(SCENARIO_STATUS_LABELS[scenario.status])), "success")
    return redirect(url_for("marketplace.detail", scenario_id=scenario_id))


# ---------------------------------------------------------------- applications
@bp.route("/scenarios/<int:scenario_id>/apply", methods=["GET", "POST"])
@role_required("team")
def apply(scenario_id: int):
    scenario = scenarios.get_visible(db(), current_user, scenario_id)
    if request.method == "POST":
        # The whole request may carry MAX_FILES files of the per-file cap, plus the text.
        request.max_content_length = current_app.config["MAX_ATTACHMENT_BYTES"] * MAX_FILES + 1024 * 1024
    form = ApplyForm()
    refusal = None
    try:
        apps.check_can_apply(db(), current_user, scenario)
    except DomainError as err:
        refusal = message(err)
    if refusal is None and form.validate_on_submit():
        uploads = [Upload(f.filename or "", f.stream) for f in request.files.getlist(form.attachments.name)
                   if f and f.filename]
        data = apps.ApplicationInput(proposal=form.proposal.data, tech_route=form.tech_route.data,
                                     indicator_plan=form.indicator_plan.data, budget_yuan=form.budget_yuan.data)
        try:
            application = apps.apply(db(), current_user, scenario.id, data, uploads, store())
        except DomainError as err:
            db().rollback()
            form_error(form, err)
        else:
            flash(gettext("Your application was submitted. The city will review it."), "success")
            return redirect(url_for("marketplace.application", application_id=application.id))
    elif refusal is not None and form.is_submitted():
        flash(refusal, "error")
    status = 400 if form.is_submitted() else 200
    return render_template("marketplace/apply.html", form=form, scenario=scenario, refusal=refusal,
                           city=db().get(Organisation, scenario.city_id), allowed=ALLOWED_LABEL, max_files=MAX_FILES,
                           max_mb=current_app.config["MAX_ATTACHMENT_BYTES"] // (1024 * 1024) or 1), status


def _application_rows(items: list[Application]) -> dict[str, Any]:
    scenario_ids = {a.scenario_id for a in items}
    found = {s.id: s for s in (db().get(Scenario, i) for i in scenario_ids) if s is not None}
    orgs = apps.organisations(db(), {a.applicant_org_id for a in items} | {s.city_id for s in found.values()})
    return {"scenario_by_id": found, "org_by_id": orgs}


@bp.get("/applications")
@role_required("team", "gov")
def my_applications():
    items = apps.applications_for(db(), current_user)
    return render_template("marketplace/my_applications.html", items=items, **_application_rows(items))


@bp.get("/applications/<int:application_id>")
@login_required
def application(application_id: int):
    item = apps.get_visible_application(db(), current_user, application_id)
    scenario = db().get(Scenario, item.scenario_id)
    manage = scenario is not None and scenarios.can_manage(current_user, scenario)
    return render_template("marketplace/application.html", item=item, scenario=scenario, manage=manage,
                           attachments=apps.attachments_of(db(), [item.id])[item.id],
                           related=apps.is_related_party(db(), item.applicant_org_id, scenario.city_id) if manage else False,
                           review_form=ReviewForm(), withdraw_form=EmptyForm(), **_application_rows([item]))


@bp.get("/scenarios/<int:scenario_id>/applications")
@role_required("gov", "admin")
def review_list(scenario_id: int):
    scenario = scenarios.get_managed(db(), current_user, scenario_id)
    items = apps.applications_to(db(), current_user, scenario.id)
    related = {a.id: apps.is_related_party(db(), a.applicant_org_id, scenario.city_id) for a in items}
    return render_template("marketplace/review.html", scenario=scenario, items=items, related=related,
                           attachments=apps.attachments_of(db(), [a.id for a in items]),
                           review_form=ReviewForm(), **_application_rows(items))


@bp.post("/applications/<int:application_id>/review")
@role_required("gov", "admin")
def review(application_id: int):
    form = ReviewForm()
    back = request.form.get("back") == "list"
    item = db().get(Application, application_id)
    if item is None:
        abort(404)
    if not form.validate():
        _flash_form_errors(form)
    else:
        try:
            item = apps.review(db(), current_user, application_id, form.decision.data, form.reason.data or "")
        except DomainError as err:
            _flash_refusal(err)
        else:
            flash(gettext("The application is now: %(status)s.",
                          status=gettext(APPLICATION_STATUS_LABELS[item.status])), "success")
    if back:
        return redirect(url_for("marketplace.review_list", scenario_id=item.scenario_id))
    return redirect(url_for("marketplace.application", application_id=application_id))


@bp.post("/applications/<int:application_id>/withdraw")
@role_required("team")
def withdraw(application_id: int):
    EmptyForm()
    try:
        apps.withdraw(db(), current_user, application_id)
    except DomainError as err:
        _flash_refusal(err)
    else:
        flash(gettext("The application was withdrawn."), "success")
    return redirect(url_for("marketplace.application", application_id=application_id))


@bp.get("/attachments/<int:attachment_id>")
@login_required
def download(attachment_id: int):
    att, path = apps.attachment_for_download(db(), current_user, attachment_id, store())
    response = send_file(path, mimetype=att.content_type, as_attachment=True, download_name=att.filename,
                         max_age=0, etag=att.sha256)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# ---------------------------------------------------------------- JSON API
def scenario_json(s: Scenario, city: Organisation | None, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.id, "title": s.title, "title_en": s.title_en,
        "city": {"code": city.code, "name": city.name, "name_en": city.name_en} if city else None,
        "industry": s.industry, "industry_label": gettext(INDUSTRY_LABELS.get(s.industry, s.industry)),
        "status": s.status, "status_label": gettext(SCENARIO_STATUS_LABELS.get(s.status, s.status)),
        "budget_yuan": s.budget_yuan, "reward": s.reward, "deadline": s.deadline.isoformat(),
        "published_at": s.published_at.isoformat() if s.published_at else None,
        "url": url_for("marketplace.detail", scenario_id=s.id, _external=False),
    }
    if full:
        out.update({
            "description": s.description, "expected_outcome": s.expected_outcome, "indicators": s.indicators,
            "data_available": s.data_available, "data_terms": s.data_terms, "contact_name": s.contact_name,
            "contact_info": s.contact_info, "created_at": s.created_at.isoformat(),
            "updated_at": s.updated_at.isoformat(),
            "history": [{"at": e.at.isoformat(), "from": e.from_status, "to": e.to_status, "note": e.note}
                        for e in scenarios.history(db(), s.id)],
        })
    return out


@api.get("/scenarios")
def api_scenarios():
    # The list depends on the viewer only through what they may see (drafts of their own city, or all).
    return cached_response(_api_scenarios, vary=scenarios.visibility_class(viewer()), depends=BROWSE_SCOPES)


def _api_scenarios() -> tuple[Any, None]:
    args = request.args
    per_page = current_app.config["PAGE_SIZE"]
    items, total = scenarios.search_scenarios(db(), viewer(), city=args.get("city") or None,
                                              industry=args.get("industry") or None,
                                              status=args.get("status") or None, q=args.get("q"),
                                              sort=args.get("sort") or None, page=page_arg(), per_page=per_page)
    cities = city_map()
    page = Page(items, total, page_arg(), per_page)
    return {"items": [scenario_json(s, cities.get(s.city_id)) for s in items], "pagination": page.as_dict()}, None


@api.get("/scenarios/<int:scenario_id>")
def api_scenario(scenario_id: int):
    scenario = scenarios.get_visible(db(), viewer(), scenario_id)
    return scenario_json(scenario, db().get(Organisation, scenario.city_id), full=True)


@api.get("/cities")
def api_cities():
    return {"items": [{"code": c.code, "name": c.name, "name_en": c.name_en, "themes": c.themes}
                      for c in scenarios.cities(db())]}

