"""Faults under load, on the real pipeline (drills in tests/evaluator/fault_drills.py; bench/faults.py prints
their figures): every submission ends exactly once with a score or a readable reason, nothing is lost, no
lease stays held, and the platform's own failures are never counted against a team."""
from __future__ import annotations

import pytest
from sqlmodel import select

from challenges.models import Submission
from tests.evaluator import fault_drills
from tests.evaluator.fault_drills import Report
from tests.evaluator.pipeline import tagged

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def model(docker_client, busybox_image) -> str:
    return tagged(docker_client, busybox_image(fault_drills.model_script(1.0)))


def assert_clean(report: Report) -> None:
    print(report.figures())
    assert report.lost == [], report.figures()
    assert report.duplicates == [], report.figures()
    assert report.leases_held == 0, report.figures()
    assert report.counted_platform_errors == [], report.figures()


def test_kill9_of_parent_horse_and_both_in_the_middle_of_20_runs(session, db_url, redis_url, redis_conn, tmp_path,
                                                                 model):
    report = fault_drills.kill_workers(session, db_url, redis_url, tmp_path, model, runs=20)
    assert_clean(report)
    assert report.outcomes == {"scored": 20}, report.figures()
    # Work of a killed horse or node ran again under a new attempt (a parent killed alone may let its horse
    # finish the run first: then nothing needs to run again).
    assert len(report.requeue_s) >= 2, report.figures()


def test_redis_restart_mid_queue_loses_nothing(session, db_url, tmp_path, model):
    report = fault_drills.restart_redis(session, db_url, tmp_path, model, runs=10)
    assert_clean(report)
    assert report.outcomes == {"scored": 10}, report.figures()


def test_docker_engine_refusing_calls_is_retried_then_infra_error_never_counted(session, db_url, redis_url,
                                                                                redis_conn, tmp_path, model):
    report = fault_drills.docker_refuses(session, db_url, redis_url, tmp_path, model)
    assert_clean(report)
    always, flaky, healthy = report.ids
    rows = {s.id: s for s in session.exec(select(Submission).where(Submission.id.in_(report.ids))  # type: ignore[union-attr]
                                          .execution_options(populate_existing=True))}
    assert (rows[always].status, rows[always].outcome) == ("failed", "infra_error"), report.figures()
    assert not rows[always].counts_against_limit
    assert "Platform error" in rows[always].reason or "platform gave up" in rows[always].reason, rows[always].reason
    assert rows[always].infra_failures >= 2            # it was retried before it failed
    # Refused for a second and a half, then served: retried, and it either scores or fails as the platform's
    # fault (never the team's), depending on how many tries the outage took.
    assert (rows[flaky].status, rows[flaky].outcome) in {("scored", "scored"), ("failed", "infra_error")}, \
        (rows[flaky].reason, report.figures())
    assert rows[flaky].infra_failures >= 1
    assert (rows[healthy].status, rows[healthy].primary_score) == ("scored", 1.0), report.figures()


def test_database_locked_under_a_worker_delays_but_loses_nothing(session, db_url, redis_url, redis_conn, tmp_path,
                                                                 model):
    report = fault_drills.database_unavailable(session, db_url, redis_url, tmp_path, model, runs=4, hold_s=5.0)
    assert_clean(report)
    assert report.outcomes == {"scored": 4}, report.figures()
