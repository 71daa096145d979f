"""Phase pages: creating and editing a challenge's phases, the cut and the reveal."""
from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user

from challenges import access, phases
from challenges.forms import PhaseForm
from challenges.models import Challenge, Phase, Team
from challenges.views.blueprints import bp
from challenges.views.helpers import form_error, organised_challenge, to_local, to_utc
from hub.errors import DomainError
from hub.forms import EmptyForm
from hub.models import Role
from hub.web import button_post, db, role_required


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
    challenge = organised_challenge(slug)
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
            return redirect(url_for("challenges.detail", slug=slug))
    return (render_template("challenges/phase_form.html", form=form, challenge=challenge, phase=phase),
            400 if form.is_submitted() else 200)


def _cut(challenge: Challenge, phase: Phase) -> list[Team]:
    """Apply the phase's cut (apply_cut takes an actor id, so the organiser check is made here)."""
    access.require_organiser(current_user, challenge)
    return phases.apply_cut(db(), current_user.id, challenge, phase)


@bp.post("/challenges/<slug>/phases/<int:phase_id>/<any(cut, reveal):action>")
@role_required(Role.GOV)
def phase_action(slug: str, phase_id: int, action: str):
    EmptyForm()
    challenge = organised_challenge(slug)
    phase = phases.get(db(), phase_id, challenge)
    back = url_for("challenges.detail", slug=slug)
    if action == "cut":
        return button_post(lambda: _cut(challenge, phase), back,
                           lambda cut: gettext("The cut was applied: %(n)s teams were cut.", n=len(cut)))
    return button_post(lambda: phases.reveal(db(), current_user, challenge, phase), back,
                       gettext("The board was revealed."))
