"""The password policy (hub.passwords) wherever a password is set: registration, the account page, the CLI."""
from __future__ import annotations

import re

import pytest
from sqlmodel import select

from hub.demo import DEMO_PASSWORD
from hub.errors import DomainError
from hub.models import Role, User
from hub.passwords import check_password
from tests.factories import PASSWORD, login, make_org, make_user

NEW_PASSWORD = "blue-kettle-orbit-42"


@pytest.mark.parametrize("password, says", [
    ("12345678", "at least"), ("password123", "common"), ("qwertyuiop", "simple pattern"),
    ("1234567890", "simple pattern"), ("Password2026!", "common"), ("iloveyou2024", "common"),
    ("aaaaaaaaaaaa", "simple pattern"), ("abcabcabcabc", "simple pattern"), ("1qaz2wsx3edc", "simple pattern"),
    ("9876543210", "simple pattern"), ("x" * 201, "at most"),
    ("wang.lei@example.com", "e-mail"), ("my-wang.lei-pass", "e-mail"),
])
def test_weak_passwords_are_refused_with_what_to_fix(password, says):
    with pytest.raises(DomainError) as refused:
        check_password(password, "Wang.Lei@example.com")
    assert refused.value.field == "password" and says in refused.value.message


@pytest.mark.parametrize("password", [PASSWORD, DEMO_PASSWORD, "long-enough-1", "x8391047265", "张伟家门口的那棵老槐树"])
def test_good_passwords_pass(password):
    check_password(password, "wang.lei@example.com")


def test_registration_refuses_a_weak_password_in_chinese(client, session):
    org = make_org(session)
    for password, says in (("12345678", "密码至少需要 10 个字符"), ("1234567890", "简单规律"),
                           ("password123", "最常见的密码"), ("zhao.min-2026", "邮箱")):
        resp = client.post("/register", data={"email": "zhao.min@example.com", "display_name": "赵敏",
                                              "org": str(org.id), "password": password, "confirm": password})
        assert resp.status_code == 400, password
        assert says in resp.get_data(as_text=True), password
    assert session.exec(select(User)).all() == []
    page = client.get("/register").get_data(as_text=True)
    assert "密码至少 10 个字符" in page  # the policy is stated before anyone types


def test_the_cli_refuses_a_weak_password(app, session):
    runner = app.test_cli_runner()
    res = runner.invoke(args=["create-user", "ops@example.com", "--role", "admin"], env={"HUB_PASSWORD": "qwertyuiop"})
    assert res.exit_code != 0 and "simple pattern" in res.output
    assert session.exec(select(User)).all() == []
    res = runner.invoke(args=["create-user", "ops@example.com", "--role", "admin"], env={"HUB_PASSWORD": NEW_PASSWORD})
    assert res.exit_code == 0, res.output


def test_an_existing_weak_password_still_logs_in(client, session):
    """The policy applies when a password is set: accounts made before it keep working."""
    from hub.users import hash_password

    user = make_user(session, Role.TEAM)
    user.password_hash = hash_password("12345678")
    session.add(user)
    session.commit()
    login(client, user, "12345678")


def _change(client, current: str, new: str, confirm: str | None = None):  # type: ignore[no-untyped-def]
    return client.post("/account/password", data={"current_password": current, "password": new,
                                                  "confirm": new if confirm is None else confirm})


def test_a_person_changes_their_password_on_the_account_page(client, session):
    user = make_user(session, Role.TEAM)
    login(client, user)
    page = client.get("/account").get_data(as_text=True)
    assert 'id="password-form"' in page and "密码至少 10 个字符" in page and "所有 API 令牌都会被撤销" in page
    for current, new, confirm, says in (
            ("not-my-password", NEW_PASSWORD, None, "当前密码不正确"),
            (PASSWORD, NEW_PASSWORD, "blue-kettle-orbit-43", "两次输入的新密码不一致"),
            (PASSWORD, "1234567890", None, "简单规律"),
            (PASSWORD, PASSWORD, None, "新密码与当前密码相同")):
        resp = _change(client, current, new, confirm)
        assert resp.status_code == 400 and says in resp.get_data(as_text=True), says
    resp = _change(client, PASSWORD, NEW_PASSWORD)
    assert resp.status_code == 302 and resp.headers["Location"] == "/account"
    other = client.application.test_client()
    assert other.post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 401
    login(other, user, NEW_PASSWORD)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def test_password_change_is_rate_limited_like_login(secure_app, session):
    client = secure_app.test_client()
    user = make_user(session, Role.TEAM)
    token = _csrf(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}).status_code == 302
    token = _csrf(client.get("/account").get_data(as_text=True))
    codes = [client.post("/account/password", data={"current_password": f"guess-{i}-xxxxx", "password": NEW_PASSWORD,
                                                    "confirm": NEW_PASSWORD, "csrf_token": token}).status_code
             for i in range(6)]
    assert codes[:5] == [400] * 5 and codes[5] == 429
