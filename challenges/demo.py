"""Demo challenges: a judged and awarded air-cargo challenge (空港新城) and an open PV challenge (沣西新城).

Everything is generated deterministically (fixed seeds), so every fresh demo looks the same.
`BASELINES` holds, per challenge, a busybox-only sh script that the evaluator packages as a baseline image.
"""
from __future__ import annotations

import hashlib
import math
import os
import random
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from challenges import challenges, datasets, judging, phases, registration, teams
from challenges.models import Baseline, Challenge, Outcome, Phase, Submission, Team
from hub.models import Organisation, User, utcnow
from marketplace import scenarios
from marketplace.models import Scenario

CARGO_SLUG = "konggang-air-cargo-2026"
PV_SLUG = "fengxi-pv-power-2026"

# Run with busybox in a container: /input holds inputs.csv; each writes /output/predictions.csv.
BASELINES: dict[str, str] = {
    CARGO_SLUG: """#!/bin/sh
# Baseline: cargo tonnes = 3.0 x scheduled cargo flights (inputs.csv: id,date,weekday,flights,holiday).
set -eu
awk -F, 'NR == 1 { print "id,tonnes"; next }
         { sub(/\\r$/, ""); printf "%s,%.3f\\n", $1, $4 * 3.0 }' /input/inputs.csv > /output/predictions.csv
""",
    PV_SLUG: """#!/bin/sh
# Baseline: power kW = 0.42 x irradiance (inputs.csv: id,hour,irradiance_wm2,temperature_c).
set -eu
awk -F, 'NR == 1 { print "id,power_kw"; next }
         { sub(/\\r$/, ""); printf "%s,%.3f\\n", $1, $3 * 0.42 }' /input/inputs.csv > /output/predictions.csv
""",
}

CARGO_INPUT = ("/input/inputs.csv（UTF-8，逗号分隔，含表头）列：id（样本编号）, date（日期 YYYY-MM-DD）, "
               "weekday（星期 1–7）, flights（当日全货机及客改货航班数）, holiday（节假日 1/0）。\n"
               "Columns of /input/inputs.csv: id, date, weekday, flights, holiday.")
CARGO_OUTPUT = ("写出 /output/predictions.csv，列 id,tonnes（预测当日货邮吞吐量，吨），每个 id 一行。\n"
                "Write /output/predictions.csv with columns id,tonnes, one row per id.")
PV_INPUT = ("/input/inputs.csv（UTF-8，含表头）列：id（样本编号）, hour（时刻 0–23）, irradiance_wm2（辐照度 W/m²）, "
            "temperature_c（组件温度 ℃）。\nColumns of /input/inputs.csv: id, hour, irradiance_wm2, temperature_c.")
PV_OUTPUT = ("写出 /output/predictions.csv，列 id,power_kw（预测功率，千瓦），每个 id 一行。\n"
             "Write /output/predictions.csv with columns id,power_kw, one row per id.")


def _data_dir() -> str:
    try:
        from flask import current_app, has_app_context

        if has_app_context():
            return str(current_app.config["DATA_DIR"])
    except ImportError:  # pragma: no cover
        pass
    return os.environ.get("HUB_DATA_DIR") or str(Path(__file__).resolve().parent.parent / "instance" / "data")


# ---------------------------------------------------------------- generated data
def cargo_rows(split: str, n: int) -> tuple[str, str, list[float], list[float]]:
    """(inputs csv, truth csv, truths, baseline predictions) for one split."""
    rng = random.Random(f"cargo-{split}")
    start = date(2025, 1, 1) if split != "sample" else date(2024, 6, 1)
    inputs, truth, ys, base = ["id,date,weekday,flights,holiday"], ["id,tonnes"], [], []
    for i in range(n):
        day = start + timedelta(days=i)
        weekday, holiday = day.isoweekday(), int(rng.random() < 0.08)
        flights = 40 + int(10 * math.sin(i / 9)) + rng.randint(0, 12)
        tonnes = 3.2 * flights + (25 if weekday <= 5 else -10) + (35 if holiday else 0) + rng.gauss(0, 8)
        rid = f"{split[0]}{i + 1:04d}"
        inputs.append(f"{rid},{day.isoformat()},{weekday},{flights},{holiday}")
        truth.append(f"{rid},{tonnes:.2f}")
        ys.append(round(tonnes, 2))
        base.append(round(flights * 3.0, 3))
    return "\n".join(inputs) + "\n", "\n".join(truth) + "\n", ys, base


