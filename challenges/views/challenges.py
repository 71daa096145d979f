"""Challenge pages: the list, a challenge's page, creating and editing one, and its status buttons."""
from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlmodel import select

from challenges import access, challenges, datasets, leaderboard, teams
from challenges.forms import ChallengeForm
from challenges.models import Team
from challenges.scoring.metrics import REGISTRY
from challenges.views.blueprints import bp
from challenges.views.helpers import (STATUS_LABELS, form_error, metric_label, organised_challenge, to_local, to_utc,
                                      viewer, visible_challenge)
from hub.errors import DomainError
from hub.forms import EmptyForm
from hub.models import Organisation, Role
from hub.web import button_post, db, role_required
from marketplace.models import Scenario


@bp.get("/challenges")
def index():
    rows = challenges.visible_challenges(db(), viewer())
    can_create = viewer() is not None and viewer().role == Role.GOV
    return render_template("challenges/index.html", rows=rows, can_create=can_create)


def _fill_challenge_form(form: ChallengeForm, scenarios: list[Scenario]) -> None:
    form.scenario_id.choices = [(s.id, s.title) for s in scenarios]
    form.metric.choices = [(k, metric_label(k)) for k in REGISTRY]
    form.extra_metrics.choices = [(k, metric_label(k)) for k in REGISTRY]


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
            return redirect(url_for("challenges.detail", slug=challenge.slug))
    return render_template("challenges/edit.html", form=form, challenge=None), (400 if form.is_submitted() else 200)


@bp.get("/challenges/<slug>")
def detail(slug: str):
    session = db()
    challenge = visible_challenge(slug)
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
    challenge = organised_challenge(slug)
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
            return redirect(url_for("challenges.detail", slug=challenge.slug))
    return (render_template("challenges/edit.html", form=form, challenge=challenge,
                            locked=challenges.locked_since(db(), challenge)),
            400 if form.is_submitted() else 200)


@bp.post("/challenges/<slug>/status")
@role_required(Role.GOV)
def change_status(slug: str):
    EmptyForm()
    challenge = organised_challenge(slug)
    # The message names the status the change led to, so it is made after the call.
    return button_post(lambda: challenges.change_status(db(), current_user, challenge, request.form.get("action", "")),
                       url_for("challenges.detail", slug=slug),
                       lambda _: gettext("The challenge is now: %(status)s",
                                         status=gettext(STATUS_LABELS[challenge.status])))
