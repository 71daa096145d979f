"""Image intake through the team's submit service and API, on real Docker and a real database.

What a team (or its rival) would notice: uploads go into the team's repository of the center's registry (a
docker-registry of each test's own) without the web touching Docker, and a node pulls them by digest; a tag on
the node never moves, another team's layers cannot be borrowed, another team's registry namespace cannot be
named, the limits hold under parallel uploads, each team's stored bytes are capped, and a refused upload leaves
nothing behind (no temp file, no manifest, no image on the engine). Without a registry, uploads are kept as
archives and loaded into this engine, as before.
"""
from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from sqlmodel import select

from challenges.models import Submission
from evaluator import images, intake, jobs, submit
from evaluator.images import Entry, ImageParts
from evaluator.registry import RegistryRef
from hub.errors import DomainError
from hub.users import issue_api_token
from tests.conftest import LocalRegistry
from tests.evaluator.conftest import manifests
from tests.evaluator.pipeline import PERFECT_MODEL, Nodes, ended, pipeline_env, wait_for
from tests.factories import make_eval_setup

pytestmark = [pytest.mark.docker]

MIB = 1 << 20


def settings_for(data_dir: Path, center: LocalRegistry | None = None, **kw: Any) -> submit.IntakeSettings:
    """Intake settings; with `center`, uploads are pushed to that registry."""
    return submit.IntakeSettings(data_dir=str(data_dir), max_image_bytes=kw.pop("max_image_bytes", 64 * MIB),
                                 redis_url=None, registry=RegistryRef(center.url) if center else None, **kw)


def pushed(reg: LocalRegistry, team_id: int) -> set[str]:
    """The manifests in the team's upload repository."""
    return manifests(reg, f"team-{team_id}/sub")


def node_runtime(reg: LocalRegistry, data_dir: Path) -> jobs.Runtime:
    return jobs.Runtime(database_url="", redis_url="", data_dir=str(data_dir), node="test-node",
                        registry_allowlist=(reg.address,))


def unique_parts(label: str = "") -> ImageParts:
    """A model image of its own (a small second layer with a fresh id) on the shared busybox layer."""
    return images.busybox_parts(PERFECT_MODEL, extra_layers=[
        images.layer_tar([Entry("app/id.txt", f"{label}-{uuid.uuid4().hex}".encode())])])


def upload(session, setup, path: Path, settings: submit.IntakeSettings, user=None) -> Submission:  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        return submit.submit_upload(session, slug=setup.challenge.slug, user=user or setup.users[0], stream=fh,
                                    settings=settings, filename=path.name)


def on_engine(client: Any, image_id: str) -> bool:
    try:
        client.images.get(image_id)
        return True
    except docker.errors.ImageNotFound:
        return False


def kept(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "images").glob("*")} if (data_dir / "images").exists() else set()


def leftovers(data_dir: Path) -> list[str]:
    return [p.name for p in (data_dir / "uploads").glob("*")] if (data_dir / "uploads").exists() else []


