"""hub-submit (client/) against a live server: a real HTTP server and a real worker node."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from werkzeug.serving import make_server

from hub.users import issue_api_token
from tests.evaluator.pipeline import MODEL_075, ROOT, Nodes, pipeline_env, tagged
from tests.factories import make_eval_setup

pytestmark = [pytest.mark.docker, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def live_server(app_config, redis_url, redis_conn):  # type: ignore[no-untyped-def]
    from app import create_app

    app = create_app({**app_config, "REDIS_URL": redis_url})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run hub-submit as a team would: its own process, only the client on its path (besides the venv's own)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "client")}
    return subprocess.run([sys.executable, "-m", "hub_submit.cli", *args], cwd=ROOT / "client", env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_saves_uploads_and_follows_a_submission(session, db_url, redis_url, tmp_path, live_server,
                                                   busybox_image, docker_client):
    setup = make_eval_setup(session, tmp_path)
    token = issue_api_token(session, setup.users[0])
    session.commit()
    image = tagged(docker_client, busybox_image(MODEL_075))
    nodes = Nodes(pipeline_env(db_url, redis_url, tmp_path), tmp_path)
    nodes.start("n1")
    try:
        done = run_cli("submit", image, "--challenge", setup.challenge.slug, "--url", live_server, "--token", token,
                       "--wait")
    finally:
        nodes.stop_all()
    assert done.returncode == 0, done.stdout + done.stderr + nodes.logs()
    assert "upload 100%" in done.stderr
    assert "submission 1: queued" in done.stdout
    assert f"watch it at: {live_server}/submissions/1" in done.stdout
    assert "model done" in done.stdout and "scored" in done.stdout


def test_cli_explains_a_refusal(session, tmp_path, live_server, busybox_image, docker_client):
    setup = make_eval_setup(session, tmp_path)
    token = issue_api_token(session, setup.users[0])
    session.commit()
    image = tagged(docker_client, busybox_image(MODEL_075, architecture="arm64"))
    refused = run_cli("submit", image, "--challenge", setup.challenge.slug, "--url", live_server, "--token", token)
    assert refused.returncode == 2
    assert "refused (422)" in refused.stderr
    no_token = run_cli("submit", image, "--challenge", setup.challenge.slug, "--url", live_server)
    assert no_token.returncode == 2 and "no API token" in no_token.stderr
