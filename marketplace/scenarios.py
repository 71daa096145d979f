"""Scenario opportunity list rules: who may create and edit, the status machine, visibility, search."""
from __future__ import annotations

import unicodedata
from collections.abc import Hashable
from dataclasses import dataclass, fields
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_
from sqlmodel import Session, select

from hub import audit
from hub.errors import Conflict, DomainError, Forbidden, N_, NotFound
from hub.models import Organisation, OrgKind, Role, User, utcnow
from marketplace.models import (INDUSTRY_LABELS, INDUSTRY_SEARCH_NAMES, Application, ApplicationStatus, Industry, Scenario,
                                ScenarioEvent, ScenarioStatus)

# Deadlines are calendar dates in the district's time zone, whatever the server's clock says.
DISTRICT_TZ = ZoneInfo("Asia/Shanghai")

MAX_TEXT = 20_000          # description, outcome, indicators, data
MAX_NOTE = 1000
MAX_QUERY = 100
# The column is a 32-bit integer on PostgreSQL; two billion yuan is far above any city's call.
MAX_BUDGET = 2_000_000_000

# field -> (required, max length); the forms show the same limits.
LIMITS: dict[str, tuple[bool, int]] = {
    "title": (True, 200),
    "title_en": (False, 200),
    "description": (True, MAX_TEXT),
    "expected_outcome": (True, MAX_TEXT),
    "indicators": (True, MAX_TEXT),
    "data_available": (False, MAX_TEXT),
    "data_terms": (False, 500),
    "reward": (False, 500),
    "contact_name": (True, 100),
    "contact_info": (True, 200),
}

S = ScenarioStatus
# Every move a city may make; each one leaves a ScenarioEvent.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    S.DRAFT: (S.PUBLISHED,),
    S.PUBLISHED: (S.OPEN_CALL, S.UNDER_REVIEW, S.CLOSED),
    S.OPEN_CALL: (S.UNDER_REVIEW, S.CLOSED),
    S.UNDER_REVIEW: (S.OPEN_CALL, S.AWARDED, S.CLOSED),
    S.AWARDED: (S.CLOSED,),
    S.CLOSED: (),
}
# Teams may apply (揭榜) while a scenario is in one of these.
OPEN_STATUSES = (S.PUBLISHED, S.OPEN_CALL)
# A city may still correct the text until the award.
EDITABLE_STATUSES = (S.DRAFT, S.PUBLISHED, S.OPEN_CALL, S.UNDER_REVIEW)
SORTS = ("newest", "deadline", "budget")


@dataclass
class ScenarioInput:
    """What a city fills in for one scenario (plain values, as a form or the API delivers them)."""

    title: str = ""
    industry: str = ""
    description: str = ""
    expected_outcome: str = ""
    indicators: str = ""
    deadline: date | None = None
    contact_name: str = ""
    contact_info: str = ""
    title_en: str = ""
    data_available: str = ""
    data_terms: str = ""
    budget_yuan: int | None = None
    reward: str = ""

    @classmethod
    def of(cls, scenario: Scenario) -> "ScenarioInput":
        return cls(**{f.name: getattr(scenario, f.name) for f in fields(cls)})


def district_today() -> date:
    return datetime.now(DISTRICT_TZ).date()


def normalize_text(text: str) -> str:
    """The form both the stored search text and a query take: NFKC (full-width → ASCII), lower case."""
    return unicodedata.normalize("NFKC", text or "").lower()


# ---------------------------------------------------------------- cities and permissions
def cities(session: Session) -> list[Organisation]:
    return list(session.exec(select(Organisation).where(Organisation.kind == OrgKind.CITY).order_by(Organisation.id)))


def city_by_code(session: Session, code: str) -> Organisation:
    city = session.exec(select(Organisation).where(Organisation.code == (code or "").strip(),
                                                   Organisation.kind == OrgKind.CITY)).first()
    if city is None:
        raise NotFound(N_("Unknown city: %(city)s"), field="city", city=(code or "")[:64])
    return city


def can_manage(user: User | None, scenario: Scenario) -> bool:
    """Government staff of the owning city, or the platform admin."""
    if user is None:
        return False
    if user.role == Role.ADMIN:
        return True
    return user.role == Role.GOV and user.org_id is not None and user.org_id == scenario.city_id


