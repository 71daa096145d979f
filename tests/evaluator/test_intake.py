"""Image intake: archive checks (pure), upload streaming, loading, pulling and inspecting (real Docker)."""
from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from evaluator import images, intake
from evaluator.images import Entry, ImageParts
from evaluator.intake import ImageRejected, check_image_tar

MIB = 1 << 20
LIMITS = {"max_bytes": 64 * MIB, "max_layers": 8}


@pytest.fixture(scope="module")
def parts(busybox_binary: Path) -> ImageParts:
    return images.busybox_parts("cp /input/test.csv /output/pred.csv\n", repo_tags=["team/model:v1"])


def rejected(path: Path, reason: str, **limits: Any) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        check_image_tar(path, **{**LIMITS, **limits})
    assert info.value.reason == reason, info.value
    assert info.value.detail   # a precise sentence, not just a code
    return info.value


def member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, len(data) if kind == tarfile.REGTYPE else 0
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, data


# ---------------------------------------------------------------- accepted archives
@pytest.mark.parametrize("layout", ["docker", "oci", "docker+oci"])
def test_valid_archive_is_accepted_in_every_layout(parts, tmp_path, layout):
    path = images.write_image_archive(tmp_path / "image.tar", [parts], layout=layout)
    info = check_image_tar(path, **LIMITS)
    assert info.image_id == parts.image_id
    assert (info.os, info.architecture, info.layers) == ("linux", "amd64", 1)
    assert info.layout == ("oci" if layout == "oci" else "docker")
    assert info.size == path.stat().st_size and info.unpacked_bytes > 1_900_000   # busybox is in there
    assert "team/model:v1" in info.repo_tags


def test_gzip_compressed_oci_layer_is_scanned(busybox_binary, tmp_path):
    bad = images.layer_tar([Entry("../escape", b"x")])
    parts = images.ImageParts(config=images.image_config([bad]), layers=[gzip.compress(bad, mtime=0)])
    path = images.write_image_archive(tmp_path / "image.tar", [parts], layout="oci")
    rejected(path, "layer_unsafe_path")


# ---------------------------------------------------------------- hostile or broken archives
@pytest.mark.parametrize(("name", "reason"), [
    ("../../etc/cron.d/evil", "unsafe_path"),
    ("/etc/cron.d/evil", "unsafe_path"),
    ("blobs/../../evil", "unsafe_path"),
])
def test_member_path_outside_is_rejected(parts, tmp_path, name, reason):
    path = images.write_image_archive(tmp_path / "image.tar", [parts], extra=[member(name)])
    err = rejected(path, reason)
    assert name in err.detail


@pytest.mark.parametrize("target", ["/etc/shadow", "../../../etc/shadow", "a/../../x"])
def test_symlink_pointing_out_is_rejected(parts, tmp_path, target):
    path = images.write_image_archive(tmp_path / "image.tar", [parts],
                                      extra=[member("evil", kind=tarfile.SYMTYPE, linkname=target)])
    assert target in rejected(path, "unsafe_link").detail


def test_symlink_inside_archive_is_fine(parts, tmp_path):
    # Docker < 25 writes such links for layers shared between images.
    path = images.write_image_archive(tmp_path / "image.tar", [parts],
                                      extra=[member("dup/layer.tar", kind=tarfile.SYMTYPE,
                                                    linkname="../manifest.json")])
    assert check_image_tar(path, **LIMITS).image_id == parts.image_id


def test_hardlink_pointing_out_is_rejected(parts, tmp_path):
    path = images.write_image_archive(tmp_path / "image.tar", [parts],
                                      extra=[member("evil", kind=tarfile.LNKTYPE, linkname="../../etc/passwd")])
    rejected(path, "unsafe_link")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_and_special_files_are_rejected(parts, tmp_path, kind):
    path = images.write_image_archive(tmp_path / "image.tar", [parts], extra=[member("dev0", kind=kind)])
    assert "dev0" in rejected(path, "special_file").detail


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd"])
def test_layer_writing_outside_is_rejected(busybox_binary, tmp_path, name):
    hostile = images.layer_tar([Entry("ok.txt", b"fine"), Entry(name, b"root::0:0::/:/bin/sh\n")])
    good = images.busybox_layer("true\n")
    parts = ImageParts(config=images.image_config([good, hostile]), layers=[good, hostile])
    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    assert name in rejected(path, "layer_unsafe_path").detail


