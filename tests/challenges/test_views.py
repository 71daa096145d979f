"""The challenge pages as a user meets them: forms, refusals in Chinese, the team flow, judging, the demo."""
from __future__ import annotations

import io

from sqlmodel import select

from challenges.models import Challenge, Phase, Team
from hub.models import Role
from tests.challenges.conftest import count
from tests.factories import (login, make_approved_team, make_open_challenge, make_scenario, make_scored_submission,
                             make_user)


def test_gov_creates_a_challenge_and_bad_dates_are_refused_in_chinese(client, session):
    gov = make_user(session, Role.GOV)
    scenario = make_scenario(session, city=session.get(__import__("hub.models").models.Organisation, gov.org_id),
                             gov=gov)
    login(client, gov)
    form = {"scenario_id": scenario.id, "slug": "cargo-2026", "title": "货量预测", "opens_at": "2026-05-01T09:00",
            "closes_at": "2026-04-01T09:00", "metric": "rmse", "id_column": "id", "prediction_column": "value",
            "output_file": "predictions.csv", "time_limit_s": 600, "memory_mb": 2048, "cpus": "1",
            "accelerators": 0, "accelerator_class": "cpu", "leaderboard_mode": "best", "max_team_size": 5,
            "per_applicant_cap": 3, "consortium_max_partners": 4, "objective_weight": "0.6"}
    resp = client.post("/challenges/new", data=form)
    assert resp.status_code == 400
    assert "结束时间必须晚于开始时间" in resp.get_data(as_text=True)
    assert count(session, Challenge) == 0
    resp = client.post("/challenges/new", data={**form, "closes_at": "2026-08-01T09:00"})
    assert resp.status_code == 302
    challenge = session.exec(select(Challenge)).one()
    # Beijing wall-clock 09:00 is stored as 01:00 UTC.
    assert challenge.opens_at.hour == 1 and challenge.opens_at.tzinfo is not None
    page = client.get("/challenges/cargo-2026").get_data(as_text=True)
    assert "货量预测" in page and 'id="status-publish"' in page


def test_phase_form_refuses_bad_limits(client, session, data_dir):
    oc = make_open_challenge(session, data_dir)
    login(client, oc.gov)
    resp = client.post(f"/challenges/{oc.challenge.slug}/phases/new", data={
        "name": "决赛", "starts_at": "2030-01-01T00:00", "ends_at": "2030-01-02T00:00", "split": "private",
        "per_day_limit": 10, "total_limit": 5, "concurrent_limit": 1, "scores_visible": "reveal"})
    assert resp.status_code == 400
    assert count(session, Phase) == 1


def test_dataset_upload_form(client, session, data_dir):
    oc = make_open_challenge(session, data_dir)
    login(client, oc.gov)
    resp = client.post(f"/challenges/{oc.challenge.slug}/datasets", content_type="multipart/form-data", data={
        "split": "private", "inputs": (io.BytesIO(b"id,x\n1,2\n"), "in.csv"),
        "truth": (io.BytesIO(b"id,value\n2,3\n"), "t.csv")})
    assert resp.status_code == 400 and "相同的编号" in resp.get_data(as_text=True)
    resp = client.post(f"/challenges/{oc.challenge.slug}/datasets", content_type="multipart/form-data", data={
        "split": "private", "inputs": (io.BytesIO(b"id,x\n1,2\n"), "in.csv"),
        "truth": (io.BytesIO(b"id,value\n1,3\n"), "t.csv")})
    assert resp.status_code == 302


def test_team_flow_through_the_pages(app, session, data_dir):
    oc = make_open_challenge(session, data_dir)
    captain, member = make_user(session), make_user(session)
    c1, c2 = app.test_client(), app.test_client()
    login(c1, captain)
    login(c2, member)
    assert c1.post(f"/challenges/{oc.challenge.slug}/teams/new", data={"name": "页面队"}).status_code == 302
    team = session.exec(select(Team)).one()
    page = c1.get(f"/teams/{team.id}").get_data(as_text=True)
    assert f"/teams/join/{team.invite_token}" in page
    assert c2.post(f"/teams/join/{team.invite_token}").status_code == 302
    c1.post(f"/teams/{team.id}/approve/{member.id}")
    assert "页面队" in c2.get("/my/teams").get_data(as_text=True)
    resp = c1.post(f"/teams/{team.id}/registration", data={"tech_route": "多源数据融合与梯度提升树方案",
                                                            "indicator_plan": "逐项指标在公开榜上验证"})
    assert resp.status_code == 302
    gov = app.test_client()
    login(gov, oc.gov)
    regs = gov.get(f"/challenges/{oc.challenge.slug}/registrations").get_data(as_text=True)
    assert "页面队" in regs
    reg_id = __import__("challenges.registration").registration.for_team(session, team.id).id
    gov.post(f"/registrations/{reg_id}/review", data={"decision": "approve", "reason": ""})
    session.expire_all()
    assert session.get(Team, team.id).status == "approved"


