"""Challenges (揭榜挂帅), phases, datasets, teams, registrations, submissions and judging records."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from hub.models import utcnow


class TeamStatus(StrEnum):
    FORMING = "forming"
    APPLIED = "applied"
    APPROVED = "approved"
    REJECTED = "rejected"
    CUT = "cut"
    DISQUALIFIED = "disqualified"


class ChallengeStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    FROZEN = "frozen"
    FINAL_REVIEW = "final_review"
    AWARDED = "awarded"
    ARCHIVED = "archived"


class SubmissionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SCORED = "scored"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Outcome(StrEnum):
    """Why a submission ended as it did; each has a sentence in both languages."""

    SCORED = "scored"
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    NONZERO_EXIT = "nonzero_exit"
    MISSING_OUTPUT = "missing_output"
    BAD_OUTPUT = "bad_output"
    IMAGE_REJECTED = "image_rejected"
    INFRA_ERROR = "infra_error"          # the platform's fault: never counted against a team
    CANCELLED = "cancelled"
    QUOTA_EXCEEDED = "quota_exceeded"


class SubmissionKind(StrEnum):
    """A real entry, or a check run: the team's debugging run on the phase's public sample inputs."""

    SUBMISSION = "submission"   # counts against the limits, goes to the boards, rankings and cuts
    CHECK = "check"             # its own daily cap, full log, never on a board


# Outcomes caused by the platform, never counted against a team's submission limits.
PLATFORM_OUTCOMES = {Outcome.INFRA_ERROR, Outcome.CANCELLED}


class Challenge(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    scenario_id: int = Field(foreign_key="scenario.id", index=True)
    city_id: int = Field(foreign_key="organisation.id", index=True)
    slug: str = Field(index=True, unique=True, max_length=80)
    title: str = Field(max_length=200)
    title_en: str = Field(default="", max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    rules: str = Field(default="", sa_column=Column(Text, nullable=False))
    prize: str = Field(default="", max_length=500)               # prize or project funding
    funding_yuan: Optional[int] = Field(default=None)
    opens_at: datetime
    closes_at: datetime
    status: str = Field(default=ChallengeStatus.DRAFT, index=True, max_length=20)
    # Evaluation contract
    input_format: str = Field(default="", sa_column=Column(Text, nullable=False))
    output_format: str = Field(default="", sa_column=Column(Text, nullable=False))
    id_column: str = Field(default="id", max_length=64)
    prediction_column: str = Field(default="prediction", max_length=64)
    output_file: str = Field(default="predictions.csv", max_length=128)
    metric: str = Field(max_length=40)                          # key in challenges.scoring.metrics.REGISTRY
    extra_metrics: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    time_limit_s: int = Field(default=600)
    memory_mb: int = Field(default=2048)
    cpus: float = Field(default=1.0)
    accelerators: int = Field(default=0)                         # devices per run
    accelerator_class: str = Field(default="cpu", max_length=40)  # queue / device class
    scoring_image: Optional[str] = Field(default=None, max_length=200)  # organiser scorer image ID
    metric_locked_at: Optional[datetime] = Field(default=None)   # set when the first submission is scored
    # Submission rules
    leaderboard_mode: str = Field(default="best", max_length=10)  # best | latest
    image_failures_count: bool = Field(default=True)
    max_team_size: int = Field(default=5)
    per_applicant_cap: int = Field(default=3)     # projects one organisation may lead at once
    consortium_max_partners: int = Field(default=4)
    # Judging
    objective_weight: float = Field(default=0.6)  # final = w * normalised score + (1-w) * rubric
    rubric: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    notice_starts_at: Optional[datetime] = Field(default=None)   # 公示
    notice_ends_at: Optional[datetime] = Field(default=None)
    winner_team_id: Optional[int] = Field(default=None)
    announced_at: Optional[datetime] = Field(default=None)
    signed_off_by: Optional[int] = Field(default=None, foreign_key="user.id")
    created_by: Optional[int] = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Phase(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("challenge_id", "position"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    position: int = Field(default=1)
    name: str = Field(max_length=100)
    name_en: str = Field(default="", max_length=100)
    starts_at: datetime
    ends_at: datetime
    split: str = Field(max_length=40)            # dataset split evaluated on, e.g. public / private
    per_day_limit: int = Field(default=5)
    total_limit: int = Field(default=100)
    concurrent_limit: int = Field(default=2)
    scores_visible: str = Field(default="now", max_length=10)   # now | reveal
    freeze_at: Optional[datetime] = Field(default=None)
    revealed_at: Optional[datetime] = Field(default=None)
    cut_bar: Optional[float] = Field(default=None)              # 赛马制: teams below are cut after it
    cut_applied_at: Optional[datetime] = Field(default=None)
    ended_signalled_at: Optional[datetime] = Field(default=None)  # when challenges.signals.phase_ended went out


class Dataset(SQLModel, table=True):
    """One split's test inputs and hidden truth (stored apart) and an optional public sample."""

    __table_args__ = (UniqueConstraint("challenge_id", "split"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    split: str = Field(max_length=40)
    inputs_dir: str = Field(max_length=500)         # mounted read-only at /input
    truth_path: str = Field(max_length=500)         # never served, never mounted into a team container
    inputs_sha256: str = Field(max_length=64)
    truth_sha256: str = Field(max_length=64)
    rows: int = Field(default=0)
    sample_dir: Optional[str] = Field(default=None, max_length=500)  # public sample with truth
    sample_sha256: Optional[str] = Field(default=None, max_length=64)
    uploaded_by: Optional[int] = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow)


class Team(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("challenge_id", "name"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    name: str = Field(max_length=100)
    lead_org_id: int = Field(foreign_key="organisation.id", index=True)
    captain_id: int = Field(foreign_key="user.id")
    invite_token: str = Field(index=True, max_length=64)
    status: str = Field(default="forming", max_length=20)  # forming | applied | approved | rejected | cut | disqualified
    cut_at_phase_id: Optional[int] = Field(default=None, foreign_key="phase.id")
    reason: str = Field(default="", max_length=1000)   # why the team was disqualified or rejected
    # 赛马制: the team's best score on the phase it was cut after (None: it never scored). Kept apart from
    # `reason` so that a hidden board's figure is shown only to those who may see that board.
    cut_score: Optional[float] = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow)


class TeamMember(SQLModel, table=True):
    # One team per user per challenge, enforced by the database too.
    __table_args__ = (UniqueConstraint("challenge_id", "user_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    role: str = Field(default="member", max_length=20)      # captain | member
    # pending: asked to join, waits for the captain; invited: the captain asked, waits for the user
    status: str = Field(default="pending", max_length=20)   # pending | invited | active
    joined_at: datetime = Field(default_factory=utcnow)


class Registration(SQLModel, table=True):
    """揭榜 for a challenge: the team's application and the city's formal check (形式审查)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="team.id", index=True, unique=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    tech_route: str = Field(sa_column=Column(Text, nullable=False))
    indicator_plan: str = Field(sa_column=Column(Text, nullable=False))
    budget_yuan: Optional[int] = Field(default=None)
    partner_org_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=20)   # pending | approved | rejected
    reason: str = Field(default="", max_length=1000)
    # Set when a change to the approved team sent the registration back to review: the change's msgid.
    recheck_reason: str = Field(default="", max_length=200)
    submitted_at: datetime = Field(default_factory=utcnow)
    reviewed_at: Optional[datetime] = Field(default=None)
    reviewed_by: Optional[int] = Field(default=None, foreign_key="user.id")


class Submission(SQLModel, table=True):
    """The record every evaluation writes to."""

    __table_args__ = (
        Index("ix_submission_board", "phase_id", "status", "team_id", "primary_score"),
        # Covers the leaderboard's ranking query (challenges.leaderboard), so it never reads the wide rows.
        Index("ix_submission_rank", "phase_id", "status", "team_id", "primary_score", "created_at", "disqualified",
              "kind"),
        # The dispatcher's and the reaper's reads (evaluator.dispatch): counts per challenge, heads by id, in flight.
        Index("ix_submission_queue", "status", "job_id", "challenge_id", "id"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    phase_id: int = Field(foreign_key="phase.id", index=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    submitted_by: int = Field(foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow, index=True)
    kind: str = Field(default=SubmissionKind.SUBMISSION, max_length=20)  # a SubmissionKind
    image_source: str = Field(default="upload", max_length=20)   # upload | registry
    image_ref: str = Field(default="", max_length=300)           # what the team named
    image_pull: str = Field(default="", max_length=300)   # where nodes pull it: registry/repo@sha256:… ("": kept archive)
    image_id: str = Field(default="", max_length=100)            # pinned sha256 image ID / digest
    image_bytes: int = Field(default=0)   # size of the archive kept for an upload (the team's storage cap)
    status: str = Field(default=SubmissionStatus.QUEUED, index=True, max_length=20)
    outcome: Optional[str] = Field(default=None, max_length=30)  # an Outcome
    reason: str = Field(default="", sa_column=Column(Text, nullable=False))  # detail: ids, line, code
    exit_code: Optional[int] = Field(default=None)
    scores: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    primary_score: Optional[float] = Field(default=None)
    log_excerpt: str = Field(default="", sa_column=Column(Text, nullable=False))
    runtime_s: Optional[float] = Field(default=None)
    attempt: int = Field(default=0)             # attempts started; the job id carries it
    infra_failures: int = Field(default=0)
    counts_against_limit: bool = Field(default=True)
    queue: str = Field(default="", max_length=60)
    job_id: str = Field(default="", max_length=100)
    worker: str = Field(default="", max_length=120)
    queued_at: Optional[datetime] = Field(default=None)
    started_at: Optional[datetime] = Field(default=None)
    finished_at: Optional[datetime] = Field(default=None)
    container_started_at: Optional[datetime] = Field(default=None)
    container_finished_at: Optional[datetime] = Field(default=None)
    disqualified: bool = Field(default=False)
    dq_reason: str = Field(default="", max_length=1000)


class Baseline(SQLModel, table=True):
    """A reference row on a phase's leaderboard (e.g. the organiser's baseline model)."""

    id: Optional[int] = Field(default=None, primary_key=True)
    phase_id: int = Field(foreign_key="phase.id", index=True)
    label: str = Field(max_length=100)
    scores: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    primary_score: float


class JudgeAssignment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("challenge_id", "judge_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    judge_id: int = Field(foreign_key="user.id", index=True)
    assigned_at: datetime = Field(default_factory=utcnow)


class ConflictDeclaration(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("challenge_id", "judge_id", "team_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    judge_id: int = Field(foreign_key="user.id", index=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    note: str = Field(default="", max_length=500)
    declared_at: datetime = Field(default_factory=utcnow)


class RubricScore(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("challenge_id", "judge_id", "team_id", "criterion"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    judge_id: int = Field(foreign_key="user.id", index=True)
    team_id: int = Field(foreign_key="team.id", index=True)
    criterion: str = Field(max_length=40)
    score: float
    comment: str = Field(default="", max_length=2000)
    updated_at: datetime = Field(default_factory=utcnow)


class Objection(SQLModel, table=True):
    """An objection lodged during the 公示 notice period, and the city's answer."""

    id: Optional[int] = Field(default=None, primary_key=True)
    challenge_id: int = Field(foreign_key="challenge.id", index=True)
    lodged_by: int = Field(foreign_key="user.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    lodged_at: datetime = Field(default_factory=utcnow)
    answer: str = Field(default="", sa_column=Column(Text, nullable=False))
    answered_by: Optional[int] = Field(default=None, foreign_key="user.id")
    answered_at: Optional[datetime] = Field(default=None)
