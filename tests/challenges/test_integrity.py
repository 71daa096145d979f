"""Competition integrity: a 赛马制 cut never leaks a hidden score, a conflicted judge never reads the team's
data, and a registered team's changes are checked again against the formal check's rules."""
from __future__ import annotations

import pytest
from sqlmodel import select

from challenges import challenges, judging, phases, registration, teams
from challenges.models import Registration, Submission, Team, TeamMember
from hub.errors import DomainError
from hub.models import OrgRelation, Role
from hub.users import issue_api_token
from tests.factories import (login, make_approved_team, make_open_challenge, make_org, make_scored_submission,
                             make_user)

HIDDEN_SCORE = 2.71828   # rmse on a private board (lower is better); the bar is 2.0


# ---------------------------------------------------------------- the 赛马制 cut reason
@pytest.fixture
def cut_team(session, data_dir):  # type: ignore[no-untyped-def]
    """A team cut after a private (hidden) first phase that has ended; the board is not revealed."""
    oc = make_open_challenge(session, data_dir, phases=[
        {"name": "Round1-private", "days": (-0.9, -0.1), "split": "private", "scores_visible": "reveal",
         "cut_bar": 2.0},
        {"name": "Final", "days": (0, 5), "split": "final"}])
    team = make_approved_team(session, oc.challenge, oc.gov, name="未过线队")
    make_scored_submission(session, team.team, oc.phases[0], HIDDEN_SCORE, at=oc.phases[0].starts_at)
    cut = phases.apply_cut(session, oc.gov.id, oc.challenge, oc.phases[0])
    assert [t.id for t in cut] == [team.team.id]
    return oc, team


def test_a_cut_teams_pages_do_not_reveal_its_hidden_score(app, session, cut_team):
    oc, team = cut_team
    member = app.test_client()
    login(member, team.users[0])
    page = member.get(f"/teams/{team.team.id}").get_data(as_text=True)
    assert str(HIDDEN_SCORE) not in page
    assert "未达到阶段 Round1-private 的晋级线" in page
    mine = member.get("/my/teams").get_data(as_text=True)
    assert "未过线队" in mine and str(HIDDEN_SCORE) not in mine
    token = issue_api_token(session, team.users[0])
    session.commit()
    auth = {"Authorization": f"Bearer {token}"}
    sub = session.exec(select(Submission).where(Submission.team_id == team.team.id)).one()
    for url in (f"/api/v1/challenges/{oc.challenge.slug}", f"/api/v1/submissions/{sub.id}",
                f"/api/v1/challenges/{oc.challenge.slug}/leaderboard?phase={oc.phases[0].id}"):
        resp = member.get(url, headers=auth)
        assert resp.status_code == 200 and str(HIDDEN_SCORE) not in resp.get_data(as_text=True), url
    # Nothing the team stores or reads elsewhere carries the figure either.
    session.expire_all()
    assert str(HIDDEN_SCORE) not in session.get(Team, team.team.id).reason


def test_the_city_sees_the_cut_figures_and_the_team_sees_them_after_the_reveal(app, session, cut_team):
    oc, team = cut_team
    gov = app.test_client()
    login(gov, oc.gov)
    assert str(HIDDEN_SCORE) in gov.get(f"/teams/{team.team.id}").get_data(as_text=True)
    phases.reveal(session, oc.gov, oc.challenge, oc.phases[0])
    member = app.test_client()
    login(member, team.users[0])
    page = member.get(f"/teams/{team.team.id}").get_data(as_text=True)
    assert str(HIDDEN_SCORE) in page and "Round1-private" in page


def test_a_team_without_a_score_is_told_so(app, session, data_dir):
    oc = make_open_challenge(session, data_dir, phases=[
        {"name": "初赛", "days": (-0.9, -0.1), "split": "private", "scores_visible": "reveal", "cut_bar": 2.0},
        {"name": "决赛", "days": (0, 5), "split": "final"}])
    silent = make_approved_team(session, oc.challenge, oc.gov)
    phases.ensure_cuts(session, oc.challenge)
    member = app.test_client()
    login(member, silent.users[0])
    assert "未达到阶段 初赛 的晋级线" in member.get(f"/teams/{silent.team.id}").get_data(as_text=True)


# ---------------------------------------------------------------- a judge with a declared conflict
@pytest.fixture
def conflicted(session, data_dir):  # type: ignore[no-untyped-def]
    """A frozen challenge on a private board; judge[0] declared a conflict with team a."""
    oc = make_open_challenge(session, data_dir, phases=[{"split": "private", "scores_visible": "reveal"}])
    a = make_approved_team(session, oc.challenge, oc.gov, name="冲突队")
    b = make_approved_team(session, oc.challenge, oc.gov, name="无关队")
    sub_a = make_scored_submission(session, a.team, oc.phases[0], 1.23456, scores={"rmse": 1.23456},
                                   log_excerpt="epoch 3 loss 0.4242")
    make_scored_submission(session, b.team, oc.phases[0], 3.5)
    judges = [make_user(session, Role.JUDGE) for _ in range(2)]
    for j in judges:
        judging.assign_judge(session, oc.gov, oc.challenge, j.id)
    challenges.change_status(session, oc.gov, oc.challenge, "freeze")
    judging.declare_conflict(session, judges[0], oc.challenge, a.team.id, "前同事")
    return oc, a.team, b.team, sub_a, judges


