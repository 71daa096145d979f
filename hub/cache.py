"""In-process caches with exact invalidation: every entry is tagged with the database's data version.

`data_version(session)` is one cheap statement that changes whenever any committed write becomes visible:
- PostgreSQL: the current MVCC snapshot (`pg_current_snapshot()`). Two equal snapshots see exactly the same
  committed transactions, so equal snapshots mean equal data; any write anywhere (another worker scoring a
  submission, a judge disqualifying a team) gives a new one.
- SQLite: `PRAGMA data_version` (moves when another connection commits) plus the connection's own
  `total_changes`, checked per pooled connection; a change seen on any connection moves the process's epoch.

A version never comes back once the data moved on, so an entry built under an old version is never served
again: no writer has to remember to invalidate anything (the evaluator's workers, the CLI and SQL by hand
included). Entries may also carry `expires_at` for rules that change with the clock alone (a board freezing
at `freeze_at`, a phase starting): such an entry is dropped once that moment has passed.

The caches live in the process (one per gunicorn worker), are bounded in entries and bytes, and need no
Redis. This module imports no Flask.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from hub.models import utcnow

try:
    from psycopg.pq import TransactionStatus

    _PG_IDLE: object = TransactionStatus.IDLE
except ImportError:  # pragma: no cover - psycopg ships with the project; SQLite needs none of this
    _PG_IDLE = object()

_epochs: dict[str, int] = {}
_epoch_lock = threading.Lock()


def _bump(url: str) -> int:
    with _epoch_lock:
        _epochs[url] = _epochs.get(url, 0) + 1
        return _epochs[url]


def _sqlite_version(conn: Connection, url: str) -> Hashable:
    raw = conn.connection.dbapi_connection
    assert raw is not None
    seen = (raw.execute("PRAGMA data_version").fetchone()[0], raw.total_changes)
    info = conn.connection.info  # lives as long as the DBAPI connection does
    if info.get("hub_data_version") != seen:
        # A commit by another connection or process, our own writes on this one, or a new connection
        # whose past we do not know: the process's epoch moves on, and every entry built before is stale.
        info["hub_data_version"] = seen
        return ("sqlite", url, _bump(url))
    with _epoch_lock:
        return ("sqlite", url, _epochs.setdefault(url, 0))


_PG_SQL = "SELECT pg_current_snapshot()::text, pg_current_xact_id_if_assigned() IS NOT NULL"
# The snapshot read by the pool's pre-ping of a connection just checked out (see install_versioned_ping).
_pinged: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _pg_snapshot(raw: Any) -> tuple[str, bool]:
    idle = not raw.autocommit and raw.info.transaction_status == _PG_IDLE
    if idle:
        # Outside a transaction the statement runs on its own: no BEGIN now and no ROLLBACK when the
        # connection goes back to the pool (two round trips fewer for a page served from memory).
        raw.autocommit = True
    try:
        with raw.cursor() as cur:
            cur.execute(_PG_SQL)
            snapshot, wrote = cur.fetchone()
    finally:
        if idle:
            try:
                raw.autocommit = False
            except Exception:  # noqa: BLE001 - a broken connection: the ping's own error says so
                pass
    return snapshot, wrote


def install_versioned_ping(engine: Engine) -> None:
    """Make a PostgreSQL engine's pre-ping read the data version: the ping a checkout makes anyway then
    serves as the request's version check (one round trip instead of BEGIN, SELECT 1, version, ROLLBACK).
    Failures are reported exactly as the standard ping's are, so the pool reconnects the same way."""

    def do_ping(dbapi_connection: Any) -> bool:
        snapshot, _wrote = _pg_snapshot(dbapi_connection)
        _pinged[dbapi_connection] = snapshot
        return True

    engine.dialect.do_ping = do_ping  # type: ignore[method-assign]
    event.listen(engine, "checkin", lambda dbapi_connection, _record: _pinged.pop(dbapi_connection, None))


def _postgresql_version(raw: Any, url: str, just_checked_out: bool) -> Hashable:
    if just_checked_out:
        snapshot = _pinged.pop(raw, None)
        if snapshot is not None:  # read by this checkout's ping, and nothing ran since
            return ("postgresql", url, snapshot)
    snapshot, wrote = _pg_snapshot(raw)
    return _private() if wrote else ("postgresql", url, snapshot)


def changes(session: Session) -> int:
    """How many times this session has written, committed or rolled back: a version read before is then
    no longer known to hold for it (see request_version in hub.web)."""
    return int(session.info.get("hub_changes", 0))


def _changed(session: Session, *_args: Any) -> None:
    session.info["hub_changes"] = changes(session) + 1


def _statement_ran(state: Any) -> None:
    if not state.is_select:
        _changed(state.session)


for _name in ("after_flush", "after_commit", "after_rollback", "after_soft_rollback", "after_bulk_update",
              "after_bulk_delete"):
    event.listen(Session, _name, _changed)
event.listen(Session, "do_orm_execute", _statement_ran)


def _private() -> Hashable:
    """A version equal to nothing else: what is built under it is neither served from nor to anyone."""
    return ("private", object())


def data_version(session: Session) -> Hashable:
    """A value that differs whenever the data this session can read differs (see the module notes).

    A session holding its own uncommitted changes sees data nobody else does (and that may yet be rolled
    back): it gets a version of its own.
    """
    if session.new or session.deleted or session.dirty:
        return _private()
    just_checked_out = not session.in_transaction()
    conn = session.connection()
    url = conn.engine.url.render_as_string(hide_password=True)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    if conn.dialect.name == "sqlite":
        if raw.in_transaction:  # pysqlite opens a transaction only for a write
            return _private()
        return _sqlite_version(conn, url)
    if conn.dialect.name == "postgresql":
        return _postgresql_version(raw, url, just_checked_out)
    return _private()  # an unknown backend is never cached


@dataclass
class _Entry:
    version: Hashable
    value: Any
    size: int
    expires_at: datetime | None


class VersionedCache:
    """A thread-safe LRU of values valid for one data version (and until `expires_at`, when given)."""

    def __init__(self, name: str, max_entries: int = 512, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.name, self.max_entries, self.max_bytes = name, max_entries, max_bytes
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, version: Hashable, now: datetime | None = None) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version and (
                    entry.expires_at is None or (now or utcnow()) < entry.expires_at):
                self._entries.move_to_end(key)
                self.hits += 1
                return entry.value
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None

    def put(self, key: Hashable, version: Hashable, value: Any, *, size: int = 1,
            expires_at: datetime | None = None) -> None:
        if size > self.max_bytes // 4:
            return  # one huge value would evict everything else
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = _Entry(version, value, size, expires_at)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)


def next_change(now: datetime, *moments: datetime | None) -> datetime | None:
    """The earliest of the given moments still to come: when a clock-based rule next changes its answer."""
    future = [m for m in moments if m is not None and m > now]
    return min(future) if future else None
