"""Scenarios (场景机会), their publication history, and 揭榜 applications with attachments."""
from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Optional

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, SQLModel

from hub.errors import N_
from hub.models import utcnow


class Industry(StrEnum):
    SMART_LOGISTICS = "smart_logistics"          # 智慧物流
    SMART_HEALTH = "smart_health"                # 智慧医疗与健康
    PUBLIC_SERVICES = "public_services"          # 公共服务
    SMART_TOURISM = "smart_tourism"              # 智慧文旅
    DIGITAL_CULTURE = "digital_culture"          # 数字文创
    SMART_ENERGY = "smart_energy"                # 智慧能源
    SMART_PARK = "smart_park"                    # 智慧园区
    SMART_MANUFACTURING = "smart_manufacturing"  # 智能制造
    SMART_FINANCE = "smart_finance"              # 智能金融
    SMART_CITY = "smart_city"                    # 智慧城市
    SMART_COMMUNITY = "smart_community"          # 智慧社区
    SMART_TRANSPORT = "smart_transport"          # 智能交通
    MEDICAL_IMAGING = "medical_imaging"          # 医学影像
    REMOTE_SENSING = "remote_sensing"            # 遥感影像
    SMART_MINING = "smart_mining"                # 智慧矿山
    SMART_VENUES = "smart_venues"                # 智慧场馆


# Labels are English msgids; the Chinese names the cities use are in translations/zh_CN/marketplace.po.
INDUSTRY_LABELS: dict[str, str] = {
    Industry.SMART_LOGISTICS: N_("Smart logistics"),
    Industry.SMART_HEALTH: N_("Smart healthcare and health"),
    Industry.PUBLIC_SERVICES: N_("Public services"),
    Industry.SMART_TOURISM: N_("Smart culture and tourism"),
    Industry.DIGITAL_CULTURE: N_("Digital creative industries"),
    Industry.SMART_ENERGY: N_("Smart energy"),
    Industry.SMART_PARK: N_("Smart industrial parks"),
    Industry.SMART_MANUFACTURING: N_("Intelligent manufacturing"),
    Industry.SMART_FINANCE: N_("Intelligent finance"),
    Industry.SMART_CITY: N_("Smart city"),
    Industry.SMART_COMMUNITY: N_("Smart communities"),
    Industry.SMART_TRANSPORT: N_("Intelligent transport"),
    Industry.MEDICAL_IMAGING: N_("Medical imaging"),
    Industry.REMOTE_SENSING: N_("Remote sensing imagery"),
    Industry.SMART_MINING: N_("Smart mining"),
    Industry.SMART_VENUES: N_("Smart venues"),
}


# The Chinese names go into the search text, so that "智慧物流" finds every logistics scenario.
INDUSTRY_SEARCH_NAMES: dict[str, str] = {
    Industry.SMART_LOGISTICS: "智慧物流", Industry.SMART_HEALTH: "智慧医疗与健康", Industry.PUBLIC_SERVICES: "公共服务",
    Industry.SMART_TOURISM: "智慧文旅", Industry.DIGITAL_CULTURE: "数字文创", Industry.SMART_ENERGY: "智慧能源",
    Industry.SMART_PARK: "智慧园区", Industry.SMART_MANUFACTURING: "智能制造", Industry.SMART_FINANCE: "智能金融",
    Industry.SMART_CITY: "智慧城市", Industry.SMART_COMMUNITY: "智慧社区", Industry.SMART_TRANSPORT: "智能交通",
    Industry.MEDICAL_IMAGING: "医学影像", Industry.REMOTE_SENSING: "遥感影像", Industry.SMART_MINING: "智慧矿山",
    Industry.SMART_VENUES: "智慧场馆",
}


