"""The Alembic migrations build exactly the schema the models declare, on the suite's database."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from hub.cache import missing_triggers
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
        untracked = missing_triggers(conn)
    assert "alembic_version" in tables
    assert diffs == []
    assert untracked == [], "tables whose writes would not invalidate the page caches"
    if not db_url.startswith("sqlite"):
        with create_engine(normalize_url(db_url)).begin() as conn:
            conn.execute(text("DROP SCHEMA migcheck CASCADE"))


def test_upgrade_of_a_live_database_distrusts_self_registered_members(tmp_path):
    """The trust revision: team accounts that picked their company at /register become pending requests; staff
    created by a platform admin stay members; every old session ends; an old API token becomes a named one."""
    from alembic import command

    from hub.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "5a1c0e7b9d21")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO organisation (id, code, name, name_en, kind, themes, created_at) VALUES "
                          "(1, 'qinchuang', '秦创智能', 'Qinchuang', 'company', '[]', '2026-01-01 00:00:00'), "
                          "(2, 'konggang', '空港新城', 'Konggang', 'city', '[]', '2026-01-01 00:00:00')"))
        conn.execute(text("INSERT INTO user (id, email, password_hash, display_name, role, org_id, api_token_hash, "
                          "active, created_at) VALUES "
                          "(1, 'stranger@x.example', 'h', 's', 'team', 1, 'ab' || hex(randomblob(31)), 1, "
                          "'2026-01-01 00:00:00'), "
                          "(2, 'gov@x.example', 'h', 'g', 'gov', 2, NULL, 1, '2026-01-01 00:00:00')"))
    command.upgrade(cfg, "head")
    with engine.connect() as conn:
        users = dict(conn.execute(text("SELECT email, org_id FROM user")).all())
        members = dict(conn.execute(text("SELECT email, status FROM membership")).all())
        keys = [k for (k,) in conn.execute(text("SELECT session_key FROM user"))]
        tokens = conn.execute(text("SELECT user_id, scope, expires_at FROM apitoken")).all()
    assert users == {"stranger@x.example": None, "gov@x.example": 2}
    assert members == {"stranger@x.example": "pending", "gov@x.example": "active"}
    assert len(set(keys)) == 2 and all(len(k) >= 24 for k in keys)
    assert [(t[0], t[1]) for t in tokens] == [(1, "submit")] and tokens[0][2] is not None
