"""API tokens as a person meets them: made on the account page with a name, a scope and an expiry, listed,
revoked one by one, refused with a reason once expired or revoked, and their last use recorded."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from hub import tokens
from hub.cache import data_version
from hub.errors import DomainError
from hub.models import ApiToken, Role, utcnow
from hub.users import issue_api_token
from hub.web import TOKENS
from tests.factories import PASSWORD, login, make_user

NEW_PASSWORD = "blue-kettle-orbit-42"


def _make(client, name: str = "实验室服务器", scope: str = "submit", days: str = "90") -> str:  # type: ignore[no-untyped-def]
    page = client.post("/account", data={"name": name, "scope": scope, "days": days})
    assert page.status_code == 200, page.get_data(as_text=True)[:2000]
    return re.search(r'<code class="token">([^<]+)</code>', page.get_data(as_text=True)).group(1)


def _get(app, token: str, url: str = "/api/v1/scenarios"):  # type: ignore[no-untyped-def]
    return app.test_client().get(url, headers={"Authorization": f"Bearer {token}"})


def _post_submission(app, token: str):  # type: ignore[no-untyped-def]
    return app.test_client().post("/api/v1/challenges/no-such-challenge/submissions", json={"image": "x"},
                                  headers={"Authorization": f"Bearer {token}"})


def _row(session: Session, token: str) -> ApiToken:
    session.expire_all()
    return session.exec(select(ApiToken).where(ApiToken.token_hash == tokens.digest(token))).one()


def test_a_token_is_made_listed_and_revoked_on_the_account_page(app, session):
    user = make_user(session, Role.TEAM)
    browser = app.test_client()
    login(browser, user)
    assert "您没有有效的 API 令牌" in browser.get("/account").get_data(as_text=True)
    ci = _make(browser, "CI 流水线", "read", "30")
    laptop = _make(browser, "张工的笔记本", "submit", "never")
    page = browser.get("/account").get_data(as_text=True)
    assert ci not in page and laptop not in page  # shown once, stored hashed
    rows = re.findall(r'<tr id="token-(\d+)">(.*?)</tr>', page, re.S)
    assert [r[1].split("</td>")[0].removeprefix("<td>") for r in rows] == ["张工的笔记本", "CI 流水线"]
    laptop_row, ci_row = rows[0][1], rows[1][1]
    assert "读取并提交" in laptop_row and "永不过期" in laptop_row and laptop[:12] in laptop_row
    assert "只读" in ci_row and ci[:12] in ci_row and "从未使用" in ci_row
    ci_expiry = _row(session, ci).expires_at
    assert timedelta(days=29, hours=23) < ci_expiry - utcnow() <= timedelta(days=30)
    assert _get(app, ci).status_code == 200 and _get(app, laptop).status_code == 200

    resp = browser.post(f"/account/tokens/{rows[1][0]}/revoke", follow_redirects=True)
    assert "令牌“CI 流水线”已撤销" in resp.get_data(as_text=True)
    assert 'id="token-' + rows[1][0] not in resp.get_data(as_text=True)
    refused = _get(app, ci)
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "token_revoked"
    assert "已被撤销" in refused.get_json()["error"]["message"]
    assert _get(app, laptop).status_code == 200  # one by one: the other keeps working


def test_an_expired_token_is_refused_with_the_reason(app, session):
    user = make_user(session, Role.TEAM)
    token = issue_api_token(session, user, days=30)
    assert _get(app, token, "/api/v1/submissions/1").status_code == 404
    session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    for url in ("/api/v1/scenarios", "/api/v1/submissions/1"):  # a public route too: the owner learns why
        refused = _get(app, token, url)
        assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "token_expired"
        assert "已过期" in refused.get_json()["error"]["message"]
    browser = app.test_client()
    login(browser, user)
    assert "已过期" in browser.get("/account").get_data(as_text=True)


def test_a_read_token_may_only_read(app, session):
    user = make_user(session, Role.TEAM)
    reader = issue_api_token(session, user, scope="read")
    writer = issue_api_token(session, user, scope="submit")
    assert _get(app, reader).status_code == 200
    refused = _post_submission(app, reader)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "token_read_only"
    assert "只能读取" in refused.get_json()["error"]["message"]
    assert _post_submission(app, writer).status_code == 404  # past the door: the challenge does not exist


def test_every_use_records_the_last_use_without_a_write_per_request(app, engine, session):
    user = make_user(session, Role.TEAM)
    token = issue_api_token(session, user)
    assert _row(session, token).last_used_at is None
    assert _get(app, token).status_code == 200
    first = _row(session, token).last_used_at
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    with Session(engine) as reader:
        for _ in range(3):  # every pooled connection has seen the one write
            data_version(reader)
            assert _get(app, token).status_code == 200
            reader.rollback()
        before, misses = data_version(reader), TOKENS.misses
        for _ in range(5):  # a busy CLI within the minute: no writes, the caches stay valid
            assert _get(app, token).status_code == 200
        reader.rollback()
        assert data_version(reader) == before and TOKENS.misses == misses
    assert _row(session, token).last_used_at == first
    session.execute(update(ApiToken).values(last_used_at=first - timedelta(minutes=2)))  # a while later
    session.commit()
    assert _get(app, token).status_code == 200
    assert _row(session, token).last_used_at > first


def test_a_password_change_revokes_every_token_and_logout_does_not(app, session):
    user = make_user(session, Role.TEAM)
    token = issue_api_token(session, user)
    browser = app.test_client()
    login(browser, user)
    browser.post("/logout")
    assert _get(app, token).status_code == 200  # logout ends browser sessions; scripts keep their token
    login(browser, user)
    resp = browser.post("/account/password", data={"current_password": PASSWORD, "password": NEW_PASSWORD,
                                                   "confirm": NEW_PASSWORD})
    assert resp.status_code == 302
    assert _get(app, token).get_json()["error"]["code"] == "token_revoked"
    assert "您没有有效的 API 令牌" in browser.get("/account").get_data(as_text=True)


def test_nobody_revokes_or_sees_another_persons_token(app, session):
    owner, other = make_user(session, Role.TEAM), make_user(session, Role.TEAM)
    token = issue_api_token(session, owner, name="owner-box")
    row = _row(session, token)
    browser = app.test_client()
    login(browser, other)
    assert "owner-box" not in browser.get("/account").get_data(as_text=True)
    assert browser.post(f"/account/tokens/{row.id}/revoke").status_code == 404
    assert _get(app, token).status_code == 200


def test_a_token_cannot_manage_the_account(app, session):
    """A leaked token must not mint a token that never expires, revoke the others or change the password."""
    user = make_user(session, Role.TEAM)
    token = issue_api_token(session, user, days=30)
    auth = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    assert client.get("/account", headers=auth).status_code == 403
    assert client.post("/account", data={"name": "x", "scope": "submit", "days": "never"}, headers=auth).status_code == 403
    assert client.post(f"/account/tokens/{_row(session, token).id}/revoke", headers=auth).status_code == 403
    assert client.post("/account/password", data={"current_password": PASSWORD, "password": NEW_PASSWORD,
                                                  "confirm": NEW_PASSWORD}, headers=auth).status_code == 403
    assert len(tokens.tokens_of(session, user.id)) == 1 and _get(app, token).status_code == 200


def test_the_token_form_says_what_is_missing(app, session):
    user = make_user(session, Role.TEAM)
    browser = app.test_client()
    login(browser, user)
    resp = browser.post("/account", data={"name": "  ", "scope": "submit", "days": "90"})
    assert resp.status_code == 400 and "请为令牌起个名字" in resp.get_data(as_text=True)
    assert browser.post("/account", data={"name": "x", "scope": "admin", "days": "90"}).status_code == 400
    assert browser.post("/account", data={"name": "x", "scope": "read", "days": "7"}).status_code == 400
    assert tokens.tokens_of(session, user.id) == []


def test_the_service_bounds_and_rules(session):
    user = make_user(session, Role.TEAM)
    with pytest.raises(DomainError):
        tokens.issue(session, user, "x", "read", 7)
    for i in range(tokens.MAX_ACTIVE):
        tokens.issue(session, user, f"t{i}", "read", 30)
    with pytest.raises(DomainError) as refused:
        tokens.issue(session, user, "one more", "read", 30)
    assert refused.value.params == {"n": tokens.MAX_ACTIVE}
    assert tokens.revoke_all(session, user.id) == tokens.MAX_ACTIVE
    tokens.issue(session, user, "after", "read", 30)
