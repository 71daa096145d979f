"""Who may see and do what on a challenge: organisers, the judge panel, the platform admin."""
from __future__ import annotations

from sqlmodel import Session, select

from challenges.models import Challenge, ConflictDeclaration, JudgeAssignment, TeamMember
from hub.errors import Forbidden, N_
from hub.models import Role, User


def is_admin(user: User | None) -> bool:
    return user is not None and user.role == Role.ADMIN


def is_organiser(user: User | None, challenge: Challenge) -> bool:
    """Government staff of the city that owns the challenge."""
    return user is not None and user.role == Role.GOV and user.org_id == challenge.city_id


def is_panel_judge(session: Session, user: User | None, challenge: Challenge) -> bool:
    if user is None or user.role != Role.JUDGE:
        return False
    return session.exec(select(JudgeAssignment.id).where(JudgeAssignment.challenge_id == challenge.id,
                                                         JudgeAssignment.judge_id == user.id)).first() is not None


def is_privileged(session: Session, user: User | None, challenge: Challenge) -> bool:
    """Sees private boards, live scores and every submission: organisers, panel judges, admin."""
    return is_admin(user) or is_organiser(user, challenge) or is_panel_judge(session, user, challenge)


def require_organiser(user: User | None, challenge: Challenge) -> None:
    if not is_organiser(user, challenge):
        raise Forbidden(N_("Only government staff of the city that owns this challenge may do this."))


def require_judge(session: Session, user: User | None, challenge: Challenge) -> None:
    if not is_panel_judge(session, user, challenge):
        raise Forbidden(N_("Only judges on this challenge's panel may do this."))


def require_organiser_or_judge(session: Session, user: User | None, challenge: Challenge) -> None:
    if not (is_organiser(user, challenge) or is_panel_judge(session, user, challenge)):
        raise Forbidden(N_("Only the organisers and the judge panel may do this."))


def active_team_id(session: Session, challenge_id: int, user_id: int | None) -> int | None:
    if user_id is None:
        return None
    return session.exec(select(TeamMember.team_id).where(TeamMember.challenge_id == challenge_id,
                                                         TeamMember.user_id == user_id,
                                                         TeamMember.status == "active")).first()


def conflicted_team_ids(session: Session, challenge_id: int, judge_id: int) -> set[int]:
    return set(session.exec(select(ConflictDeclaration.team_id).where(
        ConflictDeclaration.challenge_id == challenge_id, ConflictDeclaration.judge_id == judge_id)))


def withheld_team_ids(session: Session, user: User | None, challenge: Challenge) -> set[int]:
    """Teams whose data this privileged viewer must not read: a panel judge's declared conflicts."""
    if not is_panel_judge(session, user, challenge):
        return set()
    assert user is not None
    return conflicted_team_ids(session, challenge.id, user.id)


def official_reader_of_team(session: Session, user: User | None, challenge: Challenge, team_id: int) -> bool:
    """Reads a team's page, submissions, logs and private scores by office: the admin, the organisers, and
    panel judges without a declared conflict of interest with that team (teams read their own data as
    members, which callers check themselves)."""
    if is_admin(user) or is_organiser(user, challenge):
        return True
    return is_panel_judge(session, user, challenge) and team_id not in withheld_team_ids(session, user, challenge)
