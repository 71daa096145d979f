"""Per-scope cache versions: every cached route names the scopes it reads, the evaluator's beats drop nothing,
a write drops exactly the entries of its scope (whoever writes it), and the commit-time bumps never deadlock."""
from __future__ import annotations

import gc
import re
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text, update
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

import hub.web
from challenges import leaderboard
from challenges.models import Submission, Team
from evaluator.models import WorkerNode
from evaluator.quota.models import Lease
from hub import cache
from hub.cache import TRACKED, ChallengeOf, Scope, VersionedCache
from hub.models import Organisation, Role, utcnow
from hub.models_registry import load_all
from hub.users import issue_api_token
from marketplace.models import Scenario
from tests.factories import (login, make_approved_team, make_city, make_open_challenge, make_scenario,
                             make_scored_submission, make_user)


# ---------------------------------------------------------------- the statement recorder
def covered(scopes: frozenset[Scope] | None, table: str) -> bool:
    """Whether a write to `table` moves one of these scopes (None: every scope)."""
    for t in TRACKED:
        if t.table != table:
            continue
        if scopes is None or (t.table_scope and table in scopes):
            return True
        if t.challenge_column and any(isinstance(s, ChallengeOf) or s.startswith("challenge:") for s in scopes):
            return True
    return False


def _table_patterns() -> dict[str, re.Pattern[str]]:
    # A table is read when a SELECT names it after FROM/JOIN or qualifies a column with it.
    return {t.name: re.compile(rf'(?:\bFROM|\bJOIN)\s+"?{t.name}"?(?![\w.])|(?<![\w.])"?{t.name}"?\.\w', re.I)
            for t in load_all().metadata.sorted_tables}


@contextmanager
def reading(engine) -> Iterator[set[str]]:  # type: ignore[no-untyped-def]
    """The tables the SELECTs run through `engine` read while the block runs."""
    patterns, tables = _table_patterns(), set()

    def record(_conn, _cursor, statement: str, *_args: Any) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip()[:6].upper() in ("SELECT", "WITH R", "WITH A"):
            tables.update(name for name, pattern in patterns.items() if pattern.search(statement))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield tables
    finally:
        event.remove(engine, "before_cursor_execute", record)


class _Recording(VersionedCache):
    """hub.web.RESPONSES that keeps the version of every entry it is given."""

    def __init__(self) -> None:
        super().__init__("recording")
        self.put_versions: list[Hashable] = []

    def put(self, key: Hashable, version: Hashable, value: Any, **kw: Any) -> None:
        self.put_versions.append(version)
        super().put(key, version, value, **kw)


@pytest.fixture
def recorder(monkeypatch, engine):  # type: ignore[no-untyped-def]
    """(route → tables read, scopes its cached response depends on, or False when it was not kept), with every
    inner cache emptied first."""
    asked: list[tuple[frozenset[Scope] | None, Hashable]] = []
    real = hub.web.versions

    def spy(session: Session, scopes: Any) -> Hashable:
        version = real(session, scopes)
        asked.append((None if scopes is None else frozenset(scopes), version))
        return version

    monkeypatch.setattr(hub.web, "versions", spy)
    responses = _Recording()
    monkeypatch.setattr(hub.web, "RESPONSES", responses)

    def render(client, path: str, **kw: Any) -> tuple[set[str], Any]:  # type: ignore[no-untyped-def]
        for _warm in range(2):  # the first use of a token records it, and its cached row is read again
            assert client.get(path, **kw).status_code == 200
        for found in gc.get_objects():  # every cache of rows, bodies and pages; the loaders' stay warm
            if isinstance(found, VersionedCache) and found.name not in ("users", "tokens"):
                found.clear()
        responses.put_versions.clear()
        with reading(engine) as tables:
            assert client.get(path, **kw).status_code == 200
        if not responses.put_versions:
            return tables, False
        version = responses.put_versions[0]
        if None in {s for s, v in asked if v == version}:
            return tables, None  # every scope
        return tables, frozenset(name for name, _n in version[2])  # as found (a ChallengeOf names its challenge)

    return render


def _uncovered(tables: set[str], scopes: frozenset[Scope] | None) -> set[str]:
    return {t for t in tables if not covered(scopes, t)}


