"""The Alembic migrations build exactly the schema the models declare, on the suite's database."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from hub.db import normalize_url
from hub.migrate import upgrade
from hub.models_registry import load_all


def _fresh_url(db_url: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    # A schema of its own on PostgreSQL, so the suite's tables stay as they are.
    return db_url


def test_upgrade_from_empty_matches_models(db_url, tmp_path):
    if not db_url.startswith("sqlite"):
        engine = create_engine(normalize_url(db_url))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS migcheck CASCADE"))
            conn.execute(text("CREATE SCHEMA migcheck"))
        url = normalize_url(db_url) + ("&" if "?" in db_url else "?") + "options=-csearch_path%3Dmigcheck"
    else:
        url = _fresh_url(db_url, tmp_path)
    upgrade(url)
    upgrade(url)  # a second start finds the schema current and changes nothing
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), load_all().metadata)
        tables = set(inspect(conn).get_table_names())
    assert "alembic_version" in tables
    assert diffs == []
    if not db_url.startswith("sqlite"):
        with create_engine(normalize_url(db_url)).begin() as conn:
            conn.execute(text("DROP SCHEMA migcheck CASCADE"))
