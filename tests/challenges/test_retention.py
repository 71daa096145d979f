"""The image retention rule (challenges.retention): what judging, 公示 and objections need stays; the rest may go."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from challenges import retention
from challenges.models import ChallengeStatus, Objection, TeamStatus
from hub.models import utcnow
from tests.factories import make_approved_team, make_scored_submission


def ref(name: str) -> str:
    return f"127.0.0.1:5000/team-1/sub@sha256:{name * 64}"


def made(session, team, phase, score, image_ref, **fields):  # type: ignore[no-untyped-def]
    sub = make_scored_submission(session, team, phase, score, **fields)
    sub.image_pull = image_ref
    session.add(sub)
    session.commit()
    return sub


@pytest.fixture
def contest(session, open_challenge):  # type: ignore[no-untyped-def]
    """rmse (lower wins): A ranks on a1, B on b1; D is a disqualified team; one disqualified submission of A."""
    challenge, gov = open_challenge.challenge, open_challenge.gov
    phase = open_challenge.phases[0]
    a, b, d = (make_approved_team(session, challenge, gov).team for _ in range(3))
    now = utcnow()
    subs = SimpleNamespace(
        a1=made(session, a, phase, 1.0, image_ref=ref("1")),
        a2=made(session, a, phase, 2.0, image_ref=ref("2")),
        a2_again=made(session, a, phase, 2.5, image_ref=ref("1")),   # shares a1's manifest
        a_dq=made(session, a, phase, 0.1, image_ref=ref("3"), disqualified=True),
        a_failed=made(session, a, phase, 0, status="failed", outcome="nonzero_exit", image_ref=ref("4")),
        a_queued=made(session, a, phase, 0, status="queued", outcome=None, image_ref=ref("5")),
        old_check=made(session, a, phase, 3.0, kind="check", image_ref=ref("6"),
                       at=now - timedelta(days=retention.CHECK_RUN_DAYS, minutes=1)),
        new_check=made(session, a, phase, 3.0, kind="check", image_ref=ref("7"),
                       at=now - timedelta(days=retention.CHECK_RUN_DAYS - 1)),
        b1=made(session, b, phase, 1.5, image_ref=ref("8")),
        b2=made(session, b, phase, 1.7, image_ref=ref("9")),
        d1=made(session, d, phase, 0.5, image_ref=ref("a")),
    )
    d.status = TeamStatus.DISQUALIFIED
    session.add(d)
    session.commit()
    return SimpleNamespace(challenge=challenge, gov=gov, subs=subs)


def award(session, challenge, notice_ends_in: timedelta) -> None:  # type: ignore[no-untyped-def]
    challenge.status = ChallengeStatus.AWARDED
    challenge.notice_starts_at = utcnow() - timedelta(days=7)
    challenge.notice_ends_at = utcnow() + notice_ends_in
    session.add(challenge)
    session.commit()


def test_before_the_award_only_old_check_runs_may_go(session, contest):
    s = contest.subs
    assert retention.prunable(session) == retention.Prunable((s.old_check.id,), (ref("6"),))


def test_during_the_notice_period_everything_stays(session, contest):
    award(session, contest.challenge, timedelta(hours=1))
    assert retention.prunable(session).submission_ids == (contest.subs.old_check.id,)


def test_an_unanswered_objection_keeps_everything(session, contest):
    award(session, contest.challenge, -timedelta(hours=1))
    objection = Objection(challenge_id=contest.challenge.id, lodged_by=contest.gov.id, text="第二名的分数有误")
    session.add(objection)
    session.commit()
    assert retention.prunable(session).submission_ids == (contest.subs.old_check.id,)

    objection.answer = "已复核，分数无误"
    session.add(objection)
    session.commit()
    assert len(retention.prunable(session).submission_ids) > 1


def test_once_settled_only_the_ranking_and_the_disqualified_stay(session, contest):
    award(session, contest.challenge, -timedelta(hours=1))
    s = contest.subs

    result = retention.prunable(session)

    # a1 and b1 are behind the final ranking; a_dq and d1 are evidence; a_queued still runs; new_check is young.
    assert set(result.submission_ids) == {s.a2.id, s.a2_again.id, s.a_failed.id, s.old_check.id, s.b2.id}
    # a2_again may go, but its manifest is a1's, which stays.
    assert result.image_refs == tuple(sorted([ref("2"), ref("4"), ref("6"), ref("9")]))


def test_an_archived_challenge_keeps_what_an_awarded_one_keeps(session, contest):
    award(session, contest.challenge, -timedelta(hours=1))
    awarded = retention.prunable(session)
    contest.challenge.status = ChallengeStatus.ARCHIVED
    session.add(contest.challenge)
    session.commit()
    assert retention.prunable(session) == awarded


def test_an_awarded_challenge_without_a_notice_keeps_everything(session, contest):
    contest.challenge.status = ChallengeStatus.AWARDED
    session.add(contest.challenge)
    session.commit()
    assert retention.prunable(session).submission_ids == (contest.subs.old_check.id,)
