"""Challenge rules: who creates, what is checked, the status workflow, and the evaluation-contract lock."""
from __future__ import annotations

from datetime import timedelta

import pytest

from challenges import challenges
from challenges.models import Challenge
from hub.errors import DomainError
from hub.models import AuditLog, Role, utcnow
from tests.challenges.conftest import count
from tests.factories import (make_approved_team, make_challenge, make_city, make_dataset, make_phase, make_scenario,
                             make_scored_submission, make_user)


def test_gov_of_the_city_creates_a_draft_with_the_default_rubric(session):
    challenge = make_challenge(session)
    assert challenge.status == "draft"
    assert [c["key"] for c in challenge.rubric] == ["technical", "feasibility", "cost"]
    assert count(session, AuditLog, action="challenge.create") == 1


def test_gov_of_another_city_cannot_create_a_challenge_for_the_scenario(session):
    scenario = make_scenario(session)
    other = make_user(session, Role.GOV, make_city(session))
    with pytest.raises(DomainError) as err:
        challenges.create_challenge(session, other, scenario_id=scenario.id, slug="abc-1", title="t", metric="rmse",
                                    opens_at=utcnow(), closes_at=utcnow() + timedelta(days=1))
    assert err.value.code == "forbidden"
    assert count(session, Challenge) == 0


@pytest.mark.parametrize("fields, field", [
    ({"slug": "Bad Slug!"}, "slug"),
    ({"slug": "new"}, "slug"),
    ({"metric": "nope"}, "metric"),
    ({"closes_at": utcnow() - timedelta(days=3)}, "closes_at"),
    ({"time_limit_s": 1}, "time_limit_s"),
    ({"objective_weight": 1.5}, "objective_weight"),
    ({"output_file": "../x.csv"}, "output_file"),
    ({"prediction_column": "id"}, "prediction_column"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(session, fields, field):
    with pytest.raises(DomainError) as err:
        make_challenge(session, **fields)
    assert err.value.field == field
    assert count(session, Challenge) == 0


def test_publishing_needs_a_phase_and_the_data_of_each_phase(session, data_dir):
    gov = make_user(session, Role.GOV)
    challenge = make_challenge(session, gov=gov)
    with pytest.raises(DomainError, match="at least one phase"):
        challenges.change_status(session, gov, challenge, "publish")
    make_phase(session, challenge, gov, split="public")
    with pytest.raises(DomainError, match="split public"):
        challenges.change_status(session, gov, challenge, "publish")
    make_dataset(session, challenge, gov, data_dir)
    challenges.change_status(session, gov, challenge, "publish")
    assert session.get(Challenge, challenge.id).status == "open"


def test_status_moves_only_along_the_workflow(session, open_challenge):
    c, gov = open_challenge.challenge, open_challenge.gov
    with pytest.raises(DomainError, match="not possible"):
        challenges.change_status(session, gov, c, "start_review")
    challenges.change_status(session, gov, c, "freeze")
    challenges.change_status(session, gov, c, "start_review")
    assert c.status == "final_review"
    with pytest.raises(DomainError):
        challenges.change_status(session, make_user(session, Role.GOV), c, "archive")


def test_contract_is_locked_once_a_submission_is_scored(session, open_challenge):
    c, gov = open_challenge.challenge, open_challenge.gov
    challenges.update_challenge(session, gov, c, metric="mae")  # still free before any score
    team = make_approved_team(session, c, gov).team
    make_scored_submission(session, team, open_challenge.phases[0], 1.0)
    with pytest.raises(DomainError) as err:
        challenges.update_challenge(session, gov, c, metric="rmse")
    assert err.value.code == "locked" and "metric" in str(err.value)
    session.expire_all()
    assert session.get(Challenge, c.id).metric == "mae"
    challenges.update_challenge(session, gov, c, title="新标题")  # the text may still change
    assert session.get(Challenge, c.id).title == "新标题"


def test_current_phase_is_the_running_then_the_next_then_the_last(session):
    gov = make_user(session, Role.GOV)
    c = make_challenge(session, gov=gov)
    first = make_phase(session, c, gov, days=(-1, 1))
    second = make_phase(session, c, gov, days=(2, 5), split="private")
    now = utcnow()
    assert challenges.current_phase(session, c, now).id == first.id
    assert challenges.current_phase(session, c, now + timedelta(days=1, hours=12)).id == second.id
    assert challenges.current_phase(session, c, now + timedelta(days=20)).id == second.id


def test_get_by_slug_raises_not_found(session):
    from hub.errors import NotFound

    with pytest.raises(NotFound):
        challenges.get_by_slug(session, "missing")
