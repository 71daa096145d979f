"""Platform overhead per evaluation, queue pick-up latency, and throughput with two workers.

    .venv/bin/python bench/eval_overhead.py [--n 50] [--throughput-n 40] [--no-upload]

Everything real: a private redis-server, a SQLite file, worker nodes as `flask --app app worker`
subprocesses, Docker. For a trivial busybox model it prints
* bare: `docker run --rm` of the same image with the same limits (the sandbox profile's flags), p50/p95;
* end-to-end: submit → scored (Submission.finished_at − created_at, the platform's own clock), one at a
  time with an idle worker, each paired with a bare run just before it; overhead = end-to-end − that bare
  run (targets ≤ 0.3 s p50, ≤ 0.8 s p95);
* pick-up latency: dispatched → claimed by the idle worker (started_at − queued_at; target ≤ 100 ms);
* upload → score in the API, as a team sees it (skipped with --no-upload or without Debian's docker-registry):
  the app under gunicorn (deploy/gunicorn.conf.py) on 127.0.0.1 with HUB_REGISTRY_URL at a docker-registry the
  bench starts; each of n runs uploads a NEW image (`docker save` archive: the shared busybox layer and a small
  top layer whose script differs, so only that layer is pushed and the node really pulls) with a token, as
  hub-submit does, and polls GET /api/v1/submissions/<id> every 20 ms until it says done. Each is paired with a
  bare run just before it (of the warm-up upload's image: the same model, one comment line apart); it prints
  end-to-end − bare (target ≤ 0.15 s p50) and where the time goes, from the platform's own timestamps:
  upload+checks+push (HTTP start → created_at), queue (→ started_at; includes the manifest PUT and the
  dispatch), node pull/start (→ container_started_at), container, scoring+write (→ finished_at), API poll
  (→ the answer that says done);
* throughput: evaluations per minute with 2 workers vs twice the bare sequential rate (target ≥ 90 %),
  and, as the machine's own ceiling, vs two bare `docker run --rm` loops side by side (on 2 cores the engine
  itself does not run two containers twice as fast as one).
BENCH_TRACE=1 prints each run's timeline (created, dispatched, claimed, container start/end, finished);
BENCH_REAPER=0 turns the in-worker reaper off for comparison.
"""
from __future__ import annotations

import argparse
import itertools
import os
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "client"))   # hub_submit, also when client/ is not installed

