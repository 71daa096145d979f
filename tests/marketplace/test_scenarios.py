"""Scenario rules: who may create and edit, validation, the status machine, visibility, search."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from hub.errors import Conflict, DomainError, Forbidden, NotFound
from hub.models import AuditLog, Role, User
from marketplace import scenarios
from marketplace.models import Scenario, ScenarioEvent
from marketplace.scenarios import district_today
from tests.factories import make_application, make_city, make_scenario, make_user, scenario_input


def _count(session, model) -> int:  # type: ignore[no-untyped-def]
    session.expire_all()
    return len(list(session.exec(select(model))))


# ---------------------------------------------------------------- create and validate
def test_gov_creates_a_draft_of_its_own_city_with_history_and_audit(session):
    city = make_city(session, code="fengxi", name="沣西新城")
    gov = make_user(session, Role.GOV, city)
    s = scenarios.create_scenario(session, gov, "fengxi", scenario_input())
    assert s.status == "draft" and s.city_id == city.id and s.created_by == gov.id
    assert [(e.from_status, e.to_status) for e in scenarios.history(session, s.id)] == [(None, "draft")]
    line = session.exec(select(AuditLog).where(AuditLog.action == "scenario.create")).one()
    assert (line.actor_id, line.org_id, line.object_id) == (gov.id, city.id, s.id)


@pytest.mark.parametrize("role", [Role.TEAM, Role.JUDGE, Role.OPERATOR])
def test_only_government_staff_and_admin_create(session, role):
    city = make_city(session)
    with pytest.raises(Forbidden):
        scenarios.create_scenario(session, make_user(session, role), city.code, scenario_input())
    assert _count(session, Scenario) == 0


def test_gov_cannot_create_for_another_city_but_admin_can(session):
    mine, other = make_city(session), make_city(session)
    gov = make_user(session, Role.GOV, mine)
    with pytest.raises(Forbidden):
        scenarios.create_scenario(session, gov, other.code, scenario_input())
    admin = make_user(session, Role.ADMIN)
    assert scenarios.create_scenario(session, admin, other.code, scenario_input()).city_id == other.id


@pytest.mark.parametrize("overrides, field", [
    ({"title": "  "}, "title"),
    ({"description": ""}, "description"),
    ({"indicators": ""}, "indicators"),
    ({"contact_info": ""}, "contact_info"),
    ({"deadline": None}, "deadline"),
    ({"title": "长" * 201}, "title"),
    ({"data_terms": "x" * 501}, "data_terms"),
    ({"description": "x" * (scenarios.MAX_TEXT + 1)}, "description"),
    ({"industry": "space_mining"}, "industry"),
    ({"industry": ""}, "industry"),
    ({"budget_yuan": -1}, "budget_yuan"),
    ({"budget_yuan": scenarios.MAX_BUDGET + 1}, "budget_yuan"),
])
def test_bad_input_names_the_field_and_changes_nothing(session, overrides, field):
    city = make_city(session)
    gov = make_user(session, Role.GOV, city)
    with pytest.raises(DomainError) as err:
        scenarios.create_scenario(session, gov, city.code, scenario_input(**overrides))
    assert err.value.field == field
    assert _count(session, Scenario) == 0 and _count(session, AuditLog) == 0


def test_unknown_city_is_refused(session):
    with pytest.raises(NotFound) as err:
        scenarios.create_scenario(session, make_user(session, Role.ADMIN), "atlantis", scenario_input())
    assert err.value.field == "city"


# ---------------------------------------------------------------- status machine
def test_full_life_cycle_leaves_a_history(session):
    city = make_city(session)
    gov = make_user(session, Role.GOV, city)
    s = make_scenario(session, city, gov, status="draft")
    scenarios.change_status(session, gov, s.id, "published", "发榜")
    assert s.published_at is not None
    scenarios.change_status(session, gov, s.id, "open_call")
    app = make_application(session, s)
    from marketplace import applications
    applications.review(session, gov, app.id, "accept")
    scenarios.change_status(session, gov, s.id, "under_review")
    scenarios.change_status(session, gov, s.id, "awarded", "公示无异议")
    scenarios.change_status(session, gov, s.id, "closed")
    steps = [(e.from_status, e.to_status, e.actor_id) for e in scenarios.history(session, s.id)]
    assert [t for _, t, _ in steps] == ["draft", "published", "open_call", "under_review", "awarded", "closed"]
    assert all(actor == gov.id for _, _, actor in steps)
    assert scenarios.history(session, s.id)[1].note == "发榜"
    actions = session.exec(select(AuditLog.action).where(AuditLog.object_type == "scenario")).all()
    assert actions.count("scenario.status") == 5


@pytest.mark.parametrize("start, target", [
    ("draft", "open_call"), ("draft", "awarded"), ("draft", "closed"), ("published", "draft"),
    ("published", "awarded"), ("closed", "published"), ("open_call", "published"),
])
def test_illegal_transitions_are_refused_with_a_reason(session, start, target):
    s = make_scenario(session, status=start)
    gov = session.get(User, s.created_by)
    events = len(scenarios.history(session, s.id))
    with pytest.raises(Conflict) as err:
        scenarios.change_status(session, gov, s.id, target)
    assert "cannot go from" in str(err.value)
    session.refresh(s)
    assert s.status == start and len(scenarios.history(session, s.id)) == events


def test_publishing_with_a_past_deadline_is_refused(session):
    s = make_scenario(session, status="draft")
    gov = session.get(User, s.created_by)
    with pytest.raises(DomainError) as err:
        scenarios.change_status(session, gov, s.id, "published", today=s.deadline + timedelta(days=1))
    assert err.value.field == "deadline"
    session.refresh(s)
    assert s.status == "draft"


def test_award_needs_an_accepted_application(session):
    s = make_scenario(session, status="under_review")
    gov = session.get(User, s.created_by)
    with pytest.raises(Conflict, match="Accept at least one"):
        scenarios.change_status(session, gov, s.id, "awarded")


def test_another_city_cannot_change_status_or_edit(session):
    s = make_scenario(session)
    other_gov = make_user(session, Role.GOV, make_city(session))
    with pytest.raises(Forbidden):
        scenarios.change_status(session, other_gov, s.id, "closed")
    with pytest.raises(Forbidden):
        scenarios.update_scenario(session, other_gov, s.id, scenario_input(title="改掉"))
    session.refresh(s)
    assert s.status == "published" and s.title == "园区光伏发电功率预测"


def test_unknown_status_is_refused(session):
    s = make_scenario(session)
    gov = session.get(User, s.created_by)
    with pytest.raises(DomainError, match="Unknown status"):
        scenarios.change_status(session, gov, s.id, "vanished")


# ---------------------------------------------------------------- edit
def test_edit_keeps_search_text_in_sync_and_records_history_after_publication(session):
    s = make_scenario(session)
    gov = session.get(User, s.created_by)
    scenarios.update_scenario(session, gov, s.id, scenario_input(title="储能电站充放电策略优化"))
    assert "储能电站" in s.search_text and "光伏发电功率" not in s.search_text.split("\n")[0]
    last = scenarios.history(session, s.id)[-1]
    assert (last.from_status, last.to_status) == ("published", "published")
    assert session.exec(select(AuditLog).where(AuditLog.action == "scenario.update")).one().detail["fields"] == ["title"]


def test_edit_refused_after_award_and_past_deadline_refused_while_open(session):
    s = make_scenario(session, status="closed")
    gov = session.get(User, s.created_by)
    with pytest.raises(Conflict):
        scenarios.update_scenario(session, gov, s.id, scenario_input(title="新标题"))
    s2 = make_scenario(session)
    gov2 = session.get(User, s2.created_by)
    with pytest.raises(DomainError) as err:
        scenarios.update_scenario(session, gov2, s2.id, scenario_input(deadline=district_today() - timedelta(days=1)))
    assert err.value.field == "deadline"


# ---------------------------------------------------------------- visibility and search
def test_draft_is_seen_only_by_its_city_and_admin(session):
    s = make_scenario(session, status="draft")
    gov = session.get(User, s.created_by)
    assert scenarios.get_visible(session, gov, s.id) is s
    assert scenarios.get_visible(session, make_user(session, Role.ADMIN), s.id) is s
    for viewer in (None, make_user(session, Role.TEAM), make_user(session, Role.GOV, make_city(session))):
        with pytest.raises(NotFound):
            scenarios.get_visible(session, viewer, s.id)
        assert scenarios.search_scenarios(session, viewer) == ([], 0)
    assert scenarios.search_scenarios(session, gov)[1] == 1


def test_chinese_substring_search_and_every_term_must_match(session):
    city = make_city(session, name="沣西新城")
    a = make_scenario(session, city, title="园区光伏发电功率预测")
    b = make_scenario(session, city, title="冷链仓储温控异常预警", industry="smart_logistics",
                      description="冷库温湿度传感器数据", indicators="召回率 ≥ 90%")
    ids = lambda q: {s.id for s in scenarios.search_scenarios(session, None, q=q)[0]}  # noqa: E731
    assert ids("光伏") == {a.id}
    assert ids("温控") == {b.id}
    assert ids("沣西") == {a.id, b.id}            # the city's name is searchable
    assert ids("智慧物流") == {b.id}               # so is the industry's Chinese name
    assert ids("光伏 预测") == {a.id}
    assert ids("光伏 冷链") == set()
    assert ids("ＲＭＳＥ") == {a.id}              # full-width letters and case are folded


def test_like_wildcards_in_the_query_are_literal(session):
    a = make_scenario(session, title="完成率 100% 的任务", indicators="a_b")
    make_scenario(session, title="普通任务", indicators="axb")
    assert [s.id for s in scenarios.search_scenarios(session, None, q="100%")[0]] == [a.id]
    assert [s.id for s in scenarios.search_scenarios(session, None, q="a_b")[0]] == [a.id]
    assert scenarios.search_scenarios(session, None, q="%")[1] == 1


def test_filters_sort_and_pagination(session):
    c1, c2 = make_city(session), make_city(session)
    cheap = make_scenario(session, c1, budget_yuan=10, deadline=district_today() + timedelta(days=50))
    rich = make_scenario(session, c2, budget_yuan=9_000_000, industry="smart_health",
                         deadline=district_today() + timedelta(days=5))
    none = make_scenario(session, c1, budget_yuan=None, status="open_call")
    assert [s.id for s in scenarios.search_scenarios(session, None, city=c1.code)[0]] == [none.id, cheap.id]
    assert [s.id for s in scenarios.search_scenarios(session, None, industry="smart_health")[0]] == [rich.id]
    assert [s.id for s in scenarios.search_scenarios(session, None, status="open_call")[0]] == [none.id]
    assert [s.id for s in scenarios.search_scenarios(session, None, sort="budget")[0]] == [rich.id, cheap.id, none.id]
    assert scenarios.search_scenarios(session, None, sort="deadline")[0][0].id == rich.id
    page2, total = scenarios.search_scenarios(session, None, page=2, per_page=2)
    assert total == 3 and len(page2) == 1


@pytest.mark.parametrize("kwargs, field", [
    ({"city": "atlantis"}, "city"), ({"industry": "x"}, "industry"), ({"status": "x"}, "status"),
    ({"sort": "random"}, "sort"), ({"q": "长" * 101}, "q"),
])
def test_bad_filters_are_named(session, kwargs, field):
    with pytest.raises(DomainError) as err:
        scenarios.search_scenarios(session, None, **kwargs)
    assert err.value.field == field and err.value.status == 400


def test_events_belong_to_their_scenario(session):
    s = make_scenario(session)
    make_scenario(session)
    assert {e.scenario_id for e in scenarios.history(session, s.id)} == {s.id}
    assert len(list(session.exec(select(ScenarioEvent)))) == 4
