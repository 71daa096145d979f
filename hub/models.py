"""Organisations, users and the audit log."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Aware UTC: every datetime in the schema is stored and returned as UTC (SQLModel's UTCDateTime)."""
    return datetime.now(timezone.utc)


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
    # sha256 of the API token; the token itself is shown once.
    api_token_hash: Optional[str] = Field(default=None, index=True, max_length=64)
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
        return str(self.id)


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
