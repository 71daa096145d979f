"""The platform's HTTP API as the command line uses it: the standard library's http.client only.

An upload streams the archive from disk in 1 MiB blocks (never held in memory) with a progress bar on stderr.
"""
from __future__ import annotations

import http.client
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

from hub_submit import CliError

CHUNK = 1 << 20
Answer = tuple[int, dict[str, Any]]


class Progress:
    """A one-line progress bar on stderr (plain percentages when stderr is not a terminal)."""

    def __init__(self, total: int, out: TextIO | None = None) -> None:
        self.total, self.done, self.started = total, 0, time.monotonic()
        self.out = out if out is not None else sys.stderr
        self.tty = hasattr(self.out, "isatty") and self.out.isatty()
        self._last = -1

    def update(self, n: int) -> None:
        self.done += n
        pct = int(self.done * 100 / self.total) if self.total else 100
        if self.tty:
            width = 30
            filled = int(width * pct / 100)
            rate = self.done / max(1e-6, time.monotonic() - self.started) / (1 << 20)
            self.out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {pct:3d}%  "
                           f"{self.done / (1 << 20):.1f}/{self.total / (1 << 20):.1f} MiB  {rate:.1f} MiB/s")
            self.out.flush()
        elif pct // 10 != self._last // 10:
            self.out.write(f"upload {pct}%\n")
        self._last = pct

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")
        self.out.flush()


def open_connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    """A connection to the platform at `url`, and the path prefix its API lives under."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"not an http(s) URL: {url!r}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=3600), parts.path.rstrip("/")


def read_response(conn: http.client.HTTPConnection) -> Answer:
    """The status and JSON body of the answer; a body that is not JSON becomes an error message."""
    resp = conn.getresponse()
    raw = resp.read()
    try:
        return resp.status, json.loads(raw or b"{}")
    except ValueError:
        return resp.status, {"error": {"message": raw[:300].decode("utf-8", "replace")}}


def _submissions_path(base: str, slug: str, check: bool) -> str:
    return f"{base}/api/v1/challenges/{quote(slug)}/submissions" + ("?kind=check" if check else "")


def upload(url: str, token: str, slug: str, tar: Path, progress: bool = True, check: bool = False) -> Answer:
    """POST the archive as multipart field `image`, streamed with a progress bar (a check run with `check`)."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{tar.name}\"\r\n"
            "Content-Type: application/x-tar\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = tar.stat().st_size
    conn, base = open_connection(url)
    conn.putrequest("POST", _submissions_path(base, slug, check))
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + size + len(tail)))
    conn.putheader("Accept", "application/json")
    conn.endheaders()
    bar = Progress(size) if progress else None
    try:
        conn.send(head)
        with tar.open("rb") as fh:
            while block := fh.read(CHUNK):
                conn.send(block)
                if bar:
                    bar.update(len(block))
        conn.send(tail)
    except OSError as err:
        # The server may refuse early (too large, no team) and close; its answer says why.
        try:
            return read_response(conn)
        except Exception:  # noqa: BLE001
            raise CliError(f"the upload was cut off: {err}") from err
    finally:
        if bar:
            bar.close()
    return read_response(conn)


def submit_reference(url: str, token: str, slug: str, reference: str, check: bool = False) -> Answer:
    """Submit an image the platform pulls from the center's registry by digest."""
    conn, base = open_connection(url)
    body = json.dumps({"image": reference}).encode()
    conn.request("POST", _submissions_path(base, slug, check), body=body,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                          "Accept": "application/json"})
    return read_response(conn)


def follow(url: str, token: str, log_url: str, out: TextIO | None = None, poll_s: float = 1.0,
           timeout_s: float = 3600) -> dict[str, Any]:
    """Poll the submission's log API until it has ended; print new log lines as they come."""
    out = out if out is not None else sys.stdout
    parts = urlsplit(log_url)
    path = parts.path if parts.scheme else log_url
    shown = 0
    told = False
    deadline = time.monotonic() + timeout_s
    while True:
        conn, _ = open_connection(url)
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        status, body = read_response(conn)
        if status != 200:
            raise CliError(body.get("error", {}).get("message", f"HTTP {status}"))
        if body.get("log_withheld") and not told:
            out.write((body.get("log_withheld_text") or "The log of this run is withheld.") + "\n")
            told = True
        text = body.get("log") or ""
        if len(text) > shown:
            out.write(text[shown:])
            out.flush()
            shown = len(text)
        if body.get("done"):
            return body
        if time.monotonic() > deadline:
            raise CliError("gave up waiting; the submission is still " + str(body.get("status")))
        time.sleep(poll_s)
