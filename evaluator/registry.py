"""The center's registry client: the OCI distribution HTTP API, spoken directly with `requests`.

The platform holds the only push credential; teams never talk to the registry. Everything is pushed by digest
and nothing is tagged.

API
- `RegistryRef(url, user=None, password=None)`: where the registry is (`http://127.0.0.1:5000`) and the
  optional basic-auth push credential; `RegistryRef.from_config(cfg)` reads `REGISTRY_URL`, `REGISTRY_USER`,
  `REGISTRY_PASSWORD` (env `HUB_REGISTRY_*`) and gives None when no registry is configured.
  `ref.reference(repository, digest)` is what a node pulls: `host:port/team-7/sub@sha256:…`.
- `repository_for(team_id, name="sub") -> "team-<id>/<name>"`, and `check_namespace(repository, team_id)`:
  the platform pushes a team's image into that team's namespace only.
- `push_image_tar(registry, repository, tar_path, info=None, progress=None, *, team_id=None, mount_from=None)
  -> PushedImage(manifest_digest, config_digest, layers_sent, bytes_sent)`: push the one image of a checked
  `docker save` archive (Docker's layout and/or the OCI layout). Each layer goes up UNCOMPRESSED as
  `application/vnd.oci.image.layer.v1.tar`, so its digest is the config's `rootfs.diff_ids` entry and
  nothing is recompressed; a layer the repository already has (HEAD) is skipped, one another repository of the
  same namespace has is mounted; the rest is streamed in chunks (POST, PATCH…, PUT ?digest=) and hashed while
  read: bytes that do not hash to the declared digest are refused (ImageRejected "layer_digest") before the
  final PUT, and the upload session is cancelled. Then the config blob, then an OCI image manifest PUT by its
  digest (never a tag); `with_manifest=False` stops before the manifest, which `put_manifest(registry,
  repository, pushed)` PUTs later. `progress(sent, total)` is called after each chunk (total: the stored size
  of the layers the repository lacks, exact for uncompressed archives; mounted ones are never sent).
- `blobs_present(registry, repository, digests) -> set[str]`, `delete_manifest(registry, repository,
  digest) -> bool`, `prune_references(registry, references, dry_run=False) -> Pruned` (retention's deletes),
  `team_repositories(registry, namespace) -> list[str]` (the catalog, one page).
- `garbage_collect(config_path)`: `docker-registry garbage-collect` WITHOUT `--delete-untagged`.

Infrastructure failures (connection, 5xx, unexpected answers) raise RegistryError; what is wrong with the
team's archive raises intake.ImageRejected. Token (Bearer) auth is not spoken: the center's registry uses
htpasswd basic auth, or none on loopback.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

import requests

from evaluator.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical_json
from evaluator.intake import (_NAME_COMPONENT, ImageRejected, ImageTarInfo, _decompressed, _locate_docker,
                              _locate_oci, _norm, _read_json, team_namespace)

CHUNK = 8 << 20
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_REPOSITORY = re.compile(rf"{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*")
Progress = Callable[[int, int], None]


class RegistryError(RuntimeError):
    """The registry could not be reached or answered something unexpected (infrastructure, not the team)."""


@dataclass(frozen=True)
class RegistryRef:
    """A registry's base URL (scheme, host, port) and the platform's optional basic-auth push credential."""

    url: str
    user: str | None = None
    password: str | None = None
    timeout: float = 60.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RegistryRef | None:
        url = str(config.get("REGISTRY_URL") or "").strip()
        if not url:
            return None
        return cls(url=url, user=config.get("REGISTRY_USER") or None,
                   password=config.get("REGISTRY_PASSWORD") or None)

    @property
    def base(self) -> str:
        return self.url.rstrip("/")

    @property
    def host(self) -> str:
        """`host:port` as image references name the registry."""
        return urlsplit(self.base).netloc

    def reference(self, repository: str, digest: str) -> str:
        return f"{self.host}/{repository}@{digest}"

    def session(self) -> requests.Session:
        s = requests.Session()
        if self.user:
            s.auth = (self.user, self.password or "")
        return s


@dataclass(frozen=True)
class PushedImage:
    manifest_digest: str
    config_digest: str     # the image ID the engine gives the pulled image
    layers_sent: int       # layers whose bytes went up (not present, not mounted)
    bytes_sent: int
    manifest: bytes = b""  # the OCI manifest's canonical bytes (hash: manifest_digest)


def repository_for(team_id: int, name: str = "sub") -> str:
    """The repository a team's images go to: `team-<id>/<name>`."""
    repository = f"{team_namespace(team_id)}/{name}"
    if not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"{name!r} is not a valid repository name")
    return repository