def test_judge_scores_and_city_announces_through_the_pages(app, session, data_dir):
    from challenges import challenges as ch

    oc = make_open_challenge(session, data_dir)
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    make_scored_submission(session, a.team, oc.phases[0], 1.0)
    judge = make_user(session, Role.JUDGE)
    gov = app.test_client()
    login(gov, oc.gov)
    gov.post(f"/challenges/{oc.challenge.slug}/judges", data={"judge_id": judge.id})
    ch.change_status(session, oc.gov, oc.challenge, "freeze")
    ch.change_status(session, oc.gov, oc.challenge, "start_review")
    jc = app.test_client()
    login(jc, judge)
    assert oc.challenge.slug in jc.get("/judging").get_data(as_text=True)
    review = jc.get(f"/challenges/{oc.challenge.slug}/review").get_data(as_text=True)
    assert f'id="rubric-form-{a.team.id}"' in review
    bad = jc.post(f"/challenges/{oc.challenge.slug}/teams/{a.team.id}/rubric",
                  data={"score_technical": "99", "score_feasibility": "5", "score_cost": "5"}, follow_redirects=True)
    assert "请给出 0 到 10 之间的分数" in bad.get_data(as_text=True)
    jc.post(f"/challenges/{oc.challenge.slug}/teams/{a.team.id}/rubric",
            data={"score_technical": "8", "score_feasibility": "7", "score_cost": "6", "comment_technical": "扎实"})
    gov.post(f"/challenges/{oc.challenge.slug}/notice/publish", data={"days": 1})
    notice = app.test_client().get(f"/challenges/{oc.challenge.slug}/notice").get_data(as_text=True)
    assert "甲队" in notice
    resp = gov.post(f"/challenges/{oc.challenge.slug}/announce", follow_redirects=True)
    assert "公示期" in resp.get_data(as_text=True)  # refused: the notice period is still running
    session.expire_all()
    assert session.get(Challenge, oc.challenge.id).status == "final_review"


def test_csv_and_chart_and_api_list(client, session, data_dir):
    oc = make_open_challenge(session, data_dir)
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    make_scored_submission(session, a.team, oc.phases[0], 1.0)
    page = client.get(f"/challenges/{oc.challenge.slug}/leaderboard").get_data(as_text=True)
    assert "<svg" in page and "甲队" in page and "<script>" not in page
    csv_resp = client.get(f"/challenges/{oc.challenge.slug}/leaderboard.csv")
    assert csv_resp.mimetype == "text/csv" and "甲队" in csv_resp.get_data(as_text=True)
    assert [c["slug"] for c in client.get("/api/v1/challenges").get_json()["challenges"]] == [oc.challenge.slug]


def test_demo_seed_gives_full_boards_and_an_announced_winner(app, session, app_config):
    from challenges.demo import BASELINES, CARGO_SLUG, PV_SLUG
    from hub import demo

    with app.app_context():
        demo.seed(session)
    client = app.test_client()
    cargo = client.get(f"/challenges/{CARGO_SLUG}").get_data(as_text=True)
    assert 'id="winner"' in cargo
    board = client.get(f"/api/v1/challenges/{PV_SLUG}/leaderboard").get_json()
    assert len([r for r in board["rows"] if not r["baseline"]]) >= 4 and any(r["baseline"] for r in board["rows"])
    final = client.get(f"/api/v1/challenges/{CARGO_SLUG}").get_json()["phases"][-1]
    assert client.get(f"/api/v1/challenges/{CARGO_SLUG}/leaderboard?phase={final['id']}").get_json()["rows"]
    assert set(BASELINES) == {CARGO_SLUG, PV_SLUG} and all("/output/predictions.csv" in s for s in BASELINES.values())


def test_every_challenge_page_renders_for_the_demo_users(app, session):
    """A crawl of the pages each demo role reaches (phone-width CSS is static; this checks the templates)."""
    from challenges.demo import CARGO_SLUG, PV_SLUG
    from challenges.models import Submission
    from hub import demo
    from hub.models import User

    with app.app_context():
        demo.seed(session)
    users = {u.email: u for u in session.exec(select(User))}
    sub = session.exec(select(Submission).where(Submission.challenge_id == 2)).first()
    team = session.get(Team, sub.team_id)
    captain = session.get(User, team.captain_id)
    phase = session.exec(select(Phase).where(Phase.challenge_id == 1)).first()
    pages = {
        None: ["/challenges", f"/challenges/{CARGO_SLUG}", f"/challenges/{CARGO_SLUG}/leaderboard",
               f"/challenges/{CARGO_SLUG}/notice", f"/challenges/{PV_SLUG}/leaderboard.svg",
               f"/challenges/{CARGO_SLUG}/samples/public.zip"],
        "gov.konggang@hub.example": [f"/challenges/{CARGO_SLUG}/edit", f"/challenges/{CARGO_SLUG}/datasets",
                                     f"/challenges/{CARGO_SLUG}/registrations", f"/challenges/{CARGO_SLUG}/judges",
                                     f"/challenges/{CARGO_SLUG}/review", f"/challenges/{CARGO_SLUG}/phases/{phase.id}/edit",
                                     "/audit", "/challenges/new"],
        "judge.lab@hub.example": ["/judging", f"/challenges/{CARGO_SLUG}/review", f"/challenges/{PV_SLUG}/review"],
        captain.email: ["/my/teams", f"/teams/{team.id}", f"/challenges/{PV_SLUG}/submissions/mine",
                        f"/submissions/{sub.id}", f"/challenges/{PV_SLUG}", f"/teams/{team.id}/registration"],
        "admin@hub.example": ["/audit", f"/challenges/{CARGO_SLUG}/registrations"],
    }
    for email, paths in pages.items():
        client = app.test_client()
        if email:
            login(client, users[email], password=demo.DEMO_PASSWORD)
        for path in paths:
            resp = client.get(path)
            assert resp.status_code == 200, (email, path, resp.status_code)
            if resp.mimetype == "text/html":
                assert "style=" not in resp.get_data(as_text=True).split("<main")[1], path  # CSP: no inline styles
