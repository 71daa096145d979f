"""揭榜申报: teams apply to an open scenario, withdraw; the owning city accepts or rejects with a reason.

The first application to a `published` scenario moves it to `open_call` (揭榜中): from then on the list
shows that the challenge has been taken up. The move is recorded in the publication history with the
applicant as actor, like any other status change.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, or_, select

from hub import audit, membership
from hub.errors import Conflict, DomainError, Forbidden, N_, NotFound
from hub.models import Organisation, OrgRelation, Role, User, utcnow
from marketplace.attachments import MAX_FILES, AttachmentStore, StoredFile, Upload
from marketplace.models import (ACTIVE_APPLICATION_STATUSES, FIRST_APPLICATION_NOTE, Application, ApplicationStatus,
                                Attachment, Scenario, ScenarioEvent, ScenarioStatus)
from marketplace.scenarios import (MAX_BUDGET, MAX_NOTE, MAX_TEXT, OPEN_STATUSES, can_manage, district_today,
                                   get_managed, get_visible)

A = ApplicationStatus
S = ScenarioStatus
# A city reviews while the call runs and during the review; after the award the list is final.
REVIEWABLE_SCENARIO_STATUSES = (S.PUBLISHED, S.OPEN_CALL, S.UNDER_REVIEW)
WITHDRAWABLE = (A.SUBMITTED, A.ACCEPTED)

# field -> (required, max length)
LIMITS: dict[str, tuple[bool, int]] = {
    "proposal": (True, MAX_TEXT),
    "tech_route": (True, MAX_TEXT),
    "indicator_plan": (True, MAX_TEXT),
}


@dataclass
class ApplicationInput:
    """A 揭榜意向书: the proposal, the technical route, how each indicator will be met, the budget."""

    proposal: str = ""
    tech_route: str = ""
    indicator_plan: str = ""
    budget_yuan: int | None = None


def _validate(data: ApplicationInput) -> ApplicationInput:
    out = ApplicationInput(budget_yuan=data.budget_yuan)
    for name, (required, limit) in LIMITS.items():
        value = getattr(data, name)
        if value is not None and not isinstance(value, str):
            raise DomainError(N_("This field must be text."), field=name)
        value = (value or "").strip()
        if required and not value:
            raise DomainError(N_("This field is required."), field=name)
        if len(value) > limit:
            raise DomainError(N_("At most %(n)s characters."), field=name, n=limit)
        setattr(out, name, value)
    if out.budget_yuan is not None:
        if isinstance(out.budget_yuan, bool) or not isinstance(out.budget_yuan, int):
            raise DomainError(N_("Enter the budget as a whole number of yuan."), field="budget_yuan")
        if out.budget_yuan < 0:
            raise DomainError(N_("The budget cannot be negative."), field="budget_yuan")
        if out.budget_yuan > MAX_BUDGET:
            raise DomainError(N_("The budget may be at most %(n)s yuan."), field="budget_yuan", n=MAX_BUDGET)
    return out


def active_application(session: Session, org_id: int, scenario_id: int) -> Application | None:
    return session.exec(select(Application).where(
        Application.scenario_id == scenario_id, Application.applicant_org_id == org_id,
        Application.status.in_(ACTIVE_APPLICATION_STATUSES))).first()


def check_can_apply(session: Session, actor: User | None, scenario: Scenario, today: date | None = None) -> None:
    """Raise the reason a user cannot apply to this scenario now; return when they can."""
    membership.require_member(actor, N_("Only team accounts of a company, university or lab can apply."))
    if scenario.status not in OPEN_STATUSES:
        raise Conflict(N_("This scenario is not taking applications."))
    if scenario.deadline < (today or district_today()):
        raise Conflict(N_("The application deadline %(deadline)s has passed."), deadline=scenario.deadline.isoformat())
    if active_application(session, actor.org_id, scenario.id) is not None:
        raise Conflict(N_("Your organisation has already applied to this scenario."))


def apply(session: Session, actor: User, scenario_id: int, data: ApplicationInput, uploads: list[Upload],
          store: AttachmentStore | None, today: date | None = None) -> Application:
    """File a 揭榜 application with its attachments; nothing is kept when any part is refused."""
    scenario = get_visible(session, actor, scenario_id)
    check_can_apply(session, actor, scenario, today)
    data = _validate(data)
    uploads = [u for u in uploads if u.filename]
    if len(uploads) > MAX_FILES:
        raise DomainError(N_("At most %(n)s attachments."), field="attachments", n=MAX_FILES)
    if uploads and store is None:
        raise ValueError("uploads need an AttachmentStore")
    for upload in uploads:
        store.check_name(upload.filename)  # type: ignore[union-attr]  # refuse a wrong type before storing anything
    stored: list[StoredFile] = []
    try:
        for upload in uploads:
            stored.append(store.save(upload))  # type: ignore[union-attr]
        application = Application(scenario_id=scenario.id, applicant_org_id=actor.org_id, submitted_by=actor.id,
                                  proposal=data.proposal, tech_route=data.tech_route,
                                  indicator_plan=data.indicator_plan, budget_yuan=data.budget_yuan)
        session.add(application)
        session.flush()
        for f in stored:
            session.add(Attachment(application_id=application.id, filename=f.filename, stored_name=f.stored_name,
                                   content_type=f.content_type, size=f.size, sha256=f.sha256))
        if scenario.status == S.PUBLISHED:
            scenario.status = S.OPEN_CALL
            scenario.updated_at = utcnow()
            session.add(scenario)
            session.add(ScenarioEvent(scenario_id=scenario.id, actor_id=actor.id, from_status=S.PUBLISHED,
                                      to_status=S.OPEN_CALL, note=FIRST_APPLICATION_NOTE))
        session.commit()
    except IntegrityError as err:
        session.rollback()
        for f in stored:
            store.discard(f.stored_name)  # type: ignore[union-attr]
        # The partial unique index caught a second active application sent at the same moment.
        raise Conflict(N_("Your organisation has already applied to this scenario.")) from err
    except BaseException:
        session.rollback()
        for f in stored:
            store.discard(f.stored_name)  # type: ignore[union-attr]
        raise
    return application


def get_visible_application(session: Session, viewer: User | None, application_id: int) -> Application:
    """The applicant organisation's members, the owning city and the admin see an application."""
    application = session.get(Application, application_id)
    if application is None or viewer is None:
        raise NotFound(N_("This application does not exist."))
    if viewer.role == Role.TEAM and viewer.org_id == application.applicant_org_id:
        return application
    scenario = session.get(Scenario, application.scenario_id)
    if scenario is not None and can_manage(viewer, scenario):
        return application
    raise Forbidden(N_("Only the applicant and the city that owns the scenario can see this application."))


