"""Fault drills on the real pipeline, shared by tests/evaluator/test_faults.py (asserts) and bench/faults.py
(prints the figures): kill -9 of worker nodes, a Redis restart, a Docker engine that refuses calls, the
database locked under a worker.

Each drill submits real images to real worker nodes (subprocesses), breaks one thing while they work,
and returns a Report: how each submission ended, how often one ended more than once (duplicates), how
many never ended (lost), how long killed work took to run again (requeue time) and the leases still
held at the end. Submissions use a challenge with one fake accelerator, so every run holds a lease.
"""
from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from challenges.models import Submission
from evaluator import submit
from evaluator.quota.models import Lease, LedgerLine
from hub.db import get_engine
from tests.evaluator.pipeline import Nodes, pipeline_env, slow_model, wait_for
from tests.factories import make_eval_setup

TERMINAL = ("scored", "failed", "cancelled")
ACCEL = "fake-gpu"


@dataclass
class Report:
    """What one drill measured."""

    name: str
    submissions: int = 0
    outcomes: Counter = field(default_factory=Counter)
    lost: list[int] = field(default_factory=list)               # never ended
    duplicates: list[int] = field(default_factory=list)         # reached a final state more than once
    metered_twice: list[int] = field(default_factory=list)      # more than one ledger line
    results_dropped: int = 0                                    # runs whose late result lost the compare-and-set
    requeue_s: list[float] = field(default_factory=list)        # from the fault to the work running again
    leases_held: int = 0
    counted_platform_errors: list[int] = field(default_factory=list)   # infra errors held against a team
    infra_failures: int = 0                                     # retries the platform made (sum over rows)
    attempts_max: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    def figures(self) -> str:
        req = (f"requeue p50 {statistics.median(self.requeue_s):.1f} s, max {max(self.requeue_s):.1f} s "
               f"(n={len(self.requeue_s)})" if self.requeue_s else "requeue n/a")
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (f"{self.name}: {self.submissions} submissions in {self.wall_s:.0f} s; {outcomes}; "
                f"lost {len(self.lost)}; duplicates {len(self.duplicates)}; metered twice {len(self.metered_twice)}; "
                f"late results dropped {self.results_dropped}; {req}; retries {self.infra_failures}; "
                f"max attempt {self.attempts_max}; leases held {self.leases_held}; "
                f"platform errors counted against a team {len(self.counted_platform_errors)}"
                + "".join(f"\n    {n}" for n in self.notes))


