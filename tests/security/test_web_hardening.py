"""The web door as an attacker meets it: open redirects, the login throttle behind a proxy, the API without
a token."""
from __future__ import annotations

import re
from urllib.parse import quote, unquote, urljoin, urlsplit

import pytest

from hub.models import Role
from tests.factories import PASSWORD, make_user

HERE = "http://localhost/"


def _where_a_browser_goes(location: str) -> tuple[str, str]:
    """(scheme, host) a browser lands on for this Location: it drops tabs/newlines, trims controls and
    spaces, and reads a backslash as a slash before resolving the URL against the page."""
    cleaned = re.sub(r"[\t\r\n]", "", location).strip("".join(chr(c) for c in range(0x21))).replace("\\", "/")
    target = urlsplit(urljoin(HERE, cleaned))
    return target.scheme, target.netloc


# Known ways to smuggle another host past a "starts with one slash" check (decoded values of ?next=).
BYPASSES = [
    "/\t/evil.example/phish", "//evil.example/phish", "/\\evil.example/phish", "\\/evil.example/phish",
    "\\\\evil.example/phish", " //evil.example/phish", "\t//evil.example/phish", "\n//evil.example/phish",
    "/\r\n/evil.example/phish", "/\\/evil.example/phish", "///evil.example/phish", "\x00//evil.example/phish",
    "https://evil.example/phish", "http:evil.example/phish", "//evil.example@localhost/phish",
    "javascript:alert(1)", "/\x0b/evil.example/phish", "\x1f//evil.example", "https:/\\evil.example",
]


def _csrf(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def _login(client, email: str, password: str, query: str = "", **headers: str):  # type: ignore[no-untyped-def]
    """A login through the form (with its CSRF token), from the address in X-Forwarded-For if given."""
    token = _csrf(client)
    return client.post(f"/login{query}", data={"email": email, "password": password, "csrf_token": token},
                       headers=headers)


# ---------------------------------------------------------------- open redirect
def test_the_issues_language_switch_stays_on_the_site(client):
    resp = client.get("/lang/en?next=/%09/evil.example/phish")
    assert resp.status_code == 302
    assert _where_a_browser_goes(resp.headers["Location"]) == ("http", "localhost"), resp.headers["Location"]


@pytest.mark.parametrize("target", BYPASSES, ids=[repr(b) for b in BYPASSES])
def test_language_switch_never_sends_the_browser_to_another_host(client, target):
    resp = client.get(f"/lang/en?next={quote(target)}")
    if resp.status_code == 400:
        return  # refused outright (a NUL byte), which is no redirect either
    assert resp.status_code == 302
    assert _where_a_browser_goes(resp.headers["Location"]) == ("http", "localhost"), resp.headers["Location"]


def test_login_after_a_good_password_never_sends_the_browser_to_another_host(secure_app, session):
    user = make_user(session)
    escaped = []
    for target in ["/%09/evil.example/phish"] + [quote(b) for b in BYPASSES]:
        client = secure_app.test_client()
        resp = _login(client, user.email, PASSWORD, query=f"?next={target}")
        assert resp.status_code in (302, 400), target
        if resp.status_code == 302 and _where_a_browser_goes(resp.headers["Location"]) != ("http", "localhost"):
            escaped.append(f"{target!r} -> {resp.headers['Location']!r}")
        # The login form also carries next= as a field.
        client = secure_app.test_client()
        token = _csrf(client)
        resp = client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token,
                                           "next": unquote(target)})
        if _where_a_browser_goes(resp.headers["Location"]) != ("http", "localhost"):
            escaped.append(f"form {target!r} -> {resp.headers['Location']!r}")
    assert not escaped, "\n".join(escaped)


def test_a_local_next_is_still_followed(secure_app, session):
    user = make_user(session)
    resp = _login(secure_app.test_client(), user.email, PASSWORD, query="?next=" + quote("/scenarios?page=2"))
    assert resp.headers["Location"] == "/scenarios?page=2"
    assert secure_app.test_client().get("/lang/en?next=/challenges").headers["Location"] == "/challenges"


# ---------------------------------------------------------------- the API without a token
def test_an_api_post_without_a_token_is_told_the_token_is_missing(secure_app):
    client = secure_app.test_client()
    resp = client.post("/api/v1/challenges/any/submissions", json={"image": "registry.local/m@sha256:" + "0" * 64})
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "token_missing"
    assert "缺少 API 令牌" in resp.get_json()["error"]["message"]
    resp = client.post("/api/v1/challenges/any/submissions", data=b"tar", headers={"Accept-Language": "en"})
    assert resp.status_code == 401 and "The API token is missing" in resp.get_json()["error"]["message"]


