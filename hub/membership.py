"""Organisation membership: ask to join, invite, approve, refuse, leave, remove, administrators. No Flask here.

A person holds at most one membership that is pending, invited or active. `User.org_id` is the organisation
of the person's ACTIVE membership and is written only here: every organisation-scoped rule of the other
packages asks for it, so a person who is pending, refused, gone or removed holds no organisation rights, on
the very next request of every open session and API token (the user loader re-reads per data version).
"""
from __future__ import annotations

import re

from blinker import Namespace
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from hub import audit
from hub.errors import Conflict, DomainError, Forbidden, N_, NotFound
from hub.models import (OPEN_MEMBERSHIP, Membership, MembershipStatus as M, Organisation, OrgKind, Role, User,
                        utcnow)

EMAIL_MAX = 254
REASON_MAX = 500

GOV_KINDS = {OrgKind.CITY, OrgKind.DISTRICT}
TEAM_KINDS = {OrgKind.COMPANY, OrgKind.UNIVERSITY, OrgKind.LAB}
# Organisations a person may ask to join (or be invited to) on the web; the computing center's staff are
# named by the platform admin.
JOINABLE_KINDS = GOV_KINDS | TEAM_KINDS
# Platform roles that keep their role when a membership becomes active; team and gov follow the organisation.
KEPT_ROLES = {Role.ADMIN, Role.JUDGE, Role.OPERATOR}


EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")

# Which organisation kinds each role may belong to.
ROLE_ORG_KINDS: dict[str, set[str]] = {
    Role.GOV: {OrgKind.CITY, OrgKind.DISTRICT},
    Role.TEAM: {OrgKind.COMPANY, OrgKind.UNIVERSITY, OrgKind.LAB},
    Role.JUDGE: {OrgKind.UNIVERSITY, OrgKind.LAB, OrgKind.COMPANY, OrgKind.CENTER, OrgKind.DISTRICT},
    Role.OPERATOR: {OrgKind.CENTER},
    Role.ADMIN: {OrgKind.CENTER, OrgKind.DISTRICT},
}


def org_by_code(session: Session, code: str) -> Organisation:
    org = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if org is None:
        raise NotFound(N_("Unknown organisation: %(org)s"), field="org", org=code)
    return org


# Sent after a membership ended by leaving or removal is committed: sender=None, user_id=, org_id=.
# Packages holding per-person ties to an organisation (e.g. teams led for it) may end them here.
membership_ended = Namespace().signal("membership-ended")


# ---------------------------------------------------------------- reading
NOT_A_MEMBER = N_("You are not yet an approved member of any organisation. Ask to join your company, university "
                  "or lab on your account page; its administrator approves you, and then you can act for it.")


def require_member(user: User | None, refusal: str) -> None:
    """Raise Forbidden unless `user` is a team account with an active membership; a team account without
    one is told how to get it, anyone else gets `refusal` (the caller's own rule)."""
    if user is not None and user.role == Role.TEAM and user.org_id is None:
        raise Forbidden(NOT_A_MEMBER)
    if user is None or user.role != Role.TEAM:
        raise Forbidden(refusal)


def open_membership(session: Session, user_id: int) -> Membership | None:
    """The person's pending request, invitation or active membership (at most one)."""
    return session.exec(select(Membership).where(Membership.user_id == user_id,
                                                 Membership.status.in_(OPEN_MEMBERSHIP))).first()


def active_membership(session: Session, user_id: int) -> Membership | None:
    return session.exec(select(Membership).where(Membership.user_id == user_id,
                                                 Membership.status == M.ACTIVE)).first()


def invitations_for(session: Session, user: User) -> list[Membership]:
    """Open invitations addressed to this person (by account or by e-mail address)."""
    return list(session.exec(select(Membership).where(
        Membership.status == M.INVITED,
        (Membership.user_id == user.id) | ((Membership.user_id == None) & (Membership.email == user.email)),  # noqa: E711
    ).order_by(Membership.requested_at)))


def history_of(session: Session, user_id: int, limit: int = 10) -> list[Membership]:
    """The person's closed memberships and requests, newest first (refusals show their reason)."""
    return list(session.exec(select(Membership).where(Membership.user_id == user_id,
                                                      Membership.status.not_in(OPEN_MEMBERSHIP))
                             .order_by(Membership.requested_at.desc(), Membership.id.desc()).limit(limit)))


def members_of(session: Session, org_id: int, statuses: tuple[str, ...] = OPEN_MEMBERSHIP
               ) -> list[tuple[Membership, User | None]]:
    """Memberships of one organisation in the given states, with their person (None: no account yet)."""
    return list(session.exec(select(Membership, User).join(User, User.id == Membership.user_id, isouter=True)
                             .where(Membership.org_id == org_id, Membership.status.in_(statuses))
                             .order_by(Membership.requested_at, Membership.id)))


