"""Image intake: stream an upload to disk, check a `docker save` archive before loading it, load or pull
an image and pin it by ID/digest, inspect it before a run. Docker only: no Flask, no database.

The archive checks (check_image_tar: structure, paths, and every layer hashed against the config's
rootfs.diff_ids) and the registry rule (check_team_reference) are pure functions that need no engine, so they
hold wherever intake runs. Loading never applies the names an archive carries (untagged_archive)."""
from __future__ import annotations

import bz2
import copy
import gzip
import hashlib
import io
import json
import lzma
import posixpath
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker.errors
import requests.exceptions

from evaluator.sandbox import (GUARDED_ENV_PREFIXES, SandboxInfraError, UnsafeImageConfig, guarded_env_names,
                               volume_masks)
from hub.errors import N_, DomainError

MIB = 1 << 20
# A `docker save` archive holds a handful of members per layer; far more means something else.
MAX_ARCHIVE_MEMBERS = 10_000
MAX_JSON_BYTES = 4 * MIB
# How much bigger than the archive the unpacked layers may be (compressed OCI layers).
DEFAULT_UNPACK_FACTOR = 4

# reason code -> English msgid shown to the team (translated in translations/zh_CN/evaluator_sandbox.po).
REASONS: dict[str, str] = {
    "too_large": N_("The image is too large: %(detail)s"),
    "not_a_tar": N_("The file is not a tar archive made by `docker save`."),
    "compressed": N_("The archive is compressed; upload the plain output of `docker save`."),
    "truncated": N_("The archive is truncated (the upload was cut short?): %(detail)s"),
    "not_an_image": N_("The archive holds no Docker image (no manifest.json or index.json)."),
    "invalid_manifest": N_("The image archive is damaged: %(detail)s"),
    "image_count": N_("The archive must hold exactly one image: %(detail)s"),
    "unsafe_path": N_("The archive has a member with an unsafe path: %(detail)s"),
    "unsafe_link": N_("The archive has a link pointing outside it: %(detail)s"),
    "special_file": N_("The archive has a device or other special file: %(detail)s"),
    "too_many_layers": N_("The image has too many layers: %(detail)s"),
    "wrong_platform": N_("The image is built for the wrong platform: %(detail)s"),
    "layer_unsafe_path": N_("An image layer writes outside the image: %(detail)s"),
    "layer_unreadable": N_("An image layer cannot be read: %(detail)s"),
    "load_failed": N_("Docker could not load the image: %(detail)s"),
    "bad_reference": N_("The image reference is not valid: %(detail)s"),
    "registry_not_allowed": N_("Images can only be pulled from the center's registry: %(detail)s"),
    "pull_failed": N_("The image could not be pulled: %(detail)s"),
    "image_missing": N_("The image is not on this node: %(detail)s"),
    "no_command": N_("The image has no ENTRYPOINT or CMD to run."),
    "volume_refused": N_("The image declares a VOLUME the sandbox cannot give a size-capped mount; remove that "
                         "VOLUME instruction (write to /tmp or /output instead) and submit again: %(detail)s"),
    "layer_digest": N_("The image's layers do not match the digests its config declares (rootfs.diff_ids); "
                       "save the image again with `docker save` and upload that file: %(detail)s"),
    "registry_namespace": N_("Your team may only submit images from its own namespace in the center's "
                             "registry: %(detail)s"),
    "digest_required": N_("Name the image by its digest (…@sha256:…, as `docker push` prints it), not by a "
                          "tag alone: %(detail)s"),
}