def can_view(user: User | None, scenario: Scenario) -> bool:
    """Everyone sees what a city has published; a draft only its city and the admin."""
    return scenario.status != S.DRAFT or can_manage(user, scenario)


def get_visible(session: Session, viewer: User | None, scenario_id: int) -> Scenario:
    scenario = session.get(Scenario, scenario_id)
    # A draft of another city answers like an unknown id: its existence is not public.
    if scenario is None or not can_view(viewer, scenario):
        raise NotFound(N_("This scenario does not exist or is not published."))
    return scenario


def get_managed(session: Session, actor: User, scenario_id: int) -> Scenario:
    scenario = get_visible(session, actor, scenario_id)
    if not can_manage(actor, scenario):
        raise Forbidden(N_("Only the government staff of the city that owns this scenario can change it."))
    return scenario


def creatable_cities(session: Session, actor: User | None) -> list[Organisation]:
    """The cities an account may create scenarios for: its own city, or every city for the admin."""
    if actor is None:
        return []
    if actor.role == Role.ADMIN:
        return cities(session)
    if actor.role == Role.GOV and actor.org_id is not None:
        org = session.get(Organisation, actor.org_id)
        return [org] if org is not None and org.kind == OrgKind.CITY else []
    return []


# ---------------------------------------------------------------- validation
def _clean(data: ScenarioInput) -> ScenarioInput:
    out = ScenarioInput(**{f.name: getattr(data, f.name) for f in fields(ScenarioInput)})
    for name in LIMITS:
        value = getattr(out, name)
        setattr(out, name, (value or "").strip() if isinstance(value, str) or value is None else value)
    out.industry = (out.industry or "").strip()
    return out


def validate(data: ScenarioInput) -> ScenarioInput:
    """Required fields, lengths, industry, budget; returns the stripped values."""
    data = _clean(data)
    for name, (required, limit) in LIMITS.items():
        value = getattr(data, name)
        if not isinstance(value, str):
            raise DomainError(N_("This field must be text."), field=name)
        if required and not value:
            raise DomainError(N_("This field is required."), field=name)
        if len(value) > limit:
            raise DomainError(N_("At most %(n)s characters."), field=name, n=limit)
    if not data.industry:
        raise DomainError(N_("This field is required."), field="industry")
    if data.industry not in {i.value for i in Industry}:
        raise DomainError(N_("Unknown industry: %(industry)s"), field="industry", industry=data.industry[:40])
    if data.deadline is None:
        raise DomainError(N_("This field is required."), field="deadline")
    if not isinstance(data.deadline, date) or isinstance(data.deadline, datetime):
        raise DomainError(N_("Enter the deadline as a date (YYYY-MM-DD)."), field="deadline")
    if data.budget_yuan is not None:
        if isinstance(data.budget_yuan, bool) or not isinstance(data.budget_yuan, int):
            raise DomainError(N_("Enter the budget as a whole number of yuan."), field="budget_yuan")
        if data.budget_yuan < 0:
            raise DomainError(N_("The budget cannot be negative."), field="budget_yuan")
        if data.budget_yuan > MAX_BUDGET:
            raise DomainError(N_("The budget may be at most %(n)s yuan."), field="budget_yuan", n=MAX_BUDGET)
    return data


def _check_deadline_open(deadline: date, today: date) -> None:
    if deadline < today:
        raise DomainError(N_("The application deadline %(deadline)s is in the past."), field="deadline",
                          deadline=deadline.isoformat())


def search_text_for(scenario: Scenario, city: Organisation | None) -> str:
    parts = [scenario.title, scenario.title_en, scenario.description, scenario.indicators,
             scenario.expected_outcome, INDUSTRY_LABELS.get(scenario.industry, ""),
             INDUSTRY_SEARCH_NAMES.get(scenario.industry, "")]
    if city is not None:
        parts += [city.name, city.name_en]
    return normalize_text("\n".join(p for p in parts if p))


def _event(session: Session, scenario: Scenario, actor: User | None, from_status: str | None, to_status: str,
           note: str = "") -> ScenarioEvent:
    event = ScenarioEvent(scenario_id=scenario.id, actor_id=actor.id if actor else None, from_status=from_status,
                          to_status=to_status, note=note[:MAX_NOTE])
    session.add(event)
    return event


