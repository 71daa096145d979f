"""In-process caches with exact invalidation: every entry is tagged with the data versions of the scopes it reads.

A scope names a slice of the data: a table ("scenario", "user", ...) or one challenge and everything under it
("challenge:12": its row, phases, teams, submissions, ...). Database triggers (`trigger_ddl`) move a scope's
row in the `dataversion` table on every INSERT, UPDATE or DELETE of the rows it covers, whoever writes them:
the web app, the evaluator's workers, the CLI, SQL by hand. `versions(session, scopes)` reads those rows in
one statement; an entry built under one set of versions is served again only while they are all unchanged.
Tables that only the evaluator's liveness writes (worker nodes, leases, devices, the ledger, runs) have no
trigger: their heartbeats every second or two leave every cached page in place.

The value a trigger writes is max(n + 1, the clock in microseconds), so a value never comes back, not even
after the table was emptied (tests wipe it) or a backup restored: an entry is never taken for a later state.

On PostgreSQL, rows bumped as they are written would be locks taken in the order rows are written, and two
transactions touching two scopes in opposite order would deadlock. So a row trigger only notes the scopes
(a transaction-local setting, `hub.dv_pending`); a DEFERRABLE INITIALLY DEFERRED constraint trigger bumps
them at COMMIT, in sorted order, in one statement: the row locks are held for the commit alone and always
taken in the same order. (`SET CONSTRAINTS ALL IMMEDIATE` would bring the deadlocks back, though it would
miss no bump; nothing here uses it.) SQLite has a single writer and bumps at once. TRUNCATE fires no row
trigger: a table emptied by hand should be followed by a restart of the web processes, or emptied in the
same TRUNCATE as `dataversion` (as the tests do).

Entries may also carry `expires_at` for rules that change with the clock alone (a board freezing at
`freeze_at`, a phase starting): such an entry is dropped once that moment has passed.

The caches live in the process (one per gunicorn worker), are bounded in entries and bytes, and need no
Redis. This module imports no Flask.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel

from hub.models import utcnow

try:
    from psycopg.pq import TransactionStatus

    _PG_IDLE: object = TransactionStatus.IDLE
except ImportError:  # pragma: no cover - psycopg ships with the project; SQLite needs none of this
    _PG_IDLE = object()


# ---------------------------------------------------------------- scopes and their triggers
@dataclass(frozen=True)
class Tracked:
    """A table whose writes move scopes: its own table scope, and/or the scope of the challenge of each row."""

    table: str
    table_scope: bool = True
    challenge_column: str | None = None   # the column holding the row's challenge id ...
    via: str | None = None                # ... or naming a row of this table, whose challenge_id it is


def _child(table: str, column: str = "challenge_id", via: str | None = None) -> Tracked:
    return Tracked(table, table_scope=False, challenge_column=column, via=via)


# What cached pages read (tests/hub/test_cache_scopes.py fails when one reads a table not covered here).
TRACKED: tuple[Tracked, ...] = (
    Tracked("organisation"), Tracked("user"), Tracked("membership"), Tracked("apitoken"), Tracked("scenario"),
    Tracked("challenge", challenge_column="id"),
    _child("phase"), _child("dataset"), _child("team"), _child("teammember"), _child("registration"),
    _child("submission"), _child("judgeassignment"), _child("conflictdeclaration"), _child("rubricscore"),
    _child("objection"), _child("baseline", "phase_id", via="phase"),
)
TABLE_SCOPES: tuple[str, ...] = tuple(t.table for t in TRACKED if t.table_scope)


def challenge_scope(challenge_id: int) -> str:
    """The scope of one challenge: its row and every row under it (phases, teams, submissions, ...)."""
    return f"challenge:{challenge_id}"


# The value a bump writes: one more, or the clock in microseconds when that is larger (see the module notes).
_SQLITE_BUMP = ("INSERT INTO dataversion (scope, n) SELECT scope, "
                "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER) FROM ({scopes}) "
                "WHERE scope IS NOT NULL ON CONFLICT (scope) DO UPDATE SET n = max(n + 1, excluded.n)")

_PG_NOTE = r"""CREATE OR REPLACE FUNCTION hub_dv_note() RETURNS trigger LANGUAGE plpgsql AS $$
-- Notes the scopes this row moves; hub_dv_flush bumps them at commit. TG_ARGV: the table scope ('' for
-- none), the column holding the challenge id ('' for none), the table that column points into ('' for none).
DECLARE
    pending text := coalesce(current_setting('hub.dv_pending', true), '');
    ids text[] := '{}';
    id text;
    scopes text[] := '{}';
    scope text;