def joinable_organisations(session: Session) -> list[Organisation]:
    return list(session.exec(select(Organisation).where(Organisation.kind.in_(JOINABLE_KINDS))
                             .order_by(Organisation.kind, Organisation.name)))


def is_org_admin(session: Session, user: User | None, org_id: int | None) -> bool:
    """An active administrator of this organisation (the platform admin is not one by that alone)."""
    if user is None or user.id is None or org_id is None or user.org_id != org_id:
        return False
    row = active_membership(session, user.id)
    return row is not None and row.org_id == org_id and row.is_admin


def can_manage(session: Session, user: User | None, org_id: int | None) -> bool:
    """May approve, refuse, invite and remove for this organisation."""
    return is_org_admin(session, user, org_id)


def managed_org_id(session: Session, user: User | None) -> int | None:
    """The organisation this person administers, if any."""
    if user is None or user.id is None or user.org_id is None:
        return None
    return user.org_id if is_org_admin(session, user, user.org_id) else None


# ---------------------------------------------------------------- helpers
def _org(session: Session, org_id: int | None) -> Organisation:
    org = session.get(Organisation, org_id) if org_id is not None else None
    if org is None:
        raise NotFound(N_("Unknown organisation."), field="org")
    return org


def _fits(user: User, org: Organisation) -> bool:
    if user.role in (Role.TEAM, Role.GOV):
        return org.kind in JOINABLE_KINDS
    return org.kind in ROLE_ORG_KINDS[Role(user.role)]


def _require_fit(user: User, org: Organisation) -> None:
    if not _fits(user, org):
        raise DomainError(N_("A %(role)s account cannot belong to %(org)s."), field="org", role=user.role,
                          org=org.name)


def _require_free(session: Session, user: User, except_id: int | None = None) -> None:
    current = open_membership(session, user.id)  # type: ignore[arg-type]
    if current is None or current.id == except_id:
        return
    org = session.get(Organisation, current.org_id)
    name = org.name if org else "?"
    if current.status == M.ACTIVE:
        raise Conflict(N_("You already belong to %(org)s. Leave it first on your account page."), field="org",
                       org=name)
    if current.status == M.PENDING:
        raise Conflict(N_("You have already asked to join %(org)s. Withdraw that request first on your account "
                          "page."), field="org", org=name)
    raise Conflict(N_("%(org)s has invited you. Accept or decline that invitation first on your account page."),
                   field="org", org=name)


def _require_admin(session: Session, actor: User, org_id: int) -> None:
    if not can_manage(session, actor, org_id):
        raise Forbidden(N_("Only an administrator of this organisation may do this."))


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= REASON_MAX:
        raise DomainError(N_("Give a reason of 2 to %(n)s characters; the person will read it."), field="reason",
                          n=REASON_MAX)
    return reason


def _row(session: Session, membership_id: int, org_id: int | None = None) -> Membership:
    row = session.get(Membership, membership_id)
    if row is None or (org_id is not None and row.org_id != org_id):
        raise NotFound(N_("No such membership or request."))
    return row


def _activate(session: Session, row: Membership, user: User, org: Organisation) -> None:
    row.status = M.ACTIVE
    row.user_id = user.id
    row.email = user.email
    user.org_id = org.id
    if user.role not in KEPT_ROLES:
        user.role = Role.GOV if org.kind in GOV_KINDS else Role.TEAM
    session.add(row)
    session.add(user)


def _end(session: Session, row: Membership, status: str, actor_id: int | None, reason: str = "") -> None:
    """Close a membership; an active one takes the person's organisation rights with it at once."""
    was_active = row.status == M.ACTIVE
    row.status = status
    row.reason = reason
    row.decided_at = utcnow()
    row.decided_by = actor_id
    row.is_admin = False if was_active else row.is_admin
    session.add(row)
    if was_active and row.user_id is not None:
        user = session.get(User, row.user_id)
        if user is not None and user.org_id == row.org_id:
            user.org_id = None
            session.add(user)


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError as err:
        # The partial unique index caught a second open membership made at the same moment.
        session.rollback()
        raise Conflict(N_("You already have a membership, request or invitation. Look at your account page."),
                       field="org") from err


# ---------------------------------------------------------------- the person's side
def request_to_join(session: Session, user: User, org_id: int) -> Membership:
    """Ask to join; nothing is granted until the organisation's administrator approves."""
    org = _org(session, org_id)
    if org.kind not in JOINABLE_KINDS:
        raise DomainError(N_("%(org)s does not take requests to join. Ask the platform administrator."),
                          field="org", org=org.name)
    _require_fit(user, org)
    _require_free(session, user)
    row = Membership(user_id=user.id, email=user.email, org_id=org.id, status=M.PENDING)
    session.add(row)
    session.flush()
    audit.record(session, user.id, "membership.request", "membership", row.id, org_id=org.id, user_id=user.id)
    _commit(session)
    return row


