"""Challenges: create, edit, look up, the status workflow, and the evaluation-contract lock."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlmodel import Session, func, select

from challenges.access import require_organiser
from challenges.models import Challenge, ChallengeStatus, Dataset, Phase, Submission, SubmissionStatus
from challenges.scoring.metrics import REGISTRY
from hub import audit
from hub.errors import DomainError, N_, NotFound
from hub.models import User, utcnow
from marketplace.models import Scenario

RESERVED_SLUGS = {"new"}  # /challenges/new is the creation form
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,79}$")
COLUMN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
FILE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

# Everything that decides how a submission is run and scored: frozen once a score exists.
CONTRACT_FIELDS = ("metric", "extra_metrics", "id_column", "prediction_column", "output_file", "input_format",
                   "output_format", "time_limit_s", "memory_mb", "cpus", "accelerators", "accelerator_class",
                   "scoring_image", "leaderboard_mode", "image_failures_count")
EDITABLE_FIELDS = ("title", "title_en", "description", "rules", "prize", "funding_yuan", "opens_at", "closes_at",
                   "max_team_size", "per_applicant_cap", "consortium_max_partners", "objective_weight",
                   "rubric") + CONTRACT_FIELDS

DEFAULT_RUBRIC: list[dict[str, Any]] = [
    {"key": "technical", "label": "技术先进性", "label_en": "Technical merit", "max": 10},
    {"key": "feasibility", "label": "落地可行性", "label_en": "Feasibility for the city", "max": 10},
    {"key": "cost", "label": "成本合理性", "label_en": "Cost", "max": 10},
]

# Moves a city may make, by action name: (allowed from, to).
TRANSITIONS: dict[str, tuple[set[str], str]] = {
    "publish": ({ChallengeStatus.DRAFT}, ChallengeStatus.OPEN),
    "freeze": ({ChallengeStatus.OPEN}, ChallengeStatus.FROZEN),
    "reopen": ({ChallengeStatus.FROZEN}, ChallengeStatus.OPEN),
    "start_review": ({ChallengeStatus.FROZEN}, ChallengeStatus.FINAL_REVIEW),
    "archive": ({ChallengeStatus.DRAFT, ChallengeStatus.AWARDED}, ChallengeStatus.ARCHIVED),
}
PUBLIC_STATUSES = {s.value for s in ChallengeStatus} - {ChallengeStatus.DRAFT}


def get_by_slug(session: Session, slug: str) -> Challenge:
    challenge = session.exec(select(Challenge).where(Challenge.slug == slug)).first()
    if challenge is None:
        raise NotFound(N_("No challenge with this address."))
    return challenge


def get(session: Session, challenge_id: int) -> Challenge:
    challenge = session.get(Challenge, challenge_id)
    if challenge is None:
        raise NotFound(N_("No challenge with this address."))
    return challenge


def phases_of(session: Session, challenge_id: int) -> list[Phase]:
    return list(session.exec(select(Phase).where(Phase.challenge_id == challenge_id).order_by(Phase.position)))


def current_phase(session: Session, challenge: Challenge, now: datetime | None = None) -> Phase | None:
    """The phase running now, else the next one to start, else the last one."""
    now = now or utcnow()
    phases = phases_of(session, challenge.id)
    for phase in phases:
        if phase.starts_at <= now < phase.ends_at:
            return phase
    upcoming = [p for p in phases if p.starts_at > now]
    if upcoming:
        return upcoming[0]
    return phases[-1] if phases else None


def final_phase(session: Session, challenge: Challenge) -> Phase | None:
    phases = phases_of(session, challenge.id)
    return phases[-1] if phases else None


def visible_challenges(session: Session, viewer: User | None) -> list[Challenge]:
    """Published challenges for everyone, plus drafts of the viewer's own city."""
    q = select(Challenge).order_by(Challenge.opens_at.desc(), Challenge.id.desc())
    rows = list(session.exec(q))
    return [c for c in rows if c.status in PUBLIC_STATUSES or _owns_draft(viewer, c)]


def _owns_draft(viewer: User | None, challenge: Challenge) -> bool:
    return viewer is not None and (viewer.role == "admin" or (viewer.role == "gov" and viewer.org_id == challenge.city_id))


def is_visible(viewer: User | None, challenge: Challenge) -> bool:
    return challenge.status in PUBLIC_STATUSES or _owns_draft(viewer, challenge)


def require_visible(viewer: User | None, challenge: Challenge) -> None:
    if not is_visible(viewer, challenge):
        raise NotFound(N_("No challenge with this address."))


# ---------------------------------------------------------------- the contract lock
def locked_since(session: Session, challenge: Challenge) -> datetime | None:
    """When the contract was locked: set by the first scored submission (found here too if not yet stamped)."""
    if challenge.metric_locked_at is not None:
        return challenge.metric_locked_at
    # One query: the earliest scored submission, if any (finished_at may be unset on hand-made rows).
    row = session.exec(select(func.min(Submission.id)).where(
        Submission.challenge_id == challenge.id, Submission.status == SubmissionStatus.SCORED)).first()
    if row is None:
        return None
    first = session.get(Submission, row)
    return first.finished_at or first.created_at if first is not None else None