# ---------------------------------------------------------------- create, edit, status
def create_scenario(session: Session, actor: User, city_code: str, data: ScenarioInput) -> Scenario:
    """A new draft of the actor's city (the admin may name any city)."""
    city = city_by_code(session, city_code)
    if city.id not in {c.id for c in creatable_cities(session, actor)}:
        raise Forbidden(N_("Only the government staff of %(city)s can create its scenarios."), field="city",
                        city=city.name)
    data = validate(data)
    now = utcnow()
    scenario = Scenario(city_id=city.id, status=S.DRAFT, created_by=actor.id, created_at=now, updated_at=now,
                        **{f.name: getattr(data, f.name) for f in fields(ScenarioInput)})
    scenario.search_text = search_text_for(scenario, city)
    session.add(scenario)
    session.flush()
    _event(session, scenario, actor, None, S.DRAFT)
    audit.record(session, actor.id, "scenario.create", "scenario", scenario.id, org_id=city.id, title=scenario.title)
    session.commit()
    return scenario


def update_scenario(session: Session, actor: User, scenario_id: int, data: ScenarioInput,
                    today: date | None = None) -> Scenario:
    scenario = get_managed(session, actor, scenario_id)
    if scenario.status not in EDITABLE_STATUSES:
        raise Conflict(N_("A scenario that is %(status)s can no longer be edited."), status=scenario.status)
    data = validate(data)
    if scenario.status in OPEN_STATUSES and data.deadline != scenario.deadline:
        _check_deadline_open(data.deadline, today or district_today())  # type: ignore[arg-type]
    changed = [f.name for f in fields(ScenarioInput) if getattr(scenario, f.name) != getattr(data, f.name)]
    if not changed:
        return scenario
    for name in changed:
        setattr(scenario, name, getattr(data, name))
    scenario.search_text = search_text_for(scenario, session.get(Organisation, scenario.city_id))
    scenario.updated_at = utcnow()
    session.add(scenario)
    if scenario.status != S.DRAFT:
        # Applicants read the history: a change after publication is part of it.
        _event(session, scenario, actor, scenario.status, scenario.status)
    audit.record(session, actor.id, "scenario.update", "scenario", scenario.id, org_id=scenario.city_id,
                 fields=changed)
    session.commit()
    return scenario


def allowed_transitions(scenario: Scenario) -> tuple[str, ...]:
    return TRANSITIONS.get(scenario.status, ())


def accepted_count(session: Session, scenario_id: int) -> int:
    return session.exec(select(func.count()).select_from(Application).where(
        Application.scenario_id == scenario_id, Application.status == ApplicationStatus.ACCEPTED)).one()


def change_status(session: Session, actor: User, scenario_id: int, to_status: str, note: str = "",
                  today: date | None = None) -> Scenario:
    """Move a scenario along the status machine, with a reason for every refusal."""
    scenario = get_managed(session, actor, scenario_id)
    note = (note or "").strip()
    if to_status not in {s.value for s in S}:
        raise DomainError(N_("Unknown status: %(status)s"), field="to", status=(to_status or "")[:20])
    if len(note) > MAX_NOTE:
        raise DomainError(N_("At most %(n)s characters."), field="note", n=MAX_NOTE)
    if to_status not in allowed_transitions(scenario):
        raise Conflict(N_("A scenario cannot go from %(from)s to %(to)s."), field="to",
                       **{"from": scenario.status, "to": to_status})
    today = today or district_today()
    if to_status in (S.PUBLISHED, S.OPEN_CALL):
        _check_deadline_open(scenario.deadline, today)
    if to_status == S.AWARDED and accepted_count(session, scenario.id) == 0:
        raise Conflict(N_("Accept at least one application before announcing the award."), field="to")
    previous = scenario.status
    scenario.status = to_status
    scenario.updated_at = utcnow()
    if to_status == S.PUBLISHED and scenario.published_at is None:
        scenario.published_at = scenario.updated_at
    session.add(scenario)
    _event(session, scenario, actor, previous, to_status, note)
    audit.record(session, actor.id, "scenario.status", "scenario", scenario.id, org_id=scenario.city_id,
                 from_status=previous, to_status=to_status, note=note)
    session.commit()
    return scenario