class Watch(threading.Thread):
    """Polls every submission row (its own connection) and keeps each one's history of changes."""

    def __init__(self, db_url: str, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.engine = get_engine(db_url)
        self.interval = interval
        self.history: dict[int, list[tuple[float, str, int, str]]] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(text("select id, status, attempt, worker from submission")).all()
            except Exception:  # noqa: BLE001 - the database may be locked on purpose
                continue
            now = time.monotonic()
            for sid, status, attempt, worker in rows:
                seen = self.history.setdefault(sid, [])
                if not seen or seen[-1][1:] != (status, attempt, worker):
                    seen.append((now, status, attempt, worker))

    def running_again(self, sid: int, after: float, attempt: int) -> float | None:
        """Seconds from `after` until the submission ran under a newer attempt (or the same attempt again)."""
        for t, status, att, _w in self.history.get(sid, []):
            if t > after and status in ("running", "scored") and att > attempt:
                return t - after
        return None

    def final_entries(self, sid: int) -> int:
        """How many times the row entered a final state (1 is right)."""
        hist = self.history.get(sid, [])
        return sum(1 for prev, cur in zip([None, *hist], hist)
                   if cur[1] in TERMINAL and (prev is None or prev[1] not in TERMINAL))


class Drill:
    """One drill's world: a challenge with one fake device per node, worker nodes, a row watcher."""

    def __init__(self, session: Session, db_url: str, redis_url: str, workdir: Path, image_id: str,
                 name: str, **env: str) -> None:
        self.session, self.db_url, self.redis_url, self.workdir = session, db_url, redis_url, workdir
        self.image_id = image_id
        self.setup = make_eval_setup(session, workdir, accelerators=1, accelerator_class=ACCEL, time_limit_s=30)
        self.env = pipeline_env(db_url, redis_url, workdir, **env)
        self.nodes = Nodes(self.env, workdir)
        self.watch = Watch(db_url)
        self.report = Report(name)
        self.started = time.monotonic()
        self.watch.start()

    def node(self, name: str, **kwargs: Any) -> Any:
        kwargs.setdefault("queues", ACCEL)
        kwargs.setdefault("accelerators", f"{ACCEL}:1")
        return self.nodes.start(name, **kwargs)

    def submit(self, n: int, redis_url: str | None = None) -> list[int]:
        ids = []
        for _ in range(n):
            sub = submit.submit_image_id(self.session, slug=self.setup.challenge.slug, user=self.setup.users[0],
                                         image_id=self.image_id, image_ref="drill",
                                         redis_url=redis_url or self.redis_url)
            ids.append(sub.id)  # type: ignore[arg-type]
        self.report.ids += ids
        self.report.submissions += n
        return ids

    def rows(self) -> list[Submission]:
        return list(self.session.exec(select(Submission).where(Submission.id.in_(self.report.ids))  # type: ignore[union-attr]
                                      .execution_options(populate_existing=True)))

    def running_on(self, node: Any) -> Submission | None:
        return next((s for s in self.rows() if s.status == "running" and s.worker == node.name), None)

    def ended(self) -> int:
        return sum(1 for s in self.rows() if s.status in TERMINAL)

    def wait_running(self, node: Any, timeout: float = 60) -> Submission:
        return wait_for(lambda: self.running_on(node) if node.horse_pids() else None, timeout,
                        what=f"a run on {node.name}")

    def finish(self, timeout: float = 180) -> Report:
        """Wait for every submission to end (or the timeout), stop the nodes, fill in the report."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.ended() < len(self.report.ids):
            time.sleep(0.2)
        # Leases of finished attempts are released by the run itself or by the reaper's next sweep.
        held = lambda: [lease for lease in self.session.exec(  # noqa: E731
            select(Lease).where(Lease.released_at == None)  # noqa: E711
            .execution_options(populate_existing=True)) if lease.submission_id in self.report.ids]
        try:
            wait_for(lambda: not held(), 15, what="leases to be released")
        except AssertionError:
            pass
        self.report.leases_held = len(held())
        self.watch.halt.set()
        self.watch.join(timeout=5)
        logs = "\n".join(n.output() for n in self.nodes.started)
        if os.environ.get("HUB_DRILL_LOGS"):
            Path(os.environ["HUB_DRILL_LOGS"]).write_text(self.nodes.logs() + "\n" + repr(self.watch.history))
        self.nodes.stop_all()
        r = self.report
        r.wall_s = time.monotonic() - self.started
        r.results_dropped = logs.count("lost its claim; result dropped")
        for sub in self.rows():
            if sub.status not in TERMINAL:
                r.lost.append(sub.id)  # type: ignore[arg-type]
                continue
            r.outcomes[sub.outcome or sub.status] += 1
            if self.watch.final_entries(sub.id) > 1:  # type: ignore[arg-type]
                r.duplicates.append(sub.id)  # type: ignore[arg-type]
            if sub.outcome == "infra_error" and sub.counts_against_limit:
                r.counted_platform_errors.append(sub.id)  # type: ignore[arg-type]
            r.infra_failures += sub.infra_failures
            r.attempts_max = max(r.attempts_max, sub.attempt)
            lines = self.session.exec(select(LedgerLine).where(LedgerLine.submission_id == sub.id)).all()
            if len(lines) > 1:
                r.metered_twice.append(sub.id)  # type: ignore[arg-type]
        return r

    def logs(self) -> str:
        return self.nodes.logs()


# ---------------------------------------------------------------- the drills
def kill_workers(session: Session, db_url: str, redis_url: str, workdir: Path, image_id: str,
                 runs: int = 20) -> Report:
    """kill -9 of a node's parent only, of a work horse only, and of both, in the middle of `runs` runs."""
    d = Drill(session, db_url, redis_url, workdir, image_id, "kill -9 of workers")
    try:
        d.submit(runs)
        a, b = d.node("node-a"), d.node("node-b")
        kills: list[tuple[str, float, int, int]] = []

        def kill(label: str, node: Any, how: Callable[[Any], None]) -> None:
            sub = d.wait_running(node)
            t = time.monotonic()
            how(node)
            kills.append((label, t, sub.id, sub.attempt))  # type: ignore[arg-type]

        wait_for(lambda: d.ended() >= 3, 120, what="three runs to end")
        kill("parent only", a, lambda n: n.kill9(horse_too=False))
        c = d.node("node-c")
        wait_for(lambda: d.ended() >= 8, 120, what="eight runs to end")
        kill("work horse only", b, lambda n: [os.kill(p, 9) for p in n.horse_pids()])
        wait_for(lambda: d.ended() >= 12, 120, what="twelve runs to end")
        kill("parent and horse", c, lambda n: n.kill9(horse_too=True))
        d.node("node-d")
        report = d.finish()
        for label, t, sid, attempt in kills:
            again = d.watch.running_again(sid, t, attempt)
            if again is not None:
                report.requeue_s.append(again)
            report.notes.append(f"{label}: submission {sid} attempt {attempt} ran again after "
                                + (f"{again:.1f} s" if again is not None else "— (its first run finished it)"))
        return report
    finally:
        d.nodes.stop_all()
        d.watch.halt.set()


def restart_redis(session: Session, db_url: str, workdir: Path, image_id: str, runs: int = 10) -> Report:
    """A private redis-server killed (-9) and started again, empty, while work is queued and running."""
    import signal

    from evaluator.embedded import start_redis

    proc, url = start_redis(workdir / "own-redis")
    d = Drill(session, db_url, url, workdir, image_id, "Redis restarted mid-queue")
    try:
        d.submit(runs)
        node = d.node("node-r")
        running = d.wait_running(node)
        wait_for(lambda: d.ended() >= 2, 120, what="two runs to end")
        running = d.wait_running(node)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        t_down = time.monotonic()
        time.sleep(1.0)
        proc, url2 = start_redis(workdir / "own-redis")
        assert url2 == url
        alive = node.proc.poll() is None
        report = d.finish(timeout=120)
        again = d.watch.running_again(running.id, t_down, running.attempt)  # type: ignore[arg-type]
        report.notes.append(f"the run in flight when Redis died (submission {running.id}) "
                            + (f"ran again after {again:.1f} s" if again is not None else "finished in place"))
        after = [t for sid in report.ids for t, status, *_ in d.watch.history.get(sid, [])
                 if t > t_down and status == "running"]
        if after:
            report.requeue_s.append(min(after) - t_down)
            report.notes.append(f"first run started {min(after) - t_down:.1f} s after Redis went down (1 s outage)")
        report.notes.append(f"node process alive after the restart: {alive}")
        return report
    finally:
        d.nodes.stop_all()
        d.watch.halt.set()
        proc.terminate()
        proc.wait(timeout=10)


class DockerProxy:
    """A unix socket in front of the Docker engine that either forwards or refuses (closes) connections."""

    def __init__(self, path: Path, target: str | None = None) -> None:
        host = os.environ.get("DOCKER_HOST", "")
        self.target = target or (host.removeprefix("unix://") if host.startswith("unix://") else "/var/run/docker.sock")
        self.path = path
        self.refusing = True
        self.refused = 0
        self.forwarded = 0
        self._stop = threading.Event()
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX)
        self._sock.bind(str(path))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            if self.refusing:
                self.refused += 1
                conn.close()
                continue
            self.forwarded += 1
            up = socket.socket(socket.AF_UNIX)
            try:
                up.connect(self.target)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()
        self.path.unlink(missing_ok=True)