def lock_contract(session: Session, challenge_id: int, at: datetime | None = None) -> None:
    """Stamp the lock when a submission is scored; the caller commits with its own change."""
    challenge = session.get(Challenge, challenge_id)
    if challenge is not None and challenge.metric_locked_at is None:
        challenge.metric_locked_at = at or utcnow()
        session.add(challenge)


def refuse_if_locked(session: Session, challenge: Challenge, what: str) -> None:
    since = locked_since(session, challenge)
    if since is not None:
        raise DomainError(N_("The evaluation contract is locked since the first submission was scored "
                             "(%(when)s): %(what)s can no longer change, or scores would not be comparable."),
                          field=None, code="locked", what=what, when=since.strftime("%Y-%m-%d %H:%M UTC"))


# ---------------------------------------------------------------- validation
def _int(values: dict[str, Any], name: str, low: int, high: int) -> None:
    if name not in values:
        return
    try:
        values[name] = int(values[name])
    except (TypeError, ValueError):
        raise DomainError(N_("Enter a whole number between %(low)s and %(high)s."), field=name,
                          low=low, high=high) from None
    if not low <= values[name] <= high:
        raise DomainError(N_("Enter a whole number between %(low)s and %(high)s."), field=name, low=low, high=high)


def clean_values(values: dict[str, Any], current: Challenge | None = None) -> dict[str, Any]:
    """Check and normalise challenge fields; raises DomainError naming the first bad field."""
    v = {k: val for k, val in values.items() if k in EDITABLE_FIELDS or k in ("slug", "scenario_id")}
    if "slug" in v:
        v["slug"] = (v["slug"] or "").strip().lower()
        if not SLUG_RE.match(v["slug"]) or v["slug"] in RESERVED_SLUGS:
            raise DomainError(N_("The address may use 3–80 lower-case letters, digits and hyphens."), field="slug")
    for name in ("title", "title_en", "description", "rules", "prize", "input_format", "output_format",
                 "accelerator_class"):
        if name in v:
            v[name] = (v[name] or "").strip()
    if "title" in v and not v["title"]:
        raise DomainError(N_("Give the challenge a title."), field="title")
    if len(v.get("title", "")) > 200 or len(v.get("title_en", "")) > 200:
        raise DomainError(N_("The title may have at most %(n)s characters."), field="title", n=200)
    if len(v.get("prize", "")) > 500:
        raise DomainError(N_("The prize text may have at most %(n)s characters."), field="prize", n=500)
    if "metric" in v and v["metric"] not in REGISTRY:
        raise DomainError(N_("Unknown metric: %(metric)s"), field="metric", metric=v["metric"])
    if "extra_metrics" in v:
        extra = [m for m in (v["extra_metrics"] or []) if m]
        for m in extra:
            if m not in REGISTRY:
                raise DomainError(N_("Unknown metric: %(metric)s"), field="extra_metrics", metric=m)
        primary = v.get("metric", current.metric if current else None)
        v["extra_metrics"] = [m for m in dict.fromkeys(extra) if m != primary]
    for name in ("id_column", "prediction_column"):
        if name in v and not COLUMN_RE.match(v[name] or ""):
            raise DomainError(N_("A column name uses letters, digits and _ and starts with a letter."), field=name)
    if v.get("id_column") and v.get("id_column") == v.get("prediction_column"):
        raise DomainError(N_("The id column and the prediction column must differ."), field="prediction_column")
    if "output_file" in v and (not FILE_RE.match(v["output_file"] or "") or ".." in v["output_file"]):
        raise DomainError(N_("The output file is a plain file name such as predictions.csv."), field="output_file")
    if "leaderboard_mode" in v and v["leaderboard_mode"] not in ("best", "latest"):
        raise DomainError(N_("The leaderboard shows each team's best or latest submission."), field="leaderboard_mode")
    _int(v, "time_limit_s", 10, 24 * 3600)
    _int(v, "memory_mb", 64, 1024 * 1024)
    _int(v, "accelerators", 0, 16)
    _int(v, "max_team_size", 1, 50)
    _int(v, "per_applicant_cap", 1, 100)
    _int(v, "consortium_max_partners", 0, 20)
    if "funding_yuan" in v:
        if v["funding_yuan"] in ("", None):
            v["funding_yuan"] = None
        else:
            _int(v, "funding_yuan", 0, 10**12)
    if "cpus" in v:
        try:
            v["cpus"] = float(v["cpus"])
        except (TypeError, ValueError):
            raise DomainError(N_("CPUs must be a number."), field="cpus") from None
        if not 0.1 <= v["cpus"] <= 128:
            raise DomainError(N_("CPUs must be between 0.1 and 128."), field="cpus")
    if "objective_weight" in v:
        try:
            v["objective_weight"] = float(v["objective_weight"])
        except (TypeError, ValueError):
            raise DomainError(N_("The objective weight must be a number between 0 and 1."),
                              field="objective_weight") from None
        if not 0 <= v["objective_weight"] <= 1:
            raise DomainError(N_("The objective weight must be a number between 0 and 1."), field="objective_weight")
    if "rubric" in v:
        v["rubric"] = _clean_rubric(v["rubric"])
    opens = v.get("opens_at", current.opens_at if current else None)
    closes = v.get("closes_at", current.closes_at if current else None)
    if opens is None or closes is None:
        raise DomainError(N_("Give the opening and closing dates."), field="opens_at")
    if closes <= opens:
        raise DomainError(N_("The challenge must close after it opens."), field="closes_at")
    return v


