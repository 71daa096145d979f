"""Factory helpers: real rows through the real services where a rule matters."""
from __future__ import annotations

import itertools
from typing import Any

from sqlmodel import Session

from hub.models import Organisation, OrgKind, Role, User
from hub.users import create_user

PASSWORD = "correct-horse-9"
_seq = itertools.count(1)


def make_org(session: Session, kind: str = OrgKind.COMPANY, code: str | None = None, name: str | None = None,
             **fields: Any) -> Organisation:
    n = next(_seq)
    org = Organisation(code=code or f"org{n}", name=name or f"测试单位{n}", name_en=f"Test Org {n}", kind=kind,
                       credit_code=fields.pop("credit_code", f"91610000TEST{n:06d}"), **fields)
    session.add(org)
    session.commit()
    return org


def make_city(session: Session, code: str | None = None, name: str | None = None) -> Organisation:
    return make_org(session, OrgKind.CITY, code=code, name=name, credit_code=None)


def make_user(session: Session, role: str = Role.TEAM, org: Organisation | None = None,
              email: str | None = None, password: str = PASSWORD, name: str = "") -> User:
    if org is None and role != Role.ADMIN:
        kind = {Role.GOV: OrgKind.CITY, Role.TEAM: OrgKind.COMPANY, Role.JUDGE: OrgKind.UNIVERSITY,
                Role.OPERATOR: OrgKind.CENTER}[Role(role)]
        org = make_org(session, kind)
    user = create_user(session, email or f"user{next(_seq)}@test.example", password, role,
                       org.id if org else None, name)
    session.commit()
    return user


def login(client, user: User, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """Log a test client in through the real login form."""
    resp = client.post("/login", data={"email": user.email, "password": password})
    assert resp.status_code == 302, resp.data[:500]
    return resp


# ---------------------------------------------------------------- evaluation pipeline (added by the evaluator work)
def make_eval_setup(session: Session, data_dir, *, truth: str = "id,label\n1,a\n2,b\n3,a\n4,b\n",  # type: ignore[no-untyped-def]
                    metric: str = "accuracy", time_limit_s: int = 20, memory_mb: int = 64,
                    accelerators: int = 0, accelerator_class: str = "cpu", team_users: int = 1,
                    prediction_column: str = "label", slug: str | None = None):
    """An open challenge with one open phase, its test data on disk, and an approved team.

    Returns a SimpleNamespace(challenge, phase, dataset, team, users, city). The inputs hold `ids.txt`.
    """
    from datetime import date, timedelta
    from pathlib import Path
    from types import SimpleNamespace

    from challenges.models import Challenge, ChallengeStatus, Dataset, Phase, Team, TeamMember
    from hub.models import utcnow
    from marketplace.models import Scenario

    n = next(_seq)
    city = make_city(session)
    scenario = Scenario(city_id=city.id, title=f"场景{n}", industry="smart_logistics", description="d",
                        expected_outcome="e", indicators="i", deadline=date.today() + timedelta(days=30),
                        contact_name="c", contact_info="c@example.org", status="published")
    session.add(scenario)
    session.commit()
    now = utcnow()
    challenge = Challenge(scenario_id=scenario.id, city_id=city.id, slug=slug or f"eval-{n}", title=f"评测挑战{n}",
                          opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=30),
                          status=ChallengeStatus.OPEN, metric=metric, time_limit_s=time_limit_s,
                          memory_mb=memory_mb, accelerators=accelerators, accelerator_class=accelerator_class,
                          prediction_column=prediction_column, output_file="predictions.csv")
    session.add(challenge)
    session.commit()
    phase = Phase(challenge_id=challenge.id, name="初赛", starts_at=now - timedelta(days=1),
                  ends_at=now + timedelta(days=30), split="public", per_day_limit=500, total_limit=1000,
                  concurrent_limit=100)
    session.add(phase)
    root = Path(data_dir) / f"dataset-{n}"
    (root / "inputs").mkdir(parents=True, exist_ok=True)
    ids = [line.split(",")[0] for line in truth.strip().splitlines()[1:]]
    (root / "inputs" / "ids.txt").write_text("\n".join(ids) + "\n")
    (root / "truth.csv").write_text(truth)
    dataset = Dataset(challenge_id=challenge.id, split="public", inputs_dir=str(root / "inputs"),
                      truth_path=str(root / "truth.csv"), inputs_sha256="0" * 64, truth_sha256="0" * 64,
                      rows=len(ids))
    session.add(dataset)
    users = [make_user(session) for _ in range(team_users)]
    team = Team(challenge_id=challenge.id, name=f"队伍{n}", lead_org_id=users[0].org_id, captain_id=users[0].id,
                invite_token=f"tok{n}", status="approved")
    session.add(team)
    session.commit()
    for i, user in enumerate(users):
        session.add(TeamMember(team_id=team.id, challenge_id=challenge.id, user_id=user.id,
                               role="captain" if i == 0 else "member", status="active"))
    session.commit()
    return SimpleNamespace(challenge=challenge, phase=phase, dataset=dataset, team=team, users=users, city=city)


