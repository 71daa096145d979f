"""Memory of the web process while a 1 GiB image archive is uploaded (it must stay flat: stream, never buffer).

    .venv/bin/python bench/upload_memory.py [--mib 1024]

Starts the app under gunicorn (one sync worker, as production runs it) on a SQLite file, uploads a
1 GiB tar through the API twice — as the CLI does (multipart field `image`, token) and as the web page's
script does (raw `application/x-tar` body) — and samples the gunicorn worker's RSS every 20 ms from
/proc. The archive is a valid tar holding one 1 GiB member but no image, so the server streams it to
disk, checks it and refuses it (image_rejected) without spending minutes loading 1 GiB into Docker;
the streaming path measured is the one every upload takes.

    .venv/bin/python bench/upload_memory.py --image [--mib 1024]

The archive is a valid image instead (a busybox layer and a layer of N MiB of zeros), and the web pushes it
into a docker-registry the bench starts (evaluator.embedded.start_registry, HUB_REGISTRY_URL): the check,
then every layer streamed to the registry, then the manifest. The second upload (raw body) is the same image,
so its layers are already there and only the check runs before the manifest. `--no-registry` measures the
way without a registry for comparison: the archive is kept and `docker load`ed by the web process.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "client"))   # hub_submit, also when client/ is not installed


class Zeros:
    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return b"\0" * size


def big_tar(path: Path, size: int) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("blob.bin")
        info.size = size
        tar.addfile(info, Zeros(size))  # type: ignore[arg-type]
    return path


def image_tar(path: Path, size: int) -> Path:
    """A valid one-image `docker save` archive: a busybox layer, then a layer of `size` zero bytes (streamed)."""
    from evaluator import images

    zeros = big_tar(path.with_name("zeros.layer.tar"), size)
    digest = hashlib.sha256()
    with zeros.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    base = images.busybox_layer("#!/bin/sh\necho bench\n")
    config = images.image_config([base], entrypoint=["/bin/sh", "/app/run.sh"])
    config["rootfs"]["diff_ids"].append("sha256:" + digest.hexdigest())
    config["history"].append(dict(config["history"][0]))
    members = {"config.json": images.canonical_json(config), "base/layer.tar": base,
               "manifest.json": json.dumps([{"Config": "config.json", "RepoTags": None,
                                             "Layers": ["base/layer.tar", "zeros/layer.tar"]}]).encode()}
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        tar.add(zeros, "zeros/layer.tar")
    zeros.unlink()
    return path


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--image", action="store_true",
                        help="upload a valid image, pushed to a docker-registry the bench starts")
    parser.add_argument("--no-registry", action="store_true",
                        help="with --image: no registry, the archive is kept and loaded into this Docker (the old way)")
    args = parser.parse_args()

    from sqlmodel import Session

    from evaluator.embedded import start_redis, start_registry
    from hub.db import get_engine
    from hub.models_registry import load_all
    from hub.users import issue_api_token
    from hub_submit.api import open_connection, read_response, upload
    from tests.factories import make_eval_setup

    tmp = Path(tempfile.mkdtemp(prefix="hub-upload-bench-"))
    redis_proc, redis_url = start_redis(tmp / "redis")
    db_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    load_all().metadata.create_all(get_engine(db_url))
    with Session(get_engine(db_url), expire_on_commit=False) as session:
        setup = make_eval_setup(session, tmp / "data")
        token = issue_api_token(session, setup.users[0])
        session.commit()
    tar = (image_tar if args.image else big_tar)(tmp / "big.tar", args.mib * 1024 * 1024)
    registry = start_registry(tmp / "instance") if args.image and not args.no_registry else None
    if args.image and not args.no_registry and registry is None:
        raise SystemExit("--image needs docker-registry (apt install docker-registry)")

    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "HUB_DATA_DIR": str(tmp / "data"),
           "HUB_INSTANCE": str(tmp / "instance"), "SECRET_KEY": "bench", "MAX_IMAGE_BYTES": str(4 << 30),
           "HUB_REGISTRY_URL": registry[1] if registry else ""}
    server = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "-w", "1", "-b", f"127.0.0.1:{port}",
                               "--timeout", "600", "app:create_app()"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start")
                time.sleep(0.2)
        time.sleep(1.0)
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(server.pid)], capture_output=True, text=True).stdout
        worker_pid = int(out.split()[0])
        # Warm the worker (imports, first request) before the baseline.
        conn, _ = open_connection(url)
        conn.request("GET", "/healthz")
        read_response(conn)

        def measure(label: str, send) -> None:  # type: ignore[no-untyped-def]
            samples: list[int] = []
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    samples.append(rss_kib(worker_pid))
                    time.sleep(0.02)

            before = rss_kib(worker_pid)
            t = threading.Thread(target=sample, daemon=True)
            t.start()
            t0 = time.perf_counter()
            status, body = send()
            elapsed = time.perf_counter() - t0
            stop.set()
            t.join()
            code = (body.get("error") or {}).get("code") if isinstance(body, dict) else None
            print(f"{label}: HTTP {status} ({code or body.get('status')}), {args.mib} MiB in {elapsed:.1f} s; "
                  f"worker RSS before {before / 1024:.1f} MiB, peak {max(samples) / 1024:.1f} MiB, "
                  f"growth {(max(samples) - before) / 1024:.1f} MiB over {len(samples)} samples")

        measure("multipart (CLI / API)", lambda: upload(url, token, setup.challenge.slug, tar, progress=False))

        def raw():  # type: ignore[no-untyped-def]
            conn, _ = open_connection(url)
            conn.putrequest("POST", f"/api/v1/challenges/{setup.challenge.slug}/submissions")
            conn.putheader("Authorization", f"Bearer {token}")
            conn.putheader("Content-Type", "application/x-tar")
            conn.putheader("Content-Length", str(tar.stat().st_size))
            conn.endheaders()
            with tar.open("rb") as fh:
                while block := fh.read(1 << 20):
                    conn.send(block)
            return read_response(conn)

        measure("raw body (web page script)", raw)
    finally:
        server.terminate()
        server.wait(timeout=20)
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        if registry:
            registry[0].terminate()
            registry[0].wait(timeout=10)
        tar.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
