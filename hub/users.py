"""Accounts: creation, password check and change, ending sessions. No Flask here (tokens: hub.tokens)."""
from __future__ import annotations

from sqlmodel import Session, select
from werkzeug.security import check_password_hash, generate_password_hash

from hub import membership, tokens
from hub.errors import DomainError, N_
from hub.membership import EMAIL_RE, ROLE_ORG_KINDS
from hub.models import Organisation, Role, TokenScope, User, new_session_key
from hub.passwords import check_password


# Roles a person may pick when registering on the web; the others are created by an admin or the CLI.
SELF_SERVICE_ROLES = {Role.TEAM}


def hash_password(password: str) -> str:
    # Werkzeug's default is scrypt with a random salt.
    return generate_password_hash(password)


def create_user(session: Session, email: str, password: str, role: str, org_id: int | None,
                display_name: str = "") -> User:
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email):
        raise DomainError(N_("Enter a valid e-mail address."), field="email")
    check_password(password, email)
    if role not in {r.value for r in Role}:
        raise DomainError(N_("Unknown role: %(role)s"), field="role", role=role)
    if len(display_name) > 100:
        raise DomainError(N_("The name may have at most %(n)s characters."), field="display_name", n=100)
    org = session.get(Organisation, org_id) if org_id is not None else None
    if org_id is not None and org is None:
        raise DomainError(N_("Unknown organisation."), field="org")
    # A team account may start with no organisation (it asks to join or waits for an invitation).
    if role not in (Role.ADMIN, Role.TEAM) and org is None:
        raise DomainError(N_("Choose an organisation."), field="org")
    if org is not None and org.kind not in ROLE_ORG_KINDS[Role(role)]:
        raise DomainError(N_("A %(role)s account cannot belong to %(org)s."), field="org", role=role, org=org.name)
    if session.exec(select(User).where(User.email == email)).first():
        raise DomainError(N_("An account with this e-mail address already exists."), field="email")
    user = User(email=email, password_hash=hash_password(password), role=role,
                display_name=display_name.strip() or email.split("@")[0])
    session.add(user)
    session.flush()
    if org is not None:
        # Named by the platform admin (CLI, demo data): an active membership; User.org_id follows it.
        membership.grant(session, user, org, record=False)
    else:
        membership.link_invitations(session, user)
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.exec(select(User).where(User.email == (email or "").strip().lower())).first()
    if user is None or not user.active:
        # Same work either way, so timing does not reveal which e-mails exist.
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    return user if check_password_hash(user.password_hash, password or "") else None


def end_sessions(session: Session, user: User) -> None:
    """End every session of the account (a new session key: old cookies, copied ones included, stop working)."""
    user.session_key = new_session_key()
    session.add(user)
    session.commit()


def change_password(session: Session, user: User, current: str, new: str) -> None:
    """Set a new password after checking the current one; ends every session and revokes every API token."""
    if not check_password_hash(user.password_hash, current or ""):
        raise DomainError(N_("The current password is wrong. Enter the password you logged in with."),
                          field="current_password")
    if new == current:
        raise DomainError(N_("The new password is the same as the current one. Choose a different one."),
                          field="password")
    check_password(new, user.email)
    user.password_hash = hash_password(new)
    user.session_key = new_session_key()
    session.add(user)
    tokens.revoke_all(session, user.id, commit=False)  # type: ignore[arg-type]
    session.commit()


def issue_api_token(session: Session, user: User, name: str = "API", scope: str = TokenScope.SUBMIT,
                    days: int | None = tokens.DEFAULT_DAYS) -> str:
    """A new read-and-submit token (tests and scripts; people make theirs on the account page)."""
    return tokens.issue(session, user, name, scope, days)


user_for_token = tokens.user_for_token


_DUMMY_HASH = generate_password_hash("not-a-real-password")
