"""Submission intake over HTTP (web form, XHR upload, API with a token) and the operators' page."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from sqlmodel import select

from challenges.models import Submission
from evaluator import images
from hub.models import Role
from hub.users import issue_api_token
from tests.evaluator.pipeline import PERFECT_MODEL, fresh
from tests.factories import login, make_eval_setup, make_user

pytestmark = [pytest.mark.docker, pytest.mark.redis]


@pytest.fixture
def eval_app(app_config, redis_url, redis_conn, registry_url, tmp_path):  # type: ignore[no-untyped-def]
    from app import create_app

    # Uploads go to the center's registry (the session's docker-registry).
    return create_app({**app_config, "REDIS_URL": redis_url, "MAX_IMAGE_BYTES": 8 * 1024 * 1024,
                       "REGISTRY_URL": registry_url})


@pytest.fixture
def http(eval_app):  # type: ignore[no-untyped-def]
    return eval_app.test_client()


def model_tar(tmp_path: Path, script: str = PERFECT_MODEL, *, extra=(), name: str = "model.tar") -> Path:
    return images.write_image_archive(tmp_path / name, [images.busybox_parts(script)], extra=extra)


def token_for(session, user) -> str:  # type: ignore[no-untyped-def]
    token = issue_api_token(session, user)
    session.commit()
    return token


def test_api_upload_with_a_token_queues_a_pinned_submission(session, http, tmp_path, redis_conn, docker_client,
                                                             registry):
    setup = make_eval_setup(session, tmp_path)
    token = token_for(session, setup.users[0])
    tar = model_tar(tmp_path)
    expected_id = images.busybox_parts(PERFECT_MODEL).image_id

    with tar.open("rb") as fh:
        resp = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                         headers={"Authorization": f"Bearer {token}"},
                         data={"image": (fh, "model.tar")}, content_type="multipart/form-data")

    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["status"] == "queued" and body["position"] == 1
    assert body["log_url"].endswith(f"/api/v1/submissions/{body['id']}/log")
    sub = fresh(session, body["id"])
    # What a node pulls: the team's repository in the center's registry, by manifest digest.
    assert sub.image_id == expected_id and sub.image_source == "upload" and sub.image_ref == "model.tar"
    assert sub.image_pull.startswith(f"{registry.address}/team-{setup.team.id}/sub@sha256:")
    assert sub.job_id == f"sub-{sub.id}-a1"
    assert redis_conn.exists(f"rq:job:sub-{sub.id}-a1")
    assert not (Path(tmp_path / "data") / "images").exists()   # no archive kept: the registry holds it


def test_api_refuses_a_tar_with_a_path_traversal_member(session, http, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    token = token_for(session, setup.users[0])
    evil = tarfile.TarInfo("../../etc/cron.d/evil")
    evil.size = 5
    tar = model_tar(tmp_path, extra=[(evil, b"boom\n")], name="evil.tar")

    with tar.open("rb") as fh:
        resp = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                         headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"},
                         data={"image": (fh, "evil.tar")}, content_type="multipart/form-data")

    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert error["code"] == "image_rejected" and "unsafe path" in error["message"]
    sub = session.exec(select(Submission)).one()
    assert (sub.status, sub.outcome) == ("failed", "image_rejected") and "../" in sub.reason


def test_api_refuses_an_oversized_upload_and_changes_nothing(session, http, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    token = token_for(session, setup.users[0])
    big = io.BytesIO(b"\0" * (10 * 1024 * 1024))

    resp = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-tar",
                              "Accept-Language": "zh-CN"}, data=big)

    assert resp.status_code == 413
    assert "MiB" in resp.get_json()["error"]["message"]
    assert session.exec(select(Submission)).all() == []


def test_api_refuses_a_registry_outside_the_center(session, http, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    token = token_for(session, setup.users[0])
    resp = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                     headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"},
                     json={"image": "docker.io/library/busybox:latest"})
    assert resp.status_code == 422
    assert "center's registry" in resp.get_json()["error"]["message"]


def test_api_needs_a_team_member(session, http, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    outsider = make_user(session)
    token = token_for(session, outsider)
    resp = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                     headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"},
                     data=b"x", content_type="application/x-tar")
    assert resp.status_code == 400
    assert "team" in resp.get_json()["error"]["message"]
    assert http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions").status_code == 401


def test_web_form_upload_and_xhr_upload(session, http, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    login(http, setup.users[0])
    page = http.get(f"/challenges/{setup.challenge.slug}/submit")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="upload-form"' in html and "js/evaluator.js" in html and "hub-submit submit IMAGE" in html

    tar = model_tar(tmp_path)
    with tar.open("rb") as fh:   # without script: a plain multipart form post
        resp = http.post(f"/challenges/{setup.challenge.slug}/submit", data={"image": (fh, "model.tar")},
                         content_type="multipart/form-data")
    assert resp.status_code == 302
    first = session.exec(select(Submission)).one()
    assert resp.headers["Location"].endswith(f"/submissions/{first.id}")

    resp = http.post(f"/challenges/{setup.challenge.slug}/submit", data=tar.read_bytes(),
                     headers={"Content-Type": "application/x-tar", "X-Filename": "m%C3%B6del.tar",
                              "X-Requested-With": "XMLHttpRequest"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["url"].endswith(f"/submissions/{body['id']}") and body["position"] == 2
    assert fresh(session, body["id"]).image_ref == "mödel.tar"
    assert fresh(session, body["id"]).image_pull == first.image_pull   # the same image: the same manifest


def test_submit_page_says_why_a_team_cannot_submit(session, http, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    setup.team.status = "applied"
    session.add(setup.team)
    session.commit()
    login(http, setup.users[0])
    html = http.get(f"/challenges/{setup.challenge.slug}/submit", headers={"Accept-Language": "zh-CN"}
                    ).get_data(as_text=True)
    assert 'id="refusal"' in html and 'id="upload-form"' not in html


def test_log_api_follows_the_submission_page_visibility(session, http, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    token = token_for(session, setup.users[0])
    with model_tar(tmp_path).open("rb") as fh:
        sub_id = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                           headers={"Authorization": f"Bearer {token}"}, data={"image": (fh, "m.tar")},
                           content_type="multipart/form-data").get_json()["id"]

    own = http.get(f"/api/v1/submissions/{sub_id}/log", headers={"Authorization": f"Bearer {token}",
                                                                 "Accept-Language": "en"})
    assert own.status_code == 200
    body = own.get_json()
    assert body["status"] == "queued" and body["position"] == 1 and body["done"] is False
    assert body["outcome_text"].startswith("Waiting")

    other = token_for(session, make_user(session))
    assert http.get(f"/api/v1/submissions/{sub_id}/log",
                    headers={"Authorization": f"Bearer {other}"}).status_code == 404


def test_operators_page_cancels_and_reruns(session, http, tmp_path):
    setup = make_eval_setup(session, tmp_path)
    token = token_for(session, setup.users[0])
    with model_tar(tmp_path).open("rb") as fh:
        sub_id = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                           headers={"Authorization": f"Bearer {token}"}, data={"image": (fh, "m.tar")},
                           content_type="multipart/form-data").get_json()["id"]
    team_client = http.application.test_client()
    login(team_client, setup.users[0])
    assert team_client.get("/ops").status_code == 403

    operator = make_user(session, Role.OPERATOR)
    login(http, operator)
    html = http.get("/ops", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'id="ops-workers"' in html and 'id="ops-queues"' in html and "cpu" in html

    assert http.post(f"/ops/submissions/{sub_id}/cancel").status_code == 302
    sub = fresh(session, sub_id)
    assert (sub.status, sub.outcome, sub.counts_against_limit) == ("cancelled", "cancelled", False)

    html = http.get("/ops").get_data(as_text=True)
    assert http.post(f"/ops/submissions/{sub_id}/rerun").status_code == 302
    sub = fresh(session, sub_id)
    assert sub.status == "queued" and sub.outcome is None and sub.attempt == 2
    assert json.loads(json.dumps(sub.scores)) == {}


def test_api_takes_an_image_from_the_centers_registry_pinned_by_digest(session, app_config, redis_url, redis_conn,
                                                                       tmp_path, docker_client, busybox_image,
                                                                       local_registry):
    from app import create_app

    http = create_app({**app_config, "REDIS_URL": redis_url, "REGISTRY_ALLOWLIST": local_registry}).test_client()
    setup = make_eval_setup(session, tmp_path)
    token = token_for(session, setup.users[0])
    image_id = busybox_image(PERFECT_MODEL + "# registry\n")
    # A team pushes to its own namespace (team-<id>) and submits by the digest that `docker push` prints.
    repo = f"{local_registry}/team-{setup.team.id}/model"
    docker_client.images.get(image_id).tag(repo, "v1")
    digest = ""
    for event in docker_client.api.push(repo, tag="v1", stream=True, decode=True):
        assert "error" not in event, event
        digest = (event.get("aux") or {}).get("Digest", digest)

    resp = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                     headers={"Authorization": f"Bearer {token}"}, json={"image": f"{repo}:v1@{digest}"})

    assert resp.status_code == 201, resp.get_data(as_text=True)
    sub = fresh(session, resp.get_json()["id"])
    assert sub.image_source == "registry" and sub.image_id == image_id
    assert sub.image_ref.startswith(f"{repo}@sha256:")     # pinned by digest, not by the tag
    assert sub.status == "queued"


def test_a_submission_is_one_document_wherever_it_is_read(session, http, tmp_path):
    """POST …/submissions, GET /submissions/<id> and its /log answer the same fields (the log adds `log`)."""
    setup = make_eval_setup(session, tmp_path)
    auth = {"Authorization": f"Bearer {token_for(session, setup.users[0])}", "Accept-Language": "en"}
    with model_tar(tmp_path).open("rb") as fh:
        created = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions", headers=auth,
                            data={"image": (fh, "m.tar")}, content_type="multipart/form-data").get_json()
    read = http.get(f"/api/v1/submissions/{created['id']}", headers=auth).get_json()
    tail = http.get(f"/api/v1/submissions/{created['id']}/log", headers=auth).get_json()
    assert set(created) == set(read) == set(tail) - {"log"}
    for body in (created, read, tail):
        assert (body["status"], body["position"], body["done"], body["primary_score"]) == ("queued", 1, False, None)
        assert body["url"].endswith(f"/submissions/{created['id']}") and body["wait_text"]
    assert http.get(f"/api/v1/submissions/{created['id']}", headers=auth).get_json()["position"] == 1
