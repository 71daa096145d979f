"""Small Docker images built offline from a static busybox and a shell script.

No registry is needed: the image is written as a `docker save` archive (Docker's layout, the OCI layout that
Docker 25+ writes, or both) and loaded into the engine. Used by the tests, the demo and bench/; the lower
level pieces (`layer_tar`, `image_config`, `write_image_archive`) also let tests craft hostile archives.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.intake import load_image

BUSYBOX = Path("/bin/busybox")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A fixed timestamp keeps archives byte-identical, so the same script always gives the same image ID.
EPOCH = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class Entry:
    """One member of a layer tar: a file (data), a directory, a symlink or a hard link."""

    name: str
    data: bytes = b""
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""
    uid: int = 0
    gid: int = 0


@dataclass
class ImageParts:
    """What one image in an archive is made of: its config and its uncompressed layer tars."""

    config: dict[str, Any]
    layers: list[bytes]
    repo_tags: list[str] = field(default_factory=list)

    @property
    def config_bytes(self) -> bytes:
        return canonical_json(self.config)

    @property
    def image_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config_bytes).hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tarinfo(entry: Entry) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.name)
    info.type = entry.kind
    info.mode = entry.mode
    info.mtime = EPOCH
    info.uid, info.gid = entry.uid, entry.gid
    info.linkname = entry.linkname
    info.size = len(entry.data) if entry.kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    return info


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """A plain tar of `entries`, in the given order, deterministic (fixed mtime, uid 0)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = _tarinfo(entry)
            tar.addfile(info, io.BytesIO(entry.data) if info.size else None)
    return buf.getvalue()


def layer_tar(entries: Iterable[Entry]) -> bytes:
    return tar_bytes(entries)


def busybox_applets(busybox: Path = BUSYBOX) -> list[str]:
    out = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout
    return sorted({line.strip() for line in out.splitlines() if line.strip() and "/" not in line})


_APPLET_CACHE: dict[Path, list[str]] = {}


def busybox_layer(script: str, *, busybox: Path = BUSYBOX, files: dict[str, bytes] | None = None) -> bytes:
    """A root filesystem: busybox with every applet linked in /bin, the script at /app/run.sh, and `files`."""
    if busybox not in _APPLET_CACHE:
        _APPLET_CACHE[busybox] = busybox_applets(busybox)
    entries = [Entry("bin", kind=tarfile.DIRTYPE, mode=0o755),
               Entry("bin/busybox", busybox.read_bytes(), mode=0o755)]
    entries += [Entry(f"bin/{name}", kind=tarfile.SYMTYPE, linkname="busybox", mode=0o777)
                for name in _APPLET_CACHE[busybox] if name != "busybox"]
    entries += [
        Entry("etc", kind=tarfile.DIRTYPE, mode=0o755),
        Entry("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        Entry("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
        Entry("app", kind=tarfile.DIRTYPE, mode=0o755),
        Entry("app/run.sh", script.encode(), mode=0o755),
        # Mount points of the sandbox, so a read-only root needs nothing created at start.
        Entry("input", kind=tarfile.DIRTYPE, mode=0o755),
        Entry("output", kind=tarfile.DIRTYPE, mode=0o755),
        Entry("tmp", kind=tarfile.DIRTYPE, mode=0o1777),
    ]
    for name, data in sorted((files or {}).items()):
        entries.append(Entry(name.lstrip("/"), data, mode=0o755))
    return layer_tar(entries)


def image_config(layers: Sequence[bytes], *, architecture: str = "amd64", os: str = "linux",
                 entrypoint: list[str] | None = None, cmd: list[str] | None = None, user: str = "",
                 env: dict[str, str] | None = None, workdir: str = "/", labels: dict[str, str] | None = None,
                 volumes: Sequence[str] = (), healthcheck: dict[str, Any] | None = None,
                 stop_signal: str | None = None, exposed_ports: Sequence[str] = (),
                 on_build: Sequence[str] = ()) -> dict[str, Any]:
    """An image config (the JSON whose sha256 is the image ID) for uncompressed `layers`.

    `volumes` (VOLUME paths), `healthcheck` (Docker's {"Test": [...], "Interval": ns, ...}), `stop_signal`,
    `exposed_ports` ("8080/tcp") and `on_build` (ONBUILD instructions) are what a Dockerfile would declare;
    left unset they are not written, so an image without them keeps the ID it always had.
    """
    config: dict[str, Any] = {
        "Env": [PATH_ENV] + [f"{k}={v}" for k, v in (env or {}).items()],
        "Entrypoint": entrypoint,
        "Cmd": cmd,
        "User": user,
        "WorkingDir": workdir,
        "Labels": labels or None,
    }
    if volumes:
        config["Volumes"] = {path: {} for path in volumes}
    if healthcheck is not None:
        config["Healthcheck"] = healthcheck
    if stop_signal is not None:
        config["StopSignal"] = stop_signal
    if exposed_ports:
        config["ExposedPorts"] = {port: {} for port in exposed_ports}
    if on_build:
        config["OnBuild"] = list(on_build)
    return {
        "architecture": architecture,
        "os": os,
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha256_hex(layer) for layer in layers]},
        "history": [{"created": CREATED, "created_by": "evaluator.images"} for _ in layers],
    }