def check_namespace(repository: str, team_id: int | None) -> None:
    """Refuse a repository that is not a valid name, or (given a team) not under `team-<id>/`."""
    if not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"{repository!r} is not a valid repository name")
    if team_id is not None and not repository.startswith(team_namespace(team_id) + "/"):
        raise ValueError(f"{repository!r} is outside the namespace {team_namespace(team_id)}/ of team {team_id}")


def _check(resp: requests.Response, what: str, *ok: int) -> requests.Response:
    if resp.status_code not in ok:
        raise RegistryError(f"{what}: HTTP {resp.status_code} {resp.text[:300].strip()}")
    return resp


def _request(s: requests.Session, registry: RegistryRef, method: str, url: str, **kw: Any) -> requests.Response:
    try:
        return s.request(method, url, timeout=registry.timeout, **kw)
    except requests.RequestException as err:
        raise RegistryError(f"{method} {url}: {err.__class__.__name__}: {err}") from err


def _blob_size(s: requests.Session, registry: RegistryRef, repository: str, digest: str) -> int | None:
    """The blob's size when `repository` has it (HEAD), else None."""
    resp = _request(s, registry, "HEAD", f"{registry.base}/v2/{repository}/blobs/{digest}")
    if resp.status_code == 404:
        return None
    _check(resp, f"HEAD blob {digest} in {repository}", 200)
    return int(resp.headers.get("Content-Length") or 0)


def blobs_present(registry: RegistryRef, repository: str, digests: Iterable[str]) -> set[str]:
    """Which of `digests` the repository holds (one HEAD each)."""
    with registry.session() as s:
        return {d for d in dict.fromkeys(digests) if _blob_size(s, registry, repository, d) is not None}


def team_repositories(registry: RegistryRef, namespace: str, page: int = 100) -> list[str]:
    """The repositories under `namespace/`, from one page of the catalog (ordered, so it starts right there).

    A registry that hides its catalog gives []: mounting is an optimisation, never needed.
    """
    with registry.session() as s:
        resp = _request(s, registry, "GET", f"{registry.base}/v2/_catalog",
                        params={"n": page, "last": namespace + "/"})
    if resp.status_code != 200:
        return []
    names = (resp.json() or {}).get("repositories") or []
    return [n for n in names if isinstance(n, str) and n.startswith(namespace + "/")]


