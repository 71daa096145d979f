"""Challenge forms (Flask-WTF): types and CSRF here; the rules live in the services."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (BooleanField, DateTimeLocalField, DecimalField, IntegerField, SelectField,
                     SelectMultipleField, StringField, TextAreaField)
from wtforms.validators import DataRequired, Length, Optional

DT_FORMAT = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]


class ChallengeForm(FlaskForm):
    scenario_id = SelectField(_l("Scenario"), coerce=int, choices=[])
    slug = StringField(_l("Address (slug)"), validators=[DataRequired(), Length(max=80)])
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    title_en = StringField(_l("English title"), validators=[Optional(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=20000)])
    rules = TextAreaField(_l("Rules"), validators=[Optional(), Length(max=20000)])
    prize = StringField(_l("Prize or project funding"), validators=[Optional(), Length(max=500)])
    funding_yuan = IntegerField(_l("Funding (yuan)"), validators=[Optional()])
    opens_at = DateTimeLocalField(_l("Opens (Beijing time)"), format=DT_FORMAT, validators=[DataRequired()])
    closes_at = DateTimeLocalField(_l("Closes (Beijing time)"), format=DT_FORMAT, validators=[DataRequired()])
    input_format = TextAreaField(_l("Input format (files at /input)"), validators=[Optional(), Length(max=20000)])
    output_format = TextAreaField(_l("Output format (files at /output)"), validators=[Optional(), Length(max=20000)])
    id_column = StringField(_l("Id column"), default="id", validators=[DataRequired(), Length(max=64)])
    prediction_column = StringField(_l("Prediction column"), default="prediction",
                                    validators=[DataRequired(), Length(max=64)])
    output_file = StringField(_l("Output file"), default="predictions.csv", validators=[DataRequired()])
    metric = SelectField(_l("Metric"), choices=[])
    extra_metrics = SelectMultipleField(_l("Extra metric columns"), choices=[])
    time_limit_s = IntegerField(_l("Time limit per run (s)"), default=600)
    memory_mb = IntegerField(_l("Memory per run (MB)"), default=2048)
    cpus = DecimalField(_l("CPUs per run"), default=1, places=2)
    accelerators = IntegerField(_l("Accelerators per run"), default=0)
    accelerator_class = StringField(_l("Accelerator class"), default="cpu", validators=[Length(max=40)])
    leaderboard_mode = SelectField(_l("Leaderboard shows"), choices=[("best", _l("each team's best submission")),
                                                                      ("latest", _l("each team's latest submission"))])
    image_failures_count = BooleanField(_l("Failures caused by the image count against the limits"), default=True)
    max_team_size = IntegerField(_l("Maximum team size"), default=5)
    per_applicant_cap = IntegerField(_l("Projects one organisation may lead at once"), default=3)
    consortium_max_partners = IntegerField(_l("Consortium partners besides the lead"), default=4)
    objective_weight = DecimalField(_l("Weight of the objective score (0–1)"), default=0.6, places=2)
    rubric_text = TextAreaField(_l("Rubric: one criterion per line, key | 中文 | English | maximum"),
                                validators=[Optional(), Length(max=5000)])


class PhaseForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    name_en = StringField(_l("English name"), validators=[Optional(), Length(max=100)])
    starts_at = DateTimeLocalField(_l("Starts (Beijing time)"), format=DT_FORMAT, validators=[DataRequired()])
    ends_at = DateTimeLocalField(_l("Ends (Beijing time)"), format=DT_FORMAT, validators=[DataRequired()])
    split = StringField(_l("Dataset split"), default="public", validators=[DataRequired(), Length(max=40)])
    per_day_limit = IntegerField(_l("Submissions per day"), default=5)
    total_limit = IntegerField(_l("Submissions in this phase"), default=100)
    concurrent_limit = IntegerField(_l("Submissions running at once"), default=2)
    scores_visible = SelectField(_l("Scores shown"), choices=[("now", _l("at once")),
                                                              ("reveal", _l("at the reveal (private board)"))])
    freeze_at = DateTimeLocalField(_l("Freeze the public board at (optional)"), format=DT_FORMAT,
                                   validators=[Optional()])
    cut_bar = StringField(_l("Cut bar (赛马制, optional)"), validators=[Optional(), Length(max=40)])


class DatasetForm(FlaskForm):
    split = StringField(_l("Split"), default="public", validators=[DataRequired(), Length(max=40)])
    inputs = FileField(_l("Test inputs (CSV)"))
    files = FileField(_l("Input files (zip, optional)"))
    truth = FileField(_l("Ground truth (CSV)"))
    sample_inputs = FileField(_l("Public sample inputs (CSV, optional)"))
    sample_truth = FileField(_l("Public sample truth (CSV, optional)"))


class TeamForm(FlaskForm):
    name = StringField(_l("Team name"), validators=[DataRequired(), Length(max=100)])


class InviteForm(FlaskForm):
    email = StringField(_l("E-mail of the person to invite"), validators=[DataRequired(), Length(max=254)])


class RegistrationForm(FlaskForm):
    tech_route = TextAreaField(_l("Technical route (技术路线)"), validators=[DataRequired(), Length(max=20000)])
    indicator_plan = TextAreaField(_l("How each indicator will be met"), validators=[DataRequired(),
                                                                                     Length(max=20000)])
    budget_yuan = IntegerField(_l("Budget (yuan)"), validators=[Optional()])
    partner_org_ids = SelectMultipleField(_l("Consortium partners"), coerce=int, choices=[])


class ReviewForm(FlaskForm):
    decision = SelectField(_l("Decision"), choices=[("approve", _l("Approve")), ("reject", _l("Refuse"))])
    reason = TextAreaField(_l("Reason (shown to the team)"), validators=[Optional(), Length(max=1000)])


class JudgeForm(FlaskForm):
    judge_id = SelectField(_l("Judge"), coerce=int, choices=[])


class ConflictForm(FlaskForm):
    team_id = SelectField(_l("Team"), coerce=int, choices=[])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=500)])


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=1000)])


class NoticeForm(FlaskForm):
    days = IntegerField(_l("Notice period (days)"), default=7)


class ObjectionForm(FlaskForm):
    text = TextAreaField(_l("Objection"), validators=[Optional(), Length(max=5000)])


class AnswerForm(FlaskForm):
    answer = TextAreaField(_l("Answer"), validators=[Optional(), Length(max=5000)])