def busybox_parts(script: str, *, architecture: str = "amd64", os: str = "linux", user: str = "",
                  env: dict[str, str] | None = None, entrypoint: list[str] | None = None,
                  cmd: list[str] | None = None, files: dict[str, bytes] | None = None,
                  extra_layers: Sequence[bytes] = (), repo_tags: Sequence[str] = (),
                  busybox: Path = BUSYBOX, **declared: Any) -> ImageParts:
    """The parts of a busybox image that runs `script` with /bin/sh (unless `entrypoint` says otherwise).

    `declared` goes to image_config: volumes, healthcheck, stop_signal, exposed_ports, on_build.
    """
    layers = [busybox_layer(script, busybox=busybox, files=files), *extra_layers]
    if entrypoint is None and cmd is None:
        entrypoint = ["/bin/sh", "/app/run.sh"]
    config = image_config(layers, architecture=architecture, os=os, entrypoint=entrypoint, cmd=cmd, user=user,
                          env=env, **declared)
    return ImageParts(config=config, layers=layers, repo_tags=list(repo_tags))


def write_image_archive(dest: Path, images: Sequence[ImageParts], *, layout: str = "docker",
                        extra: Iterable[tuple[tarfile.TarInfo, bytes]] = ()) -> Path:
    """Write `images` as a `docker save` archive.

    layout: "docker" (manifest.json, <layer>/layer.tar, as Docker < 25 saves), "oci" (index.json and
    blobs/ only) or "docker+oci" (both, as Docker 25+ saves). `extra` members are appended as given:
    tests use it for hostile members.
    """
    if layout not in ("docker", "oci", "docker+oci"):
        raise ValueError(f"unknown layout {layout!r}")
    members: dict[str, bytes] = {}
    docker_manifest: list[dict[str, Any]] = []
    index_entries: list[dict[str, Any]] = []
    for parts in images:
        cfg = parts.config_bytes
        cfg_hex = sha256_hex(cfg)
        if layout == "docker":
            members[f"{cfg_hex}.json"] = cfg
            layer_paths = []
            for layer in parts.layers:
                # Legacy layer directories are named by a chain id; any unique hex name loads the same.
                layer_dir = sha256_hex(cfg_hex.encode() + sha256_hex(layer).encode())
                members[f"{layer_dir}/VERSION"] = b"1.0"
                members[f"{layer_dir}/json"] = canonical_json({"id": layer_dir})
                members[f"{layer_dir}/layer.tar"] = layer
                layer_paths.append(f"{layer_dir}/layer.tar")
            docker_manifest.append({"Config": f"{cfg_hex}.json", "RepoTags": parts.repo_tags or None,
                                    "Layers": layer_paths})
            continue
        members[f"blobs/sha256/{cfg_hex}"] = cfg
        layer_descs = []
        for layer in parts.layers:
            layer_hex = sha256_hex(layer)
            members[f"blobs/sha256/{layer_hex}"] = layer
            layer_descs.append({"mediaType": OCI_LAYER, "digest": f"sha256:{layer_hex}", "size": len(layer)})
        manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                   "config": {"mediaType": OCI_CONFIG, "digest": f"sha256:{cfg_hex}",
                                              "size": len(cfg)},
                                   "layers": layer_descs})
        manifest_hex = sha256_hex(manifest)
        members[f"blobs/sha256/{manifest_hex}"] = manifest
        entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": f"sha256:{manifest_hex}",
                                 "size": len(manifest)}
        if parts.repo_tags:
            entry["annotations"] = {"io.containerd.image.name": parts.repo_tags[0],
                                    "org.opencontainers.image.ref.name": parts.repo_tags[0].rsplit(":", 1)[-1]}
        index_entries.append(entry)
        docker_manifest.append({"Config": f"blobs/sha256/{cfg_hex}", "RepoTags": parts.repo_tags or None,
                                "Layers": [f"blobs/sha256/{sha256_hex(layer)}" for layer in parts.layers]})
    if layout in ("oci", "docker+oci"):
        members["oci-layout"] = canonical_json({"imageLayoutVersion": "1.0.0"})
        members["index.json"] = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                "manifests": index_entries})
    if layout in ("docker", "docker+oci"):
        members["manifest.json"] = canonical_json(docker_manifest)

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({name.rsplit("/", 1)[0] for name in members if "/" in name})
        for d in dirs:
            if d == "blobs/sha256":
                tar.addfile(_tarinfo(Entry("blobs", kind=tarfile.DIRTYPE, mode=0o755)))
            tar.addfile(_tarinfo(Entry(d, kind=tarfile.DIRTYPE, mode=0o755)))
        for name, data in members.items():
            tar.addfile(_tarinfo(Entry(name, data)), io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return dest


def build_busybox_image(client: Any, script: str, *, workdir: Path, layout: str = "docker",
                        **opts: Any) -> str:
    """Build a busybox image running `script`, load it into the engine, return its image ID (sha256:…)."""
    parts = busybox_parts(script, **opts)
    workdir.mkdir(parents=True, exist_ok=True)
    # A unique name: several processes may build the same script into one folder at once.
    fd, name = tempfile.mkstemp(prefix=f"{parts.image_id[7:19]}-", suffix=".tar", dir=workdir)
    os.close(fd)
    path = write_image_archive(Path(name), [parts], layout=layout)
    try:
        return load_image(client, path, expected_id=parts.image_id)
    finally:
        path.unlink(missing_ok=True)


def save_image(client: Any, image: str, dest: Path, chunk_size: int = 1 << 20) -> Path:
    """`docker save` an image (ID or reference) to `dest`, streamed, never held in memory."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as fh:
        for chunk in client.api.get_image(image, chunk_size=chunk_size):
            fh.write(chunk)
    return dest
