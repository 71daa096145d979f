"""Evaluator fixtures: offline busybox images, `docker save` archives, a loopback docker-registry."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator import images
from tests.conftest import LocalRegistry, require


@pytest.fixture(scope="session")
def busybox_binary() -> Path:
    require(images.BUSYBOX.exists(), "static busybox (/bin/busybox, Debian's busybox-static)")
    return images.BUSYBOX


@pytest.fixture(scope="session")
def busybox_image(docker_client: Any, busybox_binary: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """`busybox_image(script, **opts) -> image ID`: a FROM-scratch busybox image running `script`.

    Built offline (evaluator.images) and cached per (script, opts) for the session; opts go to
    images.busybox_parts (env, user, entrypoint, architecture, files …) plus layout=.
    """
    workdir = tmp_path_factory.mktemp("images")
    cache: dict[str, str] = {}

    def build(script: str, **opts: Any) -> str:
        key = json.dumps([script, opts], sort_keys=True, default=repr)
        if key not in cache:
            cache[key] = images.build_busybox_image(docker_client, script, workdir=workdir, **opts)
        return cache[key]

    yield build
    for image_id in set(cache.values()):
        try:
            docker_client.images.remove(image_id, force=True)
        except Exception:  # noqa: BLE001 - another test's container may still hold it; the id is content-addressed
            pass


@pytest.fixture
def docker_tar(docker_client: Any) -> Callable[[Path, str], Path]:
    """`docker_tar(tmp_path, image) -> path`: `docker save` an image to a tar, streamed to disk."""

    def save(tmp_path: Path, image: str) -> Path:
        return images.save_image(docker_client, image, Path(tmp_path) / f"{image.replace(':', '_')[-16:]}.tar")

    return save


@pytest.fixture(scope="session")
def local_registry(docker_client: Any, registry: LocalRegistry) -> str:
    """The session's docker-registry (tests/conftest.py) as image references name it: "127.0.0.1:PORT"."""
    return registry.address


@pytest.fixture
def center(make_registry: Callable[[], LocalRegistry]) -> Iterator[LocalRegistry]:
    """The center's registry uploads are pushed to, of this test alone (so its manifests and blobs are the test's)."""
    reg = make_registry()
    reg.start()
    yield reg
    reg.stop()


def manifests(reg: LocalRegistry, repository: str) -> set[str]:
    """The manifest digests `repository` holds, read from the registry's storage (a deleted one is unlinked)."""
    revisions = reg.workdir / "data/docker/registry/v2/repositories" / repository / "_manifests/revisions/sha256"
    return {f"sha256:{p.parent.name}" for p in revisions.glob("*/link")}


def blobs(reg: LocalRegistry) -> set[str]:
    """Every blob digest in the registry's storage (layers and configs, referenced or not)."""
    return {f"sha256:{p.parent.name}" for p in (reg.workdir / "data/docker/registry/v2/blobs/sha256").glob("*/*/data")}
