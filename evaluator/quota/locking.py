"""Serialising accounting that spans rows (pool counts, yearly caps) on SQLite and PostgreSQL alike."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from evaluator.quota.models import QuotaLock


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def lock(session: Session, name: str) -> None:
    """Take a named lock until the session's transaction ends.

    An upsert writes one QuotaLock row: PostgreSQL holds that row's lock until commit/rollback, and on
    SQLite the first write takes the database's write lock, so later reads in the transaction are current.
    """
    insert = postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
    stmt = insert(QuotaLock).values(name=name, n=1)
    stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"n": QuotaLock.n + 1})
    session.exec(stmt)  # type: ignore[call-overload]


def as_utc(value: datetime) -> datetime:
    """Aware UTC; a naive value is taken to be UTC already (Docker reports UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
