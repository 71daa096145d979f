"""The center's scale without containers: 450 nodes each running one run, 10,000 runs waiting over 20 challenges.

    .venv/bin/python bench/scale_sim.py [--db sqlite|postgresql] [--nodes 450] [--waiting 10000] [--reps 5]

Rows are inserted in bulk into a fresh database (SQLite in a temporary folder, or `BENCH_DATABASE_URL` /
postgresql://hub:hub@127.0.0.1:5432/hub_bench, whose tables are dropped and created again); Redis is a private
redis-server on a socket. Nodes beat and runs are claimed by calling the worker's own functions, so the figures
are those of the platform's code, not of a model of it. Prints the median of `--reps` for: a dispatcher tick
(one run ended, one slot to fill), a reaper sweep (nothing to do), the refill after FLUSHDB, the hand-back of 10
dead nodes (time and statements), a queue position, and the DB writes per second while every node beats for 10 s.
"""
from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import Redis  # noqa: E402
from sqlalchemy import event, insert, update  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from challenges.models import Challenge, ChallengeStatus, Phase, Submission, SubmissionStatus, Team  # noqa: E402
from evaluator import dispatch, nodes, queues, reaper, state, worker  # noqa: E402
from evaluator.embedded import start_redis  # noqa: E402
from evaluator.models import WorkerNode  # noqa: E402
from evaluator.quota import inventory, leases  # noqa: E402
from evaluator.quota.models import Device  # noqa: E402
from hub.db import dispose_engines, get_engine  # noqa: E402
from hub.models import Organisation, OrgKind, User, utcnow  # noqa: E402
from hub.models_registry import load_all  # noqa: E402
from marketplace.models import Scenario  # noqa: E402

CLASS = "sim-gpu"
IMAGE = "sha256:" + "5" * 64
PG_DEFAULT = "postgresql://hub:hub@127.0.0.1:5432/hub_bench"
TARGETS = {"tick": "≤ 50 ms", "reaper": "≤ 50 ms", "refill": "≤ 5 s", "handback": "—", "position": "≤ 5 ms",
           "writes": "0/s"}


class Counter:
    """Statements sent to the database (a before_cursor_execute listener), writes apart."""

    def __init__(self, engine: Any) -> None:
        self.total = self.writes = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.total += 1
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.writes += 1


class Sim:
    """The simulated center: its database, its Redis, and which run each node holds."""

    def __init__(self, url: str, conn: Redis, nodes: int) -> None:
        self.url, self.conn = url, conn
        self.engine = get_engine(url)
        self.session = Session(self.engine, expire_on_commit=False)
        self.nodes = [f"node-{i:03d}" for i in range(nodes)]
        self.devices = {n: inventory.parse_accelerators(f"{CLASS}:1", n) for n in self.nodes}
        self.runs: dict[str, tuple[int, int] | None] = {n: None for n in self.nodes}
        self.dead: set[str] = set()
        self.counter = Counter(self.engine)

    # ------------------------------------------------------------ the nodes' side (the worker's own functions)
    def beat_all(self) -> None:
        """Every live node's beat, as NodeWorker.node_tick does it."""
        for node in self.nodes:
            if node not in self.dead:
                run = self.runs[node]
                worker.beat(self.conn, node, [CLASS], self.devices[node], [run] if run else [])

    def lease_checks(self) -> None:
        """What each running attempt's watcher (jobs.LiveLog) does about its lease once a second."""
        for node, run in self.runs.items():
            if run is not None and node not in self.dead:
                with Session(self.engine, expire_on_commit=False) as s:
                    s.get(Submission, run[0])
                    leases.attempt_ended(s, run[0], run[1])

    def claim(self, sub_id: int, attempt: int, node: str, challenge_id: int) -> None:
        """A node's work horse takes a dispatched run: claim, lease, RQ job started; aged past the reaper's grace."""
        s = self.session
        assert state.claim(s, sub_id, attempt, node)
        assert leases.acquire(s, submission_id=sub_id, attempt=attempt, challenge_id=challenge_id,
                                   accel_class=CLASS, count=1, node=node, ttl_s=3600) is not None
        s.exec(update(Submission).where(Submission.id == sub_id)  # type: ignore[call-overload]
               .values(started_at=utcnow() - timedelta(seconds=60)))
        s.commit()
        job = queues.enqueue(self.conn, sub_id, attempt, CLASS, 600)
        job.set_status("started")
        self.conn.lrem(f"rq:queue:{queues.queue_name(CLASS)}", 0, job.id)
        self.runs[node] = (sub_id, attempt)

    def settle(self) -> None:
        """Free live nodes take the dispatched runs (what they would do within a second)."""
        s = self.session
        free = [n for n in self.nodes if self.runs[n] is None and n not in self.dead]
        sent = s.exec(select(Submission.id, Submission.attempt, Submission.challenge_id).where(
            Submission.status == SubmissionStatus.QUEUED, Submission.job_id != "").order_by(Submission.id)).all()
        for (sub_id, attempt, challenge_id), node in zip(sent, free):
            self.claim(sub_id, attempt, node, challenge_id)
        self.beat_all()

    def end_one(self) -> None:
        """One run ends (scored), its lease is released and its node is free."""
        node = next(n for n in self.nodes if self.runs[n] is not None and n not in self.dead)
        sub_id, attempt = self.runs[node]  # type: ignore[misc]
        s = self.session
        assert state.finish(s, sub_id, attempt, state.Result("scored", "scored", scores={"accuracy": 1.0},
                                                             primary_score=1.0))
        leases.release_attempt(s, sub_id, attempt)
        self.conn.delete(f"rq:job:{state.job_id_for(sub_id, attempt)}")
        self.runs[node] = None
        self.beat_all()


