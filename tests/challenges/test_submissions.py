"""Submission limits (per day, total, concurrent), what counts against them, and the record's creation."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from challenges import outcomes, submissions
from challenges.models import Outcome, Submission
from hub.errors import DomainError
from tests.challenges.conftest import count
from tests.factories import make_approved_team, make_open_challenge, make_scored_submission, make_user


@pytest.fixture
def setup(session, data_dir):  # type: ignore[no-untyped-def]
    oc = make_open_challenge(session, data_dir, phases=[{"per_day_limit": 2, "total_limit": 3,
                                                         "concurrent_limit": 1}])
    t = make_approved_team(session, oc.challenge, oc.gov)
    return oc, t.team, t.users[0]


def _create(session, team, phase, user, **kw):  # type: ignore[no-untyped-def]
    return submissions.create_submission(session, team_id=team.id, phase_id=phase.id, user_id=user.id,
                                         image_source="upload", image_ref="t/m:1", image_id="sha256:" + "a" * 64, **kw)


def test_create_submission_writes_a_queued_row(session, setup):
    oc, team, user = setup
    sub = _create(session, team, oc.phases[0], user)
    assert sub.status == "queued" and sub.queued_at is not None and sub.challenge_id == oc.challenge.id


def test_concurrent_limit_says_when_the_next_slot_frees(session, setup):
    oc, team, user = setup
    _create(session, team, oc.phases[0], user)
    with pytest.raises(DomainError) as err:
        _create(session, team, oc.phases[0], user)
    assert err.value.code == "concurrent_limit" and "finishes" in str(err.value)
    assert count(session, Submission) == 1


def test_daily_limit_resets_at_beijing_midnight(session, setup):
    oc, team, _user = setup
    # 2 counted today (Beijing time); the check at 23:30 Beijing says the next slot frees at midnight.
    now = datetime(2026, 3, 10, 15, 30, tzinfo=timezone.utc)  # 23:30 in Beijing
    phase = oc.phases[0]
    phase.starts_at, phase.ends_at = now - timedelta(days=1), now + timedelta(days=2)
    session.add(phase)
    session.commit()
    make_scored_submission(session, team, phase, 1.0, at=now - timedelta(hours=2))
    make_scored_submission(session, team, phase, 1.0, at=now - timedelta(hours=1))
    with pytest.raises(DomainError) as err:
        submissions.check_can_submit(session, team.id, phase.id, now)
    assert err.value.code == "daily_limit" and "2026-03-11 00:00" in str(err.value)
    submissions.check_can_submit(session, team.id, phase.id, now + timedelta(hours=1))  # a new Beijing day


def test_total_limit(session, setup):
    oc, team, _user = setup
    for days in (3, 2, 1):
        make_scored_submission(session, team, oc.phases[0], 1.0, at=oc.phases[0].starts_at + timedelta(hours=days))
    with pytest.raises(DomainError) as err:
        submissions.check_can_submit(session, team.id, oc.phases[0].id)
    assert err.value.code == "total_limit"


def test_platform_failures_never_count_and_image_failures_count_unless_configured(session, setup):
    oc, team, _user = setup
    phase, start = oc.phases[0], oc.phases[0].starts_at
    for outcome in (Outcome.INFRA_ERROR, Outcome.CANCELLED, Outcome.INFRA_ERROR, Outcome.QUOTA_EXCEEDED):
        make_scored_submission(session, team, phase, 0, status="failed", outcome=outcome, at=start)
    assert submissions.usage(session, oc.challenge, team.id, phase)["total"] == 0
    for _ in range(3):
        make_scored_submission(session, team, phase, 0, status="failed", outcome=Outcome.NONZERO_EXIT, at=start)
    with pytest.raises(DomainError):
        submissions.check_can_submit(session, team.id, phase.id)
    oc.challenge.image_failures_count = False
    session.add(oc.challenge)
    session.commit()
    submissions.check_can_submit(session, team.id, phase.id)
    # A row the evaluator marked as not counting is not counted either.
    make_scored_submission(session, team, phase, 1.0, at=start, counts_against_limit=False)
    assert submissions.usage(session, oc.challenge, team.id, phase)["total"] == 0


@pytest.mark.parametrize("case, code", [("unapproved", "not_approved"), ("closed", "closed"),
                                        ("not_started", "not_open"), ("draft", "closed")])
def test_who_and_when_may_not_submit(session, data_dir, case, code):
    from challenges import teams

    oc = make_open_challenge(session, data_dir, phases=[{"days": (-0.5, 1)}, {"days": (2, 5), "split": "b"}])
    t = make_approved_team(session, oc.challenge, oc.gov).team
    phase = oc.phases[0]
    now = None
    if case == "unapproved":
        t = teams.create_team(session, make_user(session), oc.challenge, "未审队")
    elif case == "closed":
        now = phase.ends_at + timedelta(minutes=1)
    elif case == "not_started":
        phase = oc.phases[1]
    else:
        oc.challenge.status = "frozen"
        session.add(oc.challenge)
        session.commit()
    with pytest.raises(DomainError) as err:
        submissions.check_can_submit(session, t.id, phase.id, now)
    assert err.value.code == code


def test_only_active_members_submit_for_their_team(session, setup):
    oc, team, _user = setup
    with pytest.raises(DomainError):
        _create(session, team, oc.phases[0], make_user(session))
    assert count(session, Submission) == 0


def test_every_outcome_has_an_explanation():
    texts = {outcomes.describe(o.value) for o in Outcome}
    assert len(texts) == len(Outcome)
    assert "Unknown outcome." not in texts
    assert "not count" in outcomes.describe("infra_error")
    assert "exit code" in outcomes.describe("nonzero_exit")
    assert outcomes.describe_submission("queued", None).startswith("Waiting")


def test_parallel_submissions_never_exceed_the_concurrent_limit(engine, session, data_dir):
    """16 requests at once against a limit of 3: exactly 3 rows, every other one refused."""
    import threading

    from sqlmodel import Session

    oc = make_open_challenge(session, data_dir, phases=[{"per_day_limit": 100, "total_limit": 100,
                                                         "concurrent_limit": 3}])
    t = make_approved_team(session, oc.challenge, oc.gov)
    start = threading.Barrier(16)
    results: list[str] = []

    def submit_one(user_id: int) -> None:
        with Session(engine, expire_on_commit=False) as own:
            start.wait()
            try:
                submissions.create_submission(own, team_id=t.team.id, phase_id=oc.phases[0].id, user_id=user_id,
                                              image_source="upload", image_ref="t/m:1",
                                              image_id="sha256:" + "a" * 64)
                results.append("queued")
            except DomainError as err:
                results.append(err.code)

    threads = [threading.Thread(target=submit_one, args=(t.users[0].id,)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(results) == ["concurrent_limit"] * 13 + ["queued"] * 3
    assert count(session, Submission, team_id=t.team.id) == 3


def test_team_image_storage_is_capped_per_distinct_image(session, setup):
    oc, team, user = setup
    phase = oc.phases[0]
    phase.concurrent_limit = phase.per_day_limit = phase.total_limit = 10
    session.add(phase)
    session.commit()
    mib = 1 << 20
    _create(session, team, phase, user, image_bytes=3 * mib, max_team_image_bytes=5 * mib)
    # The same image again stores nothing new; another one of 3 MiB would make 6 MiB, over the 5 MiB cap.
    _create(session, team, phase, user, image_bytes=3 * mib, max_team_image_bytes=5 * mib)
    assert submissions.stored_image_bytes(session, team.id) == 3 * mib
    with pytest.raises(DomainError) as err:
        submissions.create_submission(session, team_id=team.id, phase_id=phase.id, user_id=user.id,
                                      image_source="upload", image_ref="t/m:2", image_id="sha256:" + "b" * 64,
                                      image_bytes=3 * mib, max_team_image_bytes=5 * mib)
    assert err.value.code == "storage_limit" and "3.0 MiB" in str(err.value) and "5.0 MiB" in str(err.value)
    assert count(session, Submission) == 2
    with pytest.raises(DomainError):
        submissions.check_image_storage(session, team.id, 3 * mib)    # full: refused before any byte is read


def test_a_failing_slot_hook_writes_nothing(session, setup):
    oc, team, user = setup

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        _create(session, team, oc.phases[0], user, on_slot=fail)
    assert count(session, Submission) == 0
    _create(session, team, oc.phases[0], user)    # the slot was not taken
