"""Pages as a user meets them: forms, messages in Chinese, uploads, downloads, English switch."""
from __future__ import annotations

import io
from datetime import timedelta

from sqlmodel import select

from hub.models import Role, User
from marketplace.models import Application, Attachment, Scenario
from marketplace.scenarios import district_today
from tests.factories import PDF_BYTES, login, make_application, make_city, make_scenario, make_user


def _form(**overrides):  # type: ignore[no-untyped-def]
    data = {"title": "航空物流货量智能预测", "title_en": "", "industry": "smart_logistics",
            "description": "按日预测进出港货量", "expected_outcome": "预测服务", "indicators": "MAPE ≤ 8%",
            "data_available": "", "data_terms": "", "budget_yuan": "800000", "reward": "",
            "deadline": (district_today() + timedelta(days=30)).isoformat(), "contact_name": "王主任",
            "contact_info": "029-0000"}
    data.update(overrides)
    return data


def _text(resp) -> str:  # type: ignore[no-untyped-def]
    return resp.get_data(as_text=True)


def _count(session, model) -> int:  # type: ignore[no-untyped-def]
    session.expire_all()
    return len(session.exec(select(model)).all())


def test_list_detail_and_city_pages_show_published_scenarios_in_chinese(client, session):
    city = make_city(session, code="konggang", name="空港新城")
    s = make_scenario(session, city, title="航空物流货量智能预测", industry="smart_logistics")
    hidden = make_scenario(session, city, title="内部草稿场景", status="draft")
    page = _text(client.get("/scenarios"))
    assert "航空物流货量智能预测" in page and "智慧物流" in page and "已发布" in page
    assert "内部草稿场景" not in page
    detail = client.get(f"/scenarios/{s.id}")
    assert detail.status_code == 200 and "发布记录" in _text(detail) and "日前预测归一化 RMSE" in _text(detail)
    assert client.get(f"/scenarios/{hidden.id}").status_code == 404
    city_page = _text(client.get("/cities/konggang"))
    assert "空港新城" in city_page and "航空物流货量智能预测" in city_page
    assert client.get("/cities/atlantis").status_code == 404
    home = _text(client.get("/"))
    assert "空港新城" in home and "航空物流货量智能预测" in home


def test_search_form_matches_chinese_and_bad_filter_is_explained(client, session):
    make_scenario(session, title="园区光伏发电功率预测")
    make_scenario(session, title="冷链仓储温控异常预警", description="冷库温湿度数据", indicators="召回率 ≥ 90%")
    page = _text(client.get("/scenarios", query_string={"q": "光伏"}))
    assert "园区光伏发电功率预测" in page and "冷链仓储温控异常预警" not in page
    bad = client.get("/scenarios", query_string={"industry": "space"})
    assert bad.status_code == 400 and "未知行业领域：space" in _text(bad)
    bad_city = client.get("/scenarios", query_string={"city": "atlantis"})
    assert bad_city.status_code == 400 and "未知新城：atlantis" in _text(bad_city)


def test_gov_creates_and_publishes_through_the_pages(client, session):
    city = make_city(session, code="konggang", name="空港新城")
    gov = make_user(session, Role.GOV, city)
    login(client, gov)
    assert client.get("/scenarios/new").status_code == 200
    resp = client.post("/scenarios/new", data=_form(city="konggang"))
    assert resp.status_code == 302
    s = session.exec(select(Scenario)).one()
    assert s.status == "draft" and s.city_id == city.id and s.budget_yuan == 800000
    resp = client.post(f"/scenarios/{s.id}/status", data={"to": "published", "note": "首批发榜"},
                       follow_redirects=True)
    assert "场景状态已变为：已发布" in _text(resp)
    session.refresh(s)
    assert s.status == "published"
    resp = client.post(f"/scenarios/{s.id}/status", data={"to": "awarded"}, follow_redirects=True)
    assert "场景不能从“已发布”变为“已揭榜”" in _text(resp)
    resp = client.post(f"/scenarios/{s.id}/edit", data=_form(city="konggang", title="航空货量预测（修订）"))
    assert resp.status_code == 302
    session.refresh(s)
    assert s.title == "航空货量预测（修订）" and "修订" in s.search_text


def test_create_form_bad_input_shows_messages_and_creates_nothing(client, session):
    city = make_city(session)
    login(client, make_user(session, Role.GOV, city))
    cases = [
        (_form(city=city.code, title=""), "此项为必填项"),
        (_form(city=city.code, title="长" * 201), "最多 200 个字符"),
        (_form(city=city.code, deadline="2025-13-45"), "不是有效的日期值"),
        (_form(city=city.code, budget_yuan="-3"), "请填写 0 到"),
        (_form(city=city.code, budget_yuan="很多"), "不是有效的整数"),
        (_form(city=city.code, industry="space"), "不是有效的选择"),
        (_form(city="atlantis"), "不是有效的选择"),
    ]
    for data, message in cases:
        resp = client.post("/scenarios/new", data=data)
        assert resp.status_code == 400, message
        assert message in _text(resp), message
    assert _count(session, Scenario) == 0


def test_publish_with_past_deadline_is_explained(client, session):
    city = make_city(session)
    gov = make_user(session, Role.GOV, city)
    login(client, gov)
    client.post("/scenarios/new", data=_form(city=city.code, deadline=(district_today() - timedelta(days=1)).isoformat()))
    s = session.exec(select(Scenario)).one()
    resp = client.post(f"/scenarios/{s.id}/status", data={"to": "published"}, follow_redirects=True)
    assert "已经过去" in _text(resp)
    session.refresh(s)
    assert s.status == "draft"


