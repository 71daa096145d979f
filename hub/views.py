"""Log in, register, log out, switch language; the account page: password change and API tokens;
organisation membership (the person's requests and invitations, the organisation administrator's page)."""
from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user
from sqlmodel import select

from hub import membership, passwords, tokens, users
from hub.errors import DomainError, N_
from hub.forms import (EmptyForm, InviteForm, JoinForm, LoginForm, PasswordForm, ReasonForm, RegisterForm,
                       TokenForm)
from hub.models import Organisation, Role, utcnow
from hub.web import LoginGate, by_token, db, flash_error, limiter, login_required, safe_next, translate_error

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Failed passwords are throttled per address and per account (the rule: hub.throttle)."""
    form = LoginForm()
    if form.validate_on_submit():
        gate = LoginGate(form.email.data)
        if gate.refused():
            abort(429)  # before the password is checked: a refused guess tells nothing
        user = users.authenticate(db(), form.email.data, form.password.data)
        if user is not None:
            session.clear()  # a fresh session on login (no fixation)
            login_user(user)
            return gate.succeeded(redirect(safe_next(url_for("home"))))
        gate.failed()
        form.password.errors = [gettext("Wrong e-mail address or password.")]
    return render_template("hub/login.html", form=form), (401 if form.is_submitted() else 200)


@bp.post("/logout")
@login_required
def logout():
    EmptyForm()
    if not by_token():
        # Every session of the account ends, a cookie copied before included (see User.get_id).
        users.end_sessions(db(), current_user)
    logout_user()
    session.clear()
    return redirect(url_for("home"))


def _org_choices() -> list[tuple[str, str]]:
    """Organisations a person may ask to join; choosing one grants nothing until its administrator approves."""
    return [(str(o.id), o.name) for o in membership.joinable_organisations(db())]


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def register():
    form = RegisterForm()
    form.org.choices = [("", gettext("None for now: I will wait for an invitation"))] + _org_choices()
    if form.validate_on_submit():
        try:
            # No organisation rights at registration: at most a pending request, decided by the organisation.
            user = users.create_user(db(), form.email.data, form.password.data, Role.TEAM, None,
                                     form.display_name.data)
            db().commit()
        except DomainError as err:
            db().rollback()
            getattr(form, err.field or "email", form.email).errors = [translate_error(err)]
        else:
            login_user(user)
            flash(gettext("Welcome! Your account is ready."), "success")
            if form.org.data:
                try:
                    membership.request_to_join(db(), user, int(form.org.data))  # a listed choice (validated)
                except DomainError as err:
                    flash_error(err)
                else:
                    flash(gettext(JOIN_SENT), "info")
            return redirect(url_for("auth.account"))
    return render_template("hub/register.html", form=form), (400 if form.is_submitted() else 200)


def _account_page(status: int = 200, token: str | None = None, token_form: TokenForm | None = None,
                  password_form: PasswordForm | None = None):  # type: ignore[no-untyped-def]
    return render_template("hub/account.html", form=EmptyForm(), token=token, token_form=token_form or TokenForm(),
                           password_form=password_form or PasswordForm(),
                           tokens=tokens.tokens_of(db(), current_user.id), now=utcnow(),
                           scope_labels=tokens.SCOPE_LABELS), status


@bp.app_context_processor
def _password_policy() -> dict:
    """The stated password policy, for every page with a field that sets a password."""
    return {"password_policy": lambda: gettext(passwords.POLICY)}


def _not_by_token() -> None:
    """Account settings belong to the person at the browser: an API token may not change them."""
    if by_token():
        abort(403)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """The account page; a POST creates an API token, shown once on the page it answers with."""
    _not_by_token()
    form = TokenForm()
    if not form.is_submitted():
        return _account_page()
    if form.validate():
        try:
            token = tokens.issue(db(), current_user, form.name.data, form.scope.data,
                                 None if form.days.data == "never" else int(form.days.data))
        except DomainError as err:
            db().rollback()
            getattr(form, err.field or "name", form.name).errors = [translate_error(err)]
        else:
            return _account_page(token=token)
    return _account_page(400, token_form=form)


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    _not_by_token()
    EmptyForm()
    revoked = tokens.revoke(db(), current_user.id, token_id)  # another person's token: 404
    flash(gettext("The token %(name)s is revoked: it stopped working at once.", name=revoked.name), "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/password")
@login_required
def change_password():
    """Change the password; every other session ends and every API token is revoked."""
    _not_by_token()
    form = PasswordForm()
    if form.validate_on_submit():
        gate = LoginGate(current_user.email)  # guesses of the current password are throttled like logins
        if gate.refused():
            abort(429)
        try:
            users.change_password(db(), current_user, form.current_password.data, form.password.data)
        except DomainError as err:
            db().rollback()
            if err.field == "current_password":
                gate.failed()
            getattr(form, err.field or "password", form.password).errors = [translate_error(err)]
        else:
            login_user(current_user._get_current_object())  # this session goes on under the new session key
            flash(gettext("Your password is changed. You were logged out everywhere else, and every API token "
                          "was revoked: create new ones where you need them."), "success")
            return redirect(url_for("auth.account"))
    return _account_page(400, password_form=form)


@bp.get("/lang/<code>")
def set_language(code: str):
    if code in current_app.config["LANGUAGES"]:
        session["lang"] = code
    return redirect(safe_next(url_for("home")))


# ---------------------------------------------------------------- organisation membership (the person's side)
@bp.app_context_processor
def _membership_panel() -> dict:
    def membership_panel() -> dict:
        """What the account page shows about the person's organisation: membership, request, invitations."""
        if not current_user.is_authenticated:
            return {}
        session = db()
        current = membership.open_membership(session, current_user.id)
        invitations = membership.invitations_for(session, current_user)
        history = membership.history_of(session, current_user.id, 5)
        org_ids = {m.org_id for m in [current, *invitations, *history] if m}
        orgs = {o.id: o for o in session.exec(select(Organisation).where(Organisation.id.in_(org_ids)))}
        form = JoinForm()
        form.org.choices = _org_choices()
        return {"current": current if current is None or current.status != "invited" else None,
                "invitations": invitations, "history": history, "orgs": orgs, "join_form": form,
                "can_manage": current is not None and membership.can_manage(session, current_user, current.org_id)}

    return {"membership_panel": membership_panel}


