"""揭榜 registration and the city's formal check (形式审查) before a team may submit."""
from __future__ import annotations

from typing import Any

from sqlmodel import Session, func, or_, select

from challenges.access import require_organiser
from challenges.models import Challenge, ChallengeStatus, Registration, Team, TeamMember, TeamStatus
from hub import audit
from hub.errors import DomainError, Forbidden, N_, NotFound
from hub.models import Organisation, OrgRelation, User, utcnow

Problem = tuple[str, dict[str, Any]]
RUNNING_STATUSES = (ChallengeStatus.OPEN, ChallengeStatus.FROZEN, ChallengeStatus.FINAL_REVIEW)


def for_team(session: Session, team_id: int) -> Registration | None:
    return session.exec(select(Registration).where(Registration.team_id == team_id)).first()


def get(session: Session, registration_id: int) -> Registration:
    reg = session.get(Registration, registration_id)
    if reg is None:
        raise NotFound(N_("No such registration."))
    return reg


def submit(session: Session, actor: User, team: Team, *, tech_route: str, indicator_plan: str,
           budget_yuan: int | None = None, partner_org_ids: list[int] | None = None) -> Registration:
    """The captain files (or, after a refusal, re-files) the team's 揭榜 application."""
    if team.captain_id != actor.id:
        raise Forbidden(N_("Only the team's captain may do this."))
    challenge = session.get(Challenge, team.challenge_id)
    assert challenge is not None
    if challenge.status != ChallengeStatus.OPEN:
        raise DomainError(N_("Registrations are taken while the challenge is open."))
    if team.status not in (TeamStatus.FORMING, TeamStatus.REJECTED, TeamStatus.APPLIED):
        raise DomainError(N_("This team's registration was already decided."))
    tech_route, indicator_plan = (tech_route or "").strip(), (indicator_plan or "").strip()
    if len(tech_route) < 10:
        raise DomainError(N_("Describe the technical route (at least 10 characters)."), field="tech_route")
    if len(indicator_plan) < 10:
        raise DomainError(N_("Say how each indicator will be met (at least 10 characters)."), field="indicator_plan")
    if len(tech_route) > 20000 or len(indicator_plan) > 20000:
        raise DomainError(N_("The text is too long (at most 20000 characters)."), field="tech_route")
    if budget_yuan is not None and not 0 <= budget_yuan <= 10**12:
        raise DomainError(N_("The budget is a sum in yuan, zero or more."), field="budget_yuan")
    partners = list(dict.fromkeys(int(p) for p in (partner_org_ids or [])))
    if team.lead_org_id in partners:
        raise DomainError(N_("The lead organisation cannot also be a partner."), field="partner_org_ids")
    for pid in partners:
        if session.get(Organisation, pid) is None:
            raise DomainError(N_("Unknown partner organisation."), field="partner_org_ids")
    reg = for_team(session, team.id) or Registration(team_id=team.id, challenge_id=challenge.id,
                                                     tech_route="", indicator_plan="")
    reg.tech_route, reg.indicator_plan, reg.budget_yuan = tech_route, indicator_plan, budget_yuan
    reg.partner_org_ids = partners
    reg.status, reg.reason, reg.recheck_reason, reg.submitted_at = "pending", "", "", utcnow()
    reg.reviewed_at = reg.reviewed_by = None
    team.status = TeamStatus.APPLIED
    session.add_all([reg, team])
    session.commit()
    return reg


def _member_org_ids(session: Session, team_id: int, *, joining: User | None = None,
                    leaving_user_id: int | None = None) -> set[int]:
    """The organisations of the team's active members, as a change would leave them."""
    q = select(User.org_id).join(TeamMember, TeamMember.user_id == User.id).where(
        TeamMember.team_id == team_id, TeamMember.status == "active")
    if leaving_user_id is not None:
        q = q.where(TeamMember.user_id != leaving_user_id)
    ids = {i for i in session.exec(q) if i is not None}
    if joining is not None and joining.org_id is not None:
        ids.add(joining.org_id)
    return ids


