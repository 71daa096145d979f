"""hub-submit against a stand-in platform (a stdlib HTTP server) and a stand-in `docker` command: no services needed."""
from __future__ import annotations

import io
import json
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hub_submit import CliError, api, cli, image

LOG_PATH = "/api/v1/submissions/1/log"
# Writes the last argument's name into the file after -o, as `docker save -o DEST IMAGE` writes the archive.
FAKE_DOCKER = """#!/bin/sh
[ "$1" = save ] && [ "$2" = -o ] || exit 64
case "$4" in missing*) echo "Error response from daemon: reference does not exist" >&2; exit 1;; esac
printf 'tar of %s' "$4" > "$3"
"""


@dataclass
class Platform:
    """What the stand-in platform was sent, and the log answers it gives in turn."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)


def _handler(platform: Platform) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            platform.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            if self.headers["Authorization"] != "Bearer good":
                self._answer(403, {"error": {"message": "this token may not submit",
                                             "submission": {"url": f"{platform.url}/submissions/9"}}})
                return
            kind = "check" if self.path.endswith("?kind=check") else "submission"
            self._answer(201, {"id": 1, "status": "queued", "kind": kind, "position": 2, "wait_text": "about 1 min",
                               "url": f"{platform.url}/submissions/1", "log_url": LOG_PATH})

        def do_GET(self) -> None:  # noqa: N802
            if self.path != LOG_PATH or not platform.logs:
                self._answer(404, {"error": {"message": "no such submission"}})
                return
            self._answer(200, platform.logs.pop(0) if len(platform.logs) > 1 else platform.logs[0])

    return Handler


@pytest.fixture
def platform() -> Iterator[Platform]:
    state = Platform()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    thread.join(timeout=10)
    server.server_close()


@pytest.fixture
def docker_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `docker` command of our own first on PATH, and no Docker SDK: the plain install's way."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(image, "_sdk_client", lambda: None)
    return fake


def test_upload_streams_a_multipart_body_with_a_progress_count(platform: Platform, tmp_path: Path) -> None:
    tar = tmp_path / "image.tar"
    tar.write_bytes(os.urandom(api.CHUNK * 2 + 123))
    out = io.StringIO()
    bar = api.Progress(tar.stat().st_size, out=out)
    assert not bar.tty
    bar.update(api.CHUNK)
    bar.update(tar.stat().st_size - api.CHUNK)
    bar.close()
    assert out.getvalue() == "upload 49%\nupload 100%\n"

    status, body = api.upload(platform.url, "good", "air cargo", tar, progress=False, check=True)
    assert (status, body["kind"]) == (201, "check")
    sent = platform.requests[0]
    assert sent["path"] == "/api/v1/challenges/air%20cargo/submissions?kind=check"
    boundary = sent["headers"]["Content-Type"].split("boundary=")[1]
    head, rest = sent["body"].split(b"\r\n\r\n", 1)
    assert head.startswith(f"--{boundary}\r\n".encode()) and b'name="image"; filename="image.tar"' in head
    assert rest == tar.read_bytes() + f"\r\n--{boundary}--\r\n".encode()


def test_submit_by_reference_and_follow_the_log(platform: Platform) -> None:
    reference = "registry.local:5000/team-7/m@sha256:ab"
    status, body = api.submit_reference(platform.url, "good", "c1", reference)
    assert status == 201 and json.loads(platform.requests[0]["body"]) == {"image": reference}
    platform.logs = [{"log": "one\n", "done": False, "status": "running"},
                     {"log": "one\ntwo\n", "done": True, "status": "scored", "log_withheld": True,
                      "log_withheld_text": "withheld for the judges"}]
    out = io.StringIO()
    final = api.follow(platform.url, "good", f"{platform.url}{body['log_url']}", out=out, poll_s=0)
    assert final["status"] == "scored"
    assert out.getvalue() == "one\nwithheld for the judges\ntwo\n"
    with pytest.raises(CliError, match="no such submission"):
        api.follow(platform.url, "good", "/api/v1/submissions/2/log", out=out, poll_s=0)


def test_the_command_saves_with_the_docker_command_uploads_and_waits(platform: Platform, docker_command: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    platform.logs = [{"log": "model done\n", "done": True, "status": "scored", "outcome_text": "Scored"}]
    code = cli.main(["submit", "my-model:v1", "--challenge", "c1", "--url", platform.url + "/", "--token", "good",
                     "--wait"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "saving my-model:v1 …" in err and "upload 100%" in err
    assert platform.requests[0]["body"].count(b"tar of my-model:v1") == 1
    assert "submission 1: queued\nqueue position 2, about 1 min\n" in out
    assert f"watch it at: {platform.url}/submissions/1" in out
    assert out.endswith("model done\n\nscored: Scored\n")


def test_the_command_explains_what_went_wrong(platform: Platform, docker_command: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["submit", "my-model:v1", "--challenge", "c1", "--url", platform.url, "--quiet"]
    monkeypatch.delenv("HUB_TOKEN", raising=False)
    assert cli.main(args) == 2 and "error: no API token" in capsys.readouterr().err

    assert cli.main([*args, "--token", "bad"]) == 2
    err = capsys.readouterr().err
    assert f"refused (403): this token may not submit\ndetails: {platform.url}/submissions/9" in err

    assert cli.main(["submit", "missing:v1", "--challenge", "c1", "--url", platform.url, "--token", "good"]) == 2
    assert "error: could not save image 'missing:v1': Error response from daemon" in capsys.readouterr().err

    monkeypatch.setenv("HUB_TOKEN", "good")
    assert cli.main(["submit", "x@sha256:ab", "--challenge", "c1", "--url", "http://127.0.0.1:9", "--registry"]) == 2
    assert "error: cannot reach the platform" in capsys.readouterr().err
    assert cli.main(["submit", "x", "--challenge", "c1", "--url", "ftp://hub", "--registry"]) == 2
    assert "error: not an http(s) URL: 'ftp://hub'" in capsys.readouterr().err


def test_saving_says_clearly_when_there_is_no_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))                  # no docker command
    monkeypatch.setattr(image, "_sdk_client", lambda: None)    # nor the SDK
    with pytest.raises(CliError, match=r"neither the docker command nor the Docker SDK \(pip install"):
        image.save_image("m:v1", tmp_path / "out" / "image.tar")

    def unreachable() -> None:
        raise ConnectionRefusedError("no engine")

    monkeypatch.setattr(image, "_sdk_client", unreachable)
    with pytest.raises(CliError, match=r"Docker is not reachable here \(ConnectionRefusedError\); is the daemon"):
        image.save_image("m:v1", tmp_path / "out" / "image.tar")


def test_saving_falls_back_to_the_docker_command_when_the_sdk_finds_no_engine(
        tmp_path: Path, docker_command: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable() -> None:
        raise ConnectionRefusedError("no engine at DOCKER_HOST")

    monkeypatch.setattr(image, "_sdk_client", unreachable)
    saved = image.save_image("m:v1", tmp_path / "image.tar")
    assert saved.read_bytes() == b"tar of m:v1"