def docker_refuses(session: Session, db_url: str, redis_url: str, workdir: Path, image_id: str) -> Report:
    """The node's Docker engine refuses every call for one submission (→ infra_error, not counted), then
    for a second or so of another's tries (→ retried, then scored), then works again (→ scored)."""
    proxy = DockerProxy(workdir / "docker-proxy.sock")
    d = Drill(session, db_url, redis_url, workdir, image_id, "Docker engine refusing calls",
              DOCKER_HOST=proxy.url)
    try:
        node = d.node("node-dk")
        [always] = d.submit(1)
        wait_for(lambda: d.ended() >= 1, 120, what="the refused submission to end")
        refused_first = proxy.refused
        [flaky] = d.submit(1)
        wait_for(lambda: proxy.refused > refused_first, 30, what="a refused call for the second submission")
        t_refused = time.monotonic()
        time.sleep(1.5)
        proxy.refusing = False
        wait_for(lambda: d.ended() >= 2, 120, what="the flaky submission to end")
        [healthy] = d.submit(1)
        wait_for(lambda: d.ended() >= 3, 120, what="the healthy submission to end")
        alive = node.proc.poll() is None
        report = d.finish(timeout=5)
        ran = d.watch.history.get(flaky, [])
        back = [t for t, status, *_ in ran if t > t_refused and status in ("running", "scored")]
        if back:
            report.requeue_s.append(back[0] - t_refused)
        report.notes.append(f"calls refused {proxy.refused}, forwarded {proxy.forwarded}; submissions: "
                            f"always refused #{always}, refused then served #{flaky}, healthy #{healthy}; "
                            f"node alive: {alive}")
        return report
    finally:
        d.nodes.stop_all()
        d.watch.halt.set()
        proxy.close()