@pytest.fixture
def cleanup(docker_client):  # type: ignore[no-untyped-def]
    """Images and tags a test made on the shared engine, removed at the end."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        try:
            docker_client.images.remove(ref, force=True)
        except docker.errors.APIError:
            pass


# ---------------------------------------------------------------- tags on the node
@pytest.mark.parametrize("layout", ["docker", "docker+oci"])
def test_archive_tags_never_move_a_tag_on_the_node(session, docker_client, busybox_binary, tmp_path, cleanup,
                                                   layout, center):
    demo = f"hub-demo/intake-{uuid.uuid4().hex[:10]}"
    baseline = images.build_busybox_image(docker_client, f"echo baseline {demo}\n" + PERFECT_MODEL,
                                          workdir=tmp_path / "build")
    docker_client.api.tag(baseline, demo, tag="baseline")
    cleanup += [baseline, f"{demo}:baseline"]
    setup = make_eval_setup(session, tmp_path)
    team = images.busybox_parts(f"echo team code {demo}\n" + PERFECT_MODEL, repo_tags=[f"{demo}:baseline"])
    archive = images.write_image_archive(tmp_path / "team.tar", [team], layout=layout)
    cleanup.append(team.image_id)

    sub = upload(session, setup, archive, settings_for(tmp_path / "data", center))

    assert (sub.status, sub.image_id) == ("queued", team.image_id), sub.reason   # the run uses the team's ID
    assert sub.image_source == "upload" and sub.image_pull.startswith(f"{center.address}/team-{setup.team.id}/sub@")
    assert pushed(center, setup.team.id) == {sub.image_pull.split("@")[1]}
    assert not on_engine(docker_client, team.image_id)                         # the web loads nothing
    jobs.ensure_image(docker_client, node_runtime(center, tmp_path / "data"), sub)   # the node pulls by digest
    assert docker_client.images.get(f"{demo}:baseline").id == baseline          # the demo tag did not move
    assert on_engine(docker_client, team.image_id)
    assert docker_client.images.get(team.image_id).tags == []                    # and the team's image got no name


def test_without_a_registry_an_upload_is_kept_and_loaded_here(session, docker_client, busybox_binary, tmp_path,
                                                               cleanup):
    setup = make_eval_setup(session, tmp_path)
    parts = unique_parts("no-registry")
    cleanup.append(parts.image_id)
    data_dir = tmp_path / "data"

    sub = upload(session, setup, images.write_image_archive(tmp_path / "m.tar", [parts]), settings_for(data_dir))

    assert (sub.status, sub.image_id, sub.image_ref) == ("queued", parts.image_id, "m.tar")
    assert kept(data_dir) == {f"{parts.image_id[7:]}.tar"} and on_engine(docker_client, parts.image_id)


# ---------------------------------------------------------------- borrowed layers
@pytest.mark.parametrize("layout", ["docker", "docker+oci"])
def test_borrowed_layers_are_refused_and_nothing_is_kept(session, docker_client, busybox_binary, tmp_path, cleanup,
                                                         layout, center):
    # Team A's image is on the node; team B declares A's layer digests but ships its own (other) content.
    victim = unique_parts("team-a")
    victim_archive = images.write_image_archive(tmp_path / "a.tar", [victim])
    assert intake.load_image(docker_client, victim_archive, expected_id=victim.image_id) == victim.image_id
    cleanup.append(victim.image_id)
    own = [images.busybox_layer("echo team B runs on team A's model\n" + PERFECT_MODEL),
           images.layer_tar([Entry("app/id.txt", f"team-b-{uuid.uuid4().hex}".encode())])]
    config = images.image_config(own, entrypoint=["/bin/sh", "/app/run.sh"], env={"TEAM": "B"})
    config["rootfs"]["diff_ids"] = list(victim.config["rootfs"]["diff_ids"])
    borrower = ImageParts(config=config, layers=own)
    assert borrower.image_id != victim.image_id
    archive = images.write_image_archive(tmp_path / "b.tar", [borrower], layout=layout)
    cleanup.append(borrower.image_id)
    setup = make_eval_setup(session, tmp_path)
    data_dir = tmp_path / "data"

    sub = upload(session, setup, archive, settings_for(data_dir, center))

    assert (sub.status, sub.outcome, sub.image_id) == ("failed", "image_rejected", "")
    assert "diff_ids" in sub.reason and victim.config["rootfs"]["diff_ids"][0] in sub.reason
    assert not on_engine(docker_client, borrower.image_id)   # never loaded, so never run on A's layers
    assert pushed(center, setup.team.id) == set() and kept(data_dir) == set() and leftovers(data_dir) == []


# ---------------------------------------------------------------- registry references
def _push(client: Any, image_id: str, repo: str) -> str:
    """Push `image_id` to `repo:v1`; return the digest reference the registry gives it."""
    client.api.tag(image_id, repo, tag="v1")
    digest = ""
    for event in client.api.push(repo, tag="v1", stream=True, decode=True):
        assert "error" not in event, event
        digest = (event.get("aux") or {}).get("Digest", digest)
    client.images.remove(f"{repo}:v1")
    assert digest
    return f"{repo}@{digest}"


def test_registry_reference_from_another_teams_namespace_is_refused(session, docker_client, busybox_image,
                                                                     local_registry, tmp_path):
    setup_a = make_eval_setup(session, tmp_path / "a")
    setup_b = make_eval_setup(session, tmp_path / "b", slug=None)
    image_id = busybox_image(PERFECT_MODEL + f"# team A {uuid.uuid4().hex}\n")
    a_ref = _push(docker_client, image_id, f"{local_registry}/{intake.team_namespace(setup_a.team.id)}/model")
    settings = settings_for(tmp_path / "data", registry_allowlist=(local_registry,))

    stolen = submit.submit_registry(session, slug=setup_b.challenge.slug, user=setup_b.users[0], reference=a_ref,
                                    settings=settings)
    assert (stolen.status, stolen.outcome) == ("failed", "image_rejected")
    assert f"{local_registry}/team-{setup_b.team.id}/" in stolen.reason    # says where B may push instead

    own = submit.submit_registry(session, slug=setup_a.challenge.slug, user=setup_a.users[0], reference=a_ref,
                                 settings=settings)
    assert (own.status, own.image_id, own.image_ref) == ("queued", image_id, a_ref)


# ---------------------------------------------------------------- limits under concurrency
def test_parallel_uploads_take_exactly_the_concurrent_limit_and_refused_ones_leave_nothing(
        session, app_config, docker_client, busybox_binary, tmp_path, cleanup, center):
    from app import create_app

    app = create_app({**app_config, "MAX_IMAGE_BYTES": 16 * MIB, "REGISTRY_URL": center.url})
    setup = make_eval_setup(session, tmp_path)
    setup.phase.concurrent_limit = 3
    session.add(setup.phase)
    session.commit()
    token = issue_api_token(session, setup.users[0])
    session.commit()
    parts = [unique_parts(f"p{i}") for i in range(16)]
    archives = [images.write_image_archive(tmp_path / f"m{i}.tar", [p]) for i, p in enumerate(parts)]
    cleanup += [p.image_id for p in parts]
    data_dir = Path(app_config["DATA_DIR"])
    start = threading.Barrier(len(archives))
    answers: dict[int, tuple[int, dict]] = {}

    def post(i: int) -> None:
        http = app.test_client()
        with archives[i].open("rb") as fh:
            start.wait()
            resp = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                             headers={"Authorization": f"Bearer {token}", "Accept-Language": "en"},
                             data={"image": (fh, archives[i].name)}, content_type="multipart/form-data")
        answers[i] = (resp.status_code, resp.get_json())

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(archives))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)

    accepted = sorted(i for i, (code, _body) in answers.items() if code == 201)
    refused = sorted(i for i, (code, _body) in answers.items() if code != 201)
    assert len(answers) == 16 and len(accepted) == 3, answers
    assert {answers[i][1]["error"]["code"] for i in refused} == {"concurrent_limit"}
    rows = session.exec(select(Submission).where(Submission.team_id == setup.team.id)).all()
    assert sorted(r.image_id for r in rows) == sorted(parts[i].image_id for i in accepted)
    assert all(r.status == "queued" for r in rows)
    # Exactly the accepted uploads have a manifest: a refused one's blobs wait, unreferenced, for the GC.
    assert pushed(center, setup.team.id) == {r.image_pull.split("@")[1] for r in rows}
    assert kept(data_dir) == set() and leftovers(data_dir) == []
    assert [i for i in refused if on_engine(docker_client, parts[i].image_id)] == []


def test_team_storage_is_capped_and_a_refusal_keeps_nothing(session, app, docker_client, busybox_binary, tmp_path,
                                                             cleanup, center):
    from hub.web import translate_error

    setup = make_eval_setup(session, tmp_path)
    data_dir = tmp_path / "data"
    first, second = unique_parts("first"), unique_parts("second")
    cleanup += [first.image_id, second.image_id]
    a = images.write_image_archive(tmp_path / "a.tar", [first])
    b = images.write_image_archive(tmp_path / "b.tar", [second])
    cap = a.stat().st_size + b.stat().st_size // 2     # room for one archive, not two
    settings = settings_for(data_dir, center, max_team_image_bytes=cap)

    ok = upload(session, setup, a, settings)
    assert ok.status == "queued" and ok.image_bytes == a.stat().st_size
    again = upload(session, setup, a, settings)        # the same image again stores nothing new
    assert again.status == "queued"
    with pytest.raises(DomainError) as info:
        upload(session, setup, b, settings)

    assert info.value.code == "storage_limit"
    message = str(info.value)
    assert f"{a.stat().st_size / MIB:.1f} MiB" in message and f"{cap / MIB:.1f} MiB" in message
    with app.test_request_context("/?lang=zh_CN"):
        assert "存储" in str(translate_error(info.value))
    assert len(session.exec(select(Submission).where(Submission.team_id == setup.team.id)).all()) == 2
    assert pushed(center, setup.team.id) == {ok.image_pull.split("@")[1]} and again.image_pull == ok.image_pull
    assert kept(data_dir) == set() and leftovers(data_dir) == []
    assert not on_engine(docker_client, second.image_id)


class Untouched:
    """An upload body that records whether anyone read it."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, n: int = -1) -> bytes:
        self.reads += 1
        return b""