def formal_check(session: Session, reg: Registration, *, joining: User | None = None,
                 leaving_user_id: int | None = None) -> list[Problem]:
    """What the 形式审查 finds wrong: legal entity, related-party tie (of the lead, the partners and every
    member's organisation), per-applicant cap, consortium size. `joining`/`leaving_user_id` check the team
    as a change of its members would leave it."""
    team = session.get(Team, reg.team_id)
    challenge = session.get(Challenge, reg.challenge_id)
    assert team is not None and challenge is not None
    problems: list[Problem] = []
    orgs = [session.get(Organisation, team.lead_org_id)] + [session.get(Organisation, p) for p in reg.partner_org_ids]
    for org in orgs:
        if org is not None and not (org.credit_code or "").strip():
            problems.append((N_("%(org)s has no unified social credit code, so it is not an independent legal "
                                "entity."), {"org": org.name}))
    ids = sorted({o.id for o in orgs if o is not None}
                 | _member_org_ids(session, team.id, joining=joining, leaving_user_id=leaving_user_id))
    ties = session.exec(select(OrgRelation).where(or_(
        (OrgRelation.org_id.in_(ids)) & (OrgRelation.related_org_id == challenge.city_id),
        (OrgRelation.org_id == challenge.city_id) & (OrgRelation.related_org_id.in_(ids))))).all()
    for tie in ties:
        other = tie.org_id if tie.org_id != challenge.city_id else tie.related_org_id
        org = session.get(Organisation, other)
        problems.append((N_("%(org)s has a related-party tie (%(kind)s) to the city that posts this challenge."),
                         {"org": org.name if org else other, "kind": tie.kind}))
    led = session.exec(select(func.count()).select_from(Team).join(Challenge, Challenge.id == Team.challenge_id).where(
        Team.lead_org_id == team.lead_org_id, Team.id != team.id,
        Team.status.in_((TeamStatus.APPROVED,)), Challenge.status.in_(RUNNING_STATUSES))).one()
    if led >= challenge.per_applicant_cap:
        lead = orgs[0]
        problems.append((N_("%(org)s already leads %(n)s running projects; the cap is %(cap)s."),
                         {"org": lead.name if lead else "", "n": led, "cap": challenge.per_applicant_cap}))
    if len(reg.partner_org_ids) > challenge.consortium_max_partners:
        problems.append((N_("The consortium has %(n)s partners; at most %(max)s are allowed besides the lead."),
                         {"n": len(reg.partner_org_ids), "max": challenge.consortium_max_partners}))
    return problems


# What changed in a registered team, as the team and the city read it when the change sent it back to review.
MEMBER_JOINED = N_("a member joined")
MEMBER_LEFT = N_("a member left")
CAPTAIN_CHANGED = N_("the captain changed")


def _key(problem: Problem) -> tuple[str, tuple[tuple[str, str], ...]]:
    msg, params = problem
    return msg, tuple(sorted((k, str(v)) for k, v in params.items()))


def recheck_change(session: Session, team: Team, change: str, *, actor_id: int | None, refusable: bool,
                   joining: User | None = None, leaving_user_id: int | None = None, dry_run: bool = False) -> None:
    """Every change to a team whose registration the city approved runs the formal check's rules again,
    on the team as the change will leave it; call it before applying the change.

    A refusable change (the captain's or the joining person's own act) that breaks a rule is refused with
    the reason. Otherwise the change goes ahead and, where the team no longer passes, the registration goes
    back to review (pending, the team may not submit) with the change named for the team and the city.
    Stages its own changes; the caller commits them with the team's change. `dry_run` only refuses (an
    invitation: the change itself comes with its acceptance).
    """
    reg = for_team(session, team.id)
    if reg is None or reg.status != "approved" or team.status != TeamStatus.APPROVED:
        return  # a pending registration is checked with its members at the review; a closed team is out
    after = formal_check(session, reg, joining=joining, leaving_user_id=leaving_user_id)
    if not after:
        return
    if refusable:
        before = {_key(p) for p in formal_check(session, reg)}
        added = [p for p in after if _key(p) not in before]
        if added:
            msg, params = added[0]
            raise DomainError(msg, code="formal_check", **params)
    if dry_run:
        return
    challenge = session.get(Challenge, reg.challenge_id)
    assert challenge is not None
    reg.status, reg.recheck_reason = "pending", change
    reg.reviewed_at = reg.reviewed_by = None
    team.status = TeamStatus.APPLIED
    session.add_all([reg, team])
    audit.record(session, actor_id, "registration.recheck", "registration", reg.id, challenge.city_id,
                 team=team.name, change=change, problems=[msg % params for msg, params in after])


def review(session: Session, actor: User, reg: Registration, *, approve: bool, reason: str = "") -> Registration:
    """The city approves (only when the formal check finds nothing) or refuses with a reason."""
    challenge = session.get(Challenge, reg.challenge_id)
    team = session.get(Team, reg.team_id)
    assert challenge is not None and team is not None
    require_organiser(actor, challenge)
    if reg.status != "pending":
        raise DomainError(N_("This registration was already decided."))
    reason = (reason or "").strip()
    if len(reason) > 1000:
        raise DomainError(N_("The reason may have at most %(n)s characters."), field="reason", n=1000)
    if approve:
        problems = formal_check(session, reg)
        if problems:
            msg, params = problems[0]
            raise DomainError(msg, field="reason", code="formal_check", **params)
    elif not reason:
        raise DomainError(N_("Give the reason for the refusal; the team will read it."), field="reason")
    reg.status = "approved" if approve else "rejected"
    reg.reason, reg.recheck_reason = reason, ""
    reg.reviewed_at, reg.reviewed_by = utcnow(), actor.id
    team.status = TeamStatus.APPROVED if approve else TeamStatus.REJECTED
    team.reason = "" if approve else reason
    session.add_all([reg, team])
    audit.record(session, actor.id, "registration.approve" if approve else "registration.reject", "registration",
                 reg.id, challenge.city_id, team=team.name, reason=reason)
    session.commit()
    return reg


def for_challenge(session: Session, challenge_id: int) -> list[tuple[Registration, Team, Organisation]]:
    return list(session.exec(select(Registration, Team, Organisation)
                             .join(Team, Team.id == Registration.team_id)
                             .join(Organisation, Organisation.id == Team.lead_org_id)
                             .where(Registration.challenge_id == challenge_id)
                             .order_by(Registration.submitted_at)))
