"""Account forms (Flask-WTF: CSRF token and validation in one place)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Optional


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


class RegisterForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    # Optional: choosing one sends a request to join, which that organisation's administrator decides.
    org = SelectField(_l("Ask to join an organisation (optional)"), validators=[Optional()], choices=[])
    # Length and the rest of the policy are checked by hub.passwords, whose messages say what to fix.
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    confirm = PasswordField(_l("Repeat password"), validators=[DataRequired(), EqualTo("password")])


class EmptyForm(FlaskForm):
    """A form with only the CSRF token, for buttons that change state."""


class JoinForm(FlaskForm):
    """Ask to join an organisation (a pending request)."""

    org = SelectField(_l("Organisation"), validators=[DataRequired()], choices=[])


class ReasonForm(FlaskForm):
    """Refuse a request or remove a member: the person reads the reason."""

    reason = StringField(_l("Reason"), validators=[Optional(), Length(max=500)])


class InviteForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])


class TokenForm(FlaskForm):
    """Create an API token: a name, what it may do, how long it stays valid."""

    name = StringField(_l("Token name"), validators=[Length(max=80)])  # hub.tokens says what a name needs
    scope = SelectField(_l("The token may"), choices=[("read", _l("Read only")), ("submit", _l("Read and submit"))],
                        default="read")
    days = SelectField(_l("Valid for"), choices=[("30", _l("30 days")), ("90", _l("90 days")), ("365", _l("1 year")),
                                                 ("never", _l("Never expires"))], default="90")


class PasswordForm(FlaskForm):
    """Change one's password: the current one, and the new one twice."""

    current_password = PasswordField(_l("Current password"), validators=[DataRequired(), Length(max=200)])
    password = PasswordField(_l("New password"), validators=[DataRequired(), Length(max=200)])
    confirm = PasswordField(_l("Repeat the new password"), validators=[
        DataRequired(), EqualTo("password", message=_l("The two new passwords differ. Type the same password twice."))])
