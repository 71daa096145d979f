"""Append a line to the audit log (callers commit with their own change)."""
from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from hub.models import AuditLog


def record(session: Session, actor_id: int | None, action: str, object_type: str,
           object_id: int | None = None, org_id: int | None = None, **detail: Any) -> AuditLog:
    line = AuditLog(actor_id=actor_id, org_id=org_id, action=action, object_type=object_type,
                    object_id=object_id, detail=detail)
    session.add(line)
    return line


def lines_for(session: Session, org_id: int | None = None, object_type: str | None = None,
              object_id: int | None = None, limit: int = 200) -> list[AuditLog]:
    q = select(AuditLog)
    if org_id is not None:
        q = q.where(AuditLog.org_id == org_id)
    if object_type is not None:
        q = q.where(AuditLog.object_type == object_type)
    if object_id is not None:
        q = q.where(AuditLog.object_id == object_id)
    return list(session.exec(q.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)))
