"""Log in, register, log out, language switch, CSRF and the login rate limit, as a user meets them."""
from __future__ import annotations

import re

from sqlmodel import select

from hub.models import Role, User
from tests.factories import PASSWORD, login, make_city, make_org, make_user


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_register_creates_a_team_account_and_logs_in(client, session):
    org = make_org(session, name="秦创智能科技有限公司")
    resp = client.post("/register", data={"email": "New.User@Example.com", "display_name": "张工", "org": str(org.id),
                                          "password": "long-enough-1", "confirm": "long-enough-1"})
    assert resp.status_code == 302
    user = session.exec(select(User).where(User.email == "new.user@example.com")).one()
    # Choosing an organisation only asks to join it: no organisation rights until its administrator approves.
    assert user.role == Role.TEAM and user.org_id is None and user.password_hash != "long-enough-1"
    assert "张工" in client.get("/account").get_data(as_text=True)


def test_register_refuses_a_city_and_a_short_password(client, session):
    city = make_city(session)
    resp = client.post("/register", data={"email": "x@example.com", "display_name": "x", "org": str(city.id),
                                          "password": "short", "confirm": "short"})
    assert resp.status_code == 400
    assert session.exec(select(User)).all() == []


def test_login_follows_only_same_site_next(client, session):
    user = make_user(session)
    resp = client.post("/login?next=/scenarios", data={"email": user.email, "password": PASSWORD})
    assert resp.headers["Location"] == "/scenarios"
    client.post("/logout")
    resp = client.post("/login?next=//evil.example/x", data={"email": user.email, "password": PASSWORD})
    assert resp.headers["Location"] == "/"


def test_logout_needs_post(client, session):
    login(client, make_user(session))
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 302
    assert client.get("/account").status_code == 302


def test_language_switch_by_link_and_query(client):
    assert "Log in" in client.get("/login?lang=en").get_data(as_text=True)
    assert "Log in" in client.get("/login").get_data(as_text=True)  # remembered in the session
    client.get("/lang/zh_CN")
    assert "登录" in client.get("/login").get_data(as_text=True)
    client.get("/lang/xx")  # unknown language is ignored
    assert "登录" in client.get("/login").get_data(as_text=True)


def test_csrf_is_required_on_forms(secure_app, session):
    client = secure_app.test_client()
    user = make_user(session, Role.GOV, make_city(session))
    resp = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert resp.status_code == 400 and "表单已过期" in resp.get_data(as_text=True)
    token = _csrf(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}).status_code == 302
    resp = client.post("/scenarios/new", data={"title": "无令牌"})
    assert resp.status_code == 400


def test_login_is_rate_limited(secure_app, session):
    client = secure_app.test_client()
    user = make_user(session)
    token = _csrf(client.get("/login").get_data(as_text=True))
    codes = [client.post("/login", data={"email": user.email, "password": "wrong-password", "csrf_token": token}).status_code
             for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