def hold_database(db_url: str, seconds: float) -> None:
    """Make the database unavailable to writers for `seconds` (SQLite: an exclusive transaction;
    PostgreSQL: an ACCESS EXCLUSIVE lock on submission and lease, which blocks readers too), then let go."""
    engine = get_engine(db_url)
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN EXCLUSIVE")
        else:
            conn.exec_driver_sql("LOCK TABLE submission, lease IN ACCESS EXCLUSIVE MODE")
        try:
            time.sleep(seconds)
        finally:
            conn.rollback()


def database_unavailable(session: Session, db_url: str, redis_url: str, workdir: Path, image_id: str,
                         runs: int = 4, hold_s: float = 5.0) -> Report:
    """The database locked for `hold_s` while a node runs one submission and others wait."""
    d = Drill(session, db_url, redis_url, workdir, image_id, f"database locked {hold_s:g} s")
    try:
        d.submit(runs)
        node = d.node("node-db")
        running = d.wait_running(node)
        # End this process's own read transaction first: on PostgreSQL the lock below would wait for it for ever.
        session.commit()
        t0 = time.monotonic()
        hold_database(db_url, hold_s)
        held = time.monotonic() - t0
        wait_for(lambda: d.ended() >= runs, 120, what="every run to end")
        alive = node.proc.poll() is None
        report = d.finish(timeout=5)
        first_after = [t for sid in report.ids for t, status, *_ in d.watch.history.get(sid, [])
                       if t > t0 + held and status in TERMINAL]
        report.notes.append(f"held {held:.1f} s while submission {running.id} ran; first result after the "
                            "lock: " + (f"{min(first_after) - t0 - held:.1f} s" if first_after else "none")
                            + f"; node alive: {alive}")
        return report
    finally:
        d.nodes.stop_all()
        d.watch.halt.set()


def model_script(seconds: float = 1.0) -> str:
    """A correct model that takes `seconds`: long enough to be killed mid-run."""
    return slow_model(seconds)