@pytest.fixture
def world(session, tmp_path):  # type: ignore[no-untyped-def]
    """A city with a scenario, and a public challenge with two teams, a judge with a conflict and scores."""
    city = make_city(session, code="konggang", name="空港新城")
    gov = make_user(session, Role.GOV, city)
    make_scenario(session, city=city, gov=gov, title="航空物流货量智能预测")
    oc = make_open_challenge(session, tmp_path)
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    b = make_approved_team(session, oc.challenge, oc.gov, name="乙队")
    sub = make_scored_submission(session, a.team, oc.phases[0], 2.0)
    make_scored_submission(session, b.team, oc.phases[0], 3.0)
    from challenges import judging

    judge = make_user(session, Role.JUDGE)
    judging.assign_judge(session, oc.gov, oc.challenge, judge.id)
    judging.declare_conflict(session, judge, oc.challenge, a.team.id, "前同事")
    return dict(gov=gov, oc=oc, a=a, b=b, sub=sub, judge=judge, token=issue_api_token(session, a.users[0]))


def test_every_cached_route_depends_on_every_table_it_reads(app, world, recorder):
    oc, a = world["oc"], world["a"]
    slug = oc.challenge.slug
    anonymous, team, organiser, judge = (app.test_client() for _ in range(4))
    login(team, a.users[0])
    login(organiser, oc.gov)
    login(judge, world["judge"])
    bearer = {"headers": {"Authorization": f"Bearer {world['token']}"}}
    api_board = f"/api/v1/challenges/{slug}/leaderboard"
    checks = [(anonymous, "/scenarios", {}), (anonymous, "/api/v1/scenarios", {}),
              (organiser, "/api/v1/scenarios", {}), (anonymous, "/api/v1/scenarios", bearer),
              (anonymous, f"/challenges/{slug}/leaderboard", {})]
    checks += [(who, api_board, {}) for who in (anonymous, team, organiser, judge)]
    checks += [(anonymous, api_board, bearer), (anonymous, f"/api/v1/submissions/{world['sub'].id}", bearer),
               (organiser, f"/api/v1/submissions/{world['sub'].id}", {})]
    board = frozenset(leaderboard.depends(oc.challenge.id))
    for client, path, kw in checks:
        tables, scopes = recorder(client, path, **kw)
        assert tables, path  # the recorder saw the build's statements
        if "leaderboard" in path:
            # The rows, the JSON body and the page's table are cached per viewer under the challenge's scope
            # (the whole response only for the anonymous); the page still names no scopes (every scope).
            assert _uncovered(tables, board) == set(), path
            assert scopes in (False, None, board), path
        else:
            assert scopes is not False, f"{path} was not cached"
        if scopes is not False:
            assert _uncovered(tables, scopes) == set(), (path, scopes)


def test_the_login_caches_depend_on_what_they_read(app, engine, session):
    user = make_user(session, Role.TEAM)
    token = issue_api_token(session, user)
    session.commit()
    hub.web.USERS.clear()
    hub.web.TOKENS.clear()
    with app.test_request_context("/"):
        with reading(engine) as tables:
            assert hub.web._active_user(user.id) is not None
        assert tables and _uncovered(tables, frozenset(hub.web.USER_SCOPES)) == set()
        with reading(engine) as tables:
            assert hub.web._known_token(token) is not None
        assert tables and _uncovered(tables, frozenset(hub.web.TOKEN_SCOPES)) == set()


# ---------------------------------------------------------------- behaviour
def _titles(client) -> list[str]:  # type: ignore[no-untyped-def]
    return [item["title"] for item in client.get("/api/v1/scenarios").get_json()["items"]]


def _served_from_memory(client, path: str) -> bool:  # type: ignore[no-untyped-def]
    hits = hub.web.RESPONSES.hits
    assert client.get(path).status_code == 200
    return hub.web.RESPONSES.hits == hits + 1