class ImageRejected(DomainError):
    """An image (archive, reference or loaded image) the platform will not run; nothing was loaded.

    `reason` is a short code (see REASONS), `detail` a precise English sentence (which member, what limit)
    for logs and for the %(detail)s of the translated message.
    """

    code = "image_rejected"

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(REASONS.get(reason, N_("The image was rejected: %(detail)s")), field="image",
                         detail=detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


@dataclass(frozen=True)
class ImageTarInfo:
    """What check_image_tar found in an accepted archive."""

    size: int
    layout: str            # "docker" (manifest.json) or "oci" (index.json only)
    image_id: str          # sha256:<config digest>, the ID Docker gives the loaded image
    architecture: str
    os: str
    layers: int
    unpacked_bytes: int
    repo_tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageFacts:
    """What inspect_for_run found in a loaded image."""

    image_id: str
    architecture: str
    os: str
    size: int
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    working_dir: str
    env: dict[str, str] = field(default_factory=dict)
    overridden_env: tuple[str, ...] = ()   # image env names the sandbox replaces (devices, preload)
    volumes: tuple[str, ...] = ()          # declared VOLUMEs: each is masked by a capped tmpfs in the sandbox
    # What else the image declares that the sandbox disables or ignores: HEALTHCHECK, STOPSIGNAL, USER, EXPOSE,
    # ONBUILD (kept so that operators can see what an image asked for).
    ignored_config: tuple[str, ...] = ()

    @property
    def has_command(self) -> bool:
        return bool(self.entrypoint or self.cmd)


# ---------------------------------------------------------------- upload
def stream_upload_to_file(stream: IO[bytes], dest: Path, max_bytes: int, chunk: int = MIB) -> tuple[int, str]:
    """Copy a file-like to `dest` in `chunk`-sized pieces with a byte cap; return (size, sha256 hex).

    Over the cap the partial file is deleted and ImageRejected("too_large") raised. Memory stays at one chunk.
    """
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with dest.open("wb") as out:
            while True:
                block = stream.read(chunk)
                if not block:
                    break
                size += len(block)
                if size > max_bytes:
                    raise ImageRejected("too_large", f"the upload is over the limit of {max_bytes} bytes")
                digest.update(block)
                out.write(block)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


# ---------------------------------------------------------------- archive checks
_COMPRESSED_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _unsafe_name(name: str) -> str | None:
    """Why a member name is unsafe (absolute or with a `..` part), or None."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", name):
        return "is an absolute path"
    if ".." in re.split(r"[\\/]+", name):
        return "contains '..'"
    if "\x00" in name:
        return "contains a NUL byte"
    return None


def _norm(name: str) -> str:
    return posixpath.normpath(name).lstrip("/") if name not in ("", ".", "./") else "."


def _link_escapes(member: tarfile.TarInfo) -> str | None:
    target = member.linkname
    if member.issym():
        if target.startswith("/"):
            return f"symlink {member.name!r} points to the absolute path {target!r}"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), target))
        if resolved == ".." or resolved.startswith("../"):
            return f"symlink {member.name!r} points outside the archive ({target!r})"
    elif member.islnk():
        why = _unsafe_name(target)
        if why:
            return f"hard link {member.name!r} -> {target!r} {why}"
    return None


def _end_marker_present(path: Path, offset: int, size: int) -> bool:
    """A complete tar ends with two zero blocks; tarfile treats a cut-off archive as ended, so look."""
    if offset + 1024 > size:
        return False
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(1024) == b"\x00" * 1024


def _read_json(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], name: str, what: str) -> Any:
    member = members.get(_norm(name))
    if member is None:
        raise ImageRejected("invalid_manifest", f"{what} {name!r} is missing from the archive")
    if member.size > MAX_JSON_BYTES:
        raise ImageRejected("invalid_manifest", f"{what} {name!r} is {member.size} bytes, over {MAX_JSON_BYTES}")
    fh = tar.extractfile(member)
    if fh is None:
        raise ImageRejected("invalid_manifest", f"{what} {name!r} is not a file")
    try:
        return json.loads(fh.read())
    except (ValueError, UnicodeDecodeError) as err:
        raise ImageRejected("invalid_manifest", f"{what} {name!r} is not valid JSON ({err})") from None


def _read_blob_json(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], digest: Any, what: str) -> Any:
    """A content-addressed JSON blob of the OCI layout, checked against its digest before it is believed."""
    name = _blob_path(digest)
    member = members.get(name)
    if member is not None and member.isfile() and member.size <= MAX_JSON_BYTES:
        data = tar.extractfile(member).read()  # type: ignore[union-attr]
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise ImageRejected("invalid_manifest", f"the {what} blob {name!r} does not match its digest")
    return _read_json(tar, members, name, what)


def _blob_path(digest: Any) -> str:
    if not isinstance(digest, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        raise ImageRejected("invalid_manifest", f"bad blob digest {digest!r}")
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _locate_docker(manifest: Any) -> tuple[str, list[str], tuple[str, ...]]:
    if not isinstance(manifest, list):
        raise ImageRejected("invalid_manifest", "manifest.json is not a list")
    if len(manifest) != 1:
        raise ImageRejected("image_count", f"manifest.json lists {len(manifest)} images")
    entry = manifest[0]
    if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
            or not isinstance(entry.get("Layers"), list) or not all(isinstance(x, str) for x in entry["Layers"]):
        raise ImageRejected("invalid_manifest", "manifest.json entry lacks Config or Layers")
    tags = tuple(t for t in (entry.get("RepoTags") or []) if isinstance(t, str))
    return entry["Config"], list(entry["Layers"]), tags


def _locate_oci(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo],
                index: Any) -> tuple[str, list[str], tuple[str, ...]]:
    # Docker 25+ (containerd store) may save an index pointing to a per-platform index; follow it.
    for _depth in range(3):
        entries = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(entries, list):
            raise ImageRejected("invalid_manifest", "index.json has no manifests list")
        entries = [e for e in entries if isinstance(e, dict) and (e.get("annotations") or {}).get(
            "vnd.docker.reference.type") != "attestation-manifest"]
        if len(entries) != 1:
            raise ImageRejected("image_count", f"the index lists {len(entries)} images")
        entry = entries[0]
        doc = _read_blob_json(tar, members, entry.get("digest"), "manifest")
        if isinstance(doc, dict) and "manifests" in doc:
            index = doc
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict) \
                or not isinstance(doc.get("layers"), list):
            raise ImageRejected("invalid_manifest", "the image manifest lacks config or layers")
        name = (entry.get("annotations") or {}).get("io.containerd.image.name")
        return (_blob_path(doc["config"].get("digest")),
                [_blob_path(layer.get("digest") if isinstance(layer, dict) else None) for layer in doc["layers"]],
                (name,) if isinstance(name, str) else ())
    raise ImageRejected("invalid_manifest", "the image index nests too deeply")


class _HashingReader(io.RawIOBase):
    """Reads through to `raw`, hashing every byte that passes; past `limit` bytes it refuses (decompression bombs)."""

    def __init__(self, raw: IO[bytes], limit: int | None = None) -> None:
        super().__init__()
        self.raw, self.limit = raw, limit
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.raw.read(len(buf))
        n = len(data)
        buf[:n] = data
        self.digest.update(data)
        self.size += n
        if self.limit is not None and self.size > self.limit:
            raise ImageRejected("too_large", f"the unpacked layers are over {self.limit} bytes")
        return n

    def drain(self) -> None:
        """Read (and hash) whatever is left: a digest covers every byte, padding after the tar's end too."""
        while self.read(MIB):
            pass


def _decompressed(fh: IO[bytes], head: bytes) -> IO[bytes] | None:
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(fh)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(fh)
    return None


@dataclass(frozen=True)
class _LayerScan:
    unpacked: int      # bytes of the files in the layer
    diff_id: str       # sha256 of the uncompressed layer tar: what rootfs.diff_ids must declare
    blob_digest: str   # sha256 of the member as stored (compressed or not): an OCI blob's name


def _scan_layer(tar: tarfile.TarFile, member: tarfile.TarInfo, layer_name: str, budget: int) -> _LayerScan:
    """Stream one layer once: check every member for paths outside the image and hash its content.

    Memory stays at a buffer or two whatever the layer's size; a gzip (bzip2, xz) layer is hashed as it
    is decompressed, so its diff_id is that of the uncompressed tar, as Docker computes it.
    """
    fh = tar.extractfile(member)
    if fh is None:
        raise ImageRejected("invalid_manifest", f"layer {layer_name!r} is not a file")
    head = fh.peek(8)[:8] if hasattr(fh, "peek") else b""
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise ImageRejected("layer_unreadable", f"layer {layer_name!r} is zstd-compressed, which is not supported")
    total = 0
    try:
        compressed = any(head.startswith(magic) for magic in _COMPRESSED_MAGIC)
        stored = _HashingReader(fh, limit=None if compressed else budget)
        inner = _decompressed(stored, head)
        plain = _HashingReader(inner, limit=budget) if inner is not None else stored
        with tarfile.open(fileobj=plain, mode="r|", bufsize=MIB) as layer:
            while (item := layer.next()) is not None:
                layer.members.clear()   # keep memory flat on layers with many files
                why = _unsafe_name(item.name)
                if why:
                    raise ImageRejected("layer_unsafe_path",
                                        f"layer {layer_name!r} has member {item.name!r}, which {why}")
                if item.islnk():
                    why = _unsafe_name(item.linkname)
                    if why:
                        raise ImageRejected("layer_unsafe_path", f"layer {layer_name!r} has hard link "
                                            f"{item.name!r} -> {item.linkname!r}, whose target {why}")
                total += item.size
                if total > budget:
                    raise ImageRejected("too_large", f"the unpacked layers are over {budget} bytes")
        plain.drain()
        stored.drain()
    except (tarfile.TarError, EOFError, OSError, ValueError, lzma.LZMAError) as err:
        raise ImageRejected("layer_unreadable", f"layer {layer_name!r} is not a valid tar ({err})") from None
    return _LayerScan(total, "sha256:" + plain.digest.hexdigest(), "sha256:" + stored.digest.hexdigest())


def _check_layers(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo], layer_names: list[str],
                  diff_ids: Any, budget: int) -> int:
    """Hash every layer and compare it, in order, with the config's rootfs.diff_ids; return the unpacked bytes.

    The engine skips a layer whose digest it already has, so a layer that is not what the config declares
    would run on someone else's files: nothing is loaded unless every layer is exactly what it claims.
    """
    if not isinstance(diff_ids, list) or not all(
            isinstance(d, str) and re.fullmatch(r"sha256:[0-9a-f]{64}", d) for d in diff_ids):
        raise ImageRejected("invalid_manifest", "the image config's rootfs.diff_ids is not a list of sha256 digests")
    if len(diff_ids) != len(layer_names):
        raise ImageRejected("layer_digest", f"the image config declares {len(diff_ids)} layer digest(s) in "
                            f"rootfs.diff_ids, but the archive lists {len(layer_names)} layers")
    unpacked = 0
    for index, (name, declared) in enumerate(zip(layer_names, diff_ids), start=1):
        member = members.get(_norm(name))
        if member is None:
            raise ImageRejected("invalid_manifest", f"layer {name!r} is missing from the archive")
        scan = _scan_layer(tar, member, name, budget - unpacked)
        unpacked += scan.unpacked
        if scan.diff_id != declared:
            raise ImageRejected("layer_digest", f"layer {index} ({name}) hashes to {scan.diff_id}, but the image "
                                f"config declares {declared}")
        named = re.fullmatch(r"blobs/sha256/([0-9a-f]{64})", _norm(name))
        if named and scan.blob_digest != f"sha256:{named.group(1)}":
            raise ImageRejected("layer_digest", f"layer {index} ({name}) hashes to {scan.blob_digest}, not the "
                                "digest its name declares")
    return unpacked