def test_a_team_at_its_limits_is_refused_before_its_upload_is_read(session, tmp_path):
    from tests.factories import make_scored_submission

    setup = make_eval_setup(session, tmp_path)
    setup.phase.concurrent_limit = 1
    session.add(setup.phase)
    session.commit()
    make_scored_submission(session, setup.team, setup.phase, 0, status="queued", outcome=None)
    body = Untouched()
    with pytest.raises(DomainError) as info:
        submit.submit_upload(session, slug=setup.challenge.slug, user=setup.users[0], stream=body,  # type: ignore[arg-type]
                             settings=settings_for(tmp_path / "data"), filename="m.tar")
    assert info.value.code == "concurrent_limit" and body.reads == 0

    full = settings_for(tmp_path / "data", max_team_image_bytes=1)
    make_scored_submission(session, setup.team, setup.phase, 1.0, image_bytes=5)   # 5 bytes stored, cap 1
    setup.phase.concurrent_limit = 10
    session.add(setup.phase)
    session.commit()
    with pytest.raises(DomainError) as info:
        submit.submit_upload(session, slug=setup.challenge.slug, user=setup.users[0], stream=body,  # type: ignore[arg-type]
                             settings=full, filename="m.tar")
    assert info.value.code == "storage_limit" and body.reads == 0
    assert leftovers(tmp_path / "data") == [] and kept(tmp_path / "data") == set()


