"""The in-process caches: exact invalidation by the database's data version, bounds, and who gets what."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session

from hub.cache import VersionedCache, data_version, next_change
from hub.models import Organisation, Role, User, utcnow
from hub import tokens
from hub.users import issue_api_token
from marketplace import scenarios
from tests.factories import login, make_city, make_scenario, make_user


def test_the_data_version_moves_with_every_commit_and_only_then(engine, session):
    city = make_city(session, code="fengxi", name="沣西新城")
    with Session(engine) as reader:
        first = data_version(reader)
        assert data_version(reader) == first  # nothing written: the same version
        with Session(engine) as writer:  # another connection commits
            writer.execute(update(Organisation).values(name_en="Fengxi"))
            assert data_version(writer) != data_version(writer)  # uncommitted: a version of its own
            writer.commit()
        reader.rollback()
        second = data_version(reader)
        assert second != first
        session.add(city)
        city.name = "沣西"
        assert data_version(session) != data_version(session)  # pending changes are never shared
        session.commit()
        reader.rollback()
        assert data_version(reader) not in (first, second)


def test_versioned_cache_bounds_and_clock():
    cache = VersionedCache("t", max_entries=2, max_bytes=100)
    cache.put("a", 1, "A", size=10)
    cache.put("b", 1, "B", size=10)
    assert cache.get("a", 1) == "A" and cache.get("a", 2) is None  # another version: a miss, and dropped
    assert cache.get("a", 1) is None
    cache.put("a", 1, "A", size=10)
    cache.put("c", 1, "C", size=10)  # over two entries: the least recently used ("b") goes
    assert cache.get("b", 1) is None and cache.get("c", 1) == "C"
    sized = VersionedCache("s", max_entries=10, max_bytes=100)
    for key in "wxyz":
        sized.put(key, 1, key, size=25)
    sized.put("v", 1, "v", size=25)  # over the bytes: the oldest makes room
    assert sized.get("w", 1) is None and sized.get("v", 1) == "v" and len(sized) == 4
    sized.put("huge", 1, "y", size=26)  # more than a quarter of the budget: never kept
    assert sized.get("huge", 1) is None and len(sized) == 4
    now = utcnow()
    cache.put("t", 1, "T", expires_at=now + timedelta(seconds=5))
    assert cache.get("t", 1, now) == "T" and cache.get("t", 1, now + timedelta(seconds=5)) is None
    assert next_change(now, None, now - timedelta(1), now + timedelta(2), now + timedelta(1)) == now + timedelta(1)


def _titles(resp) -> list[str]:  # type: ignore[no-untyped-def]
    return [item["title"] for item in resp.get_json()["items"]]


def test_scenario_lists_show_a_change_on_the_next_request_and_drafts_only_to_their_city(app, session):
    city = make_city(session, code="konggang", name="空港新城")
    gov = make_user(session, Role.GOV, city)
    other_gov = make_user(session, Role.GOV, make_city(session, code="qinhan", name="秦汉新城"))
    s = make_scenario(session, city=city, gov=gov, title="航空物流货量智能预测")
    anonymous, own, other = app.test_client(), app.test_client(), app.test_client()
    login(own, gov)
    login(other, other_gov)
    tokens = {"own": issue_api_token(session, gov), "other": issue_api_token(session, other_gov)}
    session.commit()
    for _round in range(2):  # the second round comes from the caches
        assert _titles(anonymous.get("/api/v1/scenarios")) == ["航空物流货量智能预测"]
        assert "航空物流货量智能预测" in anonymous.get("/scenarios").get_data(as_text=True)
    draft = scenarios.create_scenario(session, gov, "konggang", scenarios.ScenarioInput(
        **{**scenarios.ScenarioInput.of(s).__dict__, "title": "冷链仓储草稿"}))
    for _round in range(2):
        assert "冷链仓储草稿" not in _titles(anonymous.get("/api/v1/scenarios"))
        assert "冷链仓储草稿" not in anonymous.get("/scenarios").get_data(as_text=True)
        assert "冷链仓储草稿" in _titles(own.get("/api/v1/scenarios"))
        assert "冷链仓储草稿" in own.get("/scenarios").get_data(as_text=True)
        assert "冷链仓储草稿" not in _titles(other.get("/api/v1/scenarios"))
        mine = app.test_client().get("/api/v1/scenarios", headers={"Authorization": f"Bearer {tokens['own']}"})
        assert "冷链仓储草稿" in _titles(mine)
        theirs = app.test_client().get("/api/v1/scenarios", headers={"Authorization": f"Bearer {tokens['other']}"})
        assert "冷链仓储草稿" not in _titles(theirs)
    scenarios.change_status(session, gov, draft.id, "published")
    assert "冷链仓储草稿" in _titles(anonymous.get("/api/v1/scenarios"))  # published: everyone, at once
    assert "冷链仓储草稿" in anonymous.get("/scenarios").get_data(as_text=True)
    english = anonymous.get("/api/v1/scenarios", headers={"Accept-Language": "en"}).get_json()
    chinese = anonymous.get("/api/v1/scenarios").get_json()
    assert english["items"][0]["status_label"] == "Published" and chinese["items"][0]["status_label"] == "已发布"


def test_a_logged_in_page_is_never_served_to_anyone_else(app, session):
    city = make_city(session, code="konggang", name="空港新城")
    gov = make_user(session, Role.GOV, city, name="王处长")
    make_scenario(session, city=city, gov=gov, title="航空物流货量智能预测")
    own = app.test_client()
    login(own, gov)
    assert "王处长" in own.get("/scenarios").get_data(as_text=True)
    assert "王处长" in own.get("/scenarios").get_data(as_text=True)
    anonymous = app.test_client().get("/scenarios").get_data(as_text=True)
    assert "王处长" not in anonymous and "csrf_token" not in anonymous


def test_a_pending_message_is_shown_not_swallowed_by_the_cache(app, session):
    city = make_city(session, code="konggang", name="空港新城")
    make_scenario(session, city=city, title="航空物流货量智能预测")
    client = app.test_client()
    client.get("/scenarios")  # warm
    with client.session_transaction() as sess:
        sess["_flashes"] = [("success", "一条提示")]
    assert "一条提示" in client.get("/scenarios").get_data(as_text=True)
    assert "一条提示" not in client.get("/scenarios").get_data(as_text=True)


def test_a_deactivated_account_or_a_replaced_token_stops_working_at_once(app, session):
    user = make_user(session, Role.TEAM)
    token = issue_api_token(session, user)
    session.commit()
    client = app.test_client()
    for _round in range(2):
        assert client.get("/api/v1/scenarios", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert client.get("/api/v1/submissions/1", headers={"Authorization": f"Bearer {token}"}).status_code == 404
    new_token = issue_api_token(session, user)
    tokens.revoke(session, user.id, tokens.lookup(session, token).id)  # a user's tokens are revoked one by one
    assert client.get("/api/v1/submissions/1", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get("/api/v1/submissions/1", headers={"Authorization": f"Bearer {new_token}"}).status_code == 404
    browser = app.test_client()
    login(browser, user)
    assert browser.get("/account").status_code == 200
    assert browser.get("/account").status_code == 200
    session.get(User, user.id).active = False
    session.commit()
    assert browser.get("/account").status_code == 302  # logged out: sent to the login page
    assert client.get("/api/v1/submissions/1", headers={"Authorization": f"Bearer {new_token}"}).status_code == 401