# ---------------------------------------------------------------- marketplace (scenarios, applications, files)
def scenario_input(**overrides: Any):  # type: ignore[no-untyped-def]
    """A complete, valid ScenarioInput; override any field."""
    from datetime import timedelta

    from marketplace.scenarios import ScenarioInput, district_today

    values: dict[str, Any] = dict(
        title="园区光伏发电功率预测", industry="smart_energy",
        description="屋顶分布式光伏出力波动影响园区微电网调度。", expected_outcome="未来 24 小时功率预测服务。",
        indicators="日前预测归一化 RMSE ≤ 10%", data_available="两年 15 分钟功率数据", data_terms="仅限本榜单使用",
        budget_yuan=500_000, reward="项目资助", deadline=district_today() + timedelta(days=30),
        contact_name="刘主任", contact_info="029-0000 0000")
    values.update(overrides)
    return ScenarioInput(**values)


def make_scenario(session: Session, city: Organisation | None = None, gov: User | None = None,
                  status: str = "published", **fields: Any):  # type: ignore[no-untyped-def]
    """A scenario created through the services by a gov user of its city, moved to `status` (up to open_call)."""
    from marketplace import scenarios

    city = city or make_city(session)
    gov = gov or make_user(session, Role.GOV, city)
    scenario = scenarios.create_scenario(session, gov, city.code, scenario_input(**fields))
    for step in {"draft": [], "published": ["published"], "open_call": ["published", "open_call"],
                 "under_review": ["published", "under_review"], "closed": ["published", "closed"]}[status]:
        scenario = scenarios.change_status(session, gov, scenario.id, step)
    return scenario


def make_application(session: Session, scenario, team: User | None = None, uploads: list | None = None,  # type: ignore[no-untyped-def]
                     store=None, **fields: Any):  # type: ignore[no-untyped-def]
    from marketplace.applications import ApplicationInput, apply

    team = team or make_user(session, Role.TEAM)
    values = dict(proposal="我们的揭榜方案", tech_route="数据清洗 → 模型 → 沙箱评测", indicator_plan="逐项验证", budget_yuan=None)
    values.update(fields)
    return apply(session, team, scenario.id, ApplicationInput(**values), uploads or [], store)


PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 32


def ooxml_bytes(kind: str = "word") -> bytes:
    """A minimal Office Open XML zip (kind: word, xl or ppt)."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(f"{kind}/document.xml", "<doc/>")
    return buf.getvalue()


# ---------------------------------------------------------------- challenges (added by the challenges work)
def make_challenge(session: Session, *, gov: User | None = None, metric: str = "rmse", slug: str | None = None,
                   days_open: int = 30, **fields: Any):  # type: ignore[no-untyped-def]
    """A draft challenge created through the service by a gov user of the scenario's city (opened a day ago)."""
    from datetime import timedelta

    from challenges.challenges import create_challenge
    from hub.models import utcnow

    if gov is None:
        gov = make_user(session, Role.GOV)
    city = session.get(Organisation, gov.org_id)
    scenario = make_scenario(session, city=city, gov=gov)
    now = utcnow()
    title = fields.pop("title", "测试挑战")
    values: dict[str, Any] = dict(opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=days_open),
                                  id_column="id", prediction_column="value")
    values.update(fields)
    return create_challenge(session, gov, scenario_id=scenario.id, slug=slug or f"ch-{next(_seq)}",
                            title=title, metric=metric, **values)


def make_phase(session: Session, challenge, gov: User, *, days: tuple[float, float] = (-1, 10),  # type: ignore[no-untyped-def]
               split: str = "public", **fields: Any):
    """A phase from now+days[0] to now+days[1] (in days), through the service."""
    from datetime import timedelta

    from challenges.phases import create_phase
    from hub.models import utcnow

    now = utcnow()
    values: dict[str, Any] = dict(name=f"阶段{next(_seq)}", starts_at=now + timedelta(days=days[0]),
                                  ends_at=now + timedelta(days=days[1]), split=split, per_day_limit=5,
                                  total_limit=20, concurrent_limit=2, scores_visible="now")
    values.update(fields)
    return create_phase(session, gov, challenge, **values)


def make_dataset(session: Session, challenge, gov: User, data_dir, split: str = "public", rows: int = 4,  # type: ignore[no-untyped-def]
                 sample: bool = False):
    """A split's inputs and truth uploaded through the service (ids 1…rows)."""
    from challenges.datasets import write_generated

    ids = range(1, rows + 1)
    inputs = f"{challenge.id_column},x\n" + "".join(f"{i},{i * 2}\n" for i in ids)
    truth = f"{challenge.id_column},{challenge.prediction_column}\n" + "".join(f"{i},{i * 1.5}\n" for i in ids)
    kw: dict[str, Any] = {}
    if sample:
        kw = dict(sample_inputs=f"{challenge.id_column},x\ns1,1\n",
                  sample_truth=f"{challenge.id_column},{challenge.prediction_column}\ns1,0.5\n")
    return write_generated(session, gov, challenge, split, inputs, truth, str(data_dir), **kw)