def _clean_rubric(rubric: Any) -> list[dict[str, Any]]:
    if not rubric:
        return [dict(c) for c in DEFAULT_RUBRIC]
    out: list[dict[str, Any]] = []
    for item in rubric:
        key = str(item.get("key", "")).strip()
        if not COLUMN_RE.match(key):
            raise DomainError(N_("Each rubric criterion needs a key of letters, digits and _."), field="rubric")
        try:
            top = float(item.get("max", 10))
        except (TypeError, ValueError):
            raise DomainError(N_("A rubric criterion's maximum must be a positive number."), field="rubric") from None
        if top <= 0:
            raise DomainError(N_("A rubric criterion's maximum must be a positive number."), field="rubric")
        out.append({"key": key, "label": str(item.get("label") or key), "label_en": str(item.get("label_en") or key),
                    "max": top})
    if len({c["key"] for c in out}) != len(out):
        raise DomainError(N_("Rubric criteria need distinct keys."), field="rubric")
    return out


# ---------------------------------------------------------------- create / edit
def create_challenge(session: Session, actor: User, *, scenario_id: int, slug: str, title: str, metric: str,
                     opens_at: datetime, closes_at: datetime, **fields: Any) -> Challenge:
    scenario = session.get(Scenario, scenario_id)
    if scenario is None:
        raise DomainError(N_("Choose a scenario of your city."), field="scenario_id")
    if actor.role != "gov" or actor.org_id != scenario.city_id:
        raise DomainError(N_("Only government staff of the city that owns the scenario may create its challenge."),
                          field="scenario_id", code="forbidden")
    values = clean_values({"slug": slug, "title": title, "metric": metric, "opens_at": opens_at,
                           "closes_at": closes_at, "rubric": fields.pop("rubric", None), **fields})
    if session.exec(select(Challenge.id).where(Challenge.slug == values["slug"])).first() is not None:
        raise DomainError(N_("Another challenge already uses this address."), field="slug")
    challenge = Challenge(scenario_id=scenario.id, city_id=scenario.city_id, created_by=actor.id, **values)
    session.add(challenge)
    session.flush()
    audit.record(session, actor.id, "challenge.create", "challenge", challenge.id, challenge.city_id,
                 slug=challenge.slug)
    session.commit()
    return challenge


def update_challenge(session: Session, actor: User, challenge: Challenge, **fields: Any) -> Challenge:
    require_organiser(actor, challenge)
    if challenge.status == ChallengeStatus.ARCHIVED:
        raise DomainError(N_("An archived challenge can no longer be edited."))
    values = clean_values(fields, current=challenge)
    changed = {k: val for k, val in values.items() if getattr(challenge, k) != val and k != "slug"}
    touched_contract = sorted(k for k in changed if k in CONTRACT_FIELDS)
    if touched_contract:
        refuse_if_locked(session, challenge, ", ".join(touched_contract))
    for k, val in changed.items():
        setattr(challenge, k, val)
    if changed:
        challenge.updated_at = utcnow()
        session.add(challenge)
        audit.record(session, actor.id, "challenge.edit", "challenge", challenge.id, challenge.city_id,
                     fields=sorted(changed))
        session.commit()
    return challenge


def change_status(session: Session, actor: User, challenge: Challenge, action: str) -> Challenge:
    """Move the challenge along draft → open → frozen → final_review (→ awarded by judging) → archived."""
    require_organiser(actor, challenge)
    if action not in TRANSITIONS:
        raise DomainError(N_("Unknown action."), field="action")
    allowed, target = TRANSITIONS[action]
    if challenge.status not in allowed:
        raise DomainError(N_("This step is not possible while the challenge is %(status)s."), field="action",
                          status=challenge.status)
    if action == "publish":
        _check_ready_to_publish(session, challenge)
    before = challenge.status
    challenge.status = target
    challenge.updated_at = utcnow()
    session.add(challenge)
    audit.record(session, actor.id, f"challenge.{action}", "challenge", challenge.id, challenge.city_id,
                 from_status=before, to_status=target)
    session.commit()
    return challenge


def _check_ready_to_publish(session: Session, challenge: Challenge) -> None:
    phases = phases_of(session, challenge.id)
    if not phases:
        raise DomainError(N_("Add at least one phase before publishing."), field="action")
    splits = set(session.exec(select(Dataset.split).where(Dataset.challenge_id == challenge.id)))
    missing = sorted({p.split for p in phases} - splits)
    if missing:
        raise DomainError(N_("Upload the data of split %(split)s before publishing."), field="action",
                          split=", ".join(missing))
