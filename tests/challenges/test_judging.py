"""Judging: panel, conflicts, rubric, final ranking weights, 公示 with objections, sign-off and 挂帅."""
from __future__ import annotations

from datetime import timedelta

import pytest

from challenges import challenges, judging
from challenges.models import Challenge, RubricScore
from hub.errors import DomainError
from hub.models import AuditLog, Role, utcnow
from marketplace.models import Scenario
from tests.challenges.conftest import count
from tests.factories import make_approved_team, make_open_challenge, make_scored_submission, make_user

FULL = {"technical": (8, "好"), "feasibility": (6, "可行"), "cost": (7, "")}


@pytest.fixture
def review(session, data_dir):  # type: ignore[no-untyped-def]
    oc = make_open_challenge(session, data_dir, objective_weight=0.5)
    a = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    b = make_approved_team(session, oc.challenge, oc.gov, name="乙队")
    make_scored_submission(session, a.team, oc.phases[0], 1.0)   # rmse: 甲 is best
    make_scored_submission(session, b.team, oc.phases[0], 3.0)
    judges = [make_user(session, Role.JUDGE) for _ in range(2)]
    for j in judges:
        judging.assign_judge(session, oc.gov, oc.challenge, j.id)
    challenges.change_status(session, oc.gov, oc.challenge, "freeze")
    challenges.change_status(session, oc.gov, oc.challenge, "start_review")
    return oc, a.team, b.team, judges


def test_only_judge_accounts_join_the_panel_once(session, review):
    oc, _a, _b, judges = review
    with pytest.raises(DomainError):
        judging.assign_judge(session, oc.gov, oc.challenge, make_user(session).id)
    with pytest.raises(DomainError, match="already"):
        judging.assign_judge(session, oc.gov, oc.challenge, judges[0].id)


def test_rubric_scores_are_checked(session, review):
    oc, a, _b, judges = review
    with pytest.raises(DomainError) as err:
        judging.score_team(session, judges[0], oc.challenge, a.id, {**FULL, "technical": (11, "")})
    assert err.value.field == "technical"
    with pytest.raises(DomainError, match="missing: cost"):
        judging.score_team(session, judges[0], oc.challenge, a.id, {k: v for k, v in FULL.items() if k != "cost"})
    with pytest.raises(DomainError):
        judging.score_team(session, make_user(session, Role.JUDGE), oc.challenge, a.id, FULL)  # not on the panel
    assert count(session, RubricScore) == 0
    judging.score_team(session, judges[0], oc.challenge, a.id, FULL)
    judging.score_team(session, judges[0], oc.challenge, a.id, {**FULL, "cost": (9, "改")})  # revised, not added
    assert count(session, RubricScore) == 3


def test_a_declared_conflict_keeps_the_judge_off_the_team(session, review):
    from challenges import submissions

    oc, a, _b, judges = review
    judging.score_team(session, judges[0], oc.challenge, a.id, FULL)
    judging.declare_conflict(session, judges[0], oc.challenge, a.id, "前同事")
    assert count(session, RubricScore, judge_id=judges[0].id) == 0  # earlier scores for the team are dropped
    with pytest.raises(DomainError, match="conflict"):
        judging.score_team(session, judges[0], oc.challenge, a.id, FULL)
    sub = make_scored_submission(session, a, oc.phases[0], 2.0)
    assert not submissions.can_view(session, judges[0], sub, oc.challenge)
    assert submissions.can_view(session, judges[1], sub, oc.challenge)


def test_final_ranking_combines_normalised_objective_and_rubric_average(session, review):
    oc, a, b, judges = review
    judging.score_team(session, judges[0], oc.challenge, a.id, {k: (0, "") for k in FULL})
    judging.score_team(session, judges[0], oc.challenge, b.id, {k: (10, "") for k in FULL})
    judging.score_team(session, judges[1], oc.challenge, b.id, {k: (5, "") for k in FULL})
    ranking = judging.final_ranking(session, oc.challenge)
    by_name = {r.team_name: r for r in ranking}
    # w = 0.5. 甲: objective best → 1.0, rubric 0 → 50. 乙: objective 0, rubric (1.0 + 0.5) / 2 → 37.5.
    assert (by_name["甲队"].normalised, by_name["甲队"].rubric, by_name["甲队"].final) == (1.0, 0.0, 50.0)
    assert (by_name["乙队"].normalised, by_name["乙队"].rubric, by_name["乙队"].final) == (0.0, 0.75, 37.5)
    assert by_name["乙队"].judges == 2
    assert [r.team_name for r in ranking] == ["甲队", "乙队"]


def test_notice_objections_and_announcement_move_the_scenario(session, review):
    oc, a, b, judges = review
    c = oc.challenge
    judging.score_team(session, judges[0], c, a.id, FULL)
    with pytest.raises(DomainError):
        judging.announce(session, oc.gov, c)  # no notice yet
    with pytest.raises(DomainError) as err:
        judging.publish_notice(session, oc.gov, c, 0)
    assert err.value.field == "days"
    start = utcnow()
    judging.publish_notice(session, oc.gov, c, 5, now=start)
    with pytest.raises(DomainError, match="published"):
        judging.score_team(session, judges[1], c, a.id, FULL)  # the ranking is frozen once published
    team_user = make_user(session)
    with pytest.raises(DomainError):
        judging.lodge_objection(session, team_user, c, "评分有误，请复核。", now=start + timedelta(days=6))
    objection = judging.lodge_objection(session, team_user, c, "评分有误，请复核。", now=start + timedelta(days=1))
    with pytest.raises(DomainError, match="notice period runs"):
        judging.announce(session, oc.gov, c, now=start + timedelta(days=2))
    with pytest.raises(DomainError, match="objection"):
        judging.announce(session, oc.gov, c, now=start + timedelta(days=6))
    judging.answer_objection(session, oc.gov, c, objection.id, "已复核，维持原排名。")
    judging.announce(session, oc.gov, c, now=start + timedelta(days=6))
    session.expire_all()
    c = session.get(Challenge, c.id)
    assert (c.status, c.winner_team_id, c.signed_off_by) == ("awarded", a.id, oc.gov.id)
    assert session.get(Scenario, c.scenario_id).status == "awarded"
    assert all(p.revealed_at is not None for p in challenges.phases_of(session, c.id))
    actions = {ln.action for ln in session.exec(__import__("sqlmodel").select(AuditLog))}
    assert {"judge.assign", "judge.rubric", "challenge.notice", "objection.answer", "challenge.announce"} <= actions


def test_judges_and_organisers_disqualify_with_a_reason(session, review):
    oc, _a, b, judges = review
    with pytest.raises(DomainError) as err:
        judging.disqualify_team(session, judges[0], oc.challenge, b.id, "")
    assert err.value.field == "reason"
    with pytest.raises(DomainError):
        judging.disqualify_team(session, make_user(session), oc.challenge, b.id, "原因充分")
    team = judging.disqualify_team(session, judges[0], oc.challenge, b.id, "违反数据使用协议")
    assert team.status == "disqualified"
    assert [r.team_name for r in judging.final_ranking(session, oc.challenge)] == ["甲队"]
