"""The demo a newcomer gets: every city, scenarios, two judged/open challenges, vouchers, and a real evaluation."""
from __future__ import annotations

import pytest
from sqlmodel import func, select

from challenges.models import Challenge, Submission
from evaluator.quota.ledger import reconcile
from evaluator.quota.models import LedgerLine, Voucher
from hub import demo
from hub.models import Organisation, OrgKind
from marketplace.models import Application, Scenario
from tests.evaluator.pipeline import Nodes, ended, pipeline_env, wait_for


@pytest.mark.docker
@pytest.mark.redis
@pytest.mark.slow
def test_demo_loads_once_and_its_baseline_is_really_evaluated(session, db_url, redis_url, docker_client, tmp_path,
                                                               monkeypatch):
    data_dir = tmp_path / "data"
    monkeypatch.setenv("HUB_DATA_DIR", str(data_dir))
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert demo.seed(session) is True
    assert demo.seed(session) is False  # loaded once

    count = lambda q: session.exec(select(func.count()).select_from(q)).one()  # noqa: E731
    assert count(select(Organisation).where(Organisation.kind == OrgKind.CITY).subquery()) == 6
    assert count(select(Scenario).subquery()) >= 12
    assert len(set(session.exec(select(Application.status)).all())) >= 3
    challenges = session.exec(select(Challenge)).all()
    assert len(challenges) >= 2
    assert any(c.winner_team_id and c.announced_at for c in challenges)
    assert session.exec(select(Voucher)).first() is not None
    assert session.exec(select(LedgerLine)).first() is not None
    assert reconcile(session) == []

    baseline = session.exec(select(Submission).where(Submission.image_ref.like("hub-demo/%"))).first()
    assert baseline is not None and baseline.status in ("queued", "dispatched", "waiting")
    nodes = Nodes(pipeline_env(db_url, redis_url, tmp_path, HUB_DATA_DIR=str(data_dir)), tmp_path)
    try:
        nodes.start("demo-node")
        done = wait_for(lambda: ended(session, baseline.id), timeout=120, what="the demo baseline to end")
    finally:
        nodes.stop_all()
    assert done.status == "scored", (done.outcome, done.reason, nodes.logs())
    assert done.primary_score is not None
