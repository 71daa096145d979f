"""Tables of the evaluator: worker nodes (quota tables live in evaluator.quota.models)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from hub.models import utcnow


class WorkerNode(SQLModel, table=True):
    """A worker process on an accelerator node, as it last reported itself."""

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=120)
    hostname: str = Field(default="", max_length=120)
    queues: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    accelerators: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(default_factory=utcnow)
    heartbeat_at: datetime = Field(default_factory=utcnow, index=True)
    current_submission_id: Optional[int] = Field(default=None)
