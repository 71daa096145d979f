"""Team pages: creating a team, its page and buttons (members, invitations, leaving), joining by link."""
from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_login import current_user

from challenges import challenges, phases, registration, teams
from challenges.forms import InviteForm, TeamForm
from challenges.views.blueprints import bp
from challenges.views.helpers import form_error, visible_challenge, visible_team
from hub.errors import DomainError
from hub.forms import EmptyForm
from hub.models import Organisation, Role
from hub.web import button_post, db, flash_error, login_required, role_required


@bp.route("/challenges/<slug>/teams/new", methods=["GET", "POST"])
@role_required(Role.TEAM)
def team_new(slug: str):
    challenge = visible_challenge(slug)
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


@bp.get("/teams/<int:team_id>")
@login_required
def team(team_id: int):
    session = db()
    t, challenge = visible_team(team_id)
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
    return button_post(lambda: fn(db(), current_user, t, user_id), url_for("challenges.team", team_id=team_id),
                       gettext("Saved."))


@bp.post("/teams/<int:team_id>/<any(invite, new_link, leave, accept, decline_invitation):action>")
@login_required
def team_action(team_id: int, action: str):
    t = teams.get_team(db(), team_id)
    challenge = challenges.get(db(), t.challenge_id)
    team_url, my_teams_url = url_for("challenges.team", team_id=team_id), url_for("challenges.my_teams")
    if action == "invite":
        form = InviteForm()
        return button_post(lambda: teams.invite_by_email(db(), current_user, t, form.email.data or ""), team_url,
                           gettext("The invitation was sent; it appears on the invitee's teams page."))
    EmptyForm()
    if action == "new_link":
        return button_post(lambda: teams.new_invite_link(db(), current_user, t), team_url,
                           gettext("A new invitation link replaces the old one."))
    if action == "leave":
        return button_post(lambda: teams.leave(db(), current_user, t),
                           url_for("challenges.detail", slug=challenge.slug),
                           lambda dissolved: (gettext("The team was dissolved.") if dissolved
                                              else gettext("You left the team.")), error_to=team_url)
    # An invitation's answer is given from the teams page, so a refusal goes back there.
    if action == "accept":
        return button_post(lambda: teams.accept_invitation(db(), current_user, t), team_url,
                           gettext("Welcome to the team."), error_to=my_teams_url)
    return button_post(lambda: teams.decline_invitation(db(), current_user, t), my_teams_url, None)


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