def test_worker_beats_leave_the_scenario_list_cached_and_an_edit_drops_it(app, engine, session, tmp_path):
    city = make_city(session, code="konggang", name="空港新城")
    scenario = make_scenario(session, city=city, title="航空物流货量智能预测")
    oc = make_open_challenge(session, tmp_path)
    team = make_approved_team(session, oc.challenge, oc.gov)
    sub = make_scored_submission(session, team.team, oc.phases[0], 0, status="running", outcome=None)
    session.add(WorkerNode(name="node-1", queues=["cpu"]))
    session.add(Lease(submission_id=sub.id, challenge_id=oc.challenge.id, accel_class="cpu", node="node-1",
                      expires_at=utcnow() + timedelta(minutes=1)))
    session.commit()
    client = app.test_client()
    assert "航空物流货量智能预测" in _titles(client)  # beside the challenge's own scenario
    assert _served_from_memory(client, "/api/v1/scenarios")
    for _beat in range(3):  # the node and its lease beat, as a worker does every second or two
        with engine.begin() as conn:
            conn.execute(update(WorkerNode).values(heartbeat_at=utcnow()))
            conn.execute(update(Lease).values(heartbeat_at=utcnow(), expires_at=utcnow() + timedelta(minutes=1)))
        assert _served_from_memory(client, "/api/v1/scenarios")
    session.get(Scenario, scenario.id).title = "冷链仓储智能调度"
    session.commit()
    assert not _served_from_memory(client, "/api/v1/scenarios")
    assert "冷链仓储智能调度" in _titles(client) and "航空物流货量智能预测" not in _titles(client)


def test_sql_by_hand_on_another_connection_drops_the_entry(app, engine, session):
    city = make_city(session, code="konggang", name="空港新城")
    make_scenario(session, city=city, title="航空物流货量智能预测")
    client = app.test_client()
    assert _titles(client) == ["航空物流货量智能预测"]
    with engine.connect() as conn:  # no ORM, no service: the database's triggers see it all the same
        conn.execute(text("UPDATE scenario SET title = '冷链仓储智能调度'"))
        conn.commit()
    assert _titles(client) == ["冷链仓储智能调度"]
    with engine.connect() as conn:  # a city renamed: the list shows city names
        conn.execute(text("UPDATE organisation SET name = '空港'"))
        conn.commit()
    assert not _served_from_memory(client, "/api/v1/scenarios")


def test_a_score_in_one_challenge_drops_its_board_only(app, engine, session, tmp_path):
    boards = []
    for name in ("甲", "乙"):
        oc = make_open_challenge(session, tmp_path / name)
        t = make_approved_team(session, oc.challenge, oc.gov, name=f"{name}队")
        make_scored_submission(session, t.team, oc.phases[0], 2.0)
        boards.append((oc, t))
    (oc_a, team_a), (oc_b, _team_b) = boards
    client = app.test_client()
    paths = [f"/api/v1/challenges/{oc.challenge.slug}/leaderboard" for oc, _t in boards]
    for path in paths:
        client.get(path)
    assert all(_served_from_memory(client, path) for path in paths)
    cached_b = leaderboard.cached_build(session, oc_b.challenge, oc_b.phases[0], viewer=None)
    with engine.begin() as conn:  # challenge A's team scores better (another connection, as a worker)
        conn.execute(update(Submission).where(Submission.team_id == team_a.team.id).values(primary_score=1.0))
    assert _served_from_memory(client, paths[1])
    assert leaderboard.cached_build(session, oc_b.challenge, oc_b.phases[0], viewer=None).rows is cached_b.rows
    assert not _served_from_memory(client, paths[0])
    assert client.get(paths[0]).get_json()["rows"][0]["score"] == 1.0
    with engine.begin() as conn:  # a row under the challenge that names it only through its phase
        conn.execute(text("INSERT INTO baseline (phase_id, label, scores, primary_score) "
                          "VALUES (:p, 'baseline', '{}', 0.5)"), {"p": oc_a.phases[0].id})
    assert [r["team"] for r in client.get(paths[0]).get_json()["rows"]] == ["baseline", "甲队"]
    assert _served_from_memory(client, paths[1])


def test_every_tracked_table_has_its_triggers_and_installing_twice_changes_nothing(engine):
    with engine.begin() as conn:
        assert cache.missing_triggers(conn) == []
        cache.install_triggers(conn)
        assert cache.missing_triggers(conn) == []
    for dialect in ("sqlite", "postgresql"):  # the migration's source: nothing on the evaluator's beats
        ddl = " ".join(cache.trigger_ddl(dialect))
        for quiet in ("workernode", "lease", "device", "ledgerline", "auditlog"):
            assert f'ON "{quiet}"' not in ddl