class ScenarioStatus(StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    OPEN_CALL = "open_call"        # 揭榜中
    UNDER_REVIEW = "under_review"
    AWARDED = "awarded"
    CLOSED = "closed"


SCENARIO_STATUS_LABELS: dict[str, str] = {
    ScenarioStatus.DRAFT: N_("Draft"),
    ScenarioStatus.PUBLISHED: N_("Published"),
    ScenarioStatus.OPEN_CALL: N_("Open call"),
    ScenarioStatus.UNDER_REVIEW: N_("Under review"),
    ScenarioStatus.AWARDED: N_("Awarded"),
    ScenarioStatus.CLOSED: N_("Closed"),
}


class ApplicationStatus(StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


APPLICATION_STATUS_LABELS: dict[str, str] = {
    ApplicationStatus.SUBMITTED: N_("Awaiting review"),
    ApplicationStatus.ACCEPTED: N_("Accepted"),
    ApplicationStatus.REJECTED: N_("Rejected"),
    ApplicationStatus.WITHDRAWN: N_("Withdrawn"),
}

# Notes the platform itself writes into the publication history, translated when shown.
FIRST_APPLICATION_NOTE = N_("First application received: the call is open.")
SYSTEM_NOTES = (FIRST_APPLICATION_NOTE,)

# An organisation may hold one of these per scenario at a time.
ACTIVE_APPLICATION_STATUSES = (ApplicationStatus.SUBMITTED, ApplicationStatus.ACCEPTED)


class Scenario(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    city_id: int = Field(foreign_key="organisation.id", index=True)
    title: str = Field(max_length=200)
    title_en: str = Field(default="", max_length=200)  # optional English title for the English UI
    industry: str = Field(index=True, max_length=40)
    description: str = Field(sa_column=Column(Text, nullable=False))
    expected_outcome: str = Field(sa_column=Column(Text, nullable=False))
    indicators: str = Field(sa_column=Column(Text, nullable=False))        # 技术指标
    data_available: str = Field(default="", sa_column=Column(Text, nullable=False))
    data_terms: str = Field(default="", max_length=500)
    budget_yuan: Optional[int] = Field(default=None)
    reward: str = Field(default="", max_length=500)
    deadline: date
    contact_name: str = Field(max_length=100)
    contact_info: str = Field(max_length=200)
    status: str = Field(default=ScenarioStatus.DRAFT, index=True, max_length=20)
    # Lower-cased title+text blob for LIKE search (works for Chinese on SQLite and PostgreSQL alike).
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_by: Optional[int] = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    published_at: Optional[datetime] = Field(default=None, index=True)


class ScenarioEvent(SQLModel, table=True):
    """One step of a scenario's publication history."""

    id: Optional[int] = Field(default=None, primary_key=True)
    scenario_id: int = Field(foreign_key="scenario.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor_id: Optional[int] = Field(default=None, foreign_key="user.id")
    from_status: Optional[str] = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    note: str = Field(default="", max_length=1000)


class Application(SQLModel, table=True):
    """揭榜申报: a team's application to a scenario."""

    # One active (submitted or accepted) application per organisation and scenario, even under a race.
    __table_args__ = (
        Index("uq_application_active", "scenario_id", "applicant_org_id", unique=True,
              sqlite_where=text("status IN ('submitted', 'accepted')"),
              postgresql_where=text("status IN ('submitted', 'accepted')")),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    scenario_id: int = Field(foreign_key="scenario.id", index=True)
    applicant_org_id: int = Field(foreign_key="organisation.id", index=True)
    submitted_by: int = Field(foreign_key="user.id", index=True)
    proposal: str = Field(sa_column=Column(Text, nullable=False))
    tech_route: str = Field(default="", sa_column=Column(Text, nullable=False))
    indicator_plan: str = Field(default="", sa_column=Column(Text, nullable=False))
    budget_yuan: Optional[int] = Field(default=None)
    status: str = Field(default=ApplicationStatus.SUBMITTED, index=True, max_length=20)
    reason: str = Field(default="", max_length=1000)
    created_at: datetime = Field(default_factory=utcnow)
    reviewed_at: Optional[datetime] = Field(default=None)
    reviewed_by: Optional[int] = Field(default=None, foreign_key="user.id")


class Attachment(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    filename: str = Field(max_length=255)
    stored_name: str = Field(max_length=80)
    content_type: str = Field(max_length=100)
    size: int
    sha256: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
