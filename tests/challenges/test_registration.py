"""揭榜 registration and the formal check (形式审查): legal entity, related party, cap, consortium size."""
from __future__ import annotations

import pytest

from challenges import registration, teams
from challenges.models import Registration, Team
from hub.errors import DomainError
from hub.models import OrgKind, OrgRelation, Role
from tests.factories import make_approved_team, make_open_challenge, make_org, make_user

ROUTE = "多源数据融合 + 梯度提升树，沙箱内离线推理"
PLAN = "逐项指标：RMSE 在公开榜验证，推理耗时实测"


def _team(session, challenge, org=None, partners=None):  # type: ignore[no-untyped-def]
    captain = make_user(session, Role.TEAM, org)
    team = teams.create_team(session, captain, challenge, f"队{captain.id}")
    reg = registration.submit(session, captain, team, tech_route=ROUTE, indicator_plan=PLAN,
                              partner_org_ids=partners or [])
    return team, reg


def test_a_clean_registration_is_approved_and_the_team_may_submit(session, open_challenge):
    team, reg = _team(session, open_challenge.challenge)
    assert registration.formal_check(session, reg) == []
    registration.review(session, open_challenge.gov, reg, approve=True)
    assert session.get(Team, team.id).status == "approved"


def test_application_text_is_required(session, open_challenge):
    captain = make_user(session)
    team = teams.create_team(session, captain, open_challenge.challenge, "空白队")
    with pytest.raises(DomainError) as err:
        registration.submit(session, captain, team, tech_route="短", indicator_plan=PLAN)
    assert err.value.field == "tech_route"
    assert registration.for_team(session, team.id) is None


@pytest.mark.parametrize("direction", ["org_to_city", "city_to_org"])
def test_related_party_tie_either_way_blocks_approval(session, open_challenge, direction):
    c = open_challenge.challenge
    org = make_org(session)
    a, b = (org.id, c.city_id) if direction == "org_to_city" else (c.city_id, org.id)
    session.add(OrgRelation(org_id=a, related_org_id=b, kind="state_owned_subsidiary"))
    session.commit()
    team, reg = _team(session, c, org)
    problems = registration.formal_check(session, reg)
    assert len(problems) == 1 and "related-party" in problems[0][0]
    with pytest.raises(DomainError, match="related-party"):
        registration.review(session, open_challenge.gov, reg, approve=True)
    assert session.get(Registration, reg.id).status == "pending"
    registration.review(session, open_challenge.gov, reg, approve=False, reason="与发榜单位存在关联关系")
    assert session.get(Team, team.id).status == "rejected"
    assert session.get(Team, team.id).reason == "与发榜单位存在关联关系"


def test_missing_credit_code_and_too_many_partners(session, open_challenge):
    c = open_challenge.challenge
    c.consortium_max_partners = 1
    session.add(c)
    session.commit()
    partners = [make_org(session, OrgKind.UNIVERSITY).id, make_org(session, OrgKind.LAB, credit_code=None).id]
    _team_, reg = _team(session, c, partners=partners)
    messages = [m for m, _p in registration.formal_check(session, reg)]
    assert any("credit code" in m for m in messages)
    assert any("consortium" in m for m in messages)


def test_per_applicant_cap_counts_running_projects_led_by_the_organisation(session, data_dir):
    org = make_org(session)
    first = make_open_challenge(session, data_dir)
    make_approved_team(session, first.challenge, first.gov)
    second = make_open_challenge(session, data_dir, per_applicant_cap=1)
    captain = make_user(session, Role.TEAM, org)
    t1 = teams.create_team(session, captain, first.challenge, "首个项目")
    reg1 = registration.submit(session, captain, t1, tech_route=ROUTE, indicator_plan=PLAN)
    registration.review(session, first.gov, reg1, approve=True)
    _t2, reg2 = _team(session, second.challenge, org)
    problems = registration.formal_check(session, reg2)
    assert problems and "cap is 1" in (problems[0][0] % problems[0][1])


def test_refusal_needs_a_reason_and_only_the_city_decides(session, open_challenge):
    _team_, reg = _team(session, open_challenge.challenge)
    with pytest.raises(DomainError) as err:
        registration.review(session, open_challenge.gov, reg, approve=False, reason="")
    assert err.value.field == "reason"
    with pytest.raises(DomainError):
        registration.review(session, make_user(session, Role.GOV), reg, approve=True)
    assert session.get(Registration, reg.id).status == "pending"
