"""`docker save` of a local image into a file.

Through the Docker SDK when it is installed (`pip install './client[docker]'`), else by running `docker save -o`,
so a plain install needs nothing but Python and the docker command the team already has.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hub_submit import CliError

CHUNK = 1 << 20
SAVE_TIMEOUT_S = 3600


def _sdk_client() -> Any | None:
    """A Docker SDK client whose engine answered; None when the SDK is not installed."""
    try:
        # The optional extra: imported here, and only here, so that a plain install never needs it.
        import docker
    except ImportError:
        return None
    client = docker.from_env(timeout=600)
    client.ping()
    return client


def _save_with_sdk(client: Any, image: str, dest: Path) -> Path:
    try:
        with dest.open("wb") as fh:
            for chunk in client.api.get_image(image, chunk_size=CHUNK):
                fh.write(chunk)
    except Exception as err:  # noqa: BLE001 - the engine's and the file's errors alike
        raise CliError(f"could not save image {image!r}: {err}") from err
    return dest


def _save_with_cli(docker_cmd: str, image: str, dest: Path) -> Path:
    try:
        done = subprocess.run([docker_cmd, "save", "-o", str(dest), image], capture_output=True, text=True,
                              timeout=SAVE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise CliError(f"could not save image {image!r}: {err}") from err
    if done.returncode != 0 or not dest.is_file():
        detail = done.stderr.strip() or f"docker save exited with status {done.returncode}"
        raise CliError(f"could not save image {image!r}: {detail}")
    return dest


def save_image(image: str, dest: Path) -> Path:
    """`docker save IMAGE` into `dest`, streamed to disk, never held in memory."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    unreachable: Exception | None = None
    try:
        client = _sdk_client()
    except Exception as err:  # noqa: BLE001 - any way the engine is out of reach
        client, unreachable = None, err
    if client is not None:
        return _save_with_sdk(client, image, dest)
    docker_cmd = shutil.which("docker")
    if docker_cmd is not None:
        # Also when the SDK found no engine: the command follows `docker context` (Docker Desktop, rootless,
        # remote engines), which the SDK, reading only DOCKER_HOST, does not.
        return _save_with_cli(docker_cmd, image, dest)
    if unreachable is not None:
        reason = unreachable.__class__.__name__
        raise CliError(f"Docker is not reachable here ({reason}); is the daemon running?") from unreachable
    raise CliError("cannot save the image: neither the docker command nor the Docker SDK "
                   "(pip install 'hub-submit[docker]') is installed here")
