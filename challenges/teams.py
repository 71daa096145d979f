"""Teams: create, invite by link or e-mail, join with the captain's approval, leave, hand over the captaincy."""
from __future__ import annotations

import secrets

from sqlmodel import Session, func, select

from challenges import registration
from challenges.models import (Challenge, ChallengeStatus, Registration, Submission, Team, TeamMember, TeamStatus)
from hub.errors import Conflict, DomainError, Forbidden, N_, NotFound
from hub.membership import membership_ended, require_member
from hub.models import User

JOINABLE_STATUSES = {ChallengeStatus.OPEN}
CLOSED_TEAM_STATUSES = {TeamStatus.REJECTED, TeamStatus.CUT, TeamStatus.DISQUALIFIED}


def team_for_user(session: Session, challenge_id: int, user_id: int) -> Team | None:
    """The team the user is an active member of in this challenge."""
    return session.exec(select(Team).join(TeamMember, TeamMember.team_id == Team.id).where(
        TeamMember.challenge_id == challenge_id, TeamMember.user_id == user_id,
        TeamMember.status == "active")).first()


def membership(session: Session, challenge_id: int, user_id: int) -> TeamMember | None:
    """The user's row in this challenge's teams, active, pending or invited."""
    return session.exec(select(TeamMember).where(TeamMember.challenge_id == challenge_id,
                                                 TeamMember.user_id == user_id)).first()


def get_team(session: Session, team_id: int) -> Team:
    team = session.get(Team, team_id)
    if team is None:
        raise NotFound(N_("No such team."))
    return team


def by_invite_token(session: Session, token: str) -> Team:
    team = session.exec(select(Team).where(Team.invite_token == token)).first() if token else None
    if team is None:
        raise NotFound(N_("This invitation link is not valid (any more). Ask the captain for a new one."))
    return team


def members(session: Session, team_id: int) -> list[tuple[TeamMember, User]]:
    return list(session.exec(select(TeamMember, User).join(User, User.id == TeamMember.user_id)
                             .where(TeamMember.team_id == team_id).order_by(TeamMember.joined_at, TeamMember.id)))


def active_count(session: Session, team_id: int) -> int:
    return session.exec(select(func.count()).select_from(TeamMember).where(
        TeamMember.team_id == team_id, TeamMember.status == "active")).one()


def teams_of_user(session: Session, user_id: int) -> list[tuple[Team, TeamMember, Challenge]]:
    return list(session.exec(select(Team, TeamMember, Challenge)
                             .join(TeamMember, TeamMember.team_id == Team.id)
                             .join(Challenge, Challenge.id == Team.challenge_id)
                             .where(TeamMember.user_id == user_id).order_by(Challenge.opens_at.desc())))


def is_captain(team: Team, user: User | None) -> bool:
    # The captain acts for the lead organisation: only while an active member of it (hub.membership).
    return user is not None and team.captain_id == user.id and user.org_id == team.lead_org_id


def _require_captain(team: Team, user: User) -> None:
    if not is_captain(team, user):
        raise Forbidden(N_("Only the team's captain may do this."))


def _require_team_role(user: User) -> None:
    require_member(user, N_("Only team accounts of a company, university or lab may join a challenge."))


def _require_free(session: Session, challenge_id: int, user: User) -> None:
    if membership(session, challenge_id, user.id) is not None:
        raise Conflict(N_("You are already in a team of this challenge (one team per person per challenge)."))


def _require_room(session: Session, team: Team, challenge: Challenge) -> None:
    if active_count(session, team.id) >= challenge.max_team_size:
        raise DomainError(N_("The team is full (at most %(n)s members)."), code="team_full", n=challenge.max_team_size)


def _add_member(session: Session, team: Team, challenge: Challenge, user: User, status: str) -> TeamMember:
    """A membership waiting for the other side's yes: the captain's (pending) or the invitee's (invited)."""
    _require_free(session, challenge.id, user)
    _require_room(session, team, challenge)
    row = TeamMember(team_id=team.id, challenge_id=challenge.id, user_id=user.id, status=status)
    session.add(row)
    session.commit()
    return row