def withdraw_request(session: Session, user: User, membership_id: int) -> Membership:
    row = _row(session, membership_id)
    if row.user_id != user.id or row.status != M.PENDING:
        raise NotFound(N_("No such membership or request."))
    _end(session, row, M.WITHDRAWN, user.id)
    audit.record(session, user.id, "membership.withdraw", "membership", row.id, org_id=row.org_id, user_id=user.id)
    session.commit()
    return row


def _own_invitation(session: Session, user: User, membership_id: int) -> Membership:
    row = _row(session, membership_id)
    mine = row.user_id == user.id or (row.user_id is None and row.email == user.email)
    if not mine or row.status != M.INVITED:
        raise NotFound(N_("This invitation does not exist (any more)."))
    return row


def accept_invitation(session: Session, user: User, membership_id: int) -> Membership:
    row = _own_invitation(session, user, membership_id)
    org = _org(session, row.org_id)
    _require_fit(user, org)
    _require_free(session, user, except_id=row.id)
    row.decided_at = utcnow()
    row.decided_by = user.id
    _activate(session, row, user, org)
    audit.record(session, user.id, "membership.accept", "membership", row.id, org_id=org.id, user_id=user.id)
    _commit(session)
    return row


def decline_invitation(session: Session, user: User, membership_id: int) -> Membership:
    row = _own_invitation(session, user, membership_id)
    row.user_id = user.id
    _end(session, row, M.DECLINED, user.id)
    audit.record(session, user.id, "membership.decline", "membership", row.id, org_id=row.org_id, user_id=user.id)
    session.commit()
    return row


def leave(session: Session, user: User) -> Membership:
    """End one's own active membership; the organisation's data is out of reach from the next request on."""
    row = active_membership(session, user.id)  # type: ignore[arg-type]
    if row is None:
        raise NotFound(N_("You do not belong to an organisation."))
    _end(session, row, M.LEFT, user.id)
    audit.record(session, user.id, "membership.leave", "membership", row.id, org_id=row.org_id, user_id=user.id)
    session.commit()
    membership_ended.send(None, session=session, user_id=user.id, org_id=row.org_id)
    return row


def link_invitations(session: Session, user: User) -> list[Membership]:
    """A new account takes over the invitations sent to its e-mail address before it existed (caller commits)."""
    rows = list(session.exec(select(Membership).where(Membership.status == M.INVITED, Membership.user_id == None,  # noqa: E711
                                                      Membership.email == user.email)))
    for row in rows[:1]:  # at most one open membership per person; the service keeps one per address too
        row.user_id = user.id
        session.add(row)
    return rows[:1]


# ---------------------------------------------------------------- the organisation administrator's side
def invite(session: Session, admin: User, org_id: int, email: str) -> Membership:
    """Invite a person by e-mail address; an address with no account yet is linked when it registers."""
    _require_admin(session, admin, org_id)
    org = _org(session, org_id)
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email) or len(email) > EMAIL_MAX:
        raise DomainError(N_("Enter a valid e-mail address."), field="email")
    user = session.exec(select(User).where(User.email == email)).first()
    if user is not None:
        current = open_membership(session, user.id)  # type: ignore[arg-type]
        if current is not None:
            if current.org_id == org.id:
                raise Conflict(N_("This person is already a member, has asked to join or is invited."),
                               field="email")
            raise Conflict(N_("This person belongs to, or has an open request or invitation with, another "
                              "organisation."), field="email")
        _require_fit(user, org)
    elif session.exec(select(Membership.id).where(Membership.status == M.INVITED, Membership.user_id == None,  # noqa: E711
                                                  Membership.email == email)).first() is not None:
        raise Conflict(N_("This address has already been invited by an organisation."), field="email")
    row = Membership(user_id=user.id if user else None, email=email, org_id=org.id, status=M.INVITED,
                     invited_by=admin.id)
    session.add(row)
    session.flush()
    audit.record(session, admin.id, "membership.invite", "membership", row.id, org_id=org.id, email=email)
    _commit(session)
    return row


def cancel_invitation(session: Session, admin: User, org_id: int, membership_id: int) -> Membership:
    _require_admin(session, admin, org_id)
    row = _row(session, membership_id, org_id)
    if row.status != M.INVITED:
        raise Conflict(N_("Only an open invitation can be cancelled."))
    _end(session, row, M.CANCELLED, admin.id)
    audit.record(session, admin.id, "membership.cancel", "membership", row.id, org_id=org_id, email=row.email)
    session.commit()
    return row


