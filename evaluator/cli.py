"""The team's command line: `docker save` a local image, upload it with a progress bar, say where to watch it.

    python -m evaluator.cli submit IMAGE --challenge SLUG [--url URL] [--token TOKEN] [--wait]
    python -m evaluator.cli submit REGISTRY/team-ID/NAME@sha256:DIGEST --challenge SLUG --registry
    python -m evaluator.cli submit IMAGE --challenge SLUG --check --wait   (a check run on the public sample)
    hub-submit submit …                       (the same, as a console script)

URL and token default to $HUB_URL (http://127.0.0.1:5000) and $HUB_TOKEN (made on the account page).
Only the standard library and the Docker SDK: the upload streams from disk, never held in memory.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

CHUNK = 1 << 20


class CliError(Exception):
    pass


def save_image(image: str, dest: Path) -> Path:
    """`docker save IMAGE` into `dest`, streamed."""
    try:
        import docker

        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as err:  # noqa: BLE001 - any way the engine is out of reach
        raise CliError(f"Docker is not reachable here ({err.__class__.__name__}); is the daemon running?") from err
    from evaluator.images import save_image as _save

    try:
        return _save(client, image, dest)
    except Exception as err:  # noqa: BLE001
        raise CliError(f"could not save image {image!r}: {err}") from err


class Progress:
    """A one-line progress bar on stderr (plain percentages when stderr is not a terminal)."""

    def __init__(self, total: int, out: Any = sys.stderr) -> None:
        self.total, self.out, self.done, self.started = total, out, 0, time.monotonic()
        self.tty = hasattr(out, "isatty") and out.isatty()
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


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(f"not an http(s) URL: {url!r}")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=3600), parts.path.rstrip("/")


def _response(conn: http.client.HTTPConnection) -> tuple[int, dict[str, Any]]:
    resp = conn.getresponse()
    raw = resp.read()
    try:
        return resp.status, json.loads(raw or b"{}")
    except ValueError:
        return resp.status, {"error": {"message": raw[:300].decode("utf-8", "replace")}}


def _submissions_path(base: str, slug: str, check: bool) -> str:
    return f"{base}/api/v1/challenges/{quote(slug)}/submissions" + ("?kind=check" if check else "")


def upload(url: str, token: str, slug: str, tar: Path, progress: bool = True,
           check: bool = False) -> tuple[int, dict[str, Any]]:
    """POST the archive as multipart field `image`, streamed with a progress bar (a check run with `check`)."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{tar.name}\"\r\n"
            "Content-Type: application/x-tar\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = tar.stat().st_size
    conn, base = _connection(url)
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
            return _response(conn)
        except Exception:  # noqa: BLE001
            raise CliError(f"the upload was cut off: {err}") from err
    finally:
        if bar:
            bar.close()
    return _response(conn)


def submit_reference(url: str, token: str, slug: str, reference: str,
                     check: bool = False) -> tuple[int, dict[str, Any]]:
    conn, base = _connection(url)
    body = json.dumps({"image": reference}).encode()
    conn.request("POST", _submissions_path(base, slug, check), body=body,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                          "Accept": "application/json"})
    return _response(conn)


def follow(url: str, token: str, log_url: str, out: Any = sys.stdout, poll_s: float = 1.0,
           timeout_s: float = 3600) -> dict[str, Any]:
    """Poll the submission's log API until it has ended; print new log lines as they come."""
    parts = urlsplit(log_url)
    path = parts.path if parts.scheme else log_url
    shown = 0
    told = False
    deadline = time.monotonic() + timeout_s
    while True:
        conn, _ = _connection(url)
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        status, body = _response(conn)
        if status != 200:
            raise CliError(body.get("error", {}).get("message", f"HTTP {status}"))
        if body.get("log_withheld") and not told:
            out.write((body.get("log_withheld_text") or "The log of this run is withheld.") + "\n")
            told = True
        text = body.get("log") or ""
        if len(text) > shown:
            out.write(text[shown:])
            shown = len(text)
        if body.get("done"):
            return body
        if time.monotonic() > deadline:
            raise CliError("gave up waiting; the submission is still " + str(body.get("status")))
        time.sleep(poll_s)


def cmd_submit(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("HUB_TOKEN", "")
    if not token:
        raise CliError("no API token: pass --token or set HUB_TOKEN (create one on your account page)")
    url = (args.url or os.environ.get("HUB_URL") or "http://127.0.0.1:5000").rstrip("/")
    if args.registry:
        status, body = submit_reference(url, token, args.challenge, args.image, check=args.check)
    else:
        with tempfile.TemporaryDirectory(prefix="hub-submit-") as tmp:
            print(f"saving {args.image} …", file=sys.stderr)
            tar = save_image(args.image, Path(tmp) / "image.tar")
            print(f"uploading {tar.stat().st_size / (1 << 20):.1f} MiB to {url}", file=sys.stderr)
            status, body = upload(url, token, args.challenge, tar, progress=not args.quiet, check=args.check)
    if status not in (200, 201):
        err = body.get("error", {})
        sub = err.get("submission") or {}
        print(f"refused ({status}): {err.get('message', 'unknown error')}", file=sys.stderr)
        if sub.get("url"):
            print(f"details: {sub['url']}", file=sys.stderr)
        return 2
    print(f"{'check run' if body.get('kind') == 'check' else 'submission'} {body['id']}: {body['status']}")
    if body.get("position"):
        print(f"queue position {body['position']}" + (f", {body['wait_text']}" if body.get("wait_text") else ""))
    print(f"watch it at: {body.get('url') or body.get('log_url')}")
    if args.wait:
        final = follow(url, token, body["log_url"])
        print(f"\n{final['status']}: {final.get('outcome_text', '')}")
        if final.get("reason"):
            print(final["reason"])
        return 0 if final["status"] == "scored" else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub-submit", description="Submit a Docker image to an AI+ challenge.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("submit", help="save a local image (or name one in the registry) and submit it")
    p.add_argument("image", help="a local image (name, tag or ID); with --registry, your team's image in the center's "
                   "registry by digest: REGISTRY/team-<team id>/<name>@sha256:<digest> (the namespace and digest "
                   "`docker push` showed; the submit page names your team's namespace)")
    p.add_argument("--challenge", required=True, help="the challenge's short name (slug)")
    p.add_argument("--url", default=None, help="the platform's address (default $HUB_URL or http://127.0.0.1:5000)")
    p.add_argument("--token", default=None, help="API token (default $HUB_TOKEN)")
    p.add_argument("--registry", action="store_true", help="IMAGE is in your team's namespace (team-<team id>) of "
                   "the center's registry: let the platform pull it by digest")
    p.add_argument("--wait", action="store_true", help="follow the log until the submission has ended")
    p.add_argument("--check", action="store_true",
                   help="a check run: run the image on the phase's public sample, with its full log; it does not "
                        "count against the submission limits and never reaches a leaderboard")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_submit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ConnectionError as err:
        print(f"error: cannot reach the platform: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