def make_open_challenge(session: Session, data_dir, *, phases: list[dict[str, Any]] | None = None,  # type: ignore[no-untyped-def]
                        **fields: Any):
    """A published challenge with its phases (default: one public phase running now) and their data.

    Returns SimpleNamespace(challenge, gov, phases)."""
    from types import SimpleNamespace

    from challenges.challenges import change_status

    gov = make_user(session, Role.GOV)
    challenge = make_challenge(session, gov=gov, **fields)
    made = [make_phase(session, challenge, gov, **p) for p in (phases or [{}])]
    for split in dict.fromkeys(p.split for p in made):
        make_dataset(session, challenge, gov, data_dir, split=split)
    change_status(session, gov, challenge, "publish")
    return SimpleNamespace(challenge=challenge, gov=gov, phases=made)


def make_approved_team(session: Session, challenge, gov: User, *, members: int = 1, name: str | None = None):  # type: ignore[no-untyped-def]
    """A team formed, registered and approved through the services. Returns SimpleNamespace(team, users)."""
    from types import SimpleNamespace

    from challenges import registration, teams

    # Colleagues of one company: the captain's role can pass to any of them (it needs the lead organisation).
    users = [make_user(session, Role.TEAM)]
    lead = session.get(Organisation, users[0].org_id)
    users += [make_user(session, Role.TEAM, org=lead) for _ in range(members - 1)]
    team = teams.create_team(session, users[0], challenge, name or f"队伍{next(_seq)}")
    for user in users[1:]:
        teams.request_join(session, user, team.invite_token)
        teams.approve_member(session, users[0], team, user.id)
    reg = registration.submit(session, users[0], team, tech_route="时间序列特征 + 梯度提升树",
                              indicator_plan="各项指标逐项验证，误差低于要求")
    registration.review(session, gov, reg, approve=True)
    return SimpleNamespace(team=team, users=users)


def make_scored_submission(session: Session, team, phase, score: float, *, at=None,  # type: ignore[no-untyped-def]
                           scores: dict[str, float] | None = None, status: str = "scored",
                           outcome: str | None = "scored", **fields: Any):
    """A submission row as the evaluator leaves it (scored by default) at time `at`."""
    from challenges.models import Submission
    from hub.models import utcnow

    at = at or utcnow()
    member = fields.pop("submitted_by", None) or team.captain_id
    sub = Submission(challenge_id=team.challenge_id, phase_id=phase.id, team_id=team.id, submitted_by=member,
                     created_at=at, queued_at=at, finished_at=at if status in ("scored", "failed") else None,
                     image_ref="team/model:1", image_id="sha256:" + "ab" * 32, status=status, outcome=outcome,
                     primary_score=score if status == "scored" else None,
                     scores=scores if scores is not None else ({} if status != "scored" else {"rmse": score}),
                     **fields)
    session.add(sub)
    session.commit()
    return sub


# ---------------------------------------------------------------- organisation membership (hub.membership)
def make_org_admin(session: Session, org: Organisation, role: str = Role.TEAM, email: str | None = None) -> User:
    """An active member of `org` named its administrator (as the platform admin's set-org-admin does)."""
    from hub import membership

    user = make_user(session, role, org, email=email)
    membership.name_first_admin(session, None, org.code, user.email)
    session.refresh(user)
    return user


def make_newcomer(session: Session, email: str | None = None, password: str = PASSWORD) -> User:
    """A registered account with no organisation (what /register makes)."""
    user = create_user(session, email or f"new{next(_seq)}@test.example", password, Role.TEAM, None)
    session.commit()
    return user


# ---------------------------------------------------------------- check runs (public samples)
def add_sample(session: Session, dataset, inputs: str, truth: str):  # type: ignore[no-untyped-def]
    """Give a dataset a public sample laid out as challenges.datasets writes one (sample.zip beside nothing else)."""
    import zipfile
    from pathlib import Path

    from challenges.datasets import INPUTS_NAME, SAMPLE_NAME, TRUTH_NAME

    folder = Path(dataset.inputs_dir).parent / "sample"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / SAMPLE_NAME, "w") as out:
        out.writestr(f"sample/{INPUTS_NAME}", inputs)
        out.writestr(f"sample/{TRUTH_NAME}", truth)
    dataset.sample_dir, dataset.sample_sha256 = str(folder), "0" * 64
    session.add(dataset)
    session.commit()
    return dataset