def withdraw(session: Session, actor: User, application_id: int) -> Application:
    application = get_visible_application(session, actor, application_id)
    if actor.role != Role.TEAM or actor.org_id != application.applicant_org_id:
        raise Forbidden(N_("Only the applicant can withdraw an application."))
    if application.status not in WITHDRAWABLE:
        raise Conflict(N_("An application that is %(status)s cannot be withdrawn."), status=application.status)
    scenario = session.get(Scenario, application.scenario_id)
    if scenario is not None and scenario.status in (S.AWARDED, S.CLOSED):
        raise Conflict(N_("The call is over; the application can no longer be withdrawn."))
    application.status = A.WITHDRAWN
    session.add(application)
    session.commit()
    return application


def review(session: Session, actor: User, application_id: int, decision: str, reason: str = "") -> Application:
    """The owning city accepts or rejects a submitted application; a rejection needs a reason."""
    application = session.get(Application, application_id)
    if application is None:
        raise NotFound(N_("This application does not exist."))
    scenario = get_managed(session, actor, application.scenario_id)
    reason = (reason or "").strip()
    if decision not in ("accept", "reject"):
        raise DomainError(N_("Choose accept or reject."), field="decision")
    if decision == "reject" and not reason:
        raise DomainError(N_("Give the applicant a reason for the rejection."), field="reason")
    if len(reason) > MAX_NOTE:
        raise DomainError(N_("At most %(n)s characters."), field="reason", n=MAX_NOTE)
    if application.status != A.SUBMITTED:
        raise Conflict(N_("This application was already decided (%(status)s)."), status=application.status)
    if scenario.status not in REVIEWABLE_SCENARIO_STATUSES:
        raise Conflict(N_("Applications to a scenario that is %(status)s can no longer be reviewed."),
                       status=scenario.status)
    application.status = A.ACCEPTED if decision == "accept" else A.REJECTED
    application.reason = reason
    application.reviewed_at = utcnow()
    application.reviewed_by = actor.id
    session.add(application)
    audit.record(session, actor.id, f"application.{decision}", "application", application.id,
                 org_id=scenario.city_id, scenario_id=scenario.id, applicant_org_id=application.applicant_org_id,
                 reason=reason)
    session.commit()
    return application