def check_image_tar(path: Path, *, max_bytes: int, max_layers: int, allowed_platform: str = "linux/amd64",
                    max_unpacked_bytes: int | None = None) -> ImageTarInfo:
    """Validate a `docker save` archive before it is loaded; raise ImageRejected(reason, detail) if unsafe.

    Accepts Docker's layout (manifest.json) and the OCI layout (index.json, as Docker 25+ saves).
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageRejected("too_large", f"the archive is {size} bytes, over the limit of {max_bytes} bytes")
    with path.open("rb") as fh:
        head = fh.read(8)
    for magic, kind in _COMPRESSED_MAGIC.items():
        if head.startswith(magic):
            raise ImageRejected("compressed", f"the archive is {kind}-compressed")
    try:
        tar = tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError, ValueError) as err:
        raise ImageRejected("not_a_tar", f"the file is not a tar archive ({err})") from None
    with tar:
        members = _check_members(tar, path, size)
        if "manifest.json" in members:
            layout = "docker"
            config_name, layer_names, tags = _locate_docker(_read_json(tar, members, "manifest.json", "manifest"))
        elif "index.json" in members:
            layout = "oci"
            config_name, layer_names, tags = _locate_oci(tar, members,
                                                         _read_json(tar, members, "index.json", "index"))
        else:
            raise ImageRejected("not_an_image", "the archive has neither manifest.json nor index.json")
        config = _read_json(tar, members, config_name, "image config")
        if not isinstance(config, dict):
            raise ImageRejected("invalid_manifest", "the image config is not an object")
        platform = f"{config.get('os')}/{config.get('architecture')}"
        if config.get("variant"):
            platform += f"/{config['variant']}"
        if platform != allowed_platform and not allowed_platform.startswith(platform + "/") \
                and not platform.startswith(allowed_platform + "/"):
            raise ImageRejected("wrong_platform", f"the image is {platform}, the platform runs {allowed_platform}")
        if len(layer_names) > max_layers:
            raise ImageRejected("too_many_layers",
                                f"the image has {len(layer_names)} layers, over the limit of {max_layers}")
        budget = max_unpacked_bytes if max_unpacked_bytes is not None else DEFAULT_UNPACK_FACTOR * max_bytes
        unpacked = _check_layers(tar, members, layer_names, (config.get("rootfs") or {}).get("diff_ids"), budget)
        config_bytes = tar.extractfile(members[_norm(config_name)]).read()  # type: ignore[union-attr]
    image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    named = re.fullmatch(r"blobs/sha256/([0-9a-f]{64})", _norm(config_name))
    if named and image_id != f"sha256:{named.group(1)}":
        raise ImageRejected("invalid_manifest", f"the image config {config_name!r} hashes to {image_id}, not the "
                            "digest its name declares")
    return ImageTarInfo(size=size, layout=layout, image_id=image_id,
                        architecture=str(config.get("architecture")), os=str(config.get("os")),
                        layers=len(layer_names), unpacked_bytes=unpacked, repo_tags=tags)


def _check_members(tar: tarfile.TarFile, path: Path, size: int) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    try:
        while (member := tar.next()) is not None:
            if len(members) >= MAX_ARCHIVE_MEMBERS:
                raise ImageRejected("invalid_manifest",
                                    f"the archive has more than {MAX_ARCHIVE_MEMBERS} members")
            why = _unsafe_name(member.name)
            if why:
                raise ImageRejected("unsafe_path", f"member {member.name!r} {why}")
            why = _link_escapes(member)
            if why:
                raise ImageRejected("unsafe_link", why)
            if member.islnk() and _norm(member.linkname) not in members:
                raise ImageRejected("unsafe_link", f"hard link {member.name!r} points to {member.linkname!r}, "
                                    "which is not an earlier member")
            if member.issparse() or not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                kind = "device" if (member.ischr() or member.isblk()) else "special file"
                raise ImageRejected("special_file", f"member {member.name!r} is a {kind}")
            if member.isfile() and member.offset_data + member.size > size:
                raise ImageRejected("truncated", f"member {member.name!r} ends past the end of the file")
            members[_norm(member.name)] = member
    except tarfile.TarError as err:
        raise ImageRejected("truncated" if members else "not_a_tar", f"bad tar header ({err})") from None
    if not members:
        raise ImageRejected("not_a_tar", "the archive is empty")
    if not _end_marker_present(path, tar.offset, size):
        raise ImageRejected("truncated", "the end-of-archive marker is missing")
    return members


# ---------------------------------------------------------------- docker: load, pull, inspect
def _infra(err: Exception, action: str) -> SandboxInfraError:
    return SandboxInfraError(f"{action}: {err.__class__.__name__}: {err}")


# Names an archive may carry: Docker's RepoTags, the legacy `repositories` file, the OCI index's annotations.
_NAME_ANNOTATIONS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


def _without_names(name: str, data: bytes) -> bytes:
    """manifest.json or index.json with every image name taken out (nothing else changes)."""
    doc = json.loads(data)
    entries = doc if name == "manifest.json" else (doc.get("manifests") if isinstance(doc, dict) else None)
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        if name == "manifest.json":
            entry["RepoTags"] = None
        elif isinstance(entry.get("annotations"), dict):
            for key in _NAME_ANNOTATIONS:
                entry["annotations"].pop(key, None)
    return json.dumps(doc, separators=(",", ":")).encode()


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def untagged_archive(path: Path, chunk: int = MIB) -> Iterator[bytes]:
    """The checked archive at `path` as a tar stream that names no image, for `docker load` to read.

    RepoTags become null, the OCI index loses its name annotations and the `repositories` file is dropped, so
    loading can never (re)point a tag on the node. Where manifest.json exists (the layout check_image_tar
    verified) the OCI index is dropped too, so the engine loads exactly what was verified. Streamed: members
    are copied from the file chunk by chunk; only the small JSON index files are rewritten in memory.
    """
    with Path(path).open("rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
        members = tar.getmembers()   # headers only: at most MAX_ARCHIVE_MEMBERS of them
        has_manifest = any(_norm(m.name) == "manifest.json" for m in members)
        for member in members:
            name = _norm(member.name)
            if name == "repositories" or (has_manifest and name in ("index.json", "oci-layout")):
                continue
            if name in ("manifest.json", "index.json") and member.isfile():
                data = _without_names(name, tar.extractfile(member).read())  # type: ignore[union-attr]
                info = copy.copy(member)
                info.size = len(data)
                yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + _padded(data)
                continue
            yield member.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            if member.isreg() and member.size:
                raw.seek(member.offset_data)
                left = member.size
                while left:
                    block = raw.read(min(chunk, left))
                    if not block:
                        raise ImageRejected("truncated", f"member {member.name!r} ends past the end of the file")
                    left -= len(block)
                    yield block
                yield b"\0" * (-member.size % tarfile.BLOCKSIZE)
        yield b"\0" * (2 * tarfile.BLOCKSIZE)


def load_image(client: Any, path: Path, *, expected_id: str | None = None) -> str:
    """Load a checked archive into the engine, streamed from disk; return the pinned image ID (sha256:…).

    The engine is fed the archive without any name (untagged_archive), so a load never moves a tag on the
    node; the loaded image is known by its ID only. With `expected_id` (the config digest check_image_tar
    verified) the engine must report exactly that ID, or the load is refused.
    """
    loaded_ids: list[str] = []
    try:
        for event in client.api.load_image(untagged_archive(Path(path))):
            if not isinstance(event, dict):
                continue
            if event.get("error") or event.get("errorDetail"):
                message = event.get("error") or (event.get("errorDetail") or {}).get("message")
                raise ImageRejected("load_failed", str(message).strip())
            text = str(event.get("stream") or "").strip()
            if text.startswith("Loaded image ID:"):
                loaded_ids.append(text.split(":", 1)[1].strip())
            elif text.startswith("Loaded image: sha256:"):
                loaded_ids.append(text.split(":", 1)[1].strip())
    except docker.errors.APIError as err:
        if err.is_server_error() and not _looks_like_bad_archive(str(err)):
            raise _infra(err, "loading the image") from err
        raise ImageRejected("load_failed", str(err.explanation or err)) from None
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as err:
        raise _infra(err, "loading the image") from err
    if expected_id and loaded_ids and expected_id not in loaded_ids:
        raise ImageRejected("load_failed", f"the engine loaded {', '.join(loaded_ids)}, not the verified "
                            f"image {expected_id}")
    for candidate in [expected_id] if expected_id else loaded_ids:
        try:
            return str(client.api.inspect_image(candidate)["Id"])
        except docker.errors.NotFound:
            continue
        except (docker.errors.APIError, requests.exceptions.ConnectionError) as err:
            raise _infra(err, "inspecting the loaded image") from err
    raise ImageRejected("load_failed", "the engine reported no loaded image")


def _looks_like_bad_archive(message: str) -> bool:
    lowered = message.lower()
    return any(word in lowered for word in ("tar", "json", "manifest", "layer", "digest", "invalid",
                                            "unexpected eof", "no such file"))


_NAME_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?P<host>[A-Za-z0-9.-]+(?::[0-9]+)?)/(?P<path>{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")

_HOSTLESS = re.compile(rf"^{_NAME_COMPONENT}(?::[\w][\w.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?$")


def parse_reference(reference: str) -> tuple[str, str, str | None, str | None]:
    """Split `host[:port]/path[:tag][@sha256:…]` into (host, repository, tag, digest); the host is required."""
    match = _REFERENCE.match(reference.strip())
    if not match and _HOSTLESS.match(reference.strip()):
        raise ImageRejected("registry_not_allowed",
                            f"{reference!r} names no registry host (it would come from Docker Hub)")
    if not match:
        raise ImageRejected("bad_reference", f"{reference!r} is not host[:port]/name[:tag][@sha256:digest]")
    host = match["host"].lower()
    if "." not in host and ":" not in host and host != "localhost":
        raise ImageRejected("registry_not_allowed",
                            f"{reference!r} names no registry host (it would come from Docker Hub)")
    return host, f"{host}/{match['path']}", match["tag"], match["digest"]


def _check_host(host: str, registry_allowlist: list[str] | tuple[str, ...]) -> None:
    allowed = {h.strip().lower() for h in registry_allowlist}
    if host not in allowed:
        raise ImageRejected("registry_not_allowed", f"{host!r} is not the center's registry "
                            f"({', '.join(sorted(allowed)) or 'none configured'})")


def team_namespace(team_id: int) -> str:
    """The repository namespace a team pushes to in the center's registry: `team-<id>`."""
    return f"team-{int(team_id)}"


