"""The whole 揭榜挂帅 journey in a browser, through the pages only.

A city publishes a scenario and a challenge with its data; a team registers, forms a team, files its 揭榜
registration; the city passes the formal check (形式审查); the team uploads a `docker save` archive from the
submit page; a real worker node (a subprocess on the live server's database and the test Redis) evaluates
it; the leaderboard shows it; a judge scores the rubric; the city publishes the ranking (公示), signs off and
announces the winner (挂帅). Screenshots of every step: artifacts/screenshots/journey/NN-<step>.png.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from challenges.models import Challenge, Submission, Team
from evaluator.models import WorkerNode
from hub.models import OrgKind, Role, utcnow
from marketplace.scenarios import district_today
from tests.e2e.helpers import fill_form, fill_scenario_form, flash_ok, submit
from tests.evaluator.pipeline import Nodes, pipeline_env, tagged, wait_for
from tests.factories import PASSWORD, make_city, make_org, make_org_admin, make_user

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]

BEIJING = ZoneInfo("Asia/Shanghai")
SLUG = "konggang-coldchain-alarm"
TITLE = "冷链仓储温控异常识别揭榜挂帅赛"
SCENARIO = "临空冷链仓储温控异常智能预警"
TEAM = "秦创冷链智能队"
COMPANY = "秦创智能科技有限公司"

# Test data the city uploads: a reading per cold-store sensor; the truth says which ones are alarms (> 8 ℃).
TEMPS = [2.5, 9.1, 4.0, 12.3, 7.9, 8.4, 3.3, 10.0]
INPUTS_CSV = "id,temp_c\n" + "".join(f"s{i},{t}\n" for i, t in enumerate(TEMPS, 1))
TRUTH_CSV = "id,label\n" + "".join(f"s{i},{'alarm' if t > 8 else 'ok'}\n" for i, t in enumerate(TEMPS, 1))
# The team's model: reads /input, writes every prediction right (accuracy 1).
MODEL = """#!/bin/sh
echo "冷链温控模型 v1: reading /input/inputs.csv"
awk -F, 'NR == 1 { print "id,label"; next } { print $1 "," ($2 > 8 ? "alarm" : "ok") }' /input/inputs.csv \
  > /output/predictions.csv
