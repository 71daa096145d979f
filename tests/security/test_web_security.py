"""Web security checks over every route: CSRF, cookie flags, security headers, login rate limit."""
from __future__ import annotations

import re

import pytest

from hub.models import Role
from tests.factories import PASSWORD, make_user

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def _fill(rule: str) -> str:
    """A concrete URL for a rule; converters get a plausible value (the route may then 404, never 200)."""
    return re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: "1" if m.group(1) == "int" else "x", rule)


def _unsafe_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) & UNSAFE):
            routes.append((method, _fill(rule.rule)))
    return routes


def test_every_unsafe_route_refuses_a_request_without_csrf_token(secure_app, session):
    user = make_user(session, role=Role.ADMIN)
    client = secure_app.test_client()
    # Log in through the form with its token, then strip the token from every following request.
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
        re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, "login form carries a CSRF token"
    resp = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert resp.status_code == 302
    routes = _unsafe_routes(secure_app)
    assert routes, "the app has unsafe routes"
    for method, url in routes:
        resp = client.open(url, method=method, data={"x": "1"})
        assert resp.status_code == 400, f"{method} {url} answered {resp.status_code} without a CSRF token"


def test_login_form_without_csrf_token_is_refused(secure_app, session):
    user = make_user(session)
    resp = secure_app.test_client().post("/login", data={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 400


def test_login_is_rate_limited(secure_app, session):
    user = make_user(session)
    client = secure_app.test_client()
    codes = []
    for _ in range(7):
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)
        codes.append(client.post("/login", data={"email": user.email, "password": "wrong-password",
                                                 "csrf_token": token}).status_code)
    assert codes[:5] == [401] * 5
    assert codes[-1] == 429


def test_session_cookie_flags(app_config, session):
    from app import create_app

    app = create_app({**app_config, "SESSION_COOKIE_SECURE": True})
    user = make_user(session)
    resp = app.test_client().post("/login", data={"email": user.email, "password": PASSWORD})
    cookie = next(v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie


@pytest.mark.parametrize("path", ["/", "/login", "/scenarios", "/api/v1/scenarios", "/nope"])
def test_security_headers_on_pages_and_errors(client, path):
    resp = client.get(path, follow_redirects=True)
    h = resp.headers
    assert "default-src 'self'" in h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff"
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "same-origin"


def test_no_page_loads_assets_from_another_host(client):
    html = client.get("/login").get_data(as_text=True)
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"^(https?:)?//", url), f"external asset {url}"