def test_the_submit_page_names_the_teams_registry_namespace(session, app_config, tmp_path):
    from app import create_app
    from tests.factories import login

    http = create_app({**app_config, "REGISTRY_ALLOWLIST": "registry.hub.example:5000"}).test_client()
    setup = make_eval_setup(session, tmp_path)
    login(http, setup.users[0])
    html = http.get(f"/challenges/{setup.challenge.slug}/submit?lang=zh_CN").get_data(as_text=True)
    assert f"registry.hub.example:5000/team-{setup.team.id}/" in html and "命名空间" in html


# ---------------------------------------------------------------- through the center's registry
@pytest.mark.redis
@pytest.mark.slow
def test_an_upload_reaches_a_node_through_the_registry_without_the_web_touching_docker(
        session, app_config, db_url, redis_url, redis_conn, docker_client, busybox_binary, tmp_path, cleanup, center,
        monkeypatch):
    import docker

    from app import create_app

    setup = make_eval_setup(session, tmp_path)
    token = issue_api_token(session, setup.users[0])
    session.commit()
    parts = unique_parts("via-registry")
    cleanup.append(parts.image_id)
    archive = images.write_image_archive(tmp_path / "model.tar", [parts])
    http = create_app({**app_config, "REDIS_URL": redis_url, "REGISTRY_URL": center.url}).test_client()
    # The web process has no engine: DOCKER_HOST points nowhere, and any Docker client it made would be counted.
    made: list[object] = []
    real_init = docker.APIClient.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(args)
        real_init(self, *args, **kwargs)

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    monkeypatch.setattr(jobs, "_docker", {})
    monkeypatch.setattr(docker.APIClient, "__init__", counted)
    with archive.open("rb") as fh:
        resp = http.post(f"/api/v1/challenges/{setup.challenge.slug}/submissions",
                         headers={"Authorization": f"Bearer {token}"},
                         data={"image": (fh, "model.tar")}, content_type="multipart/form-data")
    monkeypatch.undo()

    assert resp.status_code == 201, resp.get_data(as_text=True)
    assert made == []
    sub = session.get(Submission, resp.get_json()["id"])
    assert sub is not None and sub.image_id == parts.image_id
    assert sub.image_pull == f"{center.address}/team-{setup.team.id}/sub@{next(iter(pushed(center, setup.team.id)))}"
    assert not on_engine(docker_client, parts.image_id)

    nodes = Nodes(pipeline_env(db_url, redis_url, tmp_path, registry_url=center.url), tmp_path)
    try:
        nodes.start("pulling-node")
        done = wait_for(lambda: ended(session, sub.id), 90, what="the node to pull and score the upload")
    finally:
        nodes.stop_all()
    assert (done.status, done.scores) == ("scored", {"accuracy": 1.0}), (done.reason, nodes.logs())
    assert on_engine(docker_client, parts.image_id)        # pulled by digest, now in the node's layer cache


