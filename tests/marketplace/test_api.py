"""GET /api/v1/scenarios and /api/v1/scenarios/<id>: filters, pagination, JSON errors, token auth."""
from __future__ import annotations

from hub.models import Role, User
from hub.users import issue_api_token
from tests.factories import make_city, make_scenario, make_user


def test_list_filters_and_paginates(client, app, session):
    app.config["PAGE_SIZE"] = 2
    fx = make_city(session, code="fengxi", name="沣西新城")
    kg = make_city(session, code="konggang", name="空港新城")
    pv = make_scenario(session, fx, title="园区光伏发电功率预测", industry="smart_energy")
    make_scenario(session, kg, title="航空物流货量智能预测", industry="smart_logistics", description="货量",
                  indicators="MAPE", status="open_call")
    make_scenario(session, kg, title="临空冷链温控预警", industry="smart_logistics", description="冷库",
                  indicators="召回率")
    make_scenario(session, kg, title="草稿", status="draft")
    body = client.get("/api/v1/scenarios").get_json()
    assert body["pagination"] == {"page": 1, "per_page": 2, "total": 3, "pages": 2} and len(body["items"]) == 2
    assert len(client.get("/api/v1/scenarios?page=2").get_json()["items"]) == 1
    item = client.get("/api/v1/scenarios", query_string={"q": "光伏"}).get_json()["items"]
    assert [i["id"] for i in item] == [pv.id]
    assert item[0]["city"]["code"] == "fengxi" and item[0]["industry_label"] == "智慧能源"
    assert item[0]["status"] == "published" and "description" not in item[0]
    assert client.get("/api/v1/scenarios?city=konggang").get_json()["pagination"]["total"] == 2
    assert client.get("/api/v1/scenarios?industry=smart_logistics&status=open_call").get_json()["pagination"]["total"] == 1


def test_detail_and_json_errors(client, session):
    s = make_scenario(session, title="园区光伏发电功率预测")
    draft = make_scenario(session, status="draft")
    body = client.get(f"/api/v1/scenarios/{s.id}").get_json()
    assert body["title"] == "园区光伏发电功率预测" and body["indicators"] and [h["to"] for h in body["history"]] == ["draft", "published"]
    for url in (f"/api/v1/scenarios/{draft.id}", "/api/v1/scenarios/99999"):
        resp = client.get(url)
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
    resp = client.get("/api/v1/scenarios?industry=space")
    assert resp.status_code == 400
    assert resp.get_json()["error"] == {"code": "invalid", "message": "未知行业领域：space", "field": "industry"}
    resp = client.get("/api/v1/scenarios?city=atlantis", headers={"Accept-Language": "en"})
    assert resp.get_json()["error"]["message"] == "Unknown city: atlantis"


def test_token_of_the_owning_city_sees_its_draft(client, session):
    draft = make_scenario(session, status="draft")
    gov = session.get(User, draft.created_by)
    token = issue_api_token(session, gov)
    session.commit()
    resp = client.get(f"/api/v1/scenarios/{draft.id}", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "draft"
    other = make_user(session, Role.GOV, make_city(session))
    other_token = issue_api_token(session, other)
    session.commit()
    assert client.get(f"/api/v1/scenarios/{draft.id}",
                      headers={"Authorization": f"Bearer {other_token}"}).status_code == 404


def test_cities_endpoint_lists_themes(client, session):
    make_city(session, code="fengxi", name="沣西新城")
    assert client.get("/api/v1/cities").get_json()["items"][0]["code"] == "fengxi"