echo "wrote $(($(wc -l < /output/predictions.csv) - 1)) predictions"
"""


@pytest.fixture
def app_config(app_config: dict, redis_url: str) -> dict:
    """The live server queues work on the test Redis, where the worker node listens."""
    return {**app_config, "REDIS_URL": redis_url}


def beijing(delta: timedelta) -> str:
    """A datetime-local value in Beijing time (the challenge forms' wall clock), now + delta."""
    return (datetime.now(BEIJING) + delta).strftime("%Y-%m-%dT%H:%M")


def test_city_publishes_team_submits_worker_scores_judge_scores_city_announces(
        page, live_server, login_as, screenshot_series, session, db_url, redis_url, redis_conn, tmp_path: Path,
        busybox_image, docker_tar, docker_client):
    shot = screenshot_series("journey")
    page.set_viewport_size({"width": 1440, "height": 900})
    page.on("dialog", lambda dialog: dialog.accept())   # data-confirm buttons ask first
    city = make_city(session, code="konggang", name="空港新城")
    gov = make_user(session, Role.GOV, city, email="gov.kg@journey.example", name="空港新城科创局")
    company_admin = make_org_admin(session, make_org(session, OrgKind.COMPANY, name=COMPANY),
                                   email="admin@qinchuang.journey.example")
    judge = make_user(session, Role.JUDGE, email="judge@journey.example", name="评审专家 孙教授")
    member = make_user(session, Role.TEAM, email="member@journey.example", name="秦创 李工")
    data = tmp_path / "upload"
    data.mkdir()
    (data / "inputs.csv").write_text(INPUTS_CSV)
    (data / "truth.csv").write_text(TRUTH_CSV)
    image_tar = docker_tar(tmp_path, tagged(docker_client, busybox_image(MODEL)))
    image_tar = image_tar.rename(tmp_path / "coldchain-model-v1.tar")   # the name the team's page shows

    # ---- 1. The city writes a scenario and publishes it.
    login_as(page, gov.email)
    page.goto("/scenarios/new")
    fill_scenario_form(page, SCENARIO, expected_outcome="温控异常识别模型与告警分级策略。",
                       indicators="异常识别准确率 ≥ 95%", budget_yuan="800000",
                       deadline=(district_today() + timedelta(days=60)).isoformat())
    shot(page, "gov-scenario-form")
    submit(page, "button[type=submit].primary")
    submit(page, "button[name=action][value=published]")
    flash_ok(page)
    shot(page, "gov-scenario-published")

    # ---- 2. … and puts it out as a challenge: contract, rubric, a phase, the test data; then publishes it.
    page.goto("/challenges/new")
    fill_form(page, {
        "#scenario_id": SCENARIO, "#slug": SLUG, "#title": TITLE,
        "#title_en": "Cold-chain temperature alarm challenge",
        "#description": "根据冷库传感器读数识别温控异常（alarm / ok）。",
        "#prize": "揭榜单位获项目资助 80 万元", "#funding_yuan": "800000",
        "#opens_at": beijing(-timedelta(hours=1)), "#closes_at": beijing(timedelta(days=30)),
        "#input_format": "/input/inputs.csv：id, temp_c（℃）",
        "#output_format": "/output/predictions.csv：id, label（alarm 或 ok）",
        "#prediction_column": "label", "#metric": "accuracy", "#time_limit_s": "60", "#memory_mb": "128",
        "#rubric_text": "tech | 技术方案 | Technical approach | 10\nvalue | 应用价值 | Application value | 10"})
    shot(page, "gov-challenge-form")
    submit(page, "#save-challenge")
    flash_ok(page)
    assert page.locator("#challenge-status.draft").count() == 1
    submit(page, "#add-phase")
    fill_form(page, {"#name": "公开榜", "#name_en": "Public board", "#starts_at": beijing(-timedelta(hours=1)),
                     "#ends_at": beijing(timedelta(days=20)), "#split": "public"})
    shot(page, "gov-phase-form")
    submit(page, "#save-phase")
    flash_ok(page)
    submit(page, "#datasets-link")
    page.fill("#split", "public")
    page.set_input_files("#inputs", str(data / "inputs.csv"))
    page.set_input_files("#truth", str(data / "truth.csv"))
    submit(page, "#upload-dataset")
    flash_ok(page)
    assert "public" in page.locator("#dataset-list").inner_text()
    shot(page, "gov-dataset-uploaded")
    page.goto(f"/challenges/{SLUG}")
    submit(page, "#status-publish")
    flash_ok(page)
    assert page.locator("#challenge-status.open").count() == 1
    shot(page, "gov-challenge-published")

    # The city appoints the judge panel now; judges score once submissions close.
    submit(page, "#judges-link")
    page.select_option("#judge_id", label=f"{judge.display_name} ({judge.email})")
    submit(page, "#assign-judge")
    assert judge.display_name in page.locator("#panel").inner_text()
    shot(page, "gov-judge-panel")

    # ---- 3. A team registers on the register page and forms a team for the challenge.
    page.context.clear_cookies()
    page.goto("/register")
    fill_form(page, {"#email": "captain@journey.example", "#display_name": "秦创 张工", "#org": COMPANY,
                     "#password": PASSWORD, "#confirm": PASSWORD})
    shot(page, "team-register")
    submit(page, "button[type=submit].primary")
    flash_ok(page)
    assert page.locator("#membership-status.pending").count() == 1  # asked to join: no rights yet

    # The company's administrator approves the request; only then does the account act for the company.
    login_as(page, company_admin.email)
    page.goto("/org/members")
    shot(page, "company-admin-requests")
    submit(page, "#pending button[id^=approve-]")
    flash_ok(page)
    login_as(page, "captain@journey.example")
    page.goto("/challenges")
    submit(page, f"a[href='/challenges/{SLUG}']")
    shot(page, "team-challenge-page")
    submit(page, "#create-team")
    page.fill("#name", TEAM)
    submit(page, "#create-team-submit")
    flash_ok(page)
    assert page.locator("#team-status.forming").count() == 1
    team_url = page.url
    join_url = page.locator("#invite-link").inner_text().strip()

    # A colleague asks to join through the invitation link; the captain approves.
    login_as(page, member.email)
    page.goto(join_url)
    submit(page, "#join-submit")
    flash_ok(page)
    page.context.clear_cookies()
    login_as(page, "captain@journey.example")
    page.goto(team_url)
    submit(page, f"#approve-{member.id}")
    flash_ok(page)
    assert page.locator("#members tbody tr").count() == 2
    shot(page, "team-formed")

    # ---- 4. The captain files the 揭榜 registration.
    submit(page, "#register-link")
    fill_form(page, {"#tech_route": "传感器读数清洗 → 阈值与时序模型融合 → 沙箱内离线推理。",
                     "#indicator_plan": "在公开榜验证识别准确率，推理耗时在平台沙箱内实测。",
                     "#budget_yuan": "600000"})
    shot(page, "team-registration-form")
    submit(page, "#registration-submit")
    flash_ok(page)
    assert page.locator("#registration-status.pending").count() == 1

    # ---- 5. The city's formal check (形式审查) passes it.
    login_as(page, gov.email)
    page.goto(f"/challenges/{SLUG}/registrations")
    card = page.locator("article.ch-reg", has_text=TEAM)
    assert card.count() == 1
    reg_id = card.get_attribute("id").split("-")[-1]
    page.select_option(f"#decision-{reg_id}", "approve")
    shot(page, "gov-formal-check")
    submit(page, f"#review-submit-{reg_id}")
    flash_ok(page)

    # ---- 6. The team uploads its image from the submit page; a worker node evaluates it.
    nodes = Nodes(pipeline_env(db_url, redis_url, tmp_path), tmp_path)
    try:
        nodes.start("journey-node")
        wait_for(lambda: session.exec(select(WorkerNode)).first(), 60, what="the worker node to check in")
        login_as(page, "captain@journey.example")
        page.goto(team_url)
        assert page.locator("#team-status.approved").count() == 1
        shot(page, "team-approved")
        page.goto(f"/challenges/{SLUG}")
        submit(page, "#submit-link")
        assert "1 个节点在线" in page.locator("#queue-now").inner_text()
        page.set_input_files("#image", str(image_tar))
        shot(page, "team-submit-page")
        with page.expect_navigation(url=re.compile(r"/submissions/\d+$"), timeout=120_000):
            page.click("#upload-submit")
        submission_id = int(page.url.rsplit("/", 1)[-1])
        shot(page, "team-submission-queued")
        # The page polls the log and reloads itself when the run has ended.
        page.wait_for_selector("#submission-status.scored, #submission-status.failed", timeout=180_000)
        sub = session.get(Submission, submission_id, populate_existing=True)
        assert sub is not None and sub.status == "scored", (sub and (sub.status, sub.outcome, sub.reason),
                                                              nodes.logs())
    finally:
        nodes.stop_all()
    assert sub.primary_score == 1.0 and sub.worker == "journey-node" and sub.image_ref == "coldchain-model-v1.tar"
    assert "1" == page.locator("#scores td").first.inner_text()
    assert "wrote 8 predictions" in page.locator("#live-log").inner_text()
    shot(page, "team-submission-scored")

    # ---- 7. The leaderboard shows it.
    page.goto(f"/challenges/{SLUG}/leaderboard")
    row = page.locator("#leaderboard tbody tr", has_text=TEAM)
    assert row.count() == 1
    assert row.locator("td").all_inner_texts()[:1] == ["1"] and row.locator("td").nth(2).inner_text() == "1"
    shot(page, "leaderboard")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "phone-leaderboard")
    page.goto("/scenarios")
    assert page.locator(".scenario-card", has_text=SCENARIO).count() == 1
    shot(page, "phone-scenario-list")
    page.set_viewport_size({"width": 1440, "height": 900})

    # ---- 8. The city closes submissions and starts the final review; the judge scores the rubric.
    login_as(page, gov.email)
    page.goto(f"/challenges/{SLUG}")
    submit(page, "#status-freeze")
    flash_ok(page)
    submit(page, "#status-start_review")
    flash_ok(page)
    assert page.locator("#challenge-status.final_review").count() == 1
    shot(page, "gov-final-review")

    login_as(page, judge.email)
    page.goto("/judging")
    submit(page, f"#review-{SLUG}")
    team_id = session.exec(select(Team.id).where(Team.name == TEAM)).one()
    fill_form(page, {f"#score-{team_id}-tech": "8.5", f"#comment-{team_id}-tech": "阈值与时序模型融合，方案清晰。",
                     f"#score-{team_id}-value": "9", f"#comment-{team_id}-value": "可直接用于临空冷链仓库。"})
    shot(page, "judge-rubric")
    submit(page, f"#rubric-submit-{team_id}")
    flash_ok(page)
    assert page.locator(f"#rank-team-{team_id} td").nth(5).inner_text() == "1"   # one judge scored it

    # ---- 9. The city publishes the proposed ranking (公示) …
    login_as(page, gov.email)
    page.goto(f"/challenges/{SLUG}/review")
    assert page.locator(f"#rank-team-{team_id}").count() == 1
    page.fill("#days", "1")
    shot(page, "gov-final-ranking")
    submit(page, "#publish-notice")
    flash_ok(page)
    assert TEAM in page.locator("#ranking").inner_text()
    shot(page, "notice-published")

    # The notice period lasts at least a day: move it into the past rather than wait.
    challenge = session.exec(select(Challenge).where(Challenge.slug == SLUG)).one()
    challenge.notice_starts_at = utcnow() - timedelta(days=1, minutes=1)
    challenge.notice_ends_at = utcnow() - timedelta(minutes=1)
    session.add(challenge)
    session.commit()

    # ---- 10. … signs it off and announces the winner (挂帅).
    page.goto(f"/challenges/{SLUG}/notice")
    submit(page, "#announce-submit")
    flash_ok(page)
    assert page.locator("#challenge-status.awarded").count() == 1
    assert TEAM in page.locator("#winner").inner_text()
    shot(page, "winner-announced")

    # Anyone sees the winner; the scenario is awarded with it.
    page.context.clear_cookies()
    page.goto(f"/challenges/{SLUG}/notice")
    assert TEAM in page.locator("#winner").inner_text()
    shot(page, "public-notice-winner")
    session.refresh(challenge)
    assert challenge.winner_team_id == team_id and challenge.signed_off_by == gov.id
    assert len(list(shot.folder.glob("*.png"))) == len(shot.taken) >= 20
