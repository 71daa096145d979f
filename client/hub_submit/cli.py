"""The team's command line: `docker save` a local image, upload it with a progress bar, say where to watch it.

    hub-submit submit IMAGE --challenge SLUG [--url URL] [--token TOKEN] [--wait]
    hub-submit submit REGISTRY/team-ID/NAME@sha256:DIGEST --challenge SLUG --registry
    hub-submit submit IMAGE --challenge SLUG --check --wait   (a check run on the public sample)
    python -m hub_submit.cli submit …         (the same, without the console script)

URL and token default to $HUB_URL (http://127.0.0.1:5000) and $HUB_TOKEN (made on the account page).
Only the standard library (and the Docker SDK when installed): the upload streams from disk, never held in memory.
"""
from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

from hub_submit import CliError, __version__
from hub_submit.api import follow, submit_reference, upload
from hub_submit.image import save_image

DEFAULT_URL = "http://127.0.0.1:5000"


def cmd_submit(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("HUB_TOKEN", "")
    if not token:
        raise CliError("no API token: pass --token or set HUB_TOKEN (create one on your account page)")
    url = (args.url or os.environ.get("HUB_URL") or DEFAULT_URL).rstrip("/")
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
    print(f"watch it at: {body.get('url') or body.get('log_url')}", flush=True)
    if args.wait:
        final = follow(url, token, body["log_url"])
        print(f"\n{final['status']}: {final.get('outcome_text', '')}")
        if final.get("reason"):
            print(final["reason"])
        return 0 if final["status"] == "scored" else 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub-submit", description="Submit a Docker image to an AI+ challenge.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("submit", help="save a local image (or name one in the registry) and submit it")
    p.add_argument("image", help="a local image (name, tag or ID); with --registry, your team's image in the center's "
                   "registry by digest: REGISTRY/team-<team id>/<name>@sha256:<digest> (the namespace and digest "
                   "`docker push` showed; the submit page names your team's namespace)")
    p.add_argument("--challenge", required=True, help="the challenge's short name (slug)")
    p.add_argument("--url", default=None, help=f"the platform's address (default $HUB_URL or {DEFAULT_URL})")
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
    except (ConnectionError, socket.gaierror) as err:  # refused, reset, or a host name that does not resolve
        print(f"error: cannot reach the platform: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