def test_a_write_inside_an_open_transaction_gets_a_version_of_its_own(engine, session):
    make_city(session, code="konggang", name="空港新城")
    with Session(engine) as reader:
        before = cache.versions(reader, ["organisation"])
        with Session(engine) as writer:
            writer.execute(update(Organisation).values(name_en="Konggang"))
            assert cache.versions(writer, ["organisation"]) != cache.versions(writer, ["organisation"])
            assert cache.versions(reader, ["organisation"]) == before  # not committed: nothing moved
            writer.commit()
        reader.rollback()
        after = cache.versions(reader, ["organisation"])
        assert after != before and cache.versions(reader, ["organisation", "user"]) != after
        reader.execute(update(Organisation).values(name_en="Airport"))  # a write, not yet committed:
        assert cache.versions(reader, ["scenario"])[0] == "private"  # whatever it reads is its own


# ---------------------------------------------------------------- PostgreSQL: bumps at commit, in order
def _cross(engine, first: list[str], second: list[str], immediate: bool) -> list[BaseException]:  # type: ignore[no-untyped-def]
    """Two transactions: each runs its first statement, waits for the other, then its second, and commits."""
    barrier, errors = threading.Barrier(2, timeout=30), []

    def run(mine: list[str]) -> None:
        try:
            with engine.connect() as conn:
                if immediate:
                    conn.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))
                conn.execute(text(mine[0]))
                barrier.wait()
                conn.execute(text(mine[1]))
                conn.commit()
        except BaseException as err:  # noqa: BLE001 - reported to the test
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return [e for e in errors if not isinstance(e, threading.BrokenBarrierError)]


@pytest.mark.postgres
def test_two_transactions_bumping_two_scopes_in_opposite_order_do_not_deadlock(engine, session, tmp_path):
    # Marked postgres: the SQLite run deselects it (SQLite bumps per row under its single writer; no hazard).
    cities = [make_city(session, code=f"c{i}", name=f"城{i}") for i in range(2)]
    users = [make_user(session, Role.TEAM) for _ in range(2)]
    teams = []
    for i in range(2):
        oc = make_open_challenge(session, tmp_path / str(i))
        teams += [(make_approved_team(session, oc.challenge, oc.gov).team, oc.challenge.id) for _ in range(2)]
    org = "UPDATE organisation SET name_en = 'x' WHERE id = {}"
    usr = "UPDATE \"user\" SET locale = 'en' WHERE id = {}"
    by_table = ([org.format(cities[0].id), usr.format(users[0].id)],
                [usr.format(users[1].id), org.format(cities[1].id)])
    tm = "UPDATE team SET name = name || '+' WHERE id = {}"
    (a1, ca), (a2, _), (b1, cb), (b2, _) = teams
    by_challenge = ([tm.format(a1.id), tm.format(b1.id)], [tm.format(b2.id), tm.format(a2.id)])
    for first, second in (by_table, by_challenge):
        with Session(engine) as reader:
            scopes = ["organisation", "user", f"challenge:{ca}", f"challenge:{cb}"]
            before = dict(cache.versions(reader, scopes)[2])
        for _round in range(3):
            assert _cross(engine, first, second, immediate=False) == []
        with Session(engine) as reader:
            after = dict(cache.versions(reader, scopes)[2])
        moved = {s for s in scopes if after[s] != before[s]}
        assert moved == ({"organisation", "user"} if first is by_table[0] else {f"challenge:{ca}", f"challenge:{cb}"})
    # The same schedule with the bumps made as each row is written: the deadlock this design avoids.
    errors = _cross(engine, *by_challenge, immediate=True)
    assert [getattr(getattr(e, "orig", None), "sqlstate", None) for e in errors] == ["40P01"]
    assert all(isinstance(e, OperationalError) for e in errors)
    assert session.get(Team, a1.id) is not None


def test_a_challenge_named_by_a_row_is_found_in_the_same_statement(engine, session, tmp_path):
    oc = make_open_challenge(session, tmp_path)
    team = make_approved_team(session, oc.challenge, oc.gov)
    sub = make_scored_submission(session, team.team, oc.phases[0], 1.0)
    scope = cache.challenge_scope(oc.challenge.id)
    with Session(engine) as reader:
        plain = cache.versions(reader, [scope])
        assert cache.versions(reader, [ChallengeOf("challenge", oc.challenge.slug)]) == plain
        assert cache.versions(reader, [ChallengeOf("submission", sub.id), scope]) == plain
        # Nothing found: a version of its own (a row appearing meanwhile must not be cached as "none").
        assert cache.versions(reader, [ChallengeOf("challenge", "no-such-slug")])[0] == "private"
        assert cache.versions(reader, [ChallengeOf("submission", sub.id + 1000)])[0] == "private"
