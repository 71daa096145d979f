"""Slow uploads against the real deployment: gunicorn (gthread, deploy/gunicorn.conf.py) behind nginx
(deploy/nginx/hub-proxy.conf), started here on free loopback ports against the test database.

Four uploads that send their body a few bytes a second must not stop pages from answering, and a body
that stalls or drags past the app's bounds is cut with a 408 and leaves nothing behind. The waits below
only bound how long a broken deployment may hang the test; nothing is asserted about speed.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub.users import issue_api_token
from tests.conftest import ROOT, require
from tests.factories import make_eval_setup

pytestmark = pytest.mark.slow

BOUNDARY = "hubslowupload"
PAGE_WAIT_S = 20  # how long a page may take before the test calls it frozen


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(port: int, path: str, timeout: float = PAGE_WAIT_S) -> int:
    """The status of a GET on 127.0.0.1:port; raises TimeoutError when no answer comes in `timeout` seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def _wait_until_up(port: int, proc: subprocess.Popen, log: Path, what: str) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + 60
    while True:
        try:
            if _get(port, "/healthz", timeout=2) == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:  # type: ignore[type-arg]
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@contextmanager
def gunicorn(db_url: str, tmp: Path, **env: str) -> Iterator[int]:
    """The shipped gunicorn config, 1 worker × 2 threads, on a free loopback port."""
    port = _free_port()
    log = tmp / "gunicorn.log"
    full_env = dict(os.environ, DATABASE_URL=db_url, HUB_INSTANCE=str(tmp / "instance"),
                    HUB_DATA_DIR=str(tmp / "data"), SECRET_KEY="slow-upload-test", PYTHONPATH=str(ROOT), **env)
    full_env.pop("REDIS_URL", None)
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
           "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "2", "--chdir", str(ROOT),
           "--log-level", "warning", "--access-logfile", "/dev/null"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_until_up(port, proc, log, "gunicorn")
        yield port
    finally:
        _stop(proc)


@contextmanager
def nginx(tmp: Path, upstream: int) -> Iterator[int]:
    """Debian's nginx with deploy/nginx/hub-proxy.conf, as shipped, in front of `upstream`."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    require(binary is not None, "nginx")
    port = _free_port()
    prefix = tmp / "nginx"
    prefix.mkdir()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / sub).mkdir()
    user = "user root;" if os.geteuid() == 0 else ""  # workers must reach the temp folders under /tmp
    conf = prefix / "nginx.conf"
    conf.write_text(f"""
{user}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream hub_app {{ server 127.0.0.1:{upstream}; keepalive 4; }}
    server {{
        listen 127.0.0.1:{port};
        include {ROOT}/deploy/nginx/hub-proxy.conf;
    }}
}}
""")
    log = prefix / "error.log"
    proc = subprocess.Popen([binary, "-p", str(prefix), "-e", str(log), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(port, proc, log, "nginx")
        yield port
    finally:
        _stop(proc)


class SlowUpload(threading.Thread):
    """A team's image upload on the API whose body comes `chunk` bytes every `every` seconds (or stalls)."""

    def __init__(self, port: int, slug: str, token: str, chunk: bytes = b"\0" * 4, every: float = 0.25,
                 stall: bool = False) -> None:
        super().__init__(daemon=True)
        self.port, self.chunk, self.every, self.stall = port, chunk, every, stall
        self.sent = 0
        self.answer = b""
        self.done = threading.Event()
        self.stop = threading.Event()
        head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"model.tar\"\r\n"
                f"Content-Type: application/x-tar\r\n\r\n").encode()
        self.head = head
        self.request = (f"POST /api/v1/challenges/{slug}/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Authorization: Bearer {token}\r\n"
                        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                        f"Content-Length: {len(head) + 50_000_000}\r\n\r\n").encode() + head

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
            try:
                sock.sendall(self.request)
                while not self.stop.is_set():
                    sock.settimeout(self.every)
                    try:
                        data = sock.recv(65536)
                        if not data:
                            break
                        self.answer += data
                        if b"\r\n\r\n" in self.answer:
                            break  # the server answered before the body was complete
                    except TimeoutError:
                        pass
                    if not self.stall:
                        sock.sendall(self.chunk)
                        self.sent += 1
            except OSError:
                pass  # the server closed the connection on us: the answer (if any) is what counts
            finally:
                self.done.set()

    def status(self) -> int | None:
        line = self.answer.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 and line[1].isdigit() else None


def _uploader(session, data_dir: Path):  # type: ignore[no-untyped-def]
    setup = make_eval_setup(session, data_dir)
    token = issue_api_token(session, setup.users[0])
    session.commit()
    return setup.challenge.slug, token


def _trickling(uploads: list[SlowUpload]) -> None:
    """Wait until every upload is in flight: sending its body, no answer yet."""
    deadline = time.monotonic() + PAGE_WAIT_S
    while any(u.sent < 4 for u in uploads) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(u.sent >= 4 and u.status() is None for u in uploads), [(u.sent, u.answer[:200]) for u in uploads]


def test_pages_answer_while_four_slow_uploads_are_in_flight(db_url, session, tmp_path):
    slug, token = _uploader(session, tmp_path / "data")
    with gunicorn(db_url, tmp_path, HUB_PROXY_HOPS="1") as app_port, nginx(tmp_path, app_port) as port:
        uploads = [SlowUpload(port, slug, token) for _ in range(4)]
        for upload in uploads:
            upload.start()
        try:
            _trickling(uploads)
            # Two threads serve pages and four uploads are coming in: the pages still answer, a few times over.
            for path in ("/healthz", "/scenarios", "/challenges", "/healthz", "/login"):
                assert _get(port, path) == 200, path
            _trickling(uploads)  # still in flight: the pages did not wait for them
        finally:
            for upload in uploads:
                upload.stop.set()
        # A complete upload goes through the proxy to the app, which reads and judges it (not a docker save).
        body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"model.tar\"\r\n"
                f"Content-Type: application/x-tar\r\n\r\n").encode() + b"not a tar" * 100 + \
            f"\r\n--{BOUNDARY}--\r\n".encode()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PAGE_WAIT_S)
        conn.request("POST", f"/api/v1/challenges/{slug}/submissions", body=body,
                     headers={"Authorization": f"Bearer {token}",
                              "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        resp = conn.getresponse()
        assert resp.status == 422, resp.read()[:500]
        assert b"image_rejected" in resp.read()
        conn.close()


def test_the_app_cuts_a_stalled_or_dragging_body_with_408_and_keeps_nothing(db_url, session, tmp_path):
    """Without the proxy (or past it): the app's own bounds free the threads and drop the partial upload."""
    slug, token = _uploader(session, tmp_path / "data")
    with gunicorn(db_url, tmp_path, HUB_BODY_IDLE_TIMEOUT="1", HUB_BODY_TIMEOUT="3") as port:
        dragging = [SlowUpload(port, slug, token, every=0.2) for _ in range(2)]  # never idle, too long in all
        stalled = [SlowUpload(port, slug, token, stall=True) for _ in range(2)]  # headers, then nothing
        for upload in dragging + stalled:
            upload.start()
        for upload in dragging + stalled:
            assert upload.done.wait(PAGE_WAIT_S), "the body was never cut"
        assert [u.status() for u in dragging + stalled] == [408] * 4, [u.answer[:300] for u in dragging + stalled]
        assert _get(port, "/healthz") == 200  # the threads are free again
        uploads = tmp_path / "data" / "uploads"
        assert not uploads.exists() or not any(uploads.iterdir()), list(uploads.iterdir())
