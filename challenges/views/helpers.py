"""What the challenge pages share: the viewer, guarded look-ups, Beijing time, labels and template helpers."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort
from flask_babel import get_locale, gettext
from flask_login import current_user
from sqlmodel import select

from challenges import access, challenges, outcomes, teams
from challenges.models import Challenge, Team, TeamMember
from challenges.scoring.metrics import REGISTRY
from challenges.views.blueprints import bp
from hub.errors import N_, DomainError
from hub.models import User
from hub.web import db, flash_error, translate_error

LOCAL_TZ = ZoneInfo("Asia/Shanghai")

STATUS_LABELS = {"draft": N_("Draft"), "open": N_("Open"), "frozen": N_("Submissions closed"),
                 "final_review": N_("Final review"), "awarded": N_("Awarded"), "archived": N_("Archived")}
# Words the templates translate from the data: team, membership, registration and submission states.
DYNAMIC_WORDS = (N_("forming"), N_("applied"), N_("approved"), N_("rejected"), N_("cut"), N_("disqualified"),
                 N_("pending"), N_("invited"), N_("active"), N_("captain"), N_("member"), N_("queued"),
                 N_("running"), N_("scored"), N_("failed"), N_("cancelled"))


def viewer() -> User | None:
    """The logged-in user, or None for an anonymous visitor."""
    return current_user if current_user.is_authenticated else None  # type: ignore[return-value]


def visible_challenge(slug: str) -> Challenge:
    """The challenge with this slug, when the viewer may see it (else 404)."""
    challenge = challenges.get_by_slug(db(), slug)
    challenges.require_visible(viewer(), challenge)
    return challenge


def organised_challenge(slug: str) -> Challenge:
    """The challenge with this slug, when the viewer organises it (else 404/403)."""
    challenge = visible_challenge(slug)
    access.require_organiser(viewer(), challenge)
    return challenge


def visible_team(team_id: int) -> tuple[Team, Challenge]:
    """The team and its challenge, or 404 unless the viewer belongs to the team or officially reads its papers."""
    session = db()
    team = teams.get_team(session, team_id)
    challenge = challenges.get(session, team.challenge_id)
    me = viewer()
    if me is None:
        abort(404)
    in_team = db().exec(select(TeamMember.id).where(TeamMember.team_id == team.id,
                                                    TeamMember.user_id == me.id)).first() is not None
    if not (in_team or access.official_reader_of_team(db(), me, challenge, team.id)):
        abort(404)
    return team, challenge


def to_utc(value: datetime | None) -> datetime | None:
    """Form values are Beijing wall-clock times; the database keeps aware UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=LOCAL_TZ).astimezone(timezone.utc)


def to_local(value: datetime | None) -> datetime | None:
    return value.astimezone(LOCAL_TZ).replace(tzinfo=None) if value else None


def form_error(form: Any, err: DomainError) -> None:
    """Show a service's refusal next to its field, or as a message when no field matches."""
    target = getattr(form, err.field, None) if err.field else None
    if target is not None and hasattr(target, "errors"):
        target.errors = list(target.errors or []) + [translate_error(err)]
    else:
        flash_error(err)


def metric_label(key: str) -> str:
    metric = REGISTRY.get(key)
    if metric is None:
        return key
    return metric.label_zh if str(get_locale()).startswith("zh") else metric.label_en


@bp.app_template_filter("bj")
def beijing_time(value: datetime | None) -> str:
    """A UTC datetime shown in Beijing time."""
    return value.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M") if value else "—"


@bp.app_template_filter("score")
def score_filter(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {"metric_label": metric_label, "describe_outcome": lambda s, o: gettext(outcomes.describe_submission(s, o)),
            "challenge_status_label": lambda s: gettext(STATUS_LABELS.get(s, s))}
