"""Teams: create, invite by link or e-mail, captain approval, size cap, one team per person, leaving."""
from __future__ import annotations

import pytest

from challenges import teams
from challenges.models import Team, TeamMember
from hub.errors import DomainError
from hub.models import Organisation, Role
from tests.challenges.conftest import count
from tests.factories import make_scored_submission, make_user


def test_create_join_by_link_with_captain_approval(session, open_challenge):
    c = open_challenge.challenge
    captain, member = make_user(session), make_user(session)
    team = teams.create_team(session, captain, c, "雷霆队")
    assert teams.team_for_user(session, c.id, captain.id).id == team.id
    teams.request_join(session, member, team.invite_token)
    assert teams.team_for_user(session, c.id, member.id) is None  # pending until approved
    teams.approve_member(session, captain, team, member.id)
    assert teams.team_for_user(session, c.id, member.id).id == team.id


def test_only_the_captain_approves_and_the_size_cap_holds(session, open_challenge):
    c = open_challenge.challenge
    c.max_team_size = 2
    session.add(c)
    session.commit()
    captain, a, b = make_user(session), make_user(session), make_user(session)
    team = teams.create_team(session, captain, c, "满员队")
    teams.request_join(session, a, team.invite_token)
    teams.request_join(session, b, team.invite_token)
    with pytest.raises(DomainError, match="captain"):
        teams.approve_member(session, a, team, b.id)
    teams.approve_member(session, captain, team, a.id)
    with pytest.raises(DomainError) as err:
        teams.approve_member(session, captain, team, b.id)
    assert err.value.code == "team_full"
    assert count(session, TeamMember, team_id=team.id, status="active") == 2


def test_one_team_per_person_per_challenge(session, open_challenge):
    c = open_challenge.challenge
    u = make_user(session)
    teams.create_team(session, u, c, "甲队")
    with pytest.raises(DomainError, match="one team per person"):
        teams.create_team(session, u, c, "乙队")
    other = teams.create_team(session, make_user(session), c, "丙队")
    with pytest.raises(DomainError, match="one team per person"):
        teams.request_join(session, u, other.invite_token)
    assert count(session, Team) == 2


def test_invite_by_email_is_accepted_by_the_invitee(session, open_challenge):
    c = open_challenge.challenge
    captain, invitee = make_user(session), make_user(session)
    team = teams.create_team(session, captain, c, "邀请队")
    with pytest.raises(DomainError) as err:
        teams.invite_by_email(session, captain, team, "nobody@nowhere.example")
    assert err.value.field == "email"
    teams.invite_by_email(session, captain, team, invitee.email.upper())
    teams.accept_invitation(session, invitee, team)
    assert teams.team_for_user(session, c.id, invitee.id).id == team.id


def test_only_team_accounts_form_teams_and_names_are_checked(session, open_challenge):
    c = open_challenge.challenge
    with pytest.raises(DomainError):
        teams.create_team(session, make_user(session, Role.JUDGE), c, "评委队")
    with pytest.raises(DomainError) as err:
        teams.create_team(session, make_user(session), c, "x")
    assert err.value.field == "name"
    teams.create_team(session, make_user(session), c, "同名队")
    with pytest.raises(DomainError, match="already has this name"):
        teams.create_team(session, make_user(session), c, "同名队")


def test_leaving_and_the_captain_role(session, open_challenge):
    c = open_challenge.challenge
    captain = make_user(session)
    # The captain acts for the lead organisation, so the role passes only to a colleague of it (a rule added
    # with organisation membership: this test's member used to come from another company).
    member = make_user(session, org=session.get(Organisation, captain.org_id))
    partner = make_user(session)
    team = teams.create_team(session, captain, c, "离队测试")
    for person in (member, partner):
        teams.request_join(session, person, team.invite_token)
        teams.approve_member(session, captain, team, person.id)
    with pytest.raises(DomainError, match="Hand the captain role"):
        teams.leave(session, captain, team)
    with pytest.raises(DomainError, match="lead organisation"):
        teams.make_captain(session, captain, team, partner.id)
    teams.make_captain(session, captain, team, member.id)
    assert session.get(Team, team.id).captain_id == member.id
    assert teams.leave(session, captain, team) is False
    assert teams.leave(session, partner, team) is False
    # A lone captain with submissions cannot dissolve the team; their results stay on record.
    make_scored_submission(session, team, open_challenge.phases[0], 1.0)
    with pytest.raises(DomainError, match="cannot be dissolved"):
        teams.leave(session, member, team)


def test_a_lone_captain_dissolves_an_unused_team_and_old_links_stop_working(session, open_challenge):
    c = open_challenge.challenge
    captain = make_user(session)
    team = teams.create_team(session, captain, c, "解散队")
    old = team.invite_token
    teams.new_invite_link(session, captain, team)
    with pytest.raises(DomainError, match="not valid"):
        teams.request_join(session, make_user(session), old)
    assert teams.leave(session, captain, team) is True
    assert count(session, Team) == 0 and count(session, TeamMember) == 0