def pv_rows(split: str, n: int) -> tuple[str, str, list[float], list[float]]:
    rng = random.Random(f"pv-{split}")
    inputs, truth, ys, base = ["id,hour,irradiance_wm2,temperature_c"], ["id,power_kw"], [], []
    for i in range(n):
        hour = i % 24
        sun = max(0.0, math.sin(math.pi * (hour - 6) / 12))
        irradiance = round(950 * sun * (0.6 + 0.4 * rng.random()), 1)
        temp = round(15 + 20 * sun + rng.uniform(-3, 3), 1)
        power = max(0.0, 0.45 * irradiance * (1 - 0.004 * (temp - 25)) + rng.gauss(0, 6))
        rid = f"{split[0]}{i + 1:04d}"
        inputs.append(f"{rid},{hour},{irradiance},{temp}")
        truth.append(f"{rid},{power:.2f}")
        ys.append(round(power, 2))
        base.append(round(irradiance * 0.42, 3))
    return "\n".join(inputs) + "\n", "\n".join(truth) + "\n", ys, base


def _rmse(ys: list[float], ps: list[float]) -> float:
    return math.sqrt(sum((y - p) ** 2 for y, p in zip(ys, ps)) / len(ys))


def _mae(ys: list[float], ps: list[float]) -> float:
    return sum(abs(y - p) for y, p in zip(ys, ps)) / len(ys)


# ---------------------------------------------------------------- helpers
def _scenario(session: Session, orgs: dict[str, Organisation], accounts: dict[str, User], title: str,
              city_code: str, industry: str, gov_email: str) -> Scenario:
    found = session.exec(select(Scenario).where(Scenario.title == title)).first()
    if found is not None:
        return found
    # Through the marketplace's own services: its rows are its to write.
    gov = accounts[gov_email]
    scenario = scenarios.create_scenario(session, gov, city_code, scenarios.ScenarioInput(
        title=title, industry=industry, description=title, expected_outcome=title, indicators=title,
        deadline=date.today() + timedelta(days=60), contact_name="联系人", contact_info="contact@hub.example"))
    for status in ("published", "open_call"):
        scenario = scenarios.change_status(session, gov, scenario.id, status)  # type: ignore[arg-type]
    return scenario


def _team(session: Session, challenge: Challenge, gov: User, accounts: dict[str, User], name: str,
          emails: list[str], approve: bool = True) -> Team:
    captain = accounts[emails[0]]
    team = teams.create_team(session, captain, challenge, name)
    for email in emails[1:]:
        teams.request_join(session, accounts[email], team.invite_token)
        teams.approve_member(session, captain, team, accounts[email].id)
    reg = registration.submit(session, captain, team, tech_route=f"{name}：特征工程 + 梯度提升树 + 时序深度模型集成，沙箱内离线推理。",
                              indicator_plan="逐项对照榜单技术指标：误差指标在公开榜验证，推理耗时在平台沙箱内实测。",
                              budget_yuan=600_000)
    if approve:
        registration.review(session, gov, reg, approve=True)
    else:
        problems = registration.formal_check(session, reg)
        reason = "形式审查未通过：与发榜单位存在关联关系。" if problems else "材料不全。"
        registration.review(session, gov, reg, approve=False, reason=reason)
    return team


