"""Hidden inputs printed by a run stay out of its team's sight; check runs read the public sample instead.

Real Redis, real Docker, a real worker node: the image prints everything under /input.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from challenges import judging, leaderboard, submissions
from challenges.models import Challenge
from evaluator import submit
from evaluator.quota.models import LedgerLine
from hub.models import Role
from tests.client.test_cli import live_server, run_cli  # noqa: F401 - live_server is a fixture
from tests.evaluator.pipeline import PERFECT_MODEL, Nodes, ended, pipeline_env, tagged, wait_for
from tests.factories import add_sample, login, make_eval_setup, make_user

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]

MARKER = "HIDDEN-TEST-ROW-5c81e2"
SAMPLE_MARKER = "PUBLIC-SAMPLE-ROW-93ad"
# Prints every file under /input, then predicts: the hidden ids from ids.txt, or the sample's ids.
PRINTER = """#!/bin/sh
for f in /input/*; do echo "== $f"; cat "$f"; done
if [ -f /input/ids.txt ]; then
""" + PERFECT_MODEL.split("\n", 1)[1] + """else
  printf 'id,label\\ns1,a\\ns2,b\\n' > /output/predictions.csv
fi
"""


@pytest.fixture
def nodes(db_url, redis_url, redis_conn, tmp_path):  # type: ignore[no-untyped-def]
    started = Nodes(pipeline_env(db_url, redis_url, tmp_path), tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def private_setup(session, tmp_path):  # type: ignore[no-untyped-def]
    """A running private phase (board at the reveal) whose hidden inputs carry MARKER, with a public sample."""
    setup = make_eval_setup(session, tmp_path)
    setup.phase.scores_visible = "reveal"
    session.add(setup.phase)
    session.commit()
    Path(setup.dataset.inputs_dir, "inputs.csv").write_text(f"id,x\n1,{MARKER}\n")
    add_sample(session, setup.dataset, f"id,x\ns1,{SAMPLE_MARKER}\ns2,0\n",
               "id,label\ns1,a\ns2,b\n")
    gov = make_user(session, Role.GOV, setup.city)
    judge = make_user(session, Role.JUDGE)
    judging.assign_judge(session, gov, session.get(Challenge, setup.challenge.id), judge.id)
    setup.gov, setup.judge = gov, judge
    return setup


def _eval_app(app_config, redis_url):  # type: ignore[no-untyped-def]
    from app import create_app

    return create_app({**app_config, "REDIS_URL": redis_url})


def _reads(app, user, sub_id: int) -> str:  # type: ignore[no-untyped-def]
    client = app.test_client()
    login(client, user)
    return "\n".join(client.get(url).get_data(as_text=True) for url in
                     (f"/submissions/{sub_id}", f"/api/v1/submissions/{sub_id}", f"/api/v1/submissions/{sub_id}/log"))


def test_a_private_run_that_prints_its_inputs_shows_them_to_judges_only(session, app_config, redis_url,
                                                                        busybox_image, docker_client, nodes,
                                                                        private_setup):
    setup = private_setup
    image = tagged(docker_client, busybox_image(PRINTER))
    sub = submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=image,
                                 image_ref="printer", redis_url=redis_url)
    nodes.start("n1")
    done = wait_for(lambda: ended(session, sub.id), 90, what="the private run to end")
    assert done.status == "scored", (done.outcome, done.reason, nodes.logs())
    assert MARKER in done.log_excerpt                    # the attack worked: the run printed the hidden input

    app = _eval_app(app_config, redis_url)
    team_sees = _reads(app, setup.users[0], sub.id)
    assert MARKER not in team_sees
    assert "log_withheld" in team_sees and "scored" in team_sees
    assert 'id="check-run-link"' in team_sees            # the page points the team to a check run
    for privileged in (setup.judge, setup.gov):
        assert MARKER in _reads(app, privileged, sub.id)
    # Operators chasing a failure read it on their own page, and each reading is audited.
    operator = make_user(session, Role.OPERATOR)
    ops = app.test_client()
    login(ops, operator)
    assert MARKER in ops.get(f"/ops/submissions/{sub.id}/log").get_data(as_text=True)
    from hub.models import AuditLog
    assert session.exec(select(AuditLog).where(AuditLog.action == "ops.read_log",
                                               AuditLog.object_id == sub.id)).first() is not None
    team = app.test_client()
    login(team, setup.users[0])
    assert team.get(f"/ops/submissions/{sub.id}/log").status_code == 403


def test_a_check_run_reads_the_sample_is_scored_metered_and_never_ranked(session, app_config, redis_url,
                                                                          busybox_image, docker_client, nodes,
                                                                          private_setup):
    setup = private_setup
    image = tagged(docker_client, busybox_image(PRINTER))
    check = submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=image,
                                   image_ref="printer", redis_url=redis_url, kind="check")
    assert check.kind == "check"
    nodes.start("n1")
    done = wait_for(lambda: ended(session, check.id), 90, what="the check run to end")

    assert done.status == "scored", (done.outcome, done.reason, done.log_excerpt, nodes.logs())
    assert done.scores == {"accuracy": 1.0}               # scored against the sample's truth
    assert done.primary_score is None                     # nothing a board could rank
    assert SAMPLE_MARKER in done.log_excerpt and "== /input/inputs.csv" in done.log_excerpt
    assert MARKER not in done.log_excerpt and "ids.txt" not in done.log_excerpt   # not the hidden inputs
    assert "truth" not in done.log_excerpt                # nor the sample's truth: /input holds inputs.csv only
    lines = session.exec(select(LedgerLine).where(LedgerLine.submission_id == check.id)).all()
    assert len(lines) == 1                                # metered like any run
    challenge = session.get(Challenge, setup.challenge.id)
    assert submissions.usage(session, challenge, setup.team.id, setup.phase)["total"] == 0
    assert leaderboard.build(session, setup.phase.id, viewer=setup.judge).teams == []

    app = _eval_app(app_config, redis_url)
    assert SAMPLE_MARKER in _reads(app, setup.users[0], check.id)   # the team reads its full log


def test_hub_submit_follows_a_check_run_and_keeps_a_private_log_back(session, db_url, redis_url, tmp_path,
                                                                     busybox_image, docker_client, nodes,
                                                                     private_setup, live_server):
    from hub.users import issue_api_token

    setup = private_setup
    token = issue_api_token(session, setup.users[0])
    session.commit()
    image = tagged(docker_client, busybox_image(PRINTER))
    nodes.start("n1")
    args = ("submit", image, "--challenge", setup.challenge.slug, "--url", live_server, "--token", token, "--wait",
            "--quiet")

    checked = run_cli(*args, "--check")
    assert checked.returncode == 0, checked.stdout + checked.stderr + nodes.logs()
    assert "check run " in checked.stdout and SAMPLE_MARKER in checked.stdout and MARKER not in checked.stdout

    private = run_cli(*args)
    assert private.returncode == 0, private.stdout + private.stderr + nodes.logs()
    assert "submission " in private.stdout and MARKER not in private.stdout + private.stderr
    assert "只向评审专家和主办方显示" in private.stdout      # the CLI says why (zh-CN, the default locale)