def test_an_api_post_with_the_session_cookie_still_needs_the_csrf_token(secure_app, session):
    user = make_user(session, Role.TEAM)
    client = secure_app.test_client()
    assert _login(client, user.email, PASSWORD).status_code == 302
    resp = client.post("/api/v1/challenges/any/submissions", json={"image": "registry.local/m@sha256:" + "0" * 64})
    assert resp.status_code == 400
    assert resp.get_json()["error"]["code"] == "csrf"


# ---------------------------------------------------------------- the login throttle behind a proxy
@pytest.fixture
def proxied_app(app_config):  # type: ignore[no-untyped-def]
    """Production behind one proxy (HUB_PROXY_HOPS=1): CSRF and the throttle on, small limits."""
    from app import create_app

    return create_app({**app_config, "WTF_CSRF_ENABLED": True, "RATELIMIT_ENABLED": True,
                       "LOGIN_RATE_LIMIT": "5 per minute", "LOGIN_ACCOUNT_RATE_LIMIT": "3 per minute",
                       "PROXY_HOPS": 1})


ATTACKER, VICTIM = "203.0.113.9", "198.51.100.7"


def test_an_attacker_hammering_many_accounts_is_stopped_and_nobody_else(proxied_app, session):
    victim = make_user(session)
    targets = [make_user(session) for _ in range(6)]
    attacker = proxied_app.test_client()
    codes = [_login(attacker, t.email, "wrong-password", X_Forwarded_For=ATTACKER).status_code for t in targets]
    assert codes == [401] * 5 + [429]
    # The attacker's address is refused even with a right password (a refused guess tells nothing) ...
    assert _login(attacker, victim.email, PASSWORD, X_Forwarded_For=ATTACKER).status_code == 429
    # ... while everyone else, behind the same proxy, logs in.
    resp = _login(proxied_app.test_client(), victim.email, PASSWORD, X_Forwarded_For=VICTIM)
    assert resp.status_code == 302


def test_without_proxy_hops_a_forged_forwarded_address_does_not_escape_the_limit(app_config, session):
    from app import create_app

    app = create_app({**app_config, "WTF_CSRF_ENABLED": True, "RATELIMIT_ENABLED": True,
                      "LOGIN_RATE_LIMIT": "5 per minute"})
    targets = [make_user(session) for _ in range(6)]
    attacker = app.test_client()
    codes = [_login(attacker, t.email, "wrong-password", X_Forwarded_For=f"192.0.2.{n}").status_code
             for n, t in enumerate(targets)]
    assert codes == [401] * 5 + [429]


def test_only_failures_count(proxied_app, session):
    user = make_user(session)
    codes = [_login(proxied_app.test_client(), user.email, PASSWORD, X_Forwarded_For=VICTIM).status_code
             for _ in range(8)]
    assert codes == [302] * 8


def test_guessing_one_account_from_many_addresses_is_slowed_but_its_owner_gets_in(proxied_app, session):
    victim = make_user(session)
    own_browser = proxied_app.test_client()
    assert _login(own_browser, victim.email, PASSWORD, X_Forwarded_For=VICTIM).status_code == 302
    own_browser.post("/logout", data={"csrf_token": _csrf(own_browser)})
    # A botnet: one guess per address.
    codes = [_login(proxied_app.test_client(), victim.email, "wrong-password",
                    X_Forwarded_For=f"192.0.2.{n}").status_code for n in range(5)]
    assert codes == [401] * 3 + [429] * 2
    # A right guess from yet another address is refused too: the account takes no more guesses for now.
    assert _login(proxied_app.test_client(), victim.email, PASSWORD, X_Forwarded_For="192.0.2.99").status_code == 429
    # The owner, in the browser that logged in before, is judged by that browser's own failures only.
    assert _login(own_browser, victim.email, PASSWORD, X_Forwarded_For=VICTIM).status_code == 302
    # Other accounts from the owner's address are untouched by the attack on this one.
    other = make_user(session)
    assert _login(proxied_app.test_client(), other.email, PASSWORD, X_Forwarded_For=VICTIM).status_code == 302


def test_a_forged_device_cookie_opens_nothing(proxied_app, session):
    victim = make_user(session)
    for n in range(3):
        _login(proxied_app.test_client(), victim.email, "wrong-password", X_Forwarded_For=f"192.0.2.{n}")
    client = proxied_app.test_client()
    client.set_cookie("hub_device", "eyJkIjoieCIsImEiOltdfQ.forged", domain="localhost")
    assert _login(client, victim.email, PASSWORD, X_Forwarded_For="192.0.2.50").status_code == 429


def test_behind_the_proxy_https_gives_secure_headers(proxied_app):
    resp = proxied_app.test_client().get("/login", headers={"X-Forwarded-Proto": "https",
                                                           "X-Forwarded-For": VICTIM})
    assert resp.headers.get("Strict-Transport-Security", "").startswith("max-age=")
    resp = proxied_app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in resp.headers
