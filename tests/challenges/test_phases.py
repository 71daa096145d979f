"""Phase rules: dates, limits, visibility settings, and the 赛马制 cut before the next phase opens."""
from __future__ import annotations

from datetime import timedelta

import pytest

from challenges import phases, submissions
from challenges.models import Phase, Team
from hub.errors import DomainError
from hub.models import Role, utcnow
from tests.challenges.conftest import count
from tests.factories import (make_approved_team, make_challenge, make_open_challenge, make_phase,
                             make_scored_submission, make_user)


@pytest.mark.parametrize("fields, field", [
    ({"days": (2, 1)}, "ends_at"),                       # ends before it starts
    ({"days": (-5, 3)}, "starts_at"),                    # starts before the challenge opens
    ({"days": (1, 60)}, "starts_at"),                    # ends after the challenge closes
    ({"per_day_limit": 0}, "per_day_limit"),
    ({"per_day_limit": 10, "total_limit": 5}, "total_limit"),
    ({"scores_visible": "sometimes"}, "scores_visible"),
    ({"split": "../x"}, "split"),
    ({"cut_bar": "high"}, "cut_bar"),
])
def test_bad_phase_input_is_refused_and_nothing_is_stored(session, fields, field):
    gov = make_user(session, Role.GOV)
    challenge = make_challenge(session, gov=gov)
    with pytest.raises(DomainError) as err:
        make_phase(session, challenge, gov, **fields)
    assert err.value.field == field
    assert count(session, Phase) == 0


def test_freeze_must_lie_within_the_phase_and_phases_do_not_overlap(session):
    gov = make_user(session, Role.GOV)
    challenge = make_challenge(session, gov=gov)
    with pytest.raises(DomainError) as err:
        make_phase(session, challenge, gov, freeze_at=utcnow() + timedelta(days=20))
    assert err.value.field == "freeze_at"
    make_phase(session, challenge, gov, days=(0, 5))
    with pytest.raises(DomainError, match="overlap|after the last"):
        make_phase(session, challenge, gov, days=(4, 8), split="private")
    assert count(session, Phase) == 1


def test_only_the_owning_city_edits_phases(session, open_challenge):
    with pytest.raises(DomainError):
        phases.update_phase(session, make_user(session, Role.GOV), open_challenge.challenge,
                            open_challenge.phases[0], name="x")


def _two_phase_challenge(session, data_dir, bar: float = 2.0):  # type: ignore[no-untyped-def]
    now = utcnow()
    return make_open_challenge(session, data_dir, phases=[
        {"days": (-0.9, 1), "cut_bar": bar}, {"days": (1, 5), "split": "private"}]), now


def test_cut_removes_teams_that_miss_the_bar_before_the_next_phase(session, data_dir):
    oc, now = _two_phase_challenge(session, data_dir)   # rmse: lower is better, bar 2.0
    good = make_approved_team(session, oc.challenge, oc.gov).team
    bad = make_approved_team(session, oc.challenge, oc.gov).team
    silent = make_approved_team(session, oc.challenge, oc.gov).team
    make_scored_submission(session, good, oc.phases[0], 1.5)
    make_scored_submission(session, bad, oc.phases[0], 2.5)
    with pytest.raises(DomainError, match="once the phase has ended"):
        phases.apply_cut(session, oc.gov.id, oc.challenge, oc.phases[0], now)
    later = oc.phases[1].starts_at + timedelta(hours=1)
    # The next phase opening triggers the due cut: the bad and the silent team may no longer submit.
    submissions.check_can_submit(session, good.id, oc.phases[1].id, later)
    for team in (bad, silent):
        with pytest.raises(DomainError) as err:
            submissions.check_can_submit(session, team.id, oc.phases[1].id, later)
        assert err.value.code == "cut"
    session.expire_all()
    assert session.get(Team, bad.id).cut_at_phase_id == oc.phases[0].id
    assert session.get(Phase, oc.phases[0].id).cut_applied_at is not None
    with pytest.raises(DomainError, match="already applied"):
        phases.apply_cut(session, oc.gov.id, oc.challenge, session.get(Phase, oc.phases[0].id), later)


def test_reveal_is_recorded_once(session, open_challenge):
    phase = phases.reveal(session, open_challenge.gov, open_challenge.challenge, open_challenge.phases[0])
    assert phase.revealed_at is not None
    with pytest.raises(DomainError):
        phases.reveal(session, open_challenge.gov, open_challenge.challenge, phase)
