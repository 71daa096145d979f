"""Fault drills on the real pipeline, with their figures: kill -9 of worker nodes (parent, work horse,
both) in the middle of 20 runs, Redis restarted mid-queue, the Docker engine refusing calls, the
database locked under a worker.

    .venv/bin/python bench/faults.py [--only kill,redis,docker,database] [--runs 20]

Uses the drills of tests/evaluator/fault_drills.py against a temporary SQLite database, a private
redis-server (Debian's) on a socket in a temporary folder, and the local Docker engine. For each drill it
prints how the submissions ended, lost (never ended), duplicates (ended more than once), runs metered
twice, late results dropped by the compare-and-set, requeue time (fault → the work running again),
retries and the leases still held. A drill that breaks is printed as such; the script exits 0.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402
from sqlmodel import Session  # noqa: E402

from evaluator import images  # noqa: E402
from evaluator.embedded import start_redis  # noqa: E402
from hub.db import dispose_engines, get_engine  # noqa: E402
from hub.models_registry import load_all  # noqa: E402
from tests.evaluator import fault_drills  # noqa: E402

DRILLS = ("kill", "redis", "docker", "database")


def fresh_db(path: Path) -> str:
    url = f"sqlite:///{path}"
    metadata = load_all().metadata
    metadata.drop_all(get_engine(url))
    metadata.create_all(get_engine(url))
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(DRILLS))
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    wanted = [d.strip() for d in args.only.split(",") if d.strip()]
    client = docker.from_env(timeout=120)
    with tempfile.TemporaryDirectory(prefix="hub-faults-") as tmp:
        root = Path(tmp)
        image = images.build_busybox_image(client, fault_drills.model_script(1.0), workdir=root / "img")
        client.api.tag(image, "hub-bench-faults", tag="model")
        redis_proc, redis_url = start_redis(root / "redis")
        print(f"fault drills (Docker {client.version().get('Version')}, SQLite, model: sleep 1 s then a correct "
              "answer, 1 fake accelerator per node, reaper every 0.5 s, a node is dead after 4 s)\n")
        try:
            for n, name in enumerate(wanted):
                work = root / f"{n}-{name}"
                work.mkdir()
                url = fresh_db(work / "db.sqlite3")
                redis_conn = __import__("redis").Redis.from_url(redis_url)
                redis_conn.flushall()
                t0 = time.monotonic()
                try:
                    with Session(get_engine(url), expire_on_commit=False) as session:
                        if name == "kill":
                            report = fault_drills.kill_workers(session, url, redis_url, work, image, runs=args.runs)
                        elif name == "redis":
                            report = fault_drills.restart_redis(session, url, work, image, runs=10)
                        elif name == "docker":
                            report = fault_drills.docker_refuses(session, url, redis_url, work, image)
                        elif name == "database":
                            report = fault_drills.database_unavailable(session, url, redis_url, work, image)
                        else:
                            print(f"unknown drill {name!r}")
                            continue
                    print(report.figures() + "\n", flush=True)
                except Exception:  # noqa: BLE001 - a broken drill is a finding, printed, not a crash
                    print(f"{name}: the drill broke after {time.monotonic() - t0:.0f} s:\n"
                          + traceback.format_exc(limit=3) + "\n", flush=True)
                finally:
                    dispose_engines()
        finally:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            try:
                client.images.remove("hub-bench-faults:model", force=True)
            except Exception:  # noqa: BLE001
                pass


if __name__ == "__main__":
    main()
