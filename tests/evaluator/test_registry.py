"""evaluator.registry against Debian's docker-registry, and the real engine pulling what it pushed."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from evaluator import images, intake, registry as reg
from evaluator.images import ImageParts, busybox_parts, write_image_archive
from evaluator.intake import ImageRejected
from tests.conftest import LocalRegistry

MIB = 1 << 20


def _tar(tmp_path: Path, parts: ImageParts, layout: str = "docker") -> Path:
    return write_image_archive(tmp_path / f"{parts.image_id[7:19]}-{layout}.tar", [parts], layout=layout)


def _checked(path: Path) -> intake.ImageTarInfo:
    return intake.check_image_tar(path, max_bytes=64 * MIB, max_layers=8)


@pytest.fixture
def ref(registry: LocalRegistry, busybox_binary: Path) -> reg.RegistryRef:
    return reg.RegistryRef(registry.url)


@pytest.mark.docker
def test_engine_pulls_pushed_image_by_digest_and_runs_it(ref, registry, docker_client, tmp_path):
    parts = busybox_parts("echo pulled\n", files={"etc/marker": b"engine-pull\n"})
    path = _tar(tmp_path, parts)
    pushed = reg.push_image_tar(ref, reg.repository_for(7), path, _checked(path), team_id=7)
    assert pushed.config_digest == parts.image_id
    assert (pushed.layers_sent, pushed.bytes_sent) == (1, len(parts.layers[0]))

    reference = ref.reference("team-7/sub", pushed.manifest_digest)
    assert reference == f"{registry.address}/team-7/sub@{pushed.manifest_digest}"
    image_id, repo_digest = intake.pull_image(docker_client, reference, [registry.address])
    try:
        # The engine took the uncompressed OCI layers as they are: its ID is the config we pushed.
        assert image_id == pushed.config_digest
        assert repo_digest == reference
        out = docker_client.containers.run(image_id, ["true"], entrypoint=["busybox"], remove=True,
                                           network_disabled=True)
        assert out == b""
    finally:
        docker_client.images.remove(image_id, force=True)


def test_layouts_push_the_same_manifest(ref, tmp_path):
    parts = busybox_parts("echo layouts\n")
    digests = {reg.push_image_tar(ref, "team-3/sub", _tar(tmp_path, parts, layout)).manifest_digest
               for layout in ("docker", "oci", "docker+oci")}
    assert len(digests) == 1
    manifest = requests.get(f"{ref.base}/v2/team-3/sub/manifests/{digests.pop()}",
                            headers={"Accept": images.OCI_MANIFEST}, timeout=10).json()
    assert manifest["mediaType"] == images.OCI_MANIFEST
    assert manifest["config"]["digest"] == parts.image_id
    assert [(d["mediaType"], d["digest"], d["size"]) for d in manifest["layers"]] == [
        (images.OCI_LAYER, parts.config["rootfs"]["diff_ids"][0], len(parts.layers[0]))]


def test_shared_base_layer_is_sent_once_and_mounted_within_the_namespace(ref, tmp_path):
    base = busybox_parts("echo shared\n")
    extra = images.layer_tar([images.Entry("app/model.bin", b"weights" * 1000)])
    extra2 = images.layer_tar([images.Entry("app/model.bin", b"other" * 1000)])
    first = reg.push_image_tar(ref, "team-8/sub", _tar(tmp_path, base))
    assert (first.layers_sent, first.bytes_sent) == (1, len(base.layers[0]))

    seen: list[tuple[int, int]] = []
    second = busybox_parts("echo shared\n", extra_layers=[extra])
    pushed = reg.push_image_tar(ref, "team-8/sub", _tar(tmp_path, second), progress=lambda *a: seen.append(a))
    assert (pushed.layers_sent, pushed.bytes_sent) == (1, len(extra))
    assert seen == [(len(extra), len(extra))]

    # Another repository of the same team mounts the base instead of receiving it again.
    third = busybox_parts("echo shared\n", extra_layers=[extra2])
    other = reg.push_image_tar(ref, "team-8/check", _tar(tmp_path, third))
    assert (other.layers_sent, other.bytes_sent) == (1, len(extra2))
    assert reg.blobs_present(ref, "team-8/check", third.config["rootfs"]["diff_ids"]) == set(
        third.config["rootfs"]["diff_ids"])

    # Never across teams: team 9 sends its own copy.
    theirs = reg.push_image_tar(ref, "team-9/sub", _tar(tmp_path, base))
    assert (theirs.layers_sent, theirs.bytes_sent) == (1, len(base.layers[0]))


def test_tampered_layer_is_refused_before_anything_is_stored(ref, registry, tmp_path):
    parts = busybox_parts("echo honest\n")
    tampered_layer = parts.layers[0].replace(b"echo honest\n", b"echo hacked\n")
    assert len(tampered_layer) == len(parts.layers[0]) and tampered_layer != parts.layers[0]
    path = _tar(tmp_path, ImageParts(config=parts.config, layers=[tampered_layer]))

    with pytest.raises(ImageRejected) as refused:
        reg.push_image_tar(ref, "team-4/sub", path, team_id=4)
    assert refused.value.reason == "layer_digest"
    declared = parts.config["rootfs"]["diff_ids"][0]
    actual = "sha256:" + images.sha256_hex(tampered_layer)
    assert reg.blobs_present(ref, "team-4/sub", [declared, actual, parts.image_id]) == set()
    uploads = registry.workdir / "data/docker/registry/v2/repositories/team-4/sub/_uploads"
    # The upload session was cancelled: its bytes are gone (the registry keeps an empty hash state until it
    # purges stale uploads).
    assert not list(uploads.glob("*/data"))
    blobs = registry.workdir / "data/docker/registry/v2/blobs/sha256"
    assert not (blobs / actual[7:9] / actual[7:]).exists() and not (blobs / declared[7:9] / declared[7:]).exists()


def test_namespace_is_enforced_before_any_request(tmp_path):
    nowhere = reg.RegistryRef("http://127.0.0.1:1")
    assert reg.repository_for(7) == "team-7/sub"
    assert reg.repository_for(7, "check") == "team-7/check"
    for bad in ("../x", "Sub", "a//b", ""):
        with pytest.raises(ValueError):
            reg.repository_for(7, bad)
    with pytest.raises(ValueError, match="outside the namespace team-7/"):
        reg.push_image_tar(nowhere, "team-8/sub", tmp_path / "never-read.tar", team_id=7)
    with pytest.raises(ValueError, match="outside the namespace"):
        reg.push_image_tar(nowhere, "team-77/sub", tmp_path / "never-read.tar", team_id=7)


def test_registry_ref_from_config():
    assert reg.RegistryRef.from_config({"REGISTRY_URL": ""}) is None
    ref = reg.RegistryRef.from_config({"REGISTRY_URL": "https://registry.example:5000/", "REGISTRY_USER": "hub",
                                       "REGISTRY_PASSWORD": "pw"})
    assert ref is not None and ref.host == "registry.example:5000"
    assert ref.session().auth == ("hub", "pw")
    assert ref.reference("team-1/sub", "sha256:" + "0" * 64) == f"registry.example:5000/team-1/sub@sha256:{'0' * 64}"


def test_delete_manifest_then_garbage_collect_removes_only_its_blobs(make_registry, busybox_binary, tmp_path):
    own: LocalRegistry = make_registry()
    own.start()
    ref = reg.RegistryRef(own.url)
    kept = busybox_parts("echo kept\n")
    gone = busybox_parts("echo gone\n")
    kept_push = reg.push_image_tar(ref, "team-5/sub", _tar(tmp_path, kept))
    gone_push = reg.push_image_tar(ref, "team-5/old", _tar(tmp_path, gone))
    gone_blobs = [*gone.config["rootfs"]["diff_ids"], gone.image_id]
    kept_blobs = [*kept.config["rootfs"]["diff_ids"], kept.image_id]

    assert reg.delete_manifest(ref, "team-5/old", gone_push.manifest_digest) is True
    assert reg.delete_manifest(ref, "team-5/old", gone_push.manifest_digest) is False
    own.stop()   # garbage-collect needs the registry stopped (or read-only)
    reg.garbage_collect(own.config_path)
    own.start()

    assert reg.blobs_present(ref, "team-5/old", gone_blobs) == set()
    # Untagged but referenced: kept (the run did not use --delete-untagged).
    assert reg.blobs_present(ref, "team-5/sub", kept_blobs) == set(kept_blobs)
    resp = requests.head(f"{ref.base}/v2/team-5/sub/manifests/{kept_push.manifest_digest}",
                         headers={"Accept": images.OCI_MANIFEST}, timeout=10)
    assert resp.status_code == 200
    blobs = own.workdir / "data/docker/registry/v2/blobs/sha256"
    assert not (blobs / gone.image_id[7:9] / gone.image_id[7:]).exists()


def test_registry_errors_are_infrastructure():
    nowhere = reg.RegistryRef("http://127.0.0.1:1", timeout=2)
    with pytest.raises(reg.RegistryError):
        reg.blobs_present(nowhere, "team-1/sub", ["sha256:" + "0" * 64])
