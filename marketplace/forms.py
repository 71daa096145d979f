"""Scenario, application, review and filter forms; the services hold the rules, the forms mirror limits."""
from __future__ import annotations

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import DateField, HiddenField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from marketplace import applications, scenarios
from marketplace.models import INDUSTRY_LABELS, SCENARIO_STATUS_LABELS

REQUIRED = _l("This field is required.")


def _text(limit_field: str, limits: dict[str, tuple[bool, int]]) -> list:  # type: ignore[type-arg]
    required, limit = limits[limit_field]
    return [DataRequired(message=REQUIRED) if required else Optional(),
            Length(max=limit, message=_l("At most %(max)d characters."))]


def industry_choices(blank: str | None = None) -> list[tuple[str, str]]:

    choices = [(key, gettext(label)) for key, label in INDUSTRY_LABELS.items()]
    return ([("", blank)] if blank is not None else []) + choices


class ScenarioForm(FlaskForm):
    city = SelectField(_l("City"), choices=[], validators=[DataRequired(message=REQUIRED)])
    title = StringField(_l("Title"), validators=_text("title", scenarios.LIMITS))
    title_en = StringField(_l("English title (optional)"), validators=_text("title_en", scenarios.LIMITS))
    industry = SelectField(_l("Industry"), choices=[], validators=[DataRequired(message=REQUIRED)])
    description = TextAreaField(_l("The need"), validators=_text("description", scenarios.LIMITS))
    expected_outcome = TextAreaField(_l("Expected outcome"), validators=_text("expected_outcome", scenarios.LIMITS))
    indicators = TextAreaField(_l("Technical indicators"), validators=_text("indicators", scenarios.LIMITS))
    data_available = TextAreaField(_l("Data available"), validators=_text("data_available", scenarios.LIMITS))
    data_terms = StringField(_l("Terms of data use"), validators=_text("data_terms", scenarios.LIMITS))
    budget_yuan = IntegerField(_l("Budget (yuan)"), validators=[
        Optional(), NumberRange(min=0, max=scenarios.MAX_BUDGET, message=_l("Enter an amount from %(min)s to %(max)s."))],
        render_kw={"min": 0, "step": 1, "inputmode": "numeric"})
    reward = StringField(_l("Reward or support"), validators=_text("reward", scenarios.LIMITS))
    deadline = DateField(_l("Application deadline"), validators=[InputRequired(message=REQUIRED)])
    contact_name = StringField(_l("Contact person"), validators=_text("contact_name", scenarios.LIMITS))
    contact_info = StringField(_l("Contact (phone or e-mail)"), validators=_text("contact_info", scenarios.LIMITS))

    def to_input(self) -> scenarios.ScenarioInput:
        return scenarios.ScenarioInput(**{name: getattr(self, name).data for name in (
            "title", "title_en", "industry", "description", "expected_outcome", "indicators", "data_available",
            "data_terms", "budget_yuan", "reward", "deadline", "contact_name", "contact_info")})


class StatusForm(FlaskForm):
    to = HiddenField(validators=[DataRequired(message=REQUIRED)])
    note = StringField(_l("Note for the history (optional)"),
                       validators=[Optional(), Length(max=scenarios.MAX_NOTE, message=_l("At most %(max)d characters."))])


class ApplyForm(FlaskForm):
    proposal = TextAreaField(_l("Proposal"), validators=_text("proposal", applications.LIMITS))
    tech_route = TextAreaField(_l("Technical route"), validators=_text("tech_route", applications.LIMITS))
    indicator_plan = TextAreaField(_l("How each indicator will be met"),
                                   validators=_text("indicator_plan", applications.LIMITS))
    budget_yuan = IntegerField(_l("Requested budget (yuan)"), validators=[
        Optional(), NumberRange(min=0, max=scenarios.MAX_BUDGET, message=_l("Enter an amount from %(min)s to %(max)s."))],
        render_kw={"min": 0, "step": 1, "inputmode": "numeric"})
    attachments = MultipleFileField(_l("Attachments"))


class ReviewForm(FlaskForm):
    decision = SelectField(_l("Decision"), choices=[("accept", _l("Accept application")), ("reject", _l("Reject"))],
                           validators=[DataRequired(message=REQUIRED)])
    reason = TextAreaField(_l("Reason (required for a rejection)"),
                           validators=[Optional(), Length(max=scenarios.MAX_NOTE,
                                                          message=_l("At most %(max)d characters."))])


class FilterForm(FlaskForm):
    """The list's GET filters (no CSRF: it changes nothing)."""

    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=scenarios.MAX_QUERY,
                                                                 message=_l("At most %(max)d characters."))])
    city = SelectField(_l("City"), choices=[], validate_choice=False)
    industry = SelectField(_l("Industry"), choices=[], validate_choice=False)
    status = SelectField(_l("Status"), choices=[], validate_choice=False)
    sort = SelectField(_l("Sort"), choices=[("newest", _l("Newest")), ("deadline", _l("Deadline first")),
                                            ("budget", _l("Largest budget"))], validate_choice=False)


def status_choices(blank: str) -> list[tuple[str, str]]:

    return [("", blank)] + [(key, gettext(label)) for key, label in SCENARIO_STATUS_LABELS.items()]
