"""Organisations, users and the audit log."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Aware UTC: every datetime in the schema is stored and returned as UTC (SQLModel's UTCDateTime)."""
    return datetime.now(timezone.utc)


def new_session_key() -> str:
    return secrets.token_urlsafe(24)


class Role(StrEnum):
    ADMIN = "admin"          # platform admin
    GOV = "gov"              # government staff of one new city or district body
    TEAM = "team"            # member of a company / university / lab team
    JUDGE = "judge"          # expert from the judges' pool
    OPERATOR = "operator"    # computing-center operator


class OrgKind(StrEnum):
    CITY = "city"            # one of the six new cities (发榜单位)
    DISTRICT = "district"    # a district body (管委会 departments, bureaus issuing 算力券)
    COMPANY = "company"
    UNIVERSITY = "university"
    LAB = "lab"
    CENTER = "center"        # the computing center itself


class Organisation(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=64)  # stable slug, e.g. "konggang"
    name: str = Field(max_length=200)                           # Chinese name
    name_en: str = Field(default="", max_length=200)
    kind: str = Field(index=True, max_length=20)
    credit_code: Optional[str] = Field(default=None, max_length=18)  # 统一社会信用代码 (legal entity)
    themes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class OrgRelation(SQLModel, table=True):
    """A related-party tie between two organisations (ownership, control, same group)."""

    __table_args__ = (UniqueConstraint("org_id", "related_org_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    related_org_id: int = Field(foreign_key="organisation.id", index=True)
    kind: str = Field(default="related", max_length=40)


class User(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    email: str = Field(index=True, unique=True, max_length=254)
    password_hash: str = Field(max_length=255)
    display_name: str = Field(default="", max_length=100)
    role: str = Field(index=True, max_length=20)
    org_id: Optional[int] = Field(default=None, foreign_key="organisation.id", index=True)
    locale: Optional[str] = Field(default=None, max_length=10)
    # Part of every session's id (see get_id): a new key ends every session of the account at once.
    session_key: str = Field(default_factory=new_session_key, max_length=64)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow)

    # flask-login protocol, kept here so the model needs no Flask import.
    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """flask-login's "alternative id": the session stays valid only while the key is unchanged."""
        return f"{self.id}:{self.session_key}"


class MembershipStatus(StrEnum):
    PENDING = "pending"        # the person asked to join; the organisation's administrator decides
    INVITED = "invited"        # the organisation's administrator invited an e-mail address; the person decides
    ACTIVE = "active"
    REFUSED = "refused"        # the administrator said no (reason kept)
    WITHDRAWN = "withdrawn"    # the person took back the request
    DECLINED = "declined"      # the person said no to an invitation
    CANCELLED = "cancelled"    # the administrator took back an invitation
    LEFT = "left"
    REMOVED = "removed"        # the administrator ended it (reason kept)


# A person holds at most one membership in these states (a partial unique index backs the service's check).
OPEN_MEMBERSHIP = ("pending", "invited", "active")
_OPEN_SQL = "status IN ('pending', 'invited', 'active')"


class Membership(SQLModel, table=True):
    """A person's tie to one organisation; only hub.membership writes it (and User.org_id with it)."""

    __table_args__ = (
        Index("uq_membership_open_user", "user_id", unique=True,
              sqlite_where=text(_OPEN_SQL), postgresql_where=text(_OPEN_SQL)),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    # None for an invitation to an address that has no account yet; set when that person registers.
    user_id: Optional[int] = Field(default=None, foreign_key="user.id", index=True)
    email: str = Field(max_length=254, index=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    status: str = Field(max_length=20, index=True)
    is_admin: bool = Field(default=False)
    reason: str = Field(default="", max_length=500)
    requested_at: datetime = Field(default_factory=utcnow)
    decided_at: Optional[datetime] = Field(default=None)
    decided_by: Optional[int] = Field(default=None, foreign_key="user.id")
    invited_by: Optional[int] = Field(default=None, foreign_key="user.id")


class AuditLog(SQLModel, table=True):
    """Every organiser, judge and operator action, readable by the city and the platform admin."""

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: Optional[int] = Field(default=None, foreign_key="user.id", index=True)
    org_id: Optional[int] = Field(default=None, foreign_key="organisation.id", index=True)  # owning city
    action: str = Field(max_length=80, index=True)
    object_type: str = Field(max_length=40)
    object_id: Optional[int] = Field(default=None)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class TokenScope(StrEnum):
    READ = "read"            # GET and other safe methods only
    SUBMIT = "submit"        # read, and submit (every unsafe API method)


class ApiToken(SQLModel, table=True):
    """A named API token of one user; only its sha256 is kept, the token itself is shown once."""

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = Field(max_length=80)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    prefix: str = Field(max_length=16)  # the token's first characters, to tell tokens apart on the account page
    scope: str = Field(default=TokenScope.READ, max_length=10)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: Optional[datetime] = Field(default=None)  # None: never
    last_used_at: Optional[datetime] = Field(default=None)
    revoked_at: Optional[datetime] = Field(default=None)


class DataVersion(SQLModel, table=True):
    """How far each cache scope's data has moved (see hub.cache): written only by the triggers of
    hub.cache.trigger_ddl, read by hub.cache.versions. A missing row counts as 0."""

    scope: str = Field(sa_column=Column(Text, primary_key=True))  # "user", "challenge:12", ...
    n: int = Field(sa_column=Column(BigInteger, nullable=False))

