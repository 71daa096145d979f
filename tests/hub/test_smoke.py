from tests.factories import login, make_user


def test_login_and_logout_roundtrip(client, session):
    user = make_user(session)
    login(client, user)
    resp = client.get("/account")
    assert resp.status_code == 200
    assert user.email in resp.get_data(as_text=True)


def test_wrong_password_is_refused_in_chinese(client, session):
    user = make_user(session)
    resp = client.post("/login", data={"email": user.email, "password": "nope-nope-nope"})
    assert resp.status_code == 401
    assert "邮箱或密码错误" in resp.get_data(as_text=True)
