"""Operators' forms for reservations, quotas, prices and vouchers (Flask-WTF: CSRF and validation)."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import DateField, DecimalField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp

from evaluator.quota.vouchers import PERCENT_MAX, PERCENT_MIN

CLASS_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,39}$"


class ReservationForm(FlaskForm):
    challenge_id = SelectField(_l("Challenge"), coerce=int, validators=[InputRequired()], choices=[])
    accel_class = StringField(_l("Device class"), default="nvidia-a100",
                              validators=[DataRequired(), Regexp(CLASS_PATTERN, message=_l("Use lower-case letters, digits and '-'."))])
    count = IntegerField(_l("Devices"), default=1, validators=[InputRequired(), NumberRange(min=1, max=1024)])
    starts_on = DateField(_l("From (China time)"), validators=[InputRequired()])
    ends_on = DateField(_l("Until (inclusive)"), validators=[InputRequired()])


class QuotaForm(FlaskForm):
    team_id = SelectField(_l("Team"), coerce=int, choices=[], validators=[Optional()])
    org_id = SelectField(_l("Or a whole organisation"), coerce=int, choices=[], validators=[Optional()])
    challenge_id = SelectField(_l("Challenge (optional)"), coerce=int, choices=[], validators=[Optional()])
    hours = DecimalField(_l("Accelerator-hours allowed"), places=2,
                         validators=[InputRequired(), NumberRange(min=0, max=10_000_000)])


class PriceForm(FlaskForm):
    accel_class = StringField(_l("Device class"), default="nvidia-a100",
                              validators=[DataRequired(), Regexp(CLASS_PATTERN, message=_l("Use lower-case letters, digits and '-'."))])
    yuan = StringField(_l("Yuan per device-hour"), validators=[DataRequired(), Length(max=20)])


class VoucherForm(FlaskForm):
    company_id = SelectField(_l("Company"), coerce=int, choices=[], validators=[InputRequired()])
    bureau_id = SelectField(_l("Issuing bureau"), coerce=int, choices=[], validators=[InputRequired()])
    supplier_id = SelectField(_l("Supplier (computing center)"), coerce=int, choices=[], validators=[InputRequired()])
    scheme = StringField(_l("Scheme"), default="西咸新区算力券", validators=[DataRequired(), Length(max=120)])
    # The policy's bounds are checked by vouchers.issue(), which says the allowed range; min/max guide the browser.
    percent = IntegerField(_l("Share of fees (%)"), default=50, validators=[InputRequired()],
                           render_kw={"min": PERCENT_MIN, "max": PERCENT_MAX})
    cap_yuan = StringField(_l("Yearly cap (yuan)"), default="3000000", validators=[DataRequired(), Length(max=20)])
    valid_from = DateField(_l("Valid from"), validators=[InputRequired()])
    valid_until = DateField(_l("Valid until (inclusive)"), validators=[InputRequired()])