def test_another_citys_scenario_is_forbidden(client, session):
    s = make_scenario(session)
    login(client, make_user(session, Role.GOV, make_city(session)))
    assert client.get(f"/scenarios/{s.id}/edit").status_code == 403
    resp = client.post(f"/scenarios/{s.id}/edit", data=_form(title="被改了"))
    assert resp.status_code == 403 and "只有发榜新城的工作人员可以修改该场景" in _text(resp)
    assert client.post(f"/scenarios/{s.id}/status", data={"to": "closed"}).status_code == 403
    session.refresh(s)
    assert s.title != "被改了" and s.status == "published"


def test_team_applies_with_attachment_and_city_reviews(client, app, session):
    s = make_scenario(session, title="园区光伏发电功率预测")
    gov = session.get(User, s.created_by)
    team = make_user(session, Role.TEAM)
    login(client, team)
    resp = client.post(f"/scenarios/{s.id}/apply", content_type="multipart/form-data", data={
        "proposal": "基于数值天气预报的功率预测", "tech_route": "LightGBM + Transformer", "indicator_plan": "逐项验证",
        "budget_yuan": "300000", "attachments": [(io.BytesIO(PDF_BYTES), "揭榜方案.pdf")]})
    assert resp.status_code == 302, _text(resp)[:2000]
    a = session.exec(select(Application)).one()
    att = session.exec(select(Attachment)).one()
    page = _text(client.get(f"/applications/{a.id}"))
    assert "待审查" in page and "揭榜方案.pdf" in page
    download = client.get(f"/attachments/{att.id}")
    assert download.status_code == 200 and download.data == PDF_BYTES
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert download.headers["Content-Type"] == "application/pdf"
    assert "待审查" in _text(client.get("/applications"))

    client.post("/logout")
    login(client, gov)
    listing = _text(client.get("/applications"))
    assert "园区光伏发电功率预测" in listing
    resp = client.post(f"/applications/{a.id}/review", data={"decision": "reject", "reason": ""},
                       follow_redirects=True)
    assert "请填写不通过的理由" in _text(resp)
    resp = client.post(f"/applications/{a.id}/review", data={"decision": "reject", "reason": "缺少储能方案",
                                                              "back": "list"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/scenarios/{s.id}/applications")
    assert client.get(f"/attachments/{att.id}").status_code == 200

    client.post("/logout")
    login(client, team)
    page = _text(client.get(f"/applications/{a.id}"))
    assert "未通过" in page and "缺少储能方案" in page


def test_apply_with_wrong_files_shows_message_and_keeps_nothing(client, app, session, tmp_path):
    app.config["MAX_ATTACHMENT_BYTES"] = 1024
    s = make_scenario(session)
    login(client, make_user(session, Role.TEAM))
    base = {"proposal": "方案", "tech_route": "路线", "indicator_plan": "计划"}
    for name, data, message in [("a.exe", b"MZ", "不接受此文件类型"), ("a.pdf", b"not a pdf", "不是 PDF 文件"),
                                ("a.pdf", b"%PDF-" + b"0" * 2000, "超过")]:
        resp = client.post(f"/scenarios/{s.id}/apply", content_type="multipart/form-data",
                           data={**base, "attachments": [(io.BytesIO(data), name)]})
        assert resp.status_code == 400 and message in _text(resp), name
    missing = client.post(f"/scenarios/{s.id}/apply", content_type="multipart/form-data", data={"proposal": "方案"})
    assert missing.status_code == 400 and "此项为必填项" in _text(missing)
    assert _count(session, Application) == 0
    folder = tmp_path / "data" / "attachments"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_second_application_of_the_same_org_is_explained(client, session):
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    make_application(session, s, team)
    login(client, team)
    page = _text(client.get(f"/scenarios/{s.id}"))
    assert "贵单位已申报" in page
    resp = client.post(f"/scenarios/{s.id}/apply", data={"proposal": "p", "tech_route": "t", "indicator_plan": "i"})
    assert resp.status_code == 400 and "贵单位已申报该场景" in _text(resp)
    assert _count(session, Application) == 1


def test_withdraw_button(client, session):
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    a = make_application(session, s, team)
    login(client, team)
    resp = client.post(f"/applications/{a.id}/withdraw", follow_redirects=True)
    assert "申报已撤回" in _text(resp) and "已撤回" in _text(resp)


def test_switch_to_english(client, session):
    make_scenario(session, title="园区光伏发电功率预测", title_en="PV power forecasting", industry="smart_energy")
    resp = client.get("/lang/en?next=/scenarios")
    assert resp.status_code == 302 and resp.headers["Location"] == "/scenarios"
    page = _text(client.get("/scenarios"))
    assert "AI+ scenario opportunity list" in page and "Smart energy" in page and "PV power forecasting" in page
    assert "Published" in page
    client.get("/lang/zh_CN")
    assert "人工智能应用场景项目机会清单" in _text(client.get("/scenarios"))


def test_pagination_links(client, app, session):
    app.config["PAGE_SIZE"] = 2
    city = make_city(session)
    gov = make_user(session, Role.GOV, city)
    for i in range(5):
        make_scenario(session, city, gov, title=f"场景{i}")
    page = _text(client.get("/scenarios?q=场景"))
    assert "第 1 / 3 页" in page and "page=2" in page
    assert "场景0" in _text(client.get("/scenarios?q=场景&page=3"))