BEGIN
    IF TG_ARGV[0] <> '' THEN
        scopes := scopes || TG_ARGV[0];
    END IF;
    IF TG_ARGV[1] <> '' THEN
        IF TG_OP <> 'DELETE' THEN
            ids := ids || (to_jsonb(NEW) ->> TG_ARGV[1]);
        END IF;
        IF TG_OP <> 'INSERT' THEN
            ids := ids || (to_jsonb(OLD) ->> TG_ARGV[1]);
        END IF;
        FOREACH id IN ARRAY ids LOOP
            IF id IS NOT NULL AND TG_ARGV[2] <> '' THEN
                EXECUTE 'SELECT challenge_id::text FROM ' || quote_ident(TG_ARGV[2]) || ' WHERE id = $1::bigint'
                    INTO id USING id;
            END IF;
            IF id IS NOT NULL THEN
                scopes := scopes || ('challenge:' || id);
            END IF;
        END LOOP;
    END IF;
    FOREACH scope IN ARRAY scopes LOOP
        IF position(',' || scope || ',' IN pending) = 0 THEN
            pending := CASE WHEN pending = '' THEN ',' ELSE pending END || scope || ',';
        END IF;
    END LOOP;
    PERFORM set_config('hub.dv_pending', pending, true);
    RETURN NULL;
END $$"""

_PG_FLUSH = r"""CREATE OR REPLACE FUNCTION hub_dv_flush() RETURNS trigger LANGUAGE plpgsql AS $$
-- At commit (a deferred constraint trigger): bumps every noted scope, locking the rows in sorted order.
DECLARE
    pending text := coalesce(current_setting('hub.dv_pending', true), '');
BEGIN
    IF pending = '' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('hub.dv_pending', '', true);
    INSERT INTO dataversion AS d (scope, n)
        SELECT s, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint
        FROM (SELECT DISTINCT s FROM unnest(string_to_array(pending, ',')) AS s WHERE s <> '') AS noted
        ORDER BY s
        ON CONFLICT (scope) DO UPDATE SET n = greatest(d.n + 1, excluded.n);
    RETURN NULL;