def team_repository_hint(team_id: int, registry_allowlist: list[str] | tuple[str, ...]) -> str:
    """Where a team pushes, as the submit page and refusals show it: `host/team-<id>/<name>`."""
    host = registry_allowlist[0] if registry_allowlist else "<registry>"
    return f"{host}/{team_namespace(team_id)}/<name>"


def check_team_reference(reference: str, namespace: str,
                         registry_allowlist: list[str] | tuple[str, ...]) -> tuple[str, str, str]:
    """The one rule for registry submissions: `<allowed host>/<namespace>/<name>[:tag]@sha256:<digest>`.

    Returns (host, repository, digest); raises ImageRejected before any registry or engine is asked. The
    namespace is the team's own (team_namespace), so no team can submit another team's repository; the digest
    pins the content the team pushed, whatever a tag points to later.
    """
    host, repository, _tag, digest = parse_reference(reference)
    _check_host(host, registry_allowlist)
    path = repository.split("/", 1)[1]
    if not path.startswith(namespace + "/"):
        raise ImageRejected("registry_namespace", f"{repository!r} is not under your team's namespace "
                            f"{host}/{namespace}/; push the image to {host}/{namespace}/<name> and submit it "
                            "from there")
    if not digest:
        raise ImageRejected("digest_required", f"{reference.strip()!r} has no @sha256:… digest")
    return host, repository, digest