def delete_manifest(registry: RegistryRef, repository: str, digest: str) -> bool:
    """Delete a manifest by digest; False when it was not there. Its blobs go at the next garbage_collect."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"{digest!r} is not a sha256 digest")
    with registry.session() as s:
        resp = _request(s, registry, "DELETE", f"{registry.base}/v2/{repository}/manifests/{digest}")
    if resp.status_code == 404:
        return False
    _check(resp, f"DELETE manifest {digest} in {repository}", 202)
    return True


@dataclass(frozen=True)
class Pruned:
    deleted: tuple[str, ...]    # references whose manifest was deleted (or would be, on a dry run)
    missing: tuple[str, ...]    # already gone
    foreign: tuple[str, ...]    # not digests in this registry (another host, a tag, an archive's name): untouched


def prune_references(registry: RegistryRef, references: Iterable[str], *, dry_run: bool = False) -> Pruned:
    """Delete the manifests of `host/repo@sha256:…` references in this registry; the next GC frees their blobs."""
    deleted, missing, foreign = [], [], []
    for reference in references:
        host, _, rest = reference.partition("/")
        repository, _, digest = rest.partition("@")
        if host.lower() != registry.host.lower() or not _REPOSITORY.fullmatch(repository) \
                or not _DIGEST.fullmatch(digest):
            foreign.append(reference)
        elif dry_run or delete_manifest(registry, repository, digest):
            deleted.append(reference)
        else:
            missing.append(reference)
    return Pruned(tuple(deleted), tuple(missing), tuple(foreign))


def garbage_collect(config_path: Path, *, binary: str = "docker-registry", dry_run: bool = False,
                    timeout: float = 3600) -> str:
    """Remove blobs no manifest references: `docker-registry garbage-collect <config>`; returns its output.

    The registry serving that storage MUST be stopped, or in `storage.maintenance.readonly` mode, while this
    runs: a push in between can lose blobs it has just uploaded. Never with `--delete-untagged`: everything
    is pushed by digest, untagged, so that flag would delete every image.
    """
    args = [binary, "garbage-collect", str(config_path)]
    if dry_run:
        args.append("--dry-run")
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RegistryError(f"garbage-collect failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout + done.stderr


# ---------------------------------------------------------------- push
class _Pusher:
    """One push: a session, the counters and the blob uploads."""

    def __init__(self, registry: RegistryRef, repository: str, progress: Progress | None,
                 mount_from: list[str] | None) -> None:
        self.registry, self.repository, self.progress = registry, repository, progress
        self.total = 0   # progress's total: set once the missing layers are known
        self.mount_from = mount_from
        self.s = registry.session()
        self.layers_sent = 0
        self.bytes_sent = 0
        self.sizes: dict[str, int | None] = {}   # digest -> size in the repository, None: missing
        self.url = f"{registry.base}/v2/{repository}"

    def _siblings(self) -> list[str]:
        if self.mount_from is None:   # looked up once, and only when some layer is missing
            namespace = self.repository.split("/", 1)[0]
            self.mount_from = [r for r in team_repositories(self.registry, namespace) if r != self.repository]
        return self.mount_from

    def _start(self, digest: str) -> str | None:
        """Mount `digest` from a sibling repository (None: done) or open an upload session (its URL)."""
        for sibling in self._siblings():
            if _blob_size(self.s, self.registry, sibling, digest) is None:
                continue
            resp = _check(_request(self.s, self.registry, "POST", f"{self.url}/blobs/uploads/",
                                   params={"mount": digest, "from": sibling}),
                          f"mount {digest} from {sibling}", 201, 202)
            if resp.status_code == 201:
                return None
            return urljoin(self.url, resp.headers["Location"])   # not mounted: the session it opened
        resp = _check(_request(self.s, self.registry, "POST", f"{self.url}/blobs/uploads/"),
                      f"start upload in {self.repository}", 202)
        return urljoin(self.url, resp.headers["Location"])

    def present(self, digests: Iterable[str]) -> None:
        """HEAD each digest once; blob() reuses the answer."""
        for digest in digests:
            if digest not in self.sizes:
                self.sizes[digest] = _blob_size(self.s, self.registry, self.repository, digest)

    def blob(self, digest: str, stream: IO[bytes], what: str, *, layer: bool = True) -> int:
        """Ensure the repository has blob `digest` with `stream`'s bytes; return its size.

        Only layers count in layers_sent/bytes_sent (and progress): the config is a few KiB.
        """
        self.present([digest])
        if self.sizes[digest] is not None:
            return self.sizes[digest]  # type: ignore[return-value]
        location = self._start(digest)
        if location is None:
            self.sizes[digest] = _blob_size(self.s, self.registry, self.repository, digest) or 0
            return self.sizes[digest]  # type: ignore[return-value]
        self.layers_sent += layer
        hasher, offset = hashlib.sha256(), 0
        try:
            while block := stream.read(CHUNK):
                hasher.update(block)
                resp = _check(_request(self.s, self.registry, "PATCH", location, data=block, headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(block) - 1}"}), f"upload {what}", 202)
                location = urljoin(self.url, resp.headers["Location"])
                offset += len(block)
                if layer:
                    self.bytes_sent += len(block)
                if layer and self.progress:
                    self.progress(self.bytes_sent, self.total)
            actual = "sha256:" + hasher.hexdigest()
            if actual != digest:
                raise ImageRejected("layer_digest", f"{what} hashes to {actual}, but the image config declares "
                                    f"{digest}")
            _check(_request(self.s, self.registry, "PUT", location, params={"digest": digest}),
                   f"finish upload of {what}", 201)
        except BaseException:
            # Cancel the session, so refused bytes are not even left in the registry's upload area.
            try:
                self.s.delete(location, timeout=self.registry.timeout)
            except requests.RequestException:
                pass
            raise
        self.sizes[digest] = offset
        return offset


def _archive(tar: tarfile.TarFile) -> tuple[bytes, list[tarfile.TarInfo]]:
    """The config's bytes and the layer members of the archive's one image (either layout)."""
    members = {_norm(m.name): m for m in tar.getmembers()}
    if "manifest.json" in members:
        config_name, layer_names, _ = _locate_docker(_read_json(tar, members, "manifest.json", "manifest"))
    elif "index.json" in members:
        config_name, layer_names, _ = _locate_oci(tar, members, _read_json(tar, members, "index.json", "index"))
    else:
        raise ImageRejected("not_an_image", "the archive has neither manifest.json nor index.json")
    _read_json(tar, members, config_name, "image config")   # checks it exists, is a file and is small
    config = tar.extractfile(members[_norm(config_name)]).read()  # type: ignore[union-attr]
    layers = []
    for name in layer_names:
        member = members.get(_norm(name))
        if member is None or not member.isfile():
            raise ImageRejected("invalid_manifest", f"layer {name!r} is missing from the archive")
        layers.append(member)
    return config, layers


def _uncompressed(fh: IO[bytes]) -> IO[bytes]:
    """A layer member as its uncompressed tar: OCI-layout archives may store gzip (bzip2, xz) blobs."""
    head = fh.peek(8)[:8] if hasattr(fh, "peek") else b""
    return _decompressed(fh, head) or fh


def push_image_tar(registry: RegistryRef, repository: str, tar_path: Path, info: ImageTarInfo | None = None,
                   progress: Progress | None = None, *, team_id: int | None = None,
                   mount_from: list[str] | None = None, with_manifest: bool = True) -> PushedImage:
    """Push the image of a `docker save` archive by digest; see the module docstring.

    `info` (check_image_tar's result) pins the config: the archive's must hash to `info.image_id`. With
    `team_id` the repository must be in that team's namespace. `mount_from` names the repositories to mount
    layers from (default: the catalog's repositories of the repository's namespace; [] for none).
    `with_manifest=False` pushes the blobs only: the caller PUTs `PushedImage.manifest` later with put_manifest
    (the upload path does it once the submission's slot is taken, so a refused upload leaves no manifest).
    """
    check_namespace(repository, team_id)
    if mount_from is not None:
        namespace = repository.split("/", 1)[0] + "/"
        mount_from = [r for r in mount_from if r.startswith(namespace) and r != repository]
    with tarfile.open(Path(tar_path), mode="r:") as tar:
        config, members = _archive(tar)
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        if info is not None and config_digest != info.image_id:
            raise ImageRejected("invalid_manifest", f"the archive's config is {config_digest}, not the checked "
                                f"image {info.image_id}")
        diff_ids = _diff_ids(config)
        if len(diff_ids) != len(members):
            raise ImageRejected("layer_digest", f"the image config declares {len(diff_ids)} layer digest(s) in "
                                f"rootfs.diff_ids, but the archive lists {len(members)} layers")
        pusher = _Pusher(registry, repository, progress, mount_from)
        with pusher.s:
            pusher.present(diff_ids)
            pusher.total = sum({d: m.size for m, d in zip(members, diff_ids) if pusher.sizes[d] is None}.values())
            descriptors = []
            for index, (member, diff_id) in enumerate(zip(members, diff_ids), start=1):
                with tar.extractfile(member) as fh:  # type: ignore[union-attr]
                    size = pusher.blob(diff_id, _uncompressed(fh), f"layer {index} ({member.name})")
                descriptors.append({"mediaType": OCI_LAYER, "digest": diff_id, "size": size})
            pusher.blob(config_digest, io.BytesIO(config), "the image config", layer=False)
            manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                       "config": {"mediaType": OCI_CONFIG, "digest": config_digest,
                                                  "size": len(config)},
                                       "layers": descriptors})
    pushed = PushedImage(manifest_digest="sha256:" + hashlib.sha256(manifest).hexdigest(),
                         config_digest=config_digest, layers_sent=pusher.layers_sent, bytes_sent=pusher.bytes_sent,
                         manifest=manifest)
    if with_manifest:
        put_manifest(registry, repository, pushed)
    return pushed


def put_manifest(registry: RegistryRef, repository: str, pushed: PushedImage) -> None:
    """PUT a pushed image's OCI manifest by its digest (never a tag); its blobs must be there already."""
    with registry.session() as s:
        resp = _check(_request(s, registry, "PUT", f"{registry.base}/v2/{repository}/manifests/"
                               f"{pushed.manifest_digest}", data=pushed.manifest,
                               headers={"Content-Type": OCI_MANIFEST}),
                      f"PUT manifest in {repository}", 201)
    served = resp.headers.get("Docker-Content-Digest")
    if served and served != pushed.manifest_digest:
        raise RegistryError(f"the registry stored the manifest as {served}, not {pushed.manifest_digest}")


def _diff_ids(config: bytes) -> list[str]:
    try:
        diff_ids = ((json.loads(config) or {}).get("rootfs") or {}).get("diff_ids")
    except (ValueError, AttributeError):
        diff_ids = None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and _DIGEST.fullmatch(d) for d in diff_ids):
        raise ImageRejected("invalid_manifest", "the image config's rootfs.diff_ids is not a list of sha256 digests")
    return diff_ids


__all__ = ["Pruned", "PushedImage", "RegistryError", "RegistryRef", "blobs_present", "check_namespace",
           "delete_manifest", "garbage_collect", "prune_references", "push_image_tar", "put_manifest",
           "repository_for", "team_repositories"]
