"""Browser fixtures: the real app on a free local port (CSRF on), and Playwright driving Debian's Chromium.

Reusable by every journey: `live_server` (url, app), `browser`, `page` (a fresh context per test),
`login_as(page, email, password)`, and `screenshot(page, name)` into artifacts_dir/screenshots.
"""
from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.factories import PASSWORD


@dataclass
class LiveServer:
    url: str
    app: Flask

    def __call__(self, path: str = "/") -> str:
        """The absolute URL of a path on this server."""
        return self.url + path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server(app_config: dict, tmp_path: Path) -> Iterator[LiveServer]:
    """create_app on the test database with a temporary instance, CSRF on and no login rate limit."""
    from app import create_app

    app = create_app({**app_config, "TESTING": False, "WTF_CSRF_ENABLED": True, "RATELIMIT_ENABLED": False,
                      "INSTANCE_PATH": str(tmp_path / "live-instance")})
    server = make_server("127.0.0.1", _free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra installs it
        from tests.conftest import require
        require(False, "playwright (Python package)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser context (no cookies, Chinese locale) whose base_url is the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900},
                                  locale="zh-CN", accept_downloads=True)
    context.set_default_timeout(15_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def login_as() -> Callable[..., None]:
    """Log a user in through the login form: login_as(page, email, password=PASSWORD)."""

    def do_login(pg: Any, email: str, password: str = PASSWORD) -> None:
        pg.context.clear_cookies()
        pg.goto("/login")
        pg.fill("input[name=email]", email)
        pg.fill("input[name=password]", password)
        with pg.expect_navigation():
            pg.click("form button[type=submit].primary")
        assert "/login" not in pg.url, f"login of {email} failed"

    return do_login


@pytest.fixture
def screenshot(artifacts_dir: Path, request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """Save a full-page screenshot as artifacts_dir/screenshots/<test>-<nn>-<name>.png."""
    folder = artifacts_dir / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 100))

    def take(pg: Any, name: str) -> Path:
        path = folder / f"{request.node.name}-{next(counter):02d}-{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        return path

    return take


# ---------------------------------------------------------------- added for the whole journey (issue 6)
# The evaluator's offline image builders, for journeys that submit a real image from the page.
from tests.evaluator.conftest import busybox_binary, busybox_image, docker_tar  # noqa: E402,F401


class ScreenshotSeries:
    """Ordered full-page screenshots in one folder: 01-<name>.png, 02-<name>.png … (older ones removed first)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()
        self.taken: list[Path] = []

    def __call__(self, pg: Any, name: str) -> Path:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        pg.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


@pytest.fixture
def screenshot_series(artifacts_dir: Path) -> Callable[[str], ScreenshotSeries]:
    """`screenshot_series("journey")`: ordered screenshots under artifacts_dir/screenshots/journey."""
    return lambda name: ScreenshotSeries(artifacts_dir / "screenshots" / name)