END $$"""


def _sqlite_scopes(t: Tracked, rows: tuple[str, ...]) -> str:
    """A SELECT of the scopes one row event moves, for a SQLite trigger body."""
    parts = [f"SELECT '{t.table}' AS scope"] if t.table_scope else []
    for row in rows if t.challenge_column else ():
        ref = f"{row}.{t.challenge_column}"
        cid = f"(SELECT challenge_id FROM {t.via} WHERE id = {ref})" if t.via else ref
        parts.append(f"SELECT 'challenge:' || {cid} AS scope")
    return " UNION ".join(parts)


_EVENTS = (("insert", "INSERT", ("NEW",)), ("update", "UPDATE", ("OLD", "NEW")), ("delete", "DELETE", ("OLD",)))


def trigger_ddl(dialect_name: str, tables: Collection[str] | None = None) -> list[str]:
    """The statements that install the scope triggers (idempotent), for the tracked tables among `tables`.

    Used by `metadata.create_all` (hub.models' after_create hook) and the source of the Alembic migration.
    """
    chosen = [t for t in TRACKED if tables is None or t.table in tables]
    out: list[str] = []
    if dialect_name == "sqlite":
        for t in chosen:
            for name, verb, rows in _EVENTS:
                bump = _SQLITE_BUMP.format(scopes=_sqlite_scopes(t, rows))
                out.append(f'CREATE TRIGGER IF NOT EXISTS hub_dv_{t.table}_{name} AFTER {verb} ON "{t.table}" '
                           f"BEGIN {bump}; END")
    elif dialect_name == "postgresql":
        out += [_PG_NOTE, _PG_FLUSH]
        for t in chosen:
            args = ", ".join(f"'{a}'" for a in (t.table if t.table_scope else "", t.challenge_column or "",
                                               t.via or ""))
            # Triggers of one event fire in name order: should the flush ever run at once (SET CONSTRAINTS
            # ALL IMMEDIATE), it still comes after the note of the same row.
            out += [f'DROP TRIGGER IF EXISTS hub_dv_1_note ON "{t.table}"',
                    f'CREATE TRIGGER hub_dv_1_note AFTER INSERT OR UPDATE OR DELETE ON "{t.table}" '
                    f"FOR EACH ROW EXECUTE FUNCTION hub_dv_note({args})",
                    f'DROP TRIGGER IF EXISTS hub_dv_2_flush ON "{t.table}"',
                    f'CREATE CONSTRAINT TRIGGER hub_dv_2_flush AFTER INSERT OR UPDATE OR DELETE ON "{t.table}" '
                    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hub_dv_flush()"]
    else:
        raise ValueError(f"no scope triggers for {dialect_name}")
    return out


def install_triggers(connection: Connection) -> None:
    """Install the scope triggers on the tracked tables this database has (after create_all)."""
    present = set(inspect(connection).get_table_names())
    if "dataversion" not in present:
        return
    for statement in trigger_ddl(connection.dialect.name, present):
        connection.exec_driver_sql(statement)


@event.listens_for(SQLModel.metadata, "after_create")
def _install_after_create(_metadata: Any, connection: Connection, **_kw: Any) -> None:
    """create_all (tests, benches) installs the scope triggers too; migrations do it themselves."""
    install_triggers(connection)


def missing_triggers(connection: Connection) -> list[str]:
    """The tracked tables without their scope triggers (a SQLite batch migration recreating a table drops them)."""
    if connection.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'hub_dv_%'"
        have = {name for (name,) in connection.exec_driver_sql(sql)}
        return [t.table for t in TRACKED
                if not {f"hub_dv_{t.table}_{name}" for name, _verb, _rows in _EVENTS} <= have]
    sql = ("SELECT c.relname, count(*) FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid "
           "WHERE g.tgname IN ('hub_dv_1_note', 'hub_dv_2_flush') AND pg_table_is_visible(c.oid) GROUP BY c.relname")
    have = {name: count for name, count in connection.exec_driver_sql(sql)}
    return [t.table for t in TRACKED if have.get(t.table, 0) < 2]


# ---------------------------------------------------------------- reading versions
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


@dataclass(frozen=True)
class ChallengeOf:
    """The scope of the challenge a row names, found by versions() in its one statement (no lookup first):
    the challenge with this slug (table "challenge"), or the challenge of the submission with this id."""

    table: str
    key: str | int


Scope = str | ChallengeOf
# A slug never changes and a deleted row moves its challenge's scope, so what these find stays right for
# as long as the version they are part of does.
_RESOLVE = {"challenge": "SELECT 'challenge:' || id FROM challenge WHERE slug = {p}",
            "submission": "SELECT 'challenge:' || challenge_id FROM submission WHERE id = {p}"}


def _scopes_sql(scopes: list[Scope], mark: str) -> tuple[str, list[Any]]:
    """One row per scope (the found scope's name for a ChallengeOf, NULL when nothing is found) with its n."""
    parts, params = [], []
    for scope in scopes:
        if isinstance(scope, ChallengeOf):
            parts.append(f"SELECT ({_RESOLVE[scope.table].format(p=mark)}) AS scope")
        else:
            parts.append(f"SELECT CAST({mark} AS TEXT) AS scope")
        params.append(scope.key if isinstance(scope, ChallengeOf) else scope)
    return (f"SELECT s.scope, d.n FROM ({' UNION ALL '.join(parts)}) AS s "
            "LEFT JOIN dataversion AS d ON d.scope = s.scope"), params


def _pg_rows(raw: Any, scopes: list[Scope] | None) -> tuple[list[tuple[str | None, int | None]], bool]:
    """The rows of these scopes (None: every row), and whether this transaction has written."""
    idle = not raw.autocommit and raw.info.transaction_status == _PG_IDLE
    if idle:
        # Outside a transaction the statement runs on its own: no BEGIN now and no ROLLBACK when the
        # connection goes back to the pool (two round trips fewer for a page served from memory).
        raw.autocommit = True
    try:
        with raw.cursor() as cur:
            if scopes is None:
                sql, params = "SELECT scope, n FROM dataversion", []
            else:
                sql, params = _scopes_sql(scopes, "%s")
            cur.execute(f"SELECT v.scope, v.n, pg_current_xact_id_if_assigned() IS NOT NULL FROM (SELECT 1) AS one "
                        f"LEFT JOIN ({sql}) AS v ON true", params)
            result = cur.fetchall()
    finally:
        if idle:
            try:
                raw.autocommit = False
            except Exception:  # noqa: BLE001 - a broken connection: the next statement's error says so
                pass
    rows = [(scope, n) for scope, n, _wrote in result]
    return (rows if scopes is not None or rows[0][0] is not None else []), bool(result[0][2])


def versions(session: Session, scopes: Iterable[Scope] | None) -> Hashable:
    """A value that differs whenever the data of these scopes (None: every scope) this session can read differs.

    One statement. A session holding its own uncommitted changes sees data nobody else does (and that may
    yet be rolled back): it gets a version of its own; so does a ChallengeOf that finds nothing (what is
    built then may be of a row that appears meanwhile, and would outlive its deletion).
    """
    if session.new or session.deleted or session.dirty:
        return _private()
    wanted = None if scopes is None else sorted(set(scopes), key=repr)
    conn = session.connection()
    url = conn.engine.url.render_as_string(hide_password=True)
    raw = conn.connection.dbapi_connection
    assert raw is not None
    if conn.dialect.name == "sqlite":
        if raw.in_transaction:  # pysqlite opens a transaction only for a write
            return _private()
        sql, params = ("SELECT scope, n FROM dataversion", []) if wanted is None else _scopes_sql(wanted, "?")
        rows = raw.execute(sql, params).fetchall() if wanted is None or wanted else []
    elif conn.dialect.name == "postgresql":
        rows, wrote = _pg_rows(raw, wanted) if wanted is None or wanted else ([], False)
        if wrote:
            return _private()
    else:
        return _private()  # an unknown backend is never cached
    if any(scope is None for scope, _n in rows):
        return _private()
    # The scope names are part of the version: versions of two different scope sets are never equal.
    return ("v", url, tuple(sorted((scope, n or 0) for scope, n in set(rows))))


def data_version(session: Session) -> Hashable:
    """versions() of every scope: moves on any write a cached page could read (none of the evaluator's beats)."""
    return versions(session, None)
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
