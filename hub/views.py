"""Log in, register, log out, switch language, API token."""
from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user
from sqlmodel import select

from hub import users
from hub.errors import DomainError
from hub.forms import EmptyForm, LoginForm, RegisterForm
from hub.models import Organisation, Role
from hub.web import db, flash_error, limiter, login_required, safe_next, translate_error

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = users.authenticate(db(), form.email.data, form.password.data)
        if user is not None:
            session.clear()  # a fresh session on login (no fixation)
            login_user(user)
            return redirect(safe_next(url_for("home")))
        form.password.errors = [gettext("Wrong e-mail address or password.")]
    return render_template("hub/login.html", form=form), (401 if form.is_submitted() else 200)


@bp.post("/logout")
@login_required
def logout():
    EmptyForm()
    logout_user()
    session.clear()
    return redirect(url_for("home"))


def _registrable_orgs() -> list[Organisation]:
    kinds = users.ROLE_ORG_KINDS[Role.TEAM]
    return list(db().exec(select(Organisation).where(Organisation.kind.in_(kinds)).order_by(Organisation.name)))


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def register():
    form = RegisterForm()
    form.org.choices = [(str(o.id), o.name) for o in _registrable_orgs()]
    if form.validate_on_submit():
        try:
            user = users.create_user(db(), form.email.data, form.password.data, Role.TEAM,
                                     int(form.org.data), form.display_name.data)
            db().commit()
        except DomainError as err:
            db().rollback()
            getattr(form, err.field or "email", form.email).errors = [translate_error(err)]
        else:
            login_user(user)
            flash(gettext("Welcome! Your account is ready."), "success")
            return redirect(url_for("home"))
    return render_template("hub/register.html", form=form), (400 if form.is_submitted() else 200)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    form = EmptyForm()
    token = None
    if form.validate_on_submit():
        token = users.issue_api_token(db(), current_user)
        db().commit()
    return render_template("hub/account.html", form=form, token=token)


@bp.get("/lang/<code>")
def set_language(code: str):
    if code in current_app.config["LANGUAGES"]:
        session["lang"] = code
    return redirect(safe_next(url_for("home")))
