"""`flask --app app registry prune` against a real docker-registry: retention's rule decides, manifests go, GC frees."""
from __future__ import annotations

import shutil
import uuid
from datetime import timedelta
from pathlib import Path

from challenges.models import ChallengeStatus
from evaluator import images
from evaluator.embedded import _stop, start_registry
from evaluator.images import Entry
from evaluator.registry import RegistryRef, garbage_collect, push_image_tar, repository_for
from hub.models import utcnow
from tests.conftest import LocalRegistry, require
from tests.evaluator.conftest import blobs, manifests
from tests.evaluator.pipeline import PERFECT_MODEL
from tests.factories import make_approved_team, make_open_challenge, make_scored_submission


def push(reg: LocalRegistry, team_id: int, tmp_path: Path, label: str) -> tuple[str, str]:
    """Push a model image (busybox base + a layer of its own) for the team; (pull reference, own layer digest)."""
    parts = images.busybox_parts(PERFECT_MODEL, extra_layers=[
        images.layer_tar([Entry("app/id.txt", f"{label}-{uuid.uuid4().hex}".encode())])])
    archive = images.write_image_archive(tmp_path / f"{label}.tar", [parts])
    ref = RegistryRef(reg.url)
    pushed = push_image_tar(ref, repository_for(team_id), archive, team_id=team_id)
    return ref.reference(repository_for(team_id), pushed.manifest_digest), parts.config["rootfs"]["diff_ids"][1]


def test_prune_deletes_what_retention_lets_go_and_gc_frees_its_own_layers(session, app_config, busybox_binary,
                                                                           center, tmp_path):
    from app import create_app

    contest = make_open_challenge(session, tmp_path / "data")
    team = make_approved_team(session, contest.challenge, contest.gov).team
    phase = contest.phases[0]
    (ranked_ref, ranked_layer), (other_ref, other_layer) = (push(center, team.id, tmp_path, n) for n in "ab")
    for score, ref in ((1.0, ranked_ref), (2.0, other_ref)):   # rmse: the first is the team's ranked entry
        sub = make_scored_submission(session, team, phase, score)
        sub.image_pull = ref
        session.add(sub)
    contest.challenge.status = ChallengeStatus.AWARDED
    contest.challenge.notice_starts_at = utcnow() - timedelta(days=8)
    contest.challenge.notice_ends_at = utcnow() - timedelta(days=1)
    session.add(contest.challenge)
    session.commit()
    runner = create_app({**app_config, "REGISTRY_URL": center.url}).test_cli_runner()
    repository = repository_for(team.id)
    both = {ranked_ref.split("@")[1], other_ref.split("@")[1]}

    dry = runner.invoke(args=["registry", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"would delete {other_ref}" in dry.output and ranked_ref not in dry.output
    assert manifests(center, repository) == both

    done = runner.invoke(args=["registry", "prune"])
    assert done.exit_code == 0, done.output
    assert f"deleted {other_ref}" in done.output and "deleted=1 " in done.output
    assert manifests(center, repository) == {ranked_ref.split("@")[1]}

    # The maintenance step: GC with the registry stopped frees the pruned image's own layer, not the shared base.
    center.stop()
    base = set(blobs(center))
    garbage_collect(center.config_path)
    gone = base - blobs(center)
    assert other_layer in gone and ranked_layer not in gone and gone.isdisjoint({ranked_ref.split("@")[1]})
    center.start()
    again = runner.invoke(args=["registry", "prune"])
    assert again.exit_code == 0 and "deleted=0 already_gone=1" in again.output, again.output


def test_prune_needs_a_registry(app_config):
    from app import create_app

    result = create_app({**app_config, "REGISTRY_URL": ""}).test_cli_runner().invoke(args=["registry", "prune"])
    assert result.exit_code != 0 and "REGISTRY_URL is not set" in result.output


def test_the_embedded_registry_collects_garbage_before_it_serves(busybox_binary, tmp_path, monkeypatch):
    require(shutil.which("docker-registry") is not None, "docker-registry (Debian package docker-registry)")
    monkeypatch.delenv("HUB_REGISTRY_PORT", raising=False)
    proc, url = start_registry(tmp_path) or (None, "")
    try:
        assert url.startswith("http://127.0.0.1:")
        parts = images.busybox_parts(PERFECT_MODEL)
        archive = images.write_image_archive(tmp_path / "m.tar", [parts])
        # A refused upload: its blobs went up, its manifest never did.
        push_image_tar(RegistryRef(url), "team-1/sub", archive, with_manifest=False)
        storage = tmp_path / "registry/data/docker/registry/v2/blobs/sha256"
        assert len(list(storage.glob("*/*/data"))) == 2
    finally:
        _stop(proc)
    proc, url = start_registry(tmp_path) or (None, "")
    try:
        assert list(storage.glob("*/*/data")) == []     # collected at start-up, before serving
        assert "delete:\n    enabled: true" in (tmp_path / "registry/config.yml").read_text()
    finally:
        _stop(proc)