MODEL = """#!/bin/sh
echo "id,label" > /output/predictions.csv
for i in $(cat /input/ids.txt); do if [ $((i % 2)) -eq 1 ]; then echo "$i,a"; else echo "$i,b"; fi; done \
  >> /output/predictions.csv
"""


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def bare_run(image_id: str, inputs: Path, out: Path, memory_mb: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    out.chmod(0o777)
    cmd = ["docker", "run", "--rm", "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
           "--user", "65534:65534", "--read-only", "--tmpfs", "/tmp:rw,size=256m,noexec,nosuid,nodev",
           "--pids-limit", "256", "--memory", f"{memory_mb}m", "--memory-swap", f"{memory_mb}m", "--cpus", "1",
           "--ulimit", "nofile=1024:1024", "--ulimit", "fsize=67108865:67108865", "--shm-size", "64m",
           "--log-opt", "max-size=1024k", "-v", f"{inputs}:/input:ro", "-v", f"{out}:/output", image_id]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


# Where an upload's time goes, between consecutive marks (HTTP start, the row's timestamps, the answer seen).
UPLOAD_PHASES = ("upload+checks+push (HTTP start → created)", "queue (created → started)",
                 "node pull/start (started → container start)", "container (start → end)",
                 "scoring+write (container end → finished)", "API poll (finished → seen done)")


def upload_model(script: str) -> Any:
    """The model as two layers: busybox (the same bytes every time, with MODEL) and a small top layer holding
    `script` as /app/run.sh, so a new script is a new image whose only new blob is that top layer."""
    from evaluator import images

    top = images.layer_tar([images.Entry("app", kind=tarfile.DIRTYPE, mode=0o755),
                            images.Entry("app/run.sh", script.encode(), mode=0o755)])
    return images.busybox_parts(MODEL, extra_layers=[top])


def start_web(env: dict[str, str], log: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    """The app under gunicorn as deployed (deploy/gunicorn.conf.py: gthread), two workers on a free loopback port."""
    from hub_submit.api import open_connection, read_response

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                             "-b", f"127.0.0.1:{port}", "-w", "2"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            conn, _ = open_connection(url)
            conn.request("GET", "/healthz")
            if read_response(conn)[0] == 200:
                return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise SystemExit(f"gunicorn did not start; its log: {log.name}")
        time.sleep(0.2)


def poll_done(url: str, token: str, submission_id: int, every: float = 0.02,
              timeout: float = 120) -> tuple[dict[str, Any], datetime]:
    """GET /api/v1/submissions/<id> every `every` s until it says done: that answer and when it came."""
    from hub_submit.api import open_connection, read_response

    from hub.models import utcnow

    deadline = time.monotonic() + timeout
    while True:
        conn, _ = open_connection(url)
        try:
            conn.request("GET", f"/api/v1/submissions/{submission_id}",
                         headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
            status, body = read_response(conn)
        finally:
            conn.close()
        seen = utcnow()
        if status != 200:
            raise SystemExit(f"GET /api/v1/submissions/{submission_id}: HTTP {status} {body}")
        if body.get("done"):
            return body, seen
        if time.monotonic() > deadline:
            raise SystemExit(f"submission {submission_id} still {body.get('status')} after {timeout:.0f} s")
        time.sleep(every)


def upload_runs(n: int, *, url: str, token: str, slug: str, session: Any, tmp: Path, inputs: Path,
                pulled: list[str]) -> tuple[list[float], list[float], list[list[float]]]:
    """A warm-up, then `n` uploads of new images, each after a bare run of the warm-up's image: end-to-end
    seconds, the paired bare runs, each run's UPLOAD_PHASES; every pulled image ID is appended to `pulled`."""
    from hub_submit.api import upload

    from challenges.models import Submission
    from evaluator import images
    from hub.models import utcnow

    nonce = uuid.uuid4().hex   # new images on every run of the bench too: the node must not have them yet
    e2e: list[float] = []
    bare: list[float] = []
    phases: list[list[float]] = []
    bare_image = ""
    for i in range(n + 1):
        tar = images.write_image_archive(tmp / f"upload{i}.tar", [upload_model(f"{MODEL}# bench {nonce} {i}\n")])
        bare_now = bare_run(bare_image, inputs, tmp / f"upair{i}", 256) if bare_image else 0.0
        start = utcnow()
        status, body = upload(url, token, slug, tar, progress=False)
        if status != 201:
            raise SystemExit(f"upload {i} refused: HTTP {status} {body}")
        answer, seen = poll_done(url, token, body["id"])
        tar.unlink()
        sub = session.get(Submission, body["id"], populate_existing=True)
        assert answer["status"] == "scored", (sub.outcome, sub.reason)
        pulled.append(sub.image_id)
        if not bare_image:   # the warm-up: the busybox layer's first push and pull, the first API answers
            bare_image = sub.image_id
            continue
        marks = [start, sub.created_at, sub.started_at, sub.container_started_at, sub.container_finished_at,
                 sub.finished_at, seen]
        phases.append([(b - a).total_seconds() for a, b in itertools.pairwise(marks)])
        e2e.append((seen - start).total_seconds())
        bare.append(bare_now)
        if os.environ.get("BENCH_TRACE"):
            print("upload trace", " ".join(f"{p:.3f}" for p in phases[-1]), f"bare {bare_now:.3f}")
        time.sleep(0.2)   # idle worker between submissions
    return e2e, bare, phases


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--throughput-n", type=int, default=40)
    parser.add_argument("--no-upload", action="store_true", help="skip upload → score in the API")
    args = parser.parse_args()

    import docker
    from sqlmodel import Session, select

    from challenges.models import Submission
    from evaluator import images, submit
    from evaluator.embedded import start_redis, start_registry
    from hub.db import get_engine
    from hub.models_registry import load_all
    from hub.users import issue_api_token
    from tests.evaluator.pipeline import Nodes, pipeline_env
    from tests.factories import make_eval_setup

    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    redis_proc, redis_url = start_redis(tmp / "redis")
    db_url = f"sqlite:///{tmp / 'bench.sqlite3'}"
    engine = get_engine(db_url)
    load_all().metadata.create_all(engine)
    client = docker.from_env()
    image_id = images.build_busybox_image(client, MODEL, workdir=tmp)
    client.api.tag(image_id, "hub-bench/model", tag="latest")
    registry = None if args.no_upload else start_registry(tmp / "instance")
    env = pipeline_env(db_url, redis_url, tmp, registry[1] if registry else "", HUB_WORKER_DEAD_AFTER="10")
    nodes = Nodes(env, tmp)
    web: subprocess.Popen[bytes] | None = None
    pulled: list[str] = []
    up_e2e: list[float] = []
    up_bare: list[float] = []
    up_phases: list[list[float]] = []
    try:
        with Session(engine, expire_on_commit=False) as session:
            setup = make_eval_setup(session, tmp / "data", memory_mb=256)
            inputs = Path(setup.dataset.inputs_dir)

            bare = [bare_run(image_id, inputs, tmp / f"bare{i}", 256) for i in range(max(10, args.n // 2))]
            bare_p50 = statistics.median(bare)

            nodes.start("bench-1", reaper_interval=float(os.environ.get("BENCH_REAPER", "2")))
            time.sleep(3)   # the node registers and idles

            def run_one() -> Submission:
                sub = submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0],
                                             image_id=image_id, image_ref="bench", redis_url=redis_url)
                while True:
                    done = session.get(Submission, sub.id, populate_existing=True)
                    if done.status in ("scored", "failed", "cancelled"):
                        assert done.status == "scored", (done.outcome, done.reason)
                        return done
                    time.sleep(0.01)

            run_one()   # warm-up (first fork, first container)
            e2e, pickup, paired = [], [], []
            for i in range(args.n):
                # Paired with a bare run just before, so that load from elsewhere on the machine cancels out.
                bare_now = bare_run(image_id, inputs, tmp / f"pair{i}", 256)
                done = run_one()
                e2e.append((done.finished_at - done.created_at).total_seconds())
                if os.environ.get("BENCH_TRACE"):
                    marks = [done.created_at, done.queued_at, done.started_at, done.container_started_at,
                             done.container_finished_at, done.finished_at]
                    print("trace", " ".join(f"{(m - done.created_at).total_seconds():.3f}" if m else "-"
                                            for m in marks))
                pickup.append((done.started_at - done.queued_at).total_seconds())
                time.sleep(0.2)   # idle worker between submissions
                paired.append(e2e[-1] - bare_now)
            overhead = paired

            if registry:
                token = issue_api_token(session, setup.users[0])
                session.commit()
                web, url = start_web(env, (tmp / "web.log").open("ab"))
                up_e2e, up_bare, up_phases = upload_runs(args.n, url=url, token=token, slug=setup.challenge.slug,
                                                         session=session, tmp=tmp, inputs=inputs, pulled=pulled)

            # Throughput: a burst of submissions, two worker nodes.
            nodes.start("bench-2", reaper_interval=2.0)
            time.sleep(3)
            t0 = time.perf_counter()
            ids = [submit.submit_image_id(session, slug=setup.challenge.slug, user=setup.users[0], image_id=image_id,
                                          image_ref="bench", redis_url=redis_url).id for _ in range(args.throughput_n)]
            while True:
                left = session.exec(select(Submission).where(Submission.id.in_(ids),  # type: ignore[union-attr]
                                                             Submission.status.in_(["queued", "running"]))).all()
                if not left:
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - t0
            per_min = args.throughput_n / elapsed * 60
            t1 = time.perf_counter()
            seq = 10
            for i in range(seq):
                bare_run(image_id, inputs, tmp / f"seq{i}", 256)
            bare_rate = seq / (time.perf_counter() - t1) * 60
            t2 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(lambda i: bare_run(image_id, inputs, tmp / f"par{i}", 256), range(2 * seq)))
            bare_parallel_rate = 2 * seq / (time.perf_counter() - t2) * 60
    finally:
        nodes.stop_all()
        for proc in (web, registry[0] if registry else None, redis_proc):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
        for image in pulled:
            try:
                client.images.remove(image, force=True)
            except docker.errors.APIError:
                pass

    print(f"machine: {os.cpu_count()} CPUs; {args.n} sequential submissions of a trivial busybox model")
    print(f"bare docker run --rm (same limits): p50 {bare_p50:.3f} s, p95 {pct(bare, .95):.3f} s  (n={len(bare)})")
    print(f"end-to-end submit→scored:          p50 {pct(e2e, .5):.3f} s, p95 {pct(e2e, .95):.3f} s")
    print(f"platform overhead (e2e − paired bare run): p50 {pct(overhead, .5):.3f} s, p95 {pct(overhead, .95):.3f} s"
          f"   [targets ≤ 0.300 / ≤ 0.800]")
    print(f"queue pick-up latency (idle worker): p50 {pct(pickup, .5) * 1000:.0f} ms, "
          f"p95 {pct(pickup, .95) * 1000:.0f} ms   [target ≤ 100 ms]")
    if up_e2e:
        above = [e - b for e, b in zip(up_e2e, up_bare)]
        print(f"upload → score in the API ({len(up_e2e)} uploads of new images: gunicorn, registry push, node pull):")
        print(f"  end-to-end (HTTP start → API says done): p50 {pct(up_e2e, .5):.3f} s, p95 {pct(up_e2e, .95):.3f} s;"
              f" paired bare run p50 {pct(up_bare, .5):.3f} s, p95 {pct(up_bare, .95):.3f} s")
        print(f"  above bare (end-to-end − paired bare run): p50 {pct(above, .5):.3f} s, p95 {pct(above, .95):.3f} s"
              f"   [target ≤ 0.150 p50]")
        for name, values in zip(UPLOAD_PHASES, zip(*up_phases)):
            print(f"    {name:44} p50 {pct(list(values), .5):.3f} s, p95 {pct(list(values), .95):.3f} s")
    else:
        print("upload → score in the API: skipped (" + ("--no-upload" if args.no_upload else
                                                       "docker-registry is not installed") + ")")
    print(f"throughput, 2 workers: {per_min:.1f} evaluations/min over {args.throughput_n}; bare sequential "
          f"{bare_rate:.1f}/min → {per_min / (2 * bare_rate) * 100:.0f} % of twice the bare rate   [target ≥ 90 %]")
    print(f"  machine ceiling: two bare docker run loops side by side {bare_parallel_rate:.1f}/min "
          f"({bare_parallel_rate / bare_rate:.2f}× one loop) → 2 workers reach "
          f"{per_min / bare_parallel_rate * 100:.0f} % of it")


if __name__ == "__main__":
    main()