def applications_for(session: Session, viewer: User, status: str | None = None) -> list[Application]:
    """A team sees its organisation's applications; government staff those to their city's scenarios."""
    query = select(Application)
    if viewer.role == Role.TEAM and viewer.org_id is not None:
        query = query.where(Application.applicant_org_id == viewer.org_id)
    elif viewer.role == Role.GOV and viewer.org_id is not None:
        query = query.join(Scenario, Scenario.id == Application.scenario_id).where(Scenario.city_id == viewer.org_id)
    elif viewer.role != Role.ADMIN:
        return []
    if status:
        if status not in {s.value for s in A}:
            raise DomainError(N_("Unknown status: %(status)s"), field="status", status=status[:20])
        query = query.where(Application.status == status)
    return list(session.exec(query.order_by(Application.created_at.desc(), Application.id.desc())))


def applications_to(session: Session, actor: User, scenario_id: int) -> list[Application]:
    """Every application to one scenario, for the city that owns it."""
    get_managed(session, actor, scenario_id)
    return list(session.exec(select(Application).where(Application.scenario_id == scenario_id)
                             .order_by(Application.created_at, Application.id)))


def attachments_of(session: Session, application_ids: list[int]) -> dict[int, list[Attachment]]:
    out: dict[int, list[Attachment]] = {i: [] for i in application_ids}
    if application_ids:
        for att in session.exec(select(Attachment).where(Attachment.application_id.in_(application_ids))
                                .order_by(Attachment.id)):
            out[att.application_id].append(att)
    return out


def attachment_for_download(session: Session, viewer: User | None, attachment_id: int,
                            store: AttachmentStore) -> tuple[Attachment, Path]:
    """Only the applicant organisation and the government staff of the owning city may download."""
    att = session.get(Attachment, attachment_id)
    application = session.get(Application, att.application_id) if att is not None else None
    if att is None or application is None or viewer is None:
        raise NotFound(N_("This file does not exist."))
    scenario = session.get(Scenario, application.scenario_id)
    applicant = viewer.role == Role.TEAM and viewer.org_id == application.applicant_org_id
    city = viewer.role == Role.GOV and scenario is not None and viewer.org_id == scenario.city_id
    if not (applicant or city):
        raise Forbidden(N_("Only the applicant and the city that owns the scenario can download this file."))
    path = store.path(att.stored_name)
    if not path.is_file():
        raise NotFound(N_("This file does not exist."))
    return att, path


def is_related_party(session: Session, org_id: int, city_id: int) -> bool:
    """A declared tie between the applicant and the city (形式审查 flags it for the reviewer)."""
    return session.exec(select(OrgRelation).where(or_(
        (OrgRelation.org_id == org_id) & (OrgRelation.related_org_id == city_id),
        (OrgRelation.org_id == city_id) & (OrgRelation.related_org_id == org_id)))).first() is not None


def organisations(session: Session, ids: set[int]) -> dict[int, Organisation]:
    if not ids:
        return {}
    return {o.id: o for o in session.exec(select(Organisation).where(Organisation.id.in_(ids)))}