def approve(session: Session, admin: User, org_id: int, membership_id: int) -> Membership:
    _require_admin(session, admin, org_id)
    row = _row(session, membership_id, org_id)
    if row.status != M.PENDING:
        raise Conflict(N_("Only a pending request can be approved."))
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise NotFound(N_("No such membership or request."))
    org = _org(session, org_id)
    row.decided_at = utcnow()
    row.decided_by = admin.id
    _activate(session, row, user, org)
    audit.record(session, admin.id, "membership.approve", "membership", row.id, org_id=org_id, user_id=user.id)
    _commit(session)
    return row


def refuse(session: Session, admin: User, org_id: int, membership_id: int, reason: str) -> Membership:
    _require_admin(session, admin, org_id)
    row = _row(session, membership_id, org_id)
    if row.status != M.PENDING:
        raise Conflict(N_("Only a pending request can be refused."))
    reason = _reason(reason)
    _end(session, row, M.REFUSED, admin.id, reason)
    audit.record(session, admin.id, "membership.refuse", "membership", row.id, org_id=org_id,
                 user_id=row.user_id, reason=reason)
    session.commit()
    return row


def remove(session: Session, admin: User, org_id: int, membership_id: int, reason: str) -> Membership:
    """End another member's membership; it takes effect on that person's very next request."""
    _require_admin(session, admin, org_id)
    row = _row(session, membership_id, org_id)
    if row.status != M.ACTIVE:
        raise Conflict(N_("Only an active member can be removed."))
    if row.user_id == admin.id:
        raise DomainError(N_("To end your own membership, leave the organisation on your account page."))
    reason = _reason(reason)
    _end(session, row, M.REMOVED, admin.id, reason)
    audit.record(session, admin.id, "membership.remove", "membership", row.id, org_id=org_id,
                 user_id=row.user_id, reason=reason)
    session.commit()
    membership_ended.send(None, session=session, user_id=row.user_id, org_id=org_id)
    return row


def set_admin(session: Session, admin: User, org_id: int, membership_id: int, is_admin: bool) -> Membership:
    _require_admin(session, admin, org_id)
    row = _row(session, membership_id, org_id)
    if row.status != M.ACTIVE:
        raise Conflict(N_("Only an active member can be an administrator."))
    if row.user_id == admin.id and not is_admin:
        raise DomainError(N_("You cannot take away your own administrator rights; ask another administrator."))
    row.is_admin = is_admin
    session.add(row)
    audit.record(session, admin.id, "membership.set_admin", "membership", row.id, org_id=org_id,
                 user_id=row.user_id, is_admin=is_admin)
    session.commit()
    return row


# ---------------------------------------------------------------- the platform admin's side
def grant(session: Session, user: User, org: Organisation, actor_id: int | None = None,
          is_admin: bool = False, record: bool = True) -> Membership:
    """An active membership granted by the platform admin (CLI create-user, demo data); the caller commits.

    `record=False` leaves the audit line to the caller (create_user: the account's creation is the act)."""
    _require_fit(user, org)
    _require_free(session, user)
    row = Membership(user_id=user.id, email=user.email, org_id=org.id, status=M.PENDING, is_admin=is_admin,
                     decided_at=utcnow(), decided_by=actor_id)
    _activate(session, row, user, org)
    session.flush()
    if record:
        audit.record(session, actor_id, "membership.grant", "membership", row.id, org_id=org.id, user_id=user.id,
                     is_admin=is_admin)
    return row


def name_first_admin(session: Session, actor: User | None, org_code: str, email: str) -> Membership:
    """Make a person an administrator of an organisation (platform admin only; `actor` None is the CLI).

    A member becomes administrator; a person with no open membership, or one pending/invited with this
    organisation, becomes an active administrator; a person tied to another organisation is refused.
    """
    if actor is not None and actor.role != Role.ADMIN:
        raise Forbidden(N_("Only the platform administrator may name an organisation's administrator."))
    org = org_by_code(session, org_code)
    user = session.exec(select(User).where(User.email == (email or "").strip().lower())).first()
    if user is None:
        raise NotFound(N_("No account with this e-mail address."), field="email")
    actor_id = actor.id if actor is not None else None
    current = open_membership(session, user.id)  # type: ignore[arg-type]
    if current is not None and current.org_id != org.id:
        _require_free(session, user)
    if current is None:
        row = grant(session, user, org, actor_id, is_admin=True)
    else:
        row = current
        if row.status != M.ACTIVE:
            _require_fit(user, org)
            row.decided_at = utcnow()
            row.decided_by = actor_id
            _activate(session, row, user, org)
        row.is_admin = True
        session.add(row)
        session.flush()
    audit.record(session, actor_id, "membership.name_admin", "membership", row.id, org_id=org.id,
                 user_id=user.id)
    _commit(session)
    return row