def pull_image(client: Any, reference: str, registry_allowlist: list[str] | tuple[str, ...], *,
               platform: str = "linux/amd64") -> tuple[str, str]:
    """Pull from the center's own registry only; return (image ID, repo digest `host/name@sha256:…`).

    Any host not in `registry_allowlist` is refused before the engine is asked. A tag is resolved once, at
    pull time, to the digest the registry served; later runs use the ID. Which repositories a team may
    name is check_team_reference's rule, applied before this.
    """
    host, repository, tag, digest = parse_reference(reference)
    _check_host(host, registry_allowlist)
    served_digest = None
    try:
        for event in client.api.pull(repository, tag=digest or tag or "latest", stream=True, decode=True,
                                     platform=platform):
            if event.get("error") or event.get("errorDetail"):
                message = str(event.get("error") or (event.get("errorDetail") or {}).get("message"))
                raise _pull_error(message)
            status = str(event.get("status") or "")
            if status.startswith("Digest:"):
                served_digest = status.split(":", 1)[1].strip()
    except docker.errors.APIError as err:
        raise _pull_error(str(err.explanation or err), err) from None
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as err:
        raise _infra(err, "pulling the image") from err
    served_digest = served_digest or digest
    if digest and served_digest != digest:
        raise ImageRejected("pull_failed", f"the registry served {served_digest}, not the requested {digest}")
    if not served_digest:
        raise ImageRejected("pull_failed", "the registry reported no digest")
    repo_digest = f"{repository}@{served_digest}"
    try:
        image = client.api.inspect_image(repo_digest)
    except docker.errors.NotFound:
        raise ImageRejected("pull_failed", f"{repo_digest} is not on the node after the pull") from None
    except (docker.errors.APIError, requests.exceptions.ConnectionError) as err:
        raise _infra(err, "inspecting the pulled image") from err
    return str(image["Id"]), repo_digest


