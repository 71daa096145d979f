"""Evaluator fixtures: offline busybox images, `docker save` archives, a loopback docker-registry."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from evaluator import images
from tests.conftest import require


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def local_registry(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry on a free 127.0.0.1 port with a temp storage dir; yields "127.0.0.1:PORT"."""
    binary = shutil.which("docker-registry")
    require(binary is not None, "docker-registry (Debian package)")
    workdir = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = workdir / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen([str(binary), "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    ready = False
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://{address}/v2/", timeout=1) as resp:
                ready = resp.status == 200
                break
        except OSError:
            time.sleep(0.1)
    try:
        require(ready, "docker-registry (did not start)")
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=10)