def create_team(session: Session, actor: User, challenge: Challenge, name: str) -> Team:
    _require_team_role(actor)
    name = (name or "").strip()
    if not 2 <= len(name) <= 100:
        raise DomainError(N_("A team name has 2 to 100 characters."), field="name")
    if challenge.status not in JOINABLE_STATUSES:
        raise DomainError(N_("Teams can be formed while the challenge is open."), field="name")
    _require_free(session, challenge.id, actor)
    if session.exec(select(Team.id).where(Team.challenge_id == challenge.id, Team.name == name)).first():
        raise DomainError(N_("Another team of this challenge already has this name."), field="name")
    team = Team(challenge_id=challenge.id, name=name, lead_org_id=actor.org_id, captain_id=actor.id,
                invite_token=secrets.token_urlsafe(24))
    session.add(team)
    session.flush()
    session.add(TeamMember(team_id=team.id, challenge_id=challenge.id, user_id=actor.id, role="captain",
                           status="active"))
    session.commit()
    return team


def request_join(session: Session, actor: User, token: str) -> TeamMember:
    """Ask to join through the invitation link; the captain approves."""
    team = by_invite_token(session, token)
    challenge = session.get(Challenge, team.challenge_id)
    assert challenge is not None
    _require_team_role(actor)
    if challenge.status not in JOINABLE_STATUSES or team.status in CLOSED_TEAM_STATUSES:
        raise DomainError(N_("This team does not take new members now."))
    return _add_member(session, team, challenge, actor, "pending")


def invite_by_email(session: Session, captain: User, team: Team, email: str) -> TeamMember:
    """Invite an existing team account by its e-mail address; the invitee accepts on their teams page."""
    _require_captain(team, captain)
    challenge = session.get(Challenge, team.challenge_id)
    assert challenge is not None
    user = session.exec(select(User).where(User.email == (email or "").strip().lower())).first()
    if user is None or not user.active:
        raise DomainError(N_("No account with this e-mail address. Send the invitation link instead."), field="email")
    _require_team_role(user)
    _require_free(session, challenge.id, user)
    registration.recheck_change(session, team, registration.MEMBER_JOINED, actor_id=captain.id, refusable=True,
                                joining=user, dry_run=True)
    return _add_member(session, team, challenge, user, "invited")


def _pending_row(session: Session, team: Team, user_id: int, status: str) -> TeamMember:
    row = session.exec(select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user_id,
                                                TeamMember.status == status)).first()
    if row is None:
        raise NotFound(N_("No such request."))
    return row


def approve_member(session: Session, captain: User, team: Team, user_id: int) -> TeamMember:
    _require_captain(team, captain)
    row = _pending_row(session, team, user_id, "pending")
    challenge = session.get(Challenge, team.challenge_id)
    assert challenge is not None
    _require_room(session, team, challenge)
    user = session.get(User, user_id)
    assert user is not None
    registration.recheck_change(session, team, registration.MEMBER_JOINED, actor_id=captain.id, refusable=True,
                                joining=user)
    row.status = "active"
    session.add(row)
    session.commit()
    return row


def decline_member(session: Session, captain: User, team: Team, user_id: int) -> None:
    _require_captain(team, captain)
    row = _pending_row(session, team, user_id, "pending")
    session.delete(row)
    session.commit()


def accept_invitation(session: Session, actor: User, team: Team) -> TeamMember:
    row = _pending_row(session, team, actor.id, "invited")
    challenge = session.get(Challenge, team.challenge_id)
    assert challenge is not None
    _require_room(session, team, challenge)
    registration.recheck_change(session, team, registration.MEMBER_JOINED, actor_id=actor.id, refusable=True,
                                joining=actor)
    row.status = "active"
    session.add(row)
    session.commit()
    return row