def build(sim: Sim, waiting: int, challenges: int) -> None:
    s = sim.session
    metadata = load_all().metadata
    metadata.drop_all(sim.engine)
    metadata.create_all(sim.engine)
    city = Organisation(code="scale-city", name="规模新城", kind=OrgKind.CITY)
    company = Organisation(code="scale-co", name="规模科技", kind=OrgKind.COMPANY)
    s.add_all([city, company])
    s.flush()
    user = User(email="scale@bench.example", password_hash="x", role="team", org_id=company.id)
    s.add(user)
    s.flush()
    scenario = Scenario(city_id=city.id, title="规模场景", industry="smart_logistics", description="",
                        expected_outcome="", indicators="", deadline=utcnow().date(), contact_name="-",
                        contact_info="-", status="published")
    s.add(scenario)
    s.flush()
    now = utcnow()
    plan: list[tuple[int, int, int]] = []       # (challenge, phase, team)
    for i in range(challenges):
        ch = Challenge(scenario_id=scenario.id, city_id=city.id, slug=f"scale-{i}", title=f"规模{i}",
                       opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=30),
                       status=ChallengeStatus.OPEN, metric="accuracy", accelerators=1, accelerator_class=CLASS)
        s.add(ch)
        s.flush()
        phase = Phase(challenge_id=ch.id, name="p", starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=30),
                      split="public")
        team = Team(challenge_id=ch.id, name=f"t{i}", lead_org_id=company.id, captain_id=user.id,
                    invite_token=f"tok{i}", status="approved")
        s.add_all([phase, team])
        s.flush()
        plan.append((ch.id, phase.id, team.id))  # type: ignore[arg-type]
    s.execute(insert(WorkerNode), [{"name": n, "hostname": "sim", "queues": [CLASS], "accelerators": sim.devices[n],
                                    "started_at": now, "heartbeat_at": now} for n in sim.nodes])
    s.execute(insert(Device), [{"uuid": d["uuid"], "node": n, "accel_class": CLASS, "index": 0, "name": CLASS,
                                "source": "config", "active": True, "last_seen": now}
                               for n in sim.nodes for d in sim.devices[n]])

    def row(k: int, **extra: Any) -> dict[str, Any]:
        ch, ph, tm = plan[(k * 7 + k // 3) % challenges]     # uneven, interleaved groups
        return {"challenge_id": ch, "phase_id": ph, "team_id": tm, "submitted_by": user.id, "image_id": IMAGE,
                "image_ref": "m", "created_at": now, "reason": "", "scores": {}, "log_excerpt": "", **extra}

    s.execute(insert(Submission), [row(k) for k in range(len(sim.nodes))])
    s.execute(insert(Submission), [row(k) for k in range(waiting)])
    s.commit()
    running = s.exec(select(Submission.id, Submission.challenge_id).order_by(Submission.id)
                     .limit(len(sim.nodes))).all()
    for (sub_id, challenge_id), node in zip(running, sim.nodes):
        assert state.mark_dispatched(s, sub_id, 0, queues.queue_name(CLASS)) == 1
        sim.claim(sub_id, 1, node, challenge_id)
    sim.beat_all()


def median_of(reps: int, before: Callable[[], None], timed: Callable[[], Any], after: Callable[[], None]) -> float:
    times = []
    for _ in range(reps):
        before()
        t0 = time.perf_counter()
        timed()
        times.append(time.perf_counter() - t0)
        after()
    return statistics.median(times)


# ---------------------------------------------------------------- the oracle
# The dispatcher's rule as it was before issue 10, over the whole backlog loaded at once: too slow for a tick at
# this scale, but the plainest statement of the rule, so every counted position is checked against it.
def _class_rows(session: Session, accel_class: str | None,
                statuses: tuple[str, ...]) -> list[tuple[Submission, Challenge]]:
    stmt = (select(Submission, Challenge).join(Challenge, Challenge.id == Submission.challenge_id)  # type: ignore[arg-type]
            .where(Submission.status.in_(statuses)).order_by(Submission.id))  # type: ignore[attr-defined]
    rows = list(session.exec(stmt))
    if accel_class is None:
        return rows
    return [(s, c) for s, c in rows if queues.accel_class_of(c.accelerators, c.accelerator_class) == accel_class]


@dataclass
class Backlog:
    """Where one accelerator class stands: waiting in the DB, dispatched to Redis, running."""

    accel_class: str
    waiting: list[Submission] = field(default_factory=list)
    dispatched: list[Submission] = field(default_factory=list)
    running: list[Submission] = field(default_factory=list)
    challenges: dict[int, Challenge] = field(default_factory=dict)


def backlogs(session: Session, accel_class: str | None = None) -> dict[str, Backlog]:
    out: dict[str, Backlog] = {}
    for sub, ch in _class_rows(session, accel_class, (SubmissionStatus.QUEUED, SubmissionStatus.RUNNING)):
        cls = queues.accel_class_of(ch.accelerators, ch.accelerator_class)
        b = out.setdefault(cls, Backlog(cls))
        b.challenges[ch.id] = ch  # type: ignore[index]
        if sub.status == SubmissionStatus.RUNNING:
            b.running.append(sub)
        elif sub.job_id:
            b.dispatched.append(sub)
        else:
            b.waiting.append(sub)
    return out


def fair_order(backlog: Backlog, cap: int = 0) -> list[Submission]:
    """The waiting submissions of one class in the order feed() would dispatch them."""
    inflight: dict[int, int] = defaultdict(int)
    for sub in backlog.dispatched + backlog.running:
        inflight[sub.challenge_id] += 1
    pending: dict[int, list[Submission]] = defaultdict(list)
    for sub in backlog.waiting:          # already oldest first
        pending[sub.challenge_id].append(sub)
    order: list[Submission] = []
    while pending:
        eligible = [c for c in pending if not cap or inflight[c] < cap]
        if not eligible:
            break
        cid = min(eligible, key=lambda c: (inflight[c], pending[c][0].id))
        order.append(pending[cid].pop(0))
        inflight[cid] += 1
        if not pending[cid]:
            del pending[cid]
    return order


def measure(sim: Sim, reps: int, beat_s: float) -> dict[str, str]:
    s, conn = sim.session, sim.conn
    out: dict[str, str] = {}
    noop = lambda: None  # noqa: E731
    sent: list[list[int]] = []
    t = median_of(reps, sim.end_one, lambda: sent.append(dispatch.feed(s, conn)), sim.settle)
    out["tick"] = f"{t * 1000:.1f} ms (dispatched per tick: {[len(x) for x in sent]})"

    swept: list[reaper.SweepReport] = []
    t = median_of(reps, sim.beat_all, lambda: swept.append(reaper.sweep(s, conn)), noop)
    changed = sum(len(r.requeued) + len(r.failed) + len(r.leases_released) for r in swept)
    out["reaper"] = f"{t * 1000:.1f} ms (rows changed by the sweeps: {changed}, expected 0)"

    last = s.exec(select(Submission.id).where(Submission.status == SubmissionStatus.QUEUED,
                                              Submission.job_id == "").order_by(Submission.id.desc())).first()  # type: ignore[union-attr]
    positions: list[int | None] = []
    t = median_of(reps, noop, lambda: positions.append(dispatch.queue_position(s, last, conn).position), noop)  # type: ignore[arg-type]
    cls = next(iter(backlogs(s)))
    backlog = backlogs(s, cls)[cls]
    order = [x.id for x in fair_order(backlog)]
    sample = order[:: max(1, len(order) // 25)] + [last]
    wrong = [i for i in sample
             if dispatch.queue_position(s, i, conn).position != len(backlog.dispatched) + 1 + order.index(i)]
    s.rollback()
    out["position"] = (f"{t * 1000:.2f} ms (position of the last waiting run: {positions[0]}; "
                       f"{len(sample) - len(wrong)}/{len(sample)} sampled positions equal fair_order's)")

    # 10 nodes die; every other node beats; the reaper hands their runs back (the sweep timed, and its statements).
    statements: list[int] = []
    handed: list[int] = []
    victims = iter([n for n in sim.nodes if sim.runs[n] is not None][: 10 * reps])

    def kill_ten() -> None:
        conn.set(nodes.EPOCH, time.time() - 3600)   # Redis has been up a while: the dead may be declared dead
        for _ in range(10):
            node = next(victims)
            sim.dead.add(node)
            sim.runs[node] = None
            s.exec(update(WorkerNode).where(WorkerNode.name == node)  # type: ignore[call-overload]
                   .values(heartbeat_at=utcnow() - timedelta(hours=1)))
            conn.delete(nodes.node_key(node))
        s.commit()
        sim.beat_all()
        sim.counter.total = 0

    def swept_back() -> None:
        report = reaper.sweep(s, conn)
        handed.append(len(report.requeued))
        statements.append(sim.counter.total)

    t = median_of(reps, kill_ten, swept_back, noop)
    out["handback"] = (f"{t * 1000:.1f} ms, {statistics.median(statements):.0f} statements "
                       f"(runs handed back per sweep: {handed})")

    sim.beat_all()
    sim.counter.writes = 0
    t0 = time.monotonic()
    last_beat = last_check = -10.0
    beats = checks = 0
    while time.monotonic() - t0 < beat_s:
        now = time.monotonic() - t0
        if now - last_beat >= worker.HEARTBEAT_S:
            last_beat = now
            sim.beat_all()
            beats += 1
        if now - last_check >= 1.0:
            last_check = now
            sim.lease_checks()
            checks += 1
        time.sleep(0.01)
    elapsed = time.monotonic() - t0
    out["writes"] = (f"{sim.counter.writes / elapsed:.0f}/s ({sim.counter.writes} writes in {elapsed:.1f} s; "
                     f"{beats} beats and {checks} lease checks of every node)")

    # Redis restarts empty: the nodes announce themselves again, the reaper/dispatcher rebuild what Redis carried.
    refills: list[int] = []

    def flush() -> None:
        sim.settle()
        conn.flushdb()
        sim.beat_all()

    def refill() -> None:
        deadline = time.monotonic() + 120
        n = 0
        while time.monotonic() < deadline:
            report = reaper.sweep(s, conn)
            n += 1
            if not (report.requeued or report.dispatched or report.failed):
                break
        refills.append(n)

    t = median_of(reps, flush, refill, noop)
    out["refill"] = f"{t:.2f} s (sweeps until nothing changed: {refills})"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--nodes", type=int, default=450)
    ap.add_argument("--waiting", type=int, default=10_000)
    ap.add_argument("--challenges", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--beat-seconds", type=float, default=10.0)
    args = ap.parse_args()
    logging.disable(logging.WARNING)   # hand-backs log one line per run
    os.environ.setdefault("HUB_WORKER_DEAD_AFTER", "10")
    with tempfile.TemporaryDirectory(prefix="hub-scale-") as tmp:
        url = (f"sqlite:///{tmp}/scale.sqlite3" if args.db == "sqlite"
               else os.environ.get("BENCH_DATABASE_URL", PG_DEFAULT))
        redis_proc, redis_url = start_redis(Path(tmp))
        try:
            sim = Sim(url, Redis.from_url(redis_url), args.nodes)
            t0 = time.perf_counter()
            build(sim, args.waiting, args.challenges)
            print(f"scale_sim on {args.db}: {args.nodes} nodes with one run each, {args.waiting} waiting over "
                  f"{args.challenges} challenges (built in {time.perf_counter() - t0:.1f} s); medians of {args.reps}\n")
            figures = measure(sim, args.reps, args.beat_seconds)
            labels = {"tick": "dispatcher tick", "reaper": "reaper sweep", "position": "queue position",
                      "handback": "hand-back of 10 dead nodes", "writes": "DB writes/s from liveness",
                      "refill": "refill after FLUSHDB"}
            for key, label in labels.items():
                print(f"{label:<28} {figures[key]}   [target {TARGETS[key]}]")
            sim.session.close()
        finally:
            dispose_engines()
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
