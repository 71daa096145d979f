"""Accounts: creation, password check, API tokens. No Flask here."""
from __future__ import annotations

import hashlib
import re
import secrets

from sqlmodel import Session, select
from werkzeug.security import check_password_hash, generate_password_hash

from hub.errors import DomainError, N_, NotFound
from hub.models import Organisation, OrgKind, Role, User

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
MIN_PASSWORD = 8

# Which organisation kinds each role may belong to.
ROLE_ORG_KINDS: dict[str, set[str]] = {
    Role.GOV: {OrgKind.CITY, OrgKind.DISTRICT},
    Role.TEAM: {OrgKind.COMPANY, OrgKind.UNIVERSITY, OrgKind.LAB},
    Role.JUDGE: {OrgKind.UNIVERSITY, OrgKind.LAB, OrgKind.COMPANY, OrgKind.CENTER, OrgKind.DISTRICT},
    Role.OPERATOR: {OrgKind.CENTER},
    Role.ADMIN: {OrgKind.CENTER, OrgKind.DISTRICT},
}

# Roles a person may pick when registering on the web; the others are created by an admin or the CLI.
SELF_SERVICE_ROLES = {Role.TEAM}


def hash_password(password: str) -> str:
    # Werkzeug's default is scrypt with a random salt.
    return generate_password_hash(password)


def org_by_code(session: Session, code: str) -> Organisation:
    org = session.exec(select(Organisation).where(Organisation.code == code)).first()
    if org is None:
        raise NotFound(N_("Unknown organisation: %(org)s"), field="org", org=code)
    return org


def create_user(session: Session, email: str, password: str, role: str, org_id: int | None,
                display_name: str = "") -> User:
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email):
        raise DomainError(N_("Enter a valid e-mail address."), field="email")
    if len(password or "") < MIN_PASSWORD:
        raise DomainError(N_("The password must have at least %(n)s characters."), field="password", n=MIN_PASSWORD)
    if len(password) > 200:
        raise DomainError(N_("The password is too long."), field="password")
    if role not in {r.value for r in Role}:
        raise DomainError(N_("Unknown role: %(role)s"), field="role", role=role)
    if len(display_name) > 100:
        raise DomainError(N_("The name may have at most %(n)s characters."), field="display_name", n=100)
    org = session.get(Organisation, org_id) if org_id is not None else None
    if org_id is not None and org is None:
        raise DomainError(N_("Unknown organisation."), field="org")
    if role != Role.ADMIN and org is None:
        raise DomainError(N_("Choose an organisation."), field="org")
    if org is not None and org.kind not in ROLE_ORG_KINDS[Role(role)]:
        raise DomainError(N_("A %(role)s account cannot belong to %(org)s."), field="org", role=role, org=org.name)
    if session.exec(select(User).where(User.email == email)).first():
        raise DomainError(N_("An account with this e-mail address already exists."), field="email")
    user = User(email=email, password_hash=hash_password(password), role=role,
                org_id=org.id if org else None, display_name=display_name.strip() or email.split("@")[0])
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    user = session.exec(select(User).where(User.email == (email or "").strip().lower())).first()
    if user is None or not user.active:
        # Same work either way, so timing does not reveal which e-mails exist.
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    return user if check_password_hash(user.password_hash, password or "") else None


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_api_token(session: Session, user: User) -> str:
    """A new API token for the user (the old one stops working); returned once, stored hashed."""
    token = "hub_" + secrets.token_urlsafe(32)
    user.api_token_hash = _token_digest(token)
    session.add(user)
    return token


def user_for_token(session: Session, token: str) -> User | None:
    if not token:
        return None
    user = session.exec(select(User).where(User.api_token_hash == _token_digest(token))).first()
    return user if user is not None and user.active else None


_DUMMY_HASH = generate_password_hash("not-a-real-password")