def decline_invitation(session: Session, actor: User, team: Team) -> None:
    session.delete(_pending_row(session, team, actor.id, "invited"))
    session.commit()


def leave(session: Session, actor: User, team: Team) -> bool:
    """Leave the team (or withdraw a request); a lone captain's unused team is dissolved. True if dissolved."""
    row = session.exec(select(TeamMember).where(TeamMember.team_id == team.id,
                                                TeamMember.user_id == actor.id)).first()
    if row is None:
        raise NotFound(N_("You are not in this team."))
    if team.captain_id != actor.id:
        if row.status == "active":  # leaving cannot be refused: a team that no longer passes goes back to review
            registration.recheck_change(session, team, registration.MEMBER_LEFT, actor_id=actor.id,
                                        refusable=False, leaving_user_id=actor.id)
        session.delete(row)
        session.commit()
        return False
    if active_count(session, team.id) > 1:
        raise DomainError(N_("Hand the captain role to another member before you leave."), code="captain")
    if session.exec(select(Submission.id).where(Submission.team_id == team.id)).first() is not None:
        raise DomainError(N_("A team with submissions cannot be dissolved; its results stay on record."),
                          code="has_submissions")
    for other in session.exec(select(TeamMember).where(TeamMember.team_id == team.id)):
        session.delete(other)
    for reg in session.exec(select(Registration).where(Registration.team_id == team.id)):
        session.delete(reg)
    session.flush()
    session.delete(team)
    session.commit()
    return True


def make_captain(session: Session, captain: User, team: Team, user_id: int) -> None:
    _require_captain(team, captain)
    row = _pending_row(session, team, user_id, "active")
    successor = session.get(User, user_id)
    if successor is None or successor.org_id != team.lead_org_id:
        # The captain acts for the lead organisation (is_captain): a partner's member could not.
        raise DomainError(N_("Only a member of the team's lead organisation can be its captain."), field="user_id")
    old = session.exec(select(TeamMember).where(TeamMember.team_id == team.id,
                                                TeamMember.user_id == captain.id)).one()
    registration.recheck_change(session, team, registration.CAPTAIN_CHANGED, actor_id=captain.id, refusable=True)
    old.role, row.role = "member", "captain"
    team.captain_id = user_id
    session.add_all([old, row, team])
    session.commit()


def new_invite_link(session: Session, captain: User, team: Team) -> str:
    """Replace the invitation link (the old one stops working)."""
    _require_captain(team, captain)
    team.invite_token = secrets.token_urlsafe(24)
    session.add(team)
    session.commit()
    return team.invite_token


def end_ties_to_org(session: Session, user_id: int, org_id: int) -> None:
    """A person who left or was removed from an organisation is out of every team led for it at once.

    A captain hands the team to its longest-standing active member who still belongs to the lead
    organisation; with none left, the team keeps no active member who may act for it (its results stay).
    """
    rows = session.exec(select(TeamMember, Team).join(Team, Team.id == TeamMember.team_id).where(
        TeamMember.user_id == user_id, Team.lead_org_id == org_id)).all()
    for row, team in rows:
        if row.status == "active":
            registration.recheck_change(session, team, registration.MEMBER_LEFT, actor_id=None, refusable=False,
                                        leaving_user_id=user_id)
        if team.captain_id == user_id:
            successor = session.exec(select(TeamMember).join(User, User.id == TeamMember.user_id).where(
                TeamMember.team_id == team.id, TeamMember.user_id != user_id, TeamMember.status == "active",
                User.org_id == org_id).order_by(TeamMember.joined_at, TeamMember.id)).first()
            if successor is not None:
                successor.role = "captain"
                team.captain_id = successor.user_id
                session.add_all([successor, team])
        session.delete(row)
    session.commit()


@membership_ended.connect
def _on_membership_ended(_sender: object, *, session: Session, user_id: int, org_id: int, **_: object) -> None:
    end_ties_to_org(session, user_id, org_id)
