"""A city publishes a scenario; a team finds it by a Chinese search term and applies; the city sees it."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from hub.models import Role
from marketplace.scenarios import district_today
from tests.e2e.helpers import fill_form, fill_scenario_form, submit
from tests.factories import PDF_BYTES, make_city, make_org, make_user

pytestmark = pytest.mark.browser


def test_gov_publishes_team_finds_and_applies_city_sees_it(page, live_server, login_as, screenshot, session,
                                                         tmp_path: Path):
    city = make_city(session, code="konggang", name="空港新城")
    gov = make_user(session, Role.GOV, city, email="gov.kg@e2e.example", name="空港新城科创局")
    team_org = make_org(session, name="秦创智能科技有限公司")
    team = make_user(session, Role.TEAM, team_org, email="team@e2e.example", name="秦创 张工")
    proposal_pdf = tmp_path / "揭榜方案.pdf"
    proposal_pdf.write_bytes(PDF_BYTES)

    # 1. The city's staff write a scenario (saved as a draft) and publish it.
    login_as(page, gov.email)
    page.goto("/scenarios/new")
    fill_scenario_form(page, "临空冷链仓储温控异常智能预警", expected_outcome="温控异常提前预警模型与告警分级策略。",
                       indicators="提前 30 分钟预警的召回率 ≥ 90%", budget_yuan="500000",
                       deadline=(district_today() + timedelta(days=30)).isoformat())
    screenshot(page, "gov-new-scenario")
    submit(page, "button[type=submit].primary")
    assert page.locator("h1").inner_text() == "临空冷链仓储温控异常智能预警"
    assert page.locator(".badge.draft").count() == 1
    screenshot(page, "gov-draft")
    submit(page, "button[name=action][value=published]")
    assert "场景状态已变为：已发布" in page.locator(".flash-success").inner_text()
    screenshot(page, "gov-published")

    # 2. A team searches the list with a Chinese term and opens the scenario.
    login_as(page, team.email)
    page.goto("/scenarios")
    page.fill("#q", "温控")
    submit(page, "form.filters button[type=submit]")
    results = page.locator(".scenario-card h3 a")
    assert results.count() == 1 and results.first.inner_text() == "临空冷链仓储温控异常智能预警"
    screenshot(page, "team-search")
    with page.expect_navigation():
        results.first.click()
    submit(page, "text=我要揭榜")

    # 3. It applies with a proposal and a PDF attachment.
    fill_form(page, {"#proposal": "基于时序异常检测与温控物理模型融合的预警方案。",
                     "#tech_route": "传感器数据清洗 → LSTM 预测 → 残差异常检测 → 分级告警。",
                     "#indicator_plan": "用历史事故记录回测召回率与提前量。"})
    page.set_input_files("#attachments", str(proposal_pdf))
    screenshot(page, "team-apply")
    submit(page, "button[type=submit].primary")
    assert "申报已提交" in page.locator(".flash-success").inner_text()
    assert page.locator(".application-status .badge.submitted").count() == 1
    assert page.locator(".attachments a", has_text="揭榜方案.pdf").count() == 1
    screenshot(page, "team-submitted")

    # 4. The city sees the application, its attachment, and can download it.
    login_as(page, gov.email)
    page.goto("/applications")
    row = page.locator("table.applications tbody tr")
    assert row.count() == 1
    assert "秦创智能科技有限公司" in row.first.inner_text() and "临空冷链仓储温控异常智能预警" in row.first.inner_text()
    screenshot(page, "gov-applications")
    with page.expect_navigation():
        row.first.locator("a", has_text="查看").click()
    with page.expect_download() as download:
        page.click(".attachments a")
    assert Path(download.value.path()).read_bytes() == PDF_BYTES

    # The list also works at phone width.
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/scenarios?q=冷链")
    assert page.locator(".scenario-card").count() == 1
    screenshot(page, "phone-list")