def award_by_challenge(session: Session, actor: User, scenario_id: int, note: str) -> None:
    """A 揭榜挂帅 challenge on this scenario named its winner: the scenario is awarded, through the status machine
    where it allows it, else directly (its award normally follows an accepted application, which a challenge does
    not create) with an event saying why. The caller commits."""
    scenario = session.get(Scenario, scenario_id)
    if scenario is None or scenario.status == S.AWARDED:
        return
    # Services refuse before they change anything, so a refusal leaves the caller's work intact.
    try:
        change_status(session, actor, scenario_id, S.AWARDED, note=note)
        return
    except DomainError:
        pass
    previous = scenario.status
    scenario.status, scenario.updated_at = S.AWARDED, utcnow()
    session.add(scenario)
    _event(session, scenario, actor, previous, S.AWARDED, note + " — set by the challenge's sign-off")


def history(session: Session, scenario_id: int) -> list[ScenarioEvent]:
    return list(session.exec(select(ScenarioEvent).where(ScenarioEvent.scenario_id == scenario_id)
                             .order_by(ScenarioEvent.at, ScenarioEvent.id)))


# ---------------------------------------------------------------- browse
def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def visibility_class(viewer: User | None) -> Hashable:
    """Viewers that search_scenarios shows the same lists: the admin, one city's staff, everyone else."""
    if viewer is None:
        return "public"
    if viewer.role == Role.ADMIN:
        return "admin"
    if viewer.role == Role.GOV and viewer.org_id is not None:
        return ("gov", viewer.org_id)
    return "public"


def search_scenarios(session: Session, viewer: User | None, city: str | None = None,
                     industry: str | None = None, status: str | None = None, q: str | None = None,
                     sort: str | None = None, page: int = 1, per_page: int = 10) -> tuple[list[Scenario], int]:
    """One page of the scenarios the viewer may see, and the total; every term of q must match."""
    query = select(Scenario)
    if viewer is None or viewer.role != Role.ADMIN:
        own_city = viewer.org_id if viewer is not None and viewer.role == Role.GOV else None
        query = query.where(or_(Scenario.status != S.DRAFT, Scenario.city_id == own_city)
                            if own_city is not None else Scenario.status != S.DRAFT)
    if city:
        try:
            query = query.where(Scenario.city_id == city_by_code(session, city).id)
        except NotFound as err:  # as a filter, an unknown city is bad input rather than a missing page
            raise DomainError(err.message, field="city", **err.params) from err
    if industry:
        if industry not in {i.value for i in Industry}:
            raise DomainError(N_("Unknown industry: %(industry)s"), field="industry", industry=industry[:40])
        query = query.where(Scenario.industry == industry)
    if status:
        if status not in {s.value for s in S}:
            raise DomainError(N_("Unknown status: %(status)s"), field="status", status=status[:20])
        query = query.where(Scenario.status == status)
    q = (q or "").strip()
    if len(q) > MAX_QUERY:
        raise DomainError(N_("At most %(n)s characters."), field="q", n=MAX_QUERY)
    for term in normalize_text(q).split():
        query = query.where(Scenario.search_text.like(_like_pattern(term), escape="\\"))
    sort = sort or "newest"
    if sort not in SORTS:
        raise DomainError(N_("Unknown sort order: %(sort)s"), field="sort", sort=sort[:20])
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    if sort == "deadline":
        query = query.order_by(Scenario.deadline, Scenario.id)
    elif sort == "budget":
        query = query.order_by(Scenario.budget_yuan.is_(None), Scenario.budget_yuan.desc(), Scenario.id.desc())
    else:
        query = query.order_by(func.coalesce(Scenario.published_at, Scenario.created_at).desc(), Scenario.id.desc())
    page = max(1, page)
    items = list(session.exec(query.offset((page - 1) * per_page).limit(per_page)))
    return items, total


def latest_published(session: Session, limit: int = 6) -> list[Scenario]:
    return search_scenarios(session, None, per_page=limit)[0]


def counts_by_city(session: Session) -> dict[int, int]:
    """Non-draft scenarios per city, for the start page."""
    rows = session.exec(select(Scenario.city_id, func.count()).where(Scenario.status != S.DRAFT)
                        .group_by(Scenario.city_id)).all()
    return {city_id: n for city_id, n in rows}
