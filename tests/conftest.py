"""Shared fixtures: a real database (SQLite or PostgreSQL), the app, and real services.

In CI (CI=true) a test whose service (Docker, Redis, PostgreSQL, Chromium) is missing fails instead of
skipping: `require()` below is the one place that decides.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from hub.db import dispose_engines, get_engine
from hub.models_registry import load_all

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parent.parent


def require(available: bool, what: str) -> None:
    """Skip locally, fail in CI, when a real service the test needs is not there."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available", pytrace=False)
    pytest.skip(f"{what} not available")  # outside CI only; in CI require() fails above


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", default=os.environ.get("TEST_DB", "sqlite"), choices=["sqlite", "postgresql"],
                     help="database the suite runs against (postgresql uses TEST_DATABASE_URL)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `postgres` test PostgreSQL's own behaviour: the SQLite run deselects them (never a skip)."""
    if config.getoption("--db") == "postgresql":
        return
    kept = [item for item in items if item.get_closest_marker("postgres") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


# ---------------------------------------------------------------- database
@pytest.fixture(scope="session")
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kind = request.config.getoption("--db")
    if kind == "postgresql":
        url = os.environ.get("TEST_DATABASE_URL", "postgresql://hub:hub@127.0.0.1:5432/hub_test")
        try:
            with get_engine(url).connect() as conn:
                conn.execute(text("select 1"))
        except Exception as err:  # noqa: BLE001 - any connection failure means "not available"
            require(False, f"PostgreSQL at {url} ({err.__class__.__name__})")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    metadata = load_all().metadata
    engine = get_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    yield url
    dispose_engines()


@pytest.fixture(scope="session")
def engine(db_url: str):  # type: ignore[no-untyped-def]
    return get_engine(db_url)


def _wipe(engine, attempts: int = 8) -> None:  # type: ignore[no-untyped-def]
    tables = list(reversed(load_all().metadata.sorted_tables))
    # A module's worker node keeps beating and sweeping while a test ends; on PostgreSQL TRUNCATE takes its
    # table locks one by one, so it can deadlock with that sweep. The server then cancels one side: when it
    # is ours, take the locks again (the node's tick retries on its own).
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    names = ", ".join(f'"{t.name}"' for t in tables)
                    conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                    conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
                else:
                    for t in tables:
                        conn.execute(t.delete())
            return
        except OperationalError as err:
            if attempt == attempts or getattr(err.orig, "sqlstate", None) not in _LOCK_CONFLICTS:
                raise
            time.sleep(0.1 * attempt)


# deadlock_detected, lock_not_available (lock_timeout)
_LOCK_CONFLICTS = {"40P01", "55P03"}


@pytest.fixture(autouse=True)
def _clean_db(request: pytest.FixtureRequest) -> Iterator[None]:
    engine = request.getfixturevalue("engine") if "db_url" in request.fixturenames else None
    yield
    if engine is not None:
        _wipe(engine)


@pytest.fixture
def session(engine) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    with Session(engine, expire_on_commit=False) as s:
        yield s


# ---------------------------------------------------------------- app
@pytest.fixture
def app_config(db_url: str, tmp_path: Path) -> dict:
    return {
        "TESTING": True,
        "DATABASE_URL": db_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATA_DIR": str(tmp_path / "data"),
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
        "SECRET_KEY": "test-secret",
    }


@pytest.fixture
def app(app_config: dict):  # type: ignore[no-untyped-def]
    from app import create_app

    return create_app(app_config)


@pytest.fixture
def secure_app(app_config: dict):  # type: ignore[no-untyped-def]
    """The app as production runs it: CSRF and the login rate limit on."""
    from app import create_app

    return create_app({**app_config, "WTF_CSRF_ENABLED": True, "RATELIMIT_ENABLED": True,
                       "LOGIN_RATE_LIMIT": "5 per minute"})


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


# ---------------------------------------------------------------- real services
@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server (Debian's) on a unix socket, for this test session only."""
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server")
    workdir = tmp_path_factory.mktemp("redis")
    sock = workdir / "redis.sock"
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    require(sock.exists(), "redis-server (did not start)")
    yield f"unix://{sock}"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_conn(redis_url: str):  # type: ignore[no-untyped-def]
    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushall()
    yield conn
    conn.flushall()


@pytest.fixture(scope="session")
def docker_client():  # type: ignore[no-untyped-def]
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as err:  # noqa: BLE001
        require(False, f"Docker engine ({err.__class__.__name__})")
    return client


class LocalRegistry:
    """A private docker-registry process (Debian's) on a free 127.0.0.1 port, filesystem storage under `workdir`.

    Deletes are enabled (manifests are deleted by digest); `config_path` is what garbage-collect reads.
    """

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary, self.workdir = binary, workdir
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.config_path = workdir / "config.yml"
        self.config_path.write_text(
            "version: 0.1\n"
            "log:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: float = 15) -> None:
        self.proc = subprocess.Popen([self.binary, "serve", str(self.config_path)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.url}/v2/", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        require(False, "docker-registry (did not start)")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def make_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], LocalRegistry]]:
    """`make_registry() -> LocalRegistry`, not started: a registry of the test's own (to stop it for GC)."""
    binary = shutil.which("docker-registry")
    require(binary is not None, "docker-registry (Debian package docker-registry)")
    made: list[LocalRegistry] = []

    def make() -> LocalRegistry:
        made.append(LocalRegistry(str(binary), tmp_path_factory.mktemp("registry")))
        return made[-1]

    yield make
    for reg in made:
        reg.stop()


@pytest.fixture(scope="session")
def registry(make_registry: Callable[[], LocalRegistry]) -> LocalRegistry:
    """The session's docker-registry, started (shared: use a repository of the test's own)."""
    reg = make_registry()
    reg.start()
    return reg


@pytest.fixture(scope="session")
def registry_url(registry: LocalRegistry) -> str:
    """`http://127.0.0.1:PORT` of the session's docker-registry."""
    return registry.url


@pytest.fixture(scope="session")
def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    require(False, "Chromium")
    return ""


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Screenshots and other CI artefacts (README names this folder)."""
    path = Path(os.environ.get("HUB_ARTIFACTS", ROOT / "artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def scratch_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hub-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
