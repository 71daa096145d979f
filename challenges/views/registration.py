"""Registration pages (揭榜): a team's registration form, the organiser's list and formal-check decisions."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlmodel import select

from challenges import access, challenges, registration
from challenges.forms import RegistrationForm, ReviewForm
from challenges.views.blueprints import bp
from challenges.views.helpers import form_error, visible_challenge, visible_team
from hub.errors import DomainError
from hub.models import Organisation, OrgKind, Role
from hub.web import button_post, db, role_required


@bp.route("/teams/<int:team_id>/registration", methods=["GET", "POST"])
@role_required(Role.TEAM)
def register(team_id: int):
    session = db()
    t, challenge = visible_team(team_id)
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
    challenge = visible_challenge(slug)
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
    return button_post(lambda: registration.review(db(), current_user, reg, approve=form.decision.data == "approve",
                                                   reason=form.reason.data or ""),
                       url_for("challenges.registrations", slug=challenge.slug), gettext("The decision was recorded."))

