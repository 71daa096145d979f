"""A small world for the quota tests: a city, a challenge with a phase, a company team, a center, a bureau."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest
from sqlmodel import Session

from challenges.models import Challenge, Phase, Submission, Team, TeamMember
from evaluator.quota import ledger, vouchers
from hub.models import Organisation, OrgKind, Role, User, utcnow
from marketplace.models import Scenario
from tests.factories import make_city, make_org, make_user

_seq = itertools.count(1)


@dataclass
class World:
    city: Organisation
    center: Organisation
    bureau: Organisation
    company: Organisation
    other_company: Organisation
    operator: User
    member: User
    outsider: User
    challenge: Challenge
    phase: Phase
    team: Team
    other_team: Team


def make_challenge(session: Session, city: Organisation, accel_class: str = "nvidia-a100",
                   accelerators: int = 1) -> tuple[Challenge, Phase]:
    n = next(_seq)
    scenario = Scenario(city_id=city.id, title=f"场景{n}", industry="smart_logistics", description="d",
                        expected_outcome="e", indicators="i", deadline=date.today() + timedelta(days=90),
                        contact_name="联系人", contact_info="029-0000")
    session.add(scenario)
    session.flush()
    now = utcnow()
    challenge = Challenge(scenario_id=scenario.id, city_id=city.id, slug=f"quota-challenge-{n}", title=f"榜单{n}",
                          opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=60), status="open",
                          metric="accuracy", accelerators=accelerators, accelerator_class=accel_class)
    session.add(challenge)
    session.flush()
    phase = Phase(challenge_id=challenge.id, name="初赛", starts_at=challenge.opens_at, ends_at=challenge.closes_at,
                  split="public")
    session.add(phase)
    session.commit()
    return challenge, phase


def make_team(session: Session, challenge: Challenge, org: Organisation, captain: User) -> Team:
    team = Team(challenge_id=challenge.id, name=f"团队{next(_seq)}", lead_org_id=org.id, captain_id=captain.id,
                invite_token=f"tok{next(_seq)}", status="approved")
    session.add(team)
    session.flush()
    session.add(TeamMember(team_id=team.id, challenge_id=challenge.id, user_id=captain.id, role="captain",
                           status="active"))
    session.commit()
    return team


def make_submission(session: Session, team: Team, phase: Phase, attempt: int = 1) -> Submission:
    sub = Submission(challenge_id=team.challenge_id, phase_id=phase.id, team_id=team.id,
                     submitted_by=team.captain_id, attempt=attempt, status="running")
    session.add(sub)
    session.commit()
    return sub


@pytest.fixture
def world(session: Session) -> World:
    city = make_city(session)
    center = make_org(session, OrgKind.CENTER, name="西咸新区智算中心")
    bureau = make_org(session, OrgKind.DISTRICT, name="西咸新区大数据管理局", credit_code=None)
    company = make_org(session, OrgKind.COMPANY, name="秦创智能科技有限公司")
    other_company = make_org(session, OrgKind.COMPANY, name="丝路视觉科技有限公司")
    operator = make_user(session, Role.OPERATOR, org=center)
    member = make_user(session, Role.TEAM, org=company)
    outsider = make_user(session, Role.TEAM, org=other_company)
    challenge, phase = make_challenge(session, city)
    team = make_team(session, challenge, company, member)
    other_team = make_team(session, challenge, other_company, outsider)
    return World(city, center, bureau, company, other_company, operator, member, outsider, challenge, phase,
                 team, other_team)


def at(days: float = 0, seconds: float = 0) -> datetime:
    return utcnow() + timedelta(days=days, seconds=seconds)


def metered_world(session, w):  # type: ignore[no-untyped-def]
    """A price, a 50 % voucher of the company, an hour metered for its team and half an hour for the other
    company's team. Returns (voucher, mine, theirs)."""
    ledger.set_price(session, accel_class="nvidia-a100", fen_per_device_hour=3600, actor_id=None,
                     valid_from=utcnow() - timedelta(days=30))
    start = utcnow() - timedelta(days=30)
    v = vouchers.issue(session, company_id=w.company.id, bureau_id=w.bureau.id, supplier_id=w.center.id,
                       scheme="西咸新区算力券", percent=50, cap_fen=300_000_000, valid_from=start,
                       valid_until=start + timedelta(days=365), actor_id=None)
    t = utcnow() - timedelta(hours=3)
    mine = ledger.meter_run(session, submission_id=make_submission(session, w.team, w.phase).id, lease_id=None,
                            device_class="nvidia-a100", device_ids=["GPU-mine-0001"], started_at=t,
                            finished_at=t + timedelta(seconds=3600))
    theirs = ledger.meter_run(session, submission_id=make_submission(session, w.other_team, w.phase).id,
                              lease_id=None, device_class="nvidia-a100", device_ids=["GPU-theirs-0002"],
                              started_at=t, finished_at=t + timedelta(seconds=1800))
    return v, mine, theirs
