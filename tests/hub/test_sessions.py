"""Sessions end when they should: at logout (everywhere, copied cookies included), at a password change (every
other session), after 12 hours without a request, and 7 days after the login at the latest."""
from __future__ import annotations

import time
from datetime import timedelta

from itsdangerous import TimestampSigner

from hub.models import Role
from tests.factories import PASSWORD, login, make_user

NEW_PASSWORD = "blue-kettle-orbit-42"


def _logged_in(client) -> bool:  # type: ignore[no-untyped-def]
    resp = client.get("/account")
    assert resp.status_code in (200, 302)
    return resp.status_code == 200


def _replay(app, cookie: str):  # type: ignore[no-untyped-def]
    """A fresh client (another machine) carrying a copy of a session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief


def test_a_cookie_copied_before_logout_no_longer_works(app, session):
    user = make_user(session, Role.TEAM)
    browser, laptop = app.test_client(), app.test_client()
    login(browser, user)
    login(laptop, user)
    copied = browser.get_cookie("session").value
    assert _logged_in(_replay(app, copied))  # the copy works while the session lives

    assert browser.post("/logout").status_code == 302
    assert not _logged_in(browser)
    assert not _logged_in(_replay(app, copied))
    assert not _logged_in(laptop)  # logout ends every session of the account
    login(browser, user)  # and logging in again works
    assert _logged_in(browser)


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, session):
    user = make_user(session, Role.TEAM)
    here, elsewhere = app.test_client(), app.test_client()
    login(here, user)
    login(elsewhere, user)
    copied, copied_elsewhere = here.get_cookie("session").value, elsewhere.get_cookie("session").value

    resp = here.post("/account/password", data={"current_password": PASSWORD, "password": NEW_PASSWORD,
                                                "confirm": NEW_PASSWORD}, follow_redirects=True)
    assert resp.status_code == 200 and "密码已修改" in resp.get_data(as_text=True)
    assert _logged_in(here)
    assert not _logged_in(elsewhere)
    assert not _logged_in(_replay(app, copied_elsewhere))  # the change was made from another client
    assert not _logged_in(_replay(app, copied))  # a copy of this very session from before the change too
    assert app.test_client().post("/login", data={"email": user.email, "password": PASSWORD}).status_code == 401
    login(app.test_client(), user, NEW_PASSWORD)


def test_a_session_ends_after_twelve_idle_hours(app, session, monkeypatch):
    assert app.config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=12)
    user = make_user(session, Role.TEAM)
    browser = app.test_client()
    login(browser, user)
    set_cookie = browser.get("/account").headers.get("Set-Cookie", "")
    assert "Expires=" in set_cookie  # a dated cookie, renewed by every request (idle timeout)

    serializer = app.session_interface.get_signing_serializer(app)
    data = serializer.loads(browser.get_cookie("session").value)
    with monkeypatch.context() as m:  # the same session as last signed 13 hours ago
        m.setattr(TimestampSigner, "get_timestamp", lambda _self: int(time.time()) - 13 * 3600)
        stale = serializer.dumps(data)
    assert not _logged_in(_replay(app, stale))
    assert _logged_in(_replay(app, serializer.dumps(data)))  # the control: signed now, it works


def test_a_session_ends_seven_days_after_the_login_however_busy(app, session):
    user = make_user(session, Role.TEAM)
    browser = app.test_client()
    login(browser, user)
    with browser.session_transaction() as sess:
        sess["login_at"] -= 7 * 24 * 3600 - 60
    assert _logged_in(browser)
    with browser.session_transaction() as sess:
        sess["login_at"] -= 120
    assert not _logged_in(browser)


def test_a_deactivated_account_is_logged_out(app, session):
    user = make_user(session, Role.TEAM)
    browser = app.test_client()
    login(browser, user)
    user.active = False
    session.add(user)
    session.commit()
    assert not _logged_in(browser)