def test_a_conflicted_judge_cannot_open_the_teams_page_or_submissions(app, session, conflicted):
    oc, a, b, sub_a, judges = conflicted
    jc = app.test_client()
    login(jc, judges[0])
    token = issue_api_token(session, judges[0])
    session.commit()
    auth = {"Authorization": f"Bearer {token}"}
    assert jc.get(f"/teams/{a.id}").status_code == 404
    assert jc.get(f"/teams/{b.id}").status_code == 200
    assert jc.get(f"/submissions/{sub_a.id}").status_code == 404
    assert jc.get(f"/api/v1/submissions/{sub_a.id}", headers=auth).status_code == 404
    log = jc.get(f"/api/v1/submissions/{sub_a.id}/log", headers=auth)
    assert log.status_code == 404 and "0.4242" not in log.get_data(as_text=True)
    # The other judge, without a conflict, reads all of it.
    other = app.test_client()
    login(other, judges[1])
    assert other.get(f"/teams/{a.id}").status_code == 200
    assert other.get(f"/submissions/{sub_a.id}").status_code == 200


def test_a_conflicted_judge_sees_the_teams_row_without_its_private_scores(app, session, conflicted):
    oc, a, b, sub_a, judges = conflicted
    jc = app.test_client()
    login(jc, judges[0])
    slug = oc.challenge.slug
    hidden = "1.23456"
    board = jc.get(f"/challenges/{slug}/leaderboard").get_data(as_text=True)
    assert "冲突队" in board and hidden not in board and "3.5" in board
    token = issue_api_token(session, judges[0])
    session.commit()
    data = jc.get(f"/api/v1/challenges/{slug}/leaderboard", headers={"Authorization": f"Bearer {token}"}).get_json()
    row = next(r for r in data["rows"] if r["team_id"] == a.id)
    assert row["score"] is None and row["scores"] == {} and row["submission_id"] is None and row["withheld"]
    csv = jc.get(f"/challenges/{slug}/leaderboard.csv").get_data(as_text=True)
    assert "冲突队" in csv and hidden not in csv
    assert "冲突队" not in jc.get(f"/challenges/{slug}/leaderboard.svg").get_data(as_text=True)
    review = jc.get(f"/challenges/{slug}/review").get_data(as_text=True)
    assert "冲突队" in review and hidden not in review
    # The panel's other judge sees the live figure.
    other = app.test_client()
    login(other, judges[1])
    assert hidden in other.get(f"/challenges/{slug}/leaderboard").get_data(as_text=True)
    assert hidden in other.get(f"/challenges/{slug}/review").get_data(as_text=True)


# ---------------------------------------------------------------- registered teams change: checked again
def _related_user(session, city_id: int):  # type: ignore[no-untyped-def]
    """A team account of an organisation recorded as related to the posting city."""
    org = make_org(session, name="关联企业")
    session.add(OrgRelation(org_id=org.id, related_org_id=city_id, kind="控股子公司"))
    session.commit()
    return make_user(session, Role.TEAM, org=org)


def test_a_member_from_a_related_party_cannot_join_an_approved_team(app, session, open_challenge):
    """The issue's case: after the formal check the captain added a member of a related organisation."""
    oc = open_challenge
    approved = make_approved_team(session, oc.challenge, oc.gov)
    captain, team = approved.users[0], approved.team
    newcomer = _related_user(session, oc.challenge.city_id)
    teams.request_join(session, newcomer, team.invite_token)
    with pytest.raises(DomainError) as err:
        teams.approve_member(session, captain, team, newcomer.id)
    assert err.value.code == "formal_check" and "related-party" in err.value.message
    session.rollback()
    row = session.exec(select(TeamMember).where(TeamMember.user_id == newcomer.id)).one()
    assert row.status == "pending"
    assert registration.for_team(session, team.id).status == "approved"
    # Through the page the captain reads why, in Chinese.
    c = app.test_client()
    login(c, captain)
    page = c.post(f"/teams/{team.id}/approve/{newcomer.id}", follow_redirects=True).get_data(as_text=True)
    assert "关联企业" in page and "关联关系" in page
    session.expire_all()
    assert session.get(TeamMember, row.id).status == "pending"


def test_an_invitation_to_a_related_party_is_refused(session, open_challenge):
    oc = open_challenge
    approved = make_approved_team(session, oc.challenge, oc.gov)
    newcomer = _related_user(session, oc.challenge.city_id)
    with pytest.raises(DomainError, match="related-party"):
        teams.invite_by_email(session, approved.users[0], approved.team, newcomer.email)
    session.rollback()
    assert session.exec(select(TeamMember).where(TeamMember.user_id == newcomer.id)).first() is None