def _pull_error(message: str, err: Exception | None = None) -> Exception:
    lowered = message.lower()
    if any(word in lowered for word in ("not found", "manifest unknown", "unauthorized", "denied",
                                        "no matching manifest", "invalid reference")):
        return ImageRejected("pull_failed", message.strip())
    return SandboxInfraError(f"pulling the image: {message.strip()}")


def inspect_for_run(client: Any, image_id: str, *, max_image_bytes: int, allowed_platform: str = "linux/amd64",
                    require_command: bool = True) -> ImageFacts:
    """Inspect a loaded image before a run: platform, size, command, user, env the sandbox overrides, and the
    VOLUMEs it declares (refused when the sandbox could not mask them with a capped tmpfs)."""
    try:
        attrs = client.api.inspect_image(image_id)
    except docker.errors.NotFound:
        raise ImageRejected("image_missing", f"no image {image_id} on this node") from None
    except (docker.errors.APIError, requests.exceptions.ConnectionError) as err:
        raise _infra(err, "inspecting the image") from err
    config = attrs.get("Config") or {}
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = str(item).partition("=")
        env[key] = value
    facts = ImageFacts(
        image_id=str(attrs["Id"]), architecture=str(attrs.get("Architecture")), os=str(attrs.get("Os")),
        size=int(attrs.get("Size") or 0), entrypoint=tuple(config.get("Entrypoint") or ()),
        cmd=tuple(config.get("Cmd") or ()), user=str(config.get("User") or ""),
        working_dir=str(config.get("WorkingDir") or ""), env=env,
        overridden_env=tuple(sorted(name for name in env if name in guarded_env_names()
                                    or name.startswith(GUARDED_ENV_PREFIXES))),
        volumes=tuple(sorted(config.get("Volumes") or {})),
        ignored_config=tuple(name for name, key in (("HEALTHCHECK", "Healthcheck"), ("STOPSIGNAL", "StopSignal"),
                                                    ("USER", "User"), ("EXPOSE", "ExposedPorts"),
                                                    ("ONBUILD", "OnBuild")) if config.get(key)),
    )
    platform = f"{facts.os}/{facts.architecture}"
    if platform != allowed_platform and not allowed_platform.startswith(platform + "/"):
        raise ImageRejected("wrong_platform", f"the image is {platform}, the platform runs {allowed_platform}")
    if facts.size > max_image_bytes:
        raise ImageRejected("too_large", f"the image is {facts.size} bytes, over the limit of {max_image_bytes}")
    if require_command and not facts.has_command:
        raise ImageRejected("no_command", "the image has neither ENTRYPOINT nor CMD")
    try:
        volume_masks(facts.volumes)   # the sandbox applies the same rule again when it creates the container
    except UnsafeImageConfig as err:
        raise ImageRejected("volume_refused", str(err)) from None
    return facts


__all__ = ["ImageFacts", "ImageRejected", "ImageTarInfo", "REASONS", "check_image_tar", "check_team_reference",
           "inspect_for_run", "load_image", "parse_reference", "pull_image", "stream_upload_to_file",
           "team_namespace", "team_repository_hint", "untagged_archive"]