def test_layer_hardlink_outside_is_rejected(busybox_binary, tmp_path):
    hostile = images.layer_tar([Entry("x", kind=tarfile.LNKTYPE, linkname="../../etc/shadow")])
    parts = ImageParts(config=images.image_config([hostile]), layers=[hostile])
    rejected(images.write_image_archive(tmp_path / "image.tar", [parts]), "layer_unsafe_path")


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_archive_is_rejected(parts, tmp_path, keep):
    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    data = path.read_bytes()
    cut = int(len(data) * keep)
    # Cut inside the data, or just after the last member where only the end-of-archive marker is lost.
    if keep > 0.99:
        with tarfile.open(path) as tar:
            last = tar.getmembers()[-1]
            cut = last.offset_data + ((last.size + 511) // 512) * 512
    path.write_bytes(data[:cut])
    rejected(path, "truncated")


def test_not_a_tar_is_rejected(tmp_path):
    path = tmp_path / "image.tar"
    path.write_bytes(b"this is not an archive at all\n" * 100)
    rejected(path, "not_a_tar")
    path.write_bytes(b"")
    rejected(path, "not_a_tar")


def test_compressed_archive_is_refused_with_advice(parts, tmp_path):
    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    gz = tmp_path / "image.tar.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    rejected(gz, "compressed")


def test_tar_without_image_is_rejected(tmp_path):
    path = tmp_path / "notes.tar"
    path.write_bytes(images.tar_bytes([Entry("README.txt", b"hello")]))
    rejected(path, "not_an_image")


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_two_images_are_rejected(busybox_binary, tmp_path, layout):
    first = images.busybox_parts("echo one\n")
    second = images.busybox_parts("echo two\n")
    path = images.write_image_archive(tmp_path / "image.tar", [first, second], layout=layout)
    assert "2" in rejected(path, "image_count").detail


@pytest.mark.parametrize("layout", ["docker", "oci"])
def test_wrong_architecture_is_rejected(busybox_binary, tmp_path, layout):
    parts = images.busybox_parts("true\n", architecture="arm64")
    path = images.write_image_archive(tmp_path / "image.tar", [parts], layout=layout)
    err = rejected(path, "wrong_platform")
    assert "linux/arm64" in err.detail and "linux/amd64" in err.detail


def test_oversize_archive_is_rejected(parts, tmp_path):
    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    err = rejected(path, "too_large", max_bytes=1 * MIB)
    assert str(1 * MIB) in err.detail


def test_unpacked_size_is_capped(parts, tmp_path):
    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    rejected(path, "too_large", max_unpacked_bytes=1 * MIB)


def test_too_many_layers_is_rejected(busybox_binary, tmp_path):
    extra = [images.layer_tar([Entry(f"data{i}.txt", b"x")]) for i in range(3)]
    parts = images.busybox_parts("true\n", extra_layers=extra)
    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    assert "4 layers" in rejected(path, "too_many_layers", max_layers=3).detail
    assert check_image_tar(path, **{**LIMITS, "max_layers": 4}).layers == 4


def test_missing_layer_is_rejected(parts, tmp_path):
    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    with tarfile.open(path) as src, tarfile.open(tmp_path / "broken.tar", "w") as dst:
        for m in src.getmembers():
            if not m.name.endswith("layer.tar"):
                dst.addfile(m, src.extractfile(m) if m.isfile() else None)
    rejected(tmp_path / "broken.tar", "invalid_manifest")


def test_rejection_message_is_translated(app, parts, tmp_path):
    from hub.web import translate_error

    path = images.write_image_archive(tmp_path / "image.tar", [parts], extra=[member("/etc/evil")])
    with pytest.raises(ImageRejected) as info:
        check_image_tar(path, **LIMITS)
    with app.test_request_context("/?lang=zh_CN"):
        message = translate_error(info.value)
    assert "不安全" in str(message) and "/etc/evil" in str(message)


# ---------------------------------------------------------------- streaming an upload
class PatternStream(io.RawIOBase):
    """A large upload generated on the fly, so the test itself holds no big buffer."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return b"\xab" * n


def test_upload_is_streamed_with_flat_memory(tmp_path):
    import hashlib

    dest = tmp_path / "upload.tar"
    tracemalloc.start()
    size, digest = intake.stream_upload_to_file(PatternStream(64 * MIB), dest, max_bytes=100 * MIB)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert size == 64 * MIB == dest.stat().st_size
    assert digest == hashlib.sha256(b"\xab" * (64 * MIB)).hexdigest()
    assert peak < 8 * MIB   # a few chunks, never the file


def test_upload_over_cap_is_refused_and_deleted(tmp_path):
    dest = tmp_path / "upload.tar"
    with pytest.raises(ImageRejected) as info:
        intake.stream_upload_to_file(PatternStream(5 * MIB), dest, max_bytes=3 * MIB)
    assert info.value.reason == "too_large"
    assert not dest.exists()


# ---------------------------------------------------------------- real Docker: load, pull, inspect
@pytest.mark.docker
def test_saved_image_is_checked_and_loaded_by_id(docker_client, busybox_image, docker_tar, tmp_path):
    image_id = busybox_image("echo hello > /output/x\n")
    path = docker_tar(tmp_path, image_id)
    info = check_image_tar(path, **LIMITS)
    assert info.image_id == image_id
    docker_client.images.remove(image_id, force=True)
    assert intake.load_image(docker_client, path, expected_id=info.image_id) == image_id
    assert docker_client.images.get(image_id).id == image_id


@pytest.mark.docker
def test_oci_layout_as_docker_25_saves_loads(docker_client, busybox_binary, tmp_path):
    parts = images.busybox_parts("echo oci\n")
    path = images.write_image_archive(tmp_path / "image.tar", [parts], layout="docker+oci")
    info = check_image_tar(path, **LIMITS)
    try:
        assert intake.load_image(docker_client, path) == info.image_id == parts.image_id
    finally:
        docker_client.images.remove(parts.image_id, force=True)


@pytest.mark.docker
def test_engine_refusal_is_an_image_rejection(docker_client, busybox_binary, tmp_path):
    parts = images.busybox_parts("true\n")
    parts.config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]   # does not match the layer
    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    with pytest.raises(ImageRejected) as info:
        intake.load_image(docker_client, path)
    assert info.value.reason == "load_failed"


@pytest.mark.docker
def test_inspect_for_run_reports_overridden_env(docker_client, busybox_image):
    image = busybox_image("true\n", env={"LD_PRELOAD": "/evil.so", "NVIDIA_VISIBLE_DEVICES": "all",
                                         "MODEL": "v1"}, user="0")
    facts = intake.inspect_for_run(docker_client, image, max_image_bytes=64 * MIB)
    assert facts.image_id == image and facts.architecture == "amd64" and facts.has_command
    assert facts.user == "0" and facts.env["MODEL"] == "v1"
    assert facts.overridden_env == ("LD_PRELOAD", "NVIDIA_VISIBLE_DEVICES")
    with pytest.raises(ImageRejected) as info:
        intake.inspect_for_run(docker_client, image, max_image_bytes=1 * MIB)
    assert info.value.reason == "too_large"
    with pytest.raises(ImageRejected) as info:
        intake.inspect_for_run(docker_client, "sha256:" + "f" * 64, max_image_bytes=64 * MIB)
    assert info.value.reason == "image_missing"


@pytest.mark.docker
def test_pull_from_center_registry_pins_digest(docker_client, busybox_image, local_registry):
    image_id = busybox_image("echo pulled > /output/x\n")
    repo = f"{local_registry}/team7/model"
    docker_client.images.get(image_id).tag(repo, "v1")
    for event in docker_client.api.push(repo, tag="v1", stream=True, decode=True):
        assert "error" not in event, event
    docker_client.images.remove(f"{repo}:v1")

    pulled_id, repo_digest = intake.pull_image(docker_client, f"{repo}:v1", [local_registry])
    assert pulled_id == image_id
    assert repo_digest.startswith(f"{repo}@sha256:") and len(repo_digest.split("@")[1]) == 71
    # The digest pins the content: pulling by it gives the same image, whatever the tag points to later.
    assert intake.pull_image(docker_client, repo_digest, [local_registry]) == (pulled_id, repo_digest)
    with pytest.raises(ImageRejected) as info:
        intake.pull_image(docker_client, f"{repo}:no-such-tag", [local_registry])
    assert info.value.reason == "pull_failed"


@pytest.mark.parametrize("reference", ["evil.example.com/team/model:v1", "docker.io/library/busybox",
                                       "busybox:latest", "team/model", "127.0.0.2:5000/team/model:v1"])
def test_pull_from_foreign_registry_is_refused(reference):
    with pytest.raises(ImageRejected) as info:
        intake.pull_image(None, reference, ["127.0.0.1:5000"])   # refused before the engine is asked
    assert info.value.reason == "registry_not_allowed"


@pytest.mark.parametrize("reference", ["", "127.0.0.1:5000/Team/Model", "127.0.0.1:5000/a@sha256:xyz",
                                       "127.0.0.1:5000/a b"])
def test_bad_reference_is_refused(reference):
    with pytest.raises(ImageRejected) as info:
        intake.pull_image(None, reference, ["127.0.0.1:5000"])
    assert info.value.reason == "bad_reference"


def test_unreachable_engine_is_an_infra_error(parts, tmp_path):
    import docker

    from evaluator.sandbox import SandboxInfraError

    path = images.write_image_archive(tmp_path / "image.tar", [parts])
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41", timeout=5)
    with pytest.raises(SandboxInfraError):
        intake.load_image(client, path)
    with pytest.raises(SandboxInfraError):
        intake.inspect_for_run(client, parts.image_id, max_image_bytes=MIB)


# ---------------------------------------------------------------- layer digests (rootfs.diff_ids)
def _borrowing(victim: ImageParts, own_layers: list[bytes]) -> ImageParts:
    """An image whose config declares `victim`'s layer digests but whose archive carries `own_layers`."""
    config = images.image_config(own_layers, entrypoint=["/bin/sh", "/app/run.sh"])
    config["rootfs"]["diff_ids"] = list(victim.config["rootfs"]["diff_ids"])
    return ImageParts(config=config, layers=own_layers)


@pytest.mark.parametrize("layout", ["docker", "oci", "docker+oci"])
def test_layer_not_matching_its_declared_digest_is_refused(parts, tmp_path, layout):
    # Another team's layer digests in diff_ids, this team's own content in the archive.
    own = images.busybox_layer("echo borrowed-run\n")
    path = images.write_image_archive(tmp_path / "image.tar", [_borrowing(parts, [own])], layout=layout)
    err = rejected(path, "layer_digest")
    assert parts.config["rootfs"]["diff_ids"][0] in err.detail and images.sha256_hex(own) in err.detail


def test_layer_count_not_matching_diff_ids_is_refused(parts, tmp_path):
    extra = images.layer_tar([Entry("data.txt", b"x")])
    borrowed = ImageParts(config=images.image_config(parts.layers), layers=[*parts.layers, extra])
    err = rejected(images.write_image_archive(tmp_path / "extra.tar", [borrowed]), "layer_digest")
    assert "2 layers" in err.detail and "1 " in err.detail


def test_gzip_layer_is_hashed_uncompressed(busybox_binary, tmp_path):
    layer = images.busybox_layer("echo gz\n")
    ok = ImageParts(config=images.image_config([layer]), layers=[gzip.compress(layer, mtime=0)])
    path = images.write_image_archive(tmp_path / "ok.tar", [ok], layout="oci")
    assert check_image_tar(path, **LIMITS).image_id == ok.image_id
    other = images.busybox_layer("echo other\n")
    bad = ImageParts(config=images.image_config([layer]), layers=[gzip.compress(other, mtime=0)])
    rejected(images.write_image_archive(tmp_path / "bad.tar", [bad], layout="oci"), "layer_digest")


def test_oci_blob_not_matching_its_name_is_refused(parts, tmp_path):
    path = images.write_image_archive(tmp_path / "image.tar", [parts], layout="oci")
    layer_hex = images.sha256_hex(parts.layers[0])
    swapped = tmp_path / "swapped.tar"
    with tarfile.open(path) as src, tarfile.open(swapped, "w", format=tarfile.PAX_FORMAT) as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            if m.name == f"blobs/sha256/{layer_hex}":
                data = data[:-1] + b"\x01"    # the tar's last padding byte: same files, another digest
            dst.addfile(m, io.BytesIO(data) if data is not None else None)
    err = rejected(swapped, "layer_digest")
    assert layer_hex in err.detail


def test_layer_hashing_keeps_memory_flat(busybox_binary, tmp_path):
    big = images.layer_tar([Entry("weights.bin", b"\x5a" * (48 * MIB))])
    parts = ImageParts(config=images.image_config([big]), layers=[big])
    path = images.write_image_archive(tmp_path / "big.tar", [parts])
    del big, parts
    tracemalloc.start()
    check_image_tar(path, max_bytes=128 * MIB, max_layers=4)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * MIB


# ---------------------------------------------------------------- registry references: the team's namespace
@pytest.mark.parametrize("reference", ["127.0.0.1:5000/team-7/model@sha256:" + "a" * 64,
                                       "127.0.0.1:5000/team-7/a/b:v2@sha256:" + "b" * 64])
def test_own_namespace_reference_is_accepted(reference):
    host, repository, digest = intake.check_team_reference(reference, intake.team_namespace(7), ["127.0.0.1:5000"])
    assert host == "127.0.0.1:5000" and repository.startswith("127.0.0.1:5000/team-7/")
    assert digest.startswith("sha256:")


@pytest.mark.parametrize(("reference", "reason"), [
    ("127.0.0.1:5000/team-8/model@sha256:" + "a" * 64, "registry_namespace"),   # another team's repository
    ("127.0.0.1:5000/team-70/model@sha256:" + "a" * 64, "registry_namespace"),  # a prefix is not the namespace
    ("127.0.0.1:5000/team-7@sha256:" + "a" * 64, "registry_namespace"),         # the namespace itself, no name
    ("127.0.0.1:5000/model@sha256:" + "a" * 64, "registry_namespace"),
    ("127.0.0.1:5000/team-7/model:v1", "digest_required"),
    ("evil.example.com/team-7/model@sha256:" + "a" * 64, "registry_not_allowed"),
])
def test_reference_outside_own_namespace_is_refused(reference, reason):
    with pytest.raises(ImageRejected) as info:
        intake.check_team_reference(reference, intake.team_namespace(7), ["127.0.0.1:5000"])
    assert info.value.reason == reason and info.value.detail
    if reason == "registry_namespace":
        assert "127.0.0.1:5000/team-7/" in info.value.detail


# ---------------------------------------------------------------- loading without names
@pytest.mark.parametrize("layout", ["docker", "oci", "docker+oci"])
def test_archive_is_fed_to_the_engine_without_any_name(parts, tmp_path, layout):
    import json

    path = images.write_image_archive(tmp_path / "image.tar", [parts], layout=layout,
                                      extra=[member("repositories", b'{"team/model": {"v1": "abc"}}')])
    rewritten = tmp_path / "fed.tar"
    with rewritten.open("wb") as out:
        for chunk in intake.untagged_archive(path):
            out.write(chunk)
    with tarfile.open(rewritten) as tar:
        names = tar.getnames()
        assert "repositories" not in names
        if "manifest.json" in names:
            assert [e["RepoTags"] for e in json.loads(tar.extractfile("manifest.json").read())] == [None]
            assert "index.json" not in names        # the engine loads what check_image_tar verified, only that
        else:
            index = json.loads(tar.extractfile("index.json").read())
            assert all(not (e.get("annotations") or {}) for e in index["manifests"])
    info = check_image_tar(rewritten, **LIMITS)      # still the same, valid image
    assert info.image_id == parts.image_id and info.repo_tags == ()