JOIN_SENT = N_("Your request to join has been sent. Until the organisation's administrator approves it, you "
               "cannot see or act for that organisation.")


def _on_account(action: Callable[[], object], done: str):  # type: ignore[no-untyped-def]
    """Run one of the person's membership actions and go back to the account page, saying how it went."""
    try:
        action()
    except DomainError as err:
        flash_error(err)
    else:
        flash(gettext(done), "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/membership/request")
@login_required
def join_request():
    form = JoinForm()
    form.org.choices = _org_choices()
    if not form.validate_on_submit():
        flash(gettext("Choose the organisation you want to join."), "error")
        return redirect(url_for("auth.account"))
    return _on_account(lambda: membership.request_to_join(db(), current_user, int(form.org.data)), JOIN_SENT)


_MY_ACTIONS = {
    "withdraw": (membership.withdraw_request, N_("Your request to join has been withdrawn.")),
    "accept": (membership.accept_invitation, N_("You are now a member of the organisation.")),
    "decline": (membership.decline_invitation, N_("You declined the invitation.")),
}


@bp.post("/account/membership/<int:membership_id>/<action>")
@login_required
def my_membership_action(membership_id: int, action: str):
    if action not in _MY_ACTIONS:
        abort(404)
    EmptyForm()
    do, done = _MY_ACTIONS[action]
    return _on_account(lambda: do(db(), current_user, membership_id), done)


@bp.post("/account/membership/leave")
@login_required
def leave_org():
    EmptyForm()
    return _on_account(lambda: membership.leave(db(), current_user),
                       N_("You have left the organisation. Its applications, teams and statements are no longer "
                          "open to you."))


# ---------------------------------------------------------------- organisation membership (the administrator's side)
def _managed_org() -> Organisation:
    org_id = membership.managed_org_id(db(), current_user)
    org = db().get(Organisation, org_id) if org_id is not None else None
    if org is None:
        abort(403)
    return org


@bp.get("/org/members")
@login_required
def org_members():
    org = _managed_org()
    rows = membership.members_of(db(), org.id)
    return render_template("hub/org_members.html", org=org,
                           pending=[(m, u) for m, u in rows if m.status == "pending"],
                           active=[(m, u) for m, u in rows if m.status == "active"],
                           invited=[(m, u) for m, u in rows if m.status == "invited"],
                           closed=membership.members_of(db(), org.id, ("refused", "removed", "left")),
                           invite_form=InviteForm())


@bp.post("/org/members/invite")
@login_required
def org_invite():
    org = _managed_org()
    form = InviteForm()
    if not form.validate_on_submit():
        flash(gettext("Enter a valid e-mail address."), "error")
        return redirect(url_for("auth.org_members"))
    try:
        membership.invite(db(), current_user, org.id, form.email.data)
    except DomainError as err:
        flash_error(err)
    else:
        flash(gettext("Invitation sent. The person accepts it on their account page (after registering, if they "
                      "have no account yet)."), "success")
    return redirect(url_for("auth.org_members"))


_ADMIN_ACTIONS = {
    "approve": N_("The request is approved: the person is now a member."),
    "refuse": N_("The request is refused; the person sees your reason."),
    "remove": N_("The member is removed; their access ended at once."),
    "make_admin": N_("The member is now an administrator of the organisation."),
    "drop_admin": N_("The member is no longer an administrator."),
    "cancel": N_("The invitation is cancelled."),
}


@bp.post("/org/members/<int:membership_id>/<action>")
@login_required
def org_member_action(membership_id: int, action: str):
    if action not in _ADMIN_ACTIONS:
        abort(404)
    org = _managed_org()
    form = ReasonForm()
    session, reason = db(), form.reason.data or ""
    try:
        if action == "approve":
            membership.approve(session, current_user, org.id, membership_id)
        elif action == "refuse":
            membership.refuse(session, current_user, org.id, membership_id, reason)
        elif action == "remove":
            membership.remove(session, current_user, org.id, membership_id, reason)
        elif action in ("make_admin", "drop_admin"):
            membership.set_admin(session, current_user, org.id, membership_id, action == "make_admin")
        else:
            membership.cancel_invitation(session, current_user, org.id, membership_id)
    except DomainError as err:
        flash_error(err)
    else:
        flash(gettext(_ADMIN_ACTIONS[action]), "success")
    return redirect(url_for("auth.org_members"))