def _history(session: Session, challenge: Challenge, phase: Phase, team: Team, ys: list[float], base: list[float],
             skill: float, start: datetime, end: datetime, count: int, seed: str) -> None:
    """Scored submissions that improve over time towards the team's skill (errors relative to the baseline)."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    base_rmse, base_mae = _rmse(ys, base), _mae(ys, base)
    for k in range(count):
        at = start + timedelta(seconds=span * (k + 0.5 + rng.uniform(-0.3, 0.3)) / count)
        progress = (k + 1) / count
        factor = 1.0 - (1.0 - skill) * progress ** 0.7 + rng.uniform(-0.03, 0.03)
        rmse, mae = round(base_rmse * factor, 4), round(base_mae * factor * rng.uniform(0.95, 1.05), 4)
        primary = rmse if challenge.metric == "rmse" else mae
        runtime = round(60 + rng.uniform(0, 40), 1)
        container_start = at + timedelta(seconds=21)
        session.add(Submission(challenge_id=challenge.id, phase_id=phase.id, team_id=team.id,
                               submitted_by=team.captain_id, created_at=at, queued_at=at,
                               started_at=at + timedelta(seconds=20), finished_at=at + timedelta(seconds=95),
                               image_source="upload", image_ref=f"{team.name}/model:v{k + 1}",
                               image_id="sha256:" + hashlib.sha256(f"{seed}-{k}".encode()).hexdigest(),
                               status="scored", outcome=Outcome.SCORED, scores={"rmse": rmse, "mae": mae},
                               primary_score=primary, runtime_s=runtime, attempt=1,
                               container_started_at=container_start,
                               container_finished_at=container_start + timedelta(seconds=runtime),
                               log_excerpt=f"loading /input/inputs.csv\nmodel v{k + 1} ready\n"
                                           f"wrote {len(ys)} predictions to /output/predictions.csv\n"))
    failed = start + timedelta(seconds=span * 0.3)
    session.add(Submission(challenge_id=challenge.id, phase_id=phase.id, team_id=team.id,
                           submitted_by=team.captain_id, created_at=failed, queued_at=failed, finished_at=failed,
                           image_ref=f"{team.name}/model:broken", image_id="sha256:" + "e" * 64, status="failed",
                           outcome=Outcome.BAD_OUTPUT, reason="line 7: id d0006 appears twice", attempt=1,
                           log_excerpt="wrote predictions\n"))
    session.commit()


def seed(session: Session, orgs: dict[str, Organisation], accounts: dict[str, User]) -> None:
    data_dir = _data_dir()
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    _seed_cargo(session, orgs, accounts, data_dir, now)
    _seed_pv(session, orgs, accounts, data_dir, now)


def _seed_cargo(session: Session, orgs: dict[str, Organisation], accounts: dict[str, User], data_dir: str,
                now: datetime) -> None:
    gov = accounts["gov.konggang@hub.example"]
    scenario = _scenario(session, orgs, accounts, "航空物流货量智能预测", "konggang", "smart_logistics", gov.email)
    if session.exec(select(Challenge).where(Challenge.slug == CARGO_SLUG)).first():
        return
    c = challenges.create_challenge(
        session, gov, scenario_id=scenario.id, slug=CARGO_SLUG, title="航空物流货量智能预测揭榜挂帅赛",
        title_en="Air cargo volume forecasting challenge", metric="rmse", extra_metrics=["mae"],
        opens_at=now - timedelta(days=70), closes_at=now - timedelta(days=12),
        description="按日预测西安咸阳国际机场货邮吞吐量。公开榜用 2025 年上半年数据，决赛在私有数据上评测并由专家评审。",
        rules="每队每天最多提交 5 次；决赛成绩在评审结束后公开；禁止使用外部货量数据。",
        prize="揭榜单位获项目资助 80 万元，并可申请算力券", funding_yuan=800_000,
        input_format=CARGO_INPUT, output_format=CARGO_OUTPUT, id_column="id", prediction_column="tonnes",
        time_limit_s=600, memory_mb=2048, objective_weight=0.6)
    public = phases.create_phase(session, gov, c, name="公开榜", name_en="Public board",
                                 starts_at=now - timedelta(days=70), ends_at=now - timedelta(days=30), split="public",
                                 per_day_limit=5, total_limit=100, concurrent_limit=2, scores_visible="now",
                                 freeze_at=now - timedelta(days=33), cut_bar=25.0)
    final = phases.create_phase(session, gov, c, name="决赛", name_en="Final", starts_at=now - timedelta(days=30),
                                ends_at=now - timedelta(days=12), split="private", per_day_limit=3, total_limit=20,
                                concurrent_limit=1, scores_visible="reveal")
    splits = {}
    for split, n in (("public", 120), ("private", 150)):
        inputs, truth, ys, base = cargo_rows(split, n)
        s_in, s_truth, _, _ = cargo_rows("sample", 20) if split == "public" else (None, None, None, None)
        datasets.write_generated(session, gov, c, split, inputs, truth, data_dir, s_in, s_truth)
        splits[split] = (ys, base)
    for phase, split in ((public, "public"), (final, "private")):
        ys, base = splits[split]
        session.add(Baseline(phase_id=phase.id, label="官方基线 (awk)", primary_score=round(_rmse(ys, base), 4),
                             scores={"rmse": round(_rmse(ys, base), 4), "mae": round(_mae(ys, base), 4)}))
    challenges.change_status(session, gov, c, "publish")
    t_qc = _team(session, c, gov, accounts, "秦创智能队", ["team.qinchuang@hub.example", "team.qinchuang2@hub.example"])
    t_sr = _team(session, c, gov, accounts, "丝路视觉队", ["team.silkroad@hub.example"])
    t_xj = _team(session, c, gov, accounts, "西交大智慧物流队", ["team.xjtu@hub.example"])
    t_np = _team(session, c, gov, accounts, "西工大时序队", ["team.nwpu@hub.example"])
    _team(session, c, gov, accounts, "空港物流队", ["team.logistics@hub.example"], approve=False)
    ys, base = splits["public"]
    for team, skill, count in ((t_qc, 0.42, 14), (t_sr, 0.55, 10), (t_xj, 0.47, 12), (t_np, 0.97, 5)):
        _history(session, c, public, team, ys, base, skill, public.starts_at, public.ends_at - timedelta(hours=6),
                 count, f"cargo-public-{team.name}")
    phases.apply_cut(session, gov.id, c, public, now - timedelta(days=30) + timedelta(minutes=1))
    ys, base = splits["private"]
    for team, skill, count in ((t_qc, 0.44, 6), (t_sr, 0.52, 5), (t_xj, 0.46, 6)):
        _history(session, c, final, team, ys, base, skill, final.starts_at, final.ends_at - timedelta(hours=6),
                 count, f"cargo-final-{team.name}")
    challenges.change_status(session, gov, c, "freeze")
    challenges.change_status(session, gov, c, "start_review")
    panel = [accounts[e] for e in ("judge.xidian@hub.example", "judge.lab@hub.example", "judge.center@hub.example")]
    for judge in panel:
        judging.assign_judge(session, gov, c, judge.id)
    judging.declare_conflict(session, accounts["judge.lab@hub.example"], c, t_xj.id, "与西安交通大学有联合培养合作")
    rng = random.Random("cargo-rubric")
    merit = {t_qc.id: 8.6, t_sr.id: 7.4, t_xj.id: 8.9}
    for judge in panel:
        for team in (t_qc, t_sr, t_xj):
            if judging.is_conflicted(session, judge, c, team.id):
                continue
            judging.score_team(session, judge, c, team.id, {
                "technical": (round(min(10, merit[team.id] + rng.uniform(-0.6, 0.6)), 1), "模型结构清晰，特征工程充分"),
                "feasibility": (round(min(10, merit[team.id] - 0.3 + rng.uniform(-0.8, 0.8)), 1), "可对接物流数据平台"),
                "cost": (round(min(10, 7.5 + rng.uniform(-1, 1)), 1), "算力与实施成本合理"),
            })
    notice_start = now - timedelta(days=9)
    judging.publish_notice(session, gov, c, 7, now=notice_start)
    objection = judging.lodge_objection(session, accounts["team.silkroad@hub.example"], c,
                                        "请说明决赛私有数据的时间范围，以及评审专家的回避情况。",
                                        now=notice_start + timedelta(days=2))
    judging.answer_objection(session, gov, c, objection.id,
                             "决赛数据为 2025 年下半年脱敏日数据；评审专家吴研究员已就西交大团队申报回避，其评分未计入。")
    judging.announce(session, gov, c, now=now - timedelta(days=1))


def _seed_pv(session: Session, orgs: dict[str, Organisation], accounts: dict[str, User], data_dir: str,
             now: datetime) -> None:
    gov = accounts["gov.fengxi@hub.example"]
    scenario = _scenario(session, orgs, accounts, "园区光伏发电功率预测", "fengxi", "smart_energy", gov.email)
    if session.exec(select(Challenge).where(Challenge.slug == PV_SLUG)).first():
        return
    c = challenges.create_challenge(
        session, gov, scenario_id=scenario.id, slug=PV_SLUG, title="园区光伏发电功率预测挑战赛",
        title_en="Industrial-park PV power forecasting challenge", metric="mae", extra_metrics=["rmse"],
        opens_at=now - timedelta(days=10), closes_at=now + timedelta(days=50),
        description="根据辐照度和组件温度预测沣西新城园区屋顶光伏的逐时功率。公开榜实时排名，决赛用私有数据并在结束后揭晓。",
        rules="每队每天最多提交 5 次，同时最多 2 个在运行；平台故障导致的失败不计次数。",
        prize="揭榜单位获项目资助 70 万元", funding_yuan=700_000, input_format=PV_INPUT, output_format=PV_OUTPUT,
        id_column="id", prediction_column="power_kw", time_limit_s=300, memory_mb=1024, objective_weight=0.7)
    public = phases.create_phase(session, gov, c, name="公开榜", name_en="Public board",
                                 starts_at=now - timedelta(days=10), ends_at=now + timedelta(days=30), split="public",
                                 per_day_limit=5, total_limit=150, concurrent_limit=2, scores_visible="now",
                                 freeze_at=now + timedelta(days=25))
    final = phases.create_phase(session, gov, c, name="决赛", name_en="Final", starts_at=now + timedelta(days=30),
                                ends_at=now + timedelta(days=50), split="private", per_day_limit=3, total_limit=30,
                                concurrent_limit=1, scores_visible="reveal")
    splits = {}
    for split, n in (("public", 168), ("private", 192)):
        inputs, truth, ys, base = pv_rows(split, n)
        s_in, s_truth, _, _ = pv_rows("sample", 24) if split == "public" else (None, None, None, None)
        datasets.write_generated(session, gov, c, split, inputs, truth, data_dir, s_in, s_truth)
        splits[split] = (ys, base)
    for phase, split in ((public, "public"), (final, "private")):
        ys, base = splits[split]
        session.add(Baseline(phase_id=phase.id, label="官方基线 (awk)", primary_score=round(_mae(ys, base), 4),
                             scores={"rmse": round(_rmse(ys, base), 4), "mae": round(_mae(ys, base), 4)}))
    challenges.change_status(session, gov, c, "publish")
    ys, base = splits["public"]
    for name, emails, skill, count in (("沣西能源队", ["team.energy@hub.example"], 0.38, 9),
                                       ("秦创光伏队", ["team.qinchuang@hub.example"], 0.52, 7),
                                       ("西交大能源队", ["team.xjtu@hub.example"], 0.45, 8),
                                       ("西工大光伏队", ["team.nwpu@hub.example"], 0.70, 4)):
        team = _team(session, c, gov, accounts, name, emails)
        _history(session, c, public, team, ys, base, skill, public.starts_at, now - timedelta(hours=2), count,
                 f"pv-public-{name}")
    for email in ("judge.xidian@hub.example", "judge.lab@hub.example"):
        judging.assign_judge(session, gov, c, accounts[email].id)