def test_an_invitation_accepted_after_a_tie_was_recorded_is_refused(session, open_challenge):
    oc = open_challenge
    approved = make_approved_team(session, oc.challenge, oc.gov)
    invitee = make_user(session, Role.TEAM)
    teams.invite_by_email(session, approved.users[0], approved.team, invitee.email)
    session.add(OrgRelation(org_id=invitee.org_id, related_org_id=oc.challenge.city_id, kind="参股"))
    session.commit()
    with pytest.raises(DomainError, match="related-party"):
        teams.accept_invitation(session, invitee, approved.team)
    session.rollback()
    assert teams.team_for_user(session, oc.challenge.id, invitee.id) is None


def test_a_pending_registration_is_checked_with_its_members(session, open_challenge):
    oc = open_challenge
    captain, newcomer = make_user(session, Role.TEAM), _related_user(session, oc.challenge.city_id)
    team = teams.create_team(session, captain, oc.challenge, "未审队")
    teams.request_join(session, newcomer, team.invite_token)
    teams.approve_member(session, captain, team, newcomer.id)   # not registered yet: the formal check follows
    reg = registration.submit(session, captain, team, tech_route="时间序列特征 + 梯度提升树",
                              indicator_plan="各项指标逐项验证，误差低于要求")
    problems = registration.formal_check(session, reg)
    assert problems and problems[0][1]["org"] == "关联企业"
    with pytest.raises(DomainError):
        registration.review(session, oc.gov, reg, approve=True)


def test_a_change_that_cannot_be_refused_sends_the_registration_back_to_review(app, session, open_challenge):
    oc = open_challenge
    approved = make_approved_team(session, oc.challenge, oc.gov, members=2)
    captain, member = approved.users
    # A tie of the lead organisation to the city is recorded after the approval; then a member leaves.
    session.add(OrgRelation(org_id=captain.org_id, related_org_id=oc.challenge.city_id, kind="参股"))
    session.commit()
    teams.leave(session, member, approved.team)
    session.expire_all()
    reg = registration.for_team(session, approved.team.id)
    team = session.get(Team, approved.team.id)
    assert reg.status == "pending" and team.status == "applied"
    assert reg.recheck_reason
    c = app.test_client()
    login(c, captain)
    page = c.get(f"/teams/{team.id}").get_data(as_text=True)
    assert "形式审查后团队发生变化" in page and "关联关系" in page
    gov = app.test_client()
    login(gov, oc.gov)
    regs = gov.get(f"/challenges/{oc.challenge.slug}/registrations").get_data(as_text=True)
    assert "形式审查后团队发生变化" in regs


def test_a_harmless_change_keeps_the_approval(session, open_challenge):
    oc = open_challenge
    approved = make_approved_team(session, oc.challenge, oc.gov, members=2)
    captain, member = approved.users
    newcomer = make_user(session, Role.TEAM)
    teams.request_join(session, newcomer, approved.team.invite_token)
    teams.approve_member(session, captain, approved.team, newcomer.id)
    teams.make_captain(session, captain, approved.team, member.id)
    teams.leave(session, newcomer, approved.team)
    session.expire_all()
    assert registration.for_team(session, approved.team.id).status == "approved"
    assert session.get(Team, approved.team.id).status == "approved"


def test_a_tie_found_at_a_captain_handover_sends_the_registration_back_to_review(session, open_challenge):
    oc = open_challenge
    approved = make_approved_team(session, oc.challenge, oc.gov, members=2)
    captain, member = approved.users
    # The tie is recorded after the approval: the handover itself adds nothing, the re-check finds it.
    session.add(OrgRelation(org_id=member.org_id, related_org_id=oc.challenge.city_id, kind="参股"))
    session.commit()
    teams.make_captain(session, captain, approved.team, member.id)
    session.expire_all()
    assert session.get(Team, approved.team.id).captain_id == member.id
    reg = registration.for_team(session, approved.team.id)
    assert (reg.status, reg.recheck_reason) == ("pending", registration.CAPTAIN_CHANGED)
    assert session.get(Team, approved.team.id).status == "applied"
    # The city decides again; the note goes with its decision.
    with pytest.raises(DomainError, match="related-party"):
        registration.review(session, oc.gov, reg, approve=True)
    session.rollback()
    registration.review(session, oc.gov, reg, approve=False, reason="成员单位与发榜单位存在关联关系")
    assert reg.recheck_reason == ""


def test_partners_of_an_approved_registration_cannot_change(session, open_challenge):
    oc = open_challenge
    approved = make_approved_team(session, oc.challenge, oc.gov)
    partner = make_org(session)
    with pytest.raises(DomainError, match="already decided"):
        registration.submit(session, approved.users[0], approved.team, tech_route="时间序列特征 + 梯度提升树",
                            indicator_plan="各项指标逐项验证，误差低于要求", partner_org_ids=[partner.id])
    session.rollback()
    assert session.exec(select(Registration)).one().partner_org_ids == []