def test_a_second_upload_sharing_the_base_layer_sends_only_its_new_layer(session, busybox_binary, tmp_path, center,
                                                                          monkeypatch):
    setup = make_eval_setup(session, tmp_path)
    first, second = unique_parts("first"), unique_parts("second")
    sent: list[Any] = []
    real_push = submit.push_image_tar
    monkeypatch.setattr(submit, "push_image_tar", lambda *a, **kw: sent.append(real_push(*a, **kw)) or sent[-1])
    settings = settings_for(tmp_path / "data", center)

    a = upload(session, setup, images.write_image_archive(tmp_path / "a.tar", [first]), settings)
    b = upload(session, setup, images.write_image_archive(tmp_path / "b.tar", [second]), settings)

    assert a.status == b.status == "queued"
    assert first.config["rootfs"]["diff_ids"][0] == second.config["rootfs"]["diff_ids"][0]   # the busybox base
    assert [p.layers_sent for p in sent] == [2, 1]
    assert sent[1].bytes_sent == len(second.layers[1])
    assert pushed(center, setup.team.id) == {a.image_pull.split("@")[1], b.image_pull.split("@")[1]}


def test_registry_down_submits_nothing_and_says_so(session, app, busybox_binary, tmp_path, center):
    from hub.web import translate_error

    setup = make_eval_setup(session, tmp_path)
    center.stop()
    archive = images.write_image_archive(tmp_path / "m.tar", [unique_parts("down")])

    with pytest.raises(submit.ServiceUnavailable) as info:
        upload(session, setup, archive, settings_for(tmp_path / "data", center))

    assert "registry is not answering" in str(info.value) and info.value.status == 503
    with app.test_request_context("/?lang=zh_CN"):
        assert "镜像仓库无响应" in str(translate_error(info.value))
    assert session.exec(select(Submission)).all() == []
    assert leftovers(tmp_path / "data") == [] and kept(tmp_path / "data") == set()
