"""Simulate 200 evaluation jobs on 4 declared accelerators with real leases and ledger rows.

    .venv/bin/python bench/quota_sim.py [--jobs 200] [--devices 4] [--workers 8] [--db URL]

Worker threads (each with its own DB session) lease devices, hold them while a simulated container
runs, meter the container's own start/finish, and release. Prints utilisation per device, the gap between
leased and metered seconds (the platform's overhead around each container), lease waits, and checks that
no device was ever held by two runs and that the ledger reconciles with the voucher.
"""
from __future__ import annotations

import argparse
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import Session, select  # noqa: E402

from challenges.models import Challenge, Phase, Submission, Team  # noqa: E402
from evaluator.quota import leases, ledger, vouchers  # noqa: E402
from evaluator.quota.inventory import node_inventory, register_node  # noqa: E402
from evaluator.quota.models import Lease, LedgerLine  # noqa: E402
from hub.db import get_engine  # noqa: E402
from hub.models import Organisation, OrgKind, User, utcnow  # noqa: E402
from hub.models_registry import load_all  # noqa: E402
from marketplace.models import Scenario  # noqa: E402

NODE, CLASS = "sim-node", "nvidia-a100"


def seed(session: Session, jobs: int, devices: int) -> list[Submission]:
    city = Organisation(code="sim-city", name="模拟新城", kind=OrgKind.CITY)
    center = Organisation(code="sim-center", name="模拟智算中心", kind=OrgKind.CENTER)
    bureau = Organisation(code="sim-bureau", name="模拟大数据局", kind=OrgKind.DISTRICT)
    company = Organisation(code="sim-co", name="模拟科技有限公司", kind=OrgKind.COMPANY)
    session.add_all([city, center, bureau, company])
    session.flush()
    user = User(email="sim@bench.example", password_hash="x", role="team", org_id=company.id)
    session.add(user)
    session.flush()
    scenario = Scenario(city_id=city.id, title="模拟场景", industry="smart_logistics", description="",
                        expected_outcome="", indicators="", deadline=utcnow().date(), contact_name="-",
                        contact_info="-")
    session.add(scenario)
    session.flush()
    now = utcnow()
    ch = Challenge(scenario_id=scenario.id, city_id=city.id, slug="sim", title="模拟榜单", opens_at=now,
                   closes_at=now + timedelta(days=30), metric="accuracy", accelerators=1, accelerator_class=CLASS)
    session.add(ch)
    session.flush()
    phase = Phase(challenge_id=ch.id, name="sim", starts_at=now, ends_at=now + timedelta(days=30), split="public")
    team = Team(challenge_id=ch.id, name="sim-team", lead_org_id=company.id, captain_id=user.id, invite_token="t")
    session.add_all([phase, team])
    session.flush()
    subs = [Submission(challenge_id=ch.id, phase_id=phase.id, team_id=team.id, submitted_by=user.id, attempt=1)
            for _ in range(jobs)]
    session.add_all(subs)
    session.commit()
    register_node(session, NODE, node_inventory({"NVIDIA_SMI": "", "HUB_NODE_NAME": NODE,
                                                 "ACCELERATORS": f"{CLASS}:{devices}"}))
    ledger.set_price(session, accel_class=CLASS, fen_per_device_hour=3600, actor_id=None,
                     valid_from=now - timedelta(days=1))
    vouchers.issue(session, company_id=company.id, bureau_id=bureau.id, supplier_id=center.id, scheme="sim",
                   percent=50, cap_fen=300_000_000, valid_from=now - timedelta(days=1),
                   valid_until=now + timedelta(days=300), actor_id=None)
    return subs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--db", default="", help="database URL (default: a temporary SQLite file)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    url = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='quota-sim-')}/sim.sqlite3"
    engine = get_engine(url)
    meta = load_all().metadata
    meta.drop_all(engine)
    meta.create_all(engine)
    with Session(engine, expire_on_commit=False) as s:
        subs = seed(s, args.jobs, args.devices)
    # A quarter of the jobs need two devices; containers run 20-80 ms.
    challenge_id = subs[0].challenge_id
    plan = [(sub.id, 2 if rnd.random() < 0.25 else 1, rnd.uniform(0.02, 0.08)) for sub in subs]
    jobs: queue.Queue = queue.Queue()
    for item in plan:
        jobs.put(item)
    waits: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        with Session(engine, expire_on_commit=False) as s:
            while True:
                try:
                    sub_id, count, duration = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    t0 = time.monotonic()
                    while (lease := leases.acquire(s, submission_id=sub_id, attempt=1, challenge_id=challenge_id,
                                                   accel_class=CLASS, count=count, node=NODE, ttl_s=30)) is None:
                        time.sleep(0.003)
                    with lock:
                        waits.append(time.monotonic() - t0)
                    started = utcnow()          # the container's own start ...
                    time.sleep(duration)
                    finished = utcnow()         # ... and finish, as Docker would report them
                    # DESIGN.md's order: release the lease, then write the metered seconds.
                    leases.release(s, lease.id)
                    ledger.meter_run(s, submission_id=sub_id, lease_id=lease.id, device_class=CLASS,
                                     device_ids=lease.device_ids, started_at=started, finished_at=finished)
                except Exception as err:  # noqa: BLE001 - counted and printed
                    with lock:
                        errors.append(repr(err))

    wall0, t_start = time.monotonic(), utcnow()
    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, t_end = time.monotonic() - wall0, utcnow()

    with Session(engine) as s:
        all_leases = s.exec(select(Lease)).all()
        lines = s.exec(select(LedgerLine)).all()
        per_dev_leased: dict[str, float] = defaultdict(float)
        per_dev_metered: dict[str, float] = defaultdict(float)
        intervals: dict[str, list[tuple]] = defaultdict(list)
        for lease in all_leases:
            span = (lease.released_at - lease.acquired_at).total_seconds()
            for d in lease.device_ids:
                per_dev_leased[d] += span
                intervals[d].append((lease.acquired_at, lease.released_at))
        for ln in lines:
            for d in ln.device_ids:
                per_dev_metered[d] += ln.seconds
        doubled = 0
        for spans in intervals.values():
            spans.sort()
            doubled += sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
        window = (t_end - t_start).total_seconds()
        leased_total = sum(per_dev_leased.values())
        metered_total = sum(per_dev_metered.values())
        gaps = [((lease.released_at - lease.acquired_at).total_seconds() - ln.seconds) * 1000
                for lease in all_leases for ln in lines if ln.lease_id == lease.id]
        mismatches = ledger.reconcile(s)

    print(f"database: {engine.dialect.name}; jobs {args.jobs}, devices {args.devices}, workers {args.workers}")
    print(f"wall time {wall:.2f} s; errors {len(errors)}; ledger lines {len(lines)}; leases {len(all_leases)}")
    print(f"{'device':32} {'leased s':>9} {'metered s':>9} {'util(leased)':>12} {'util(metered)':>13}")
    for d in sorted(per_dev_leased):
        print(f"{d:32} {per_dev_leased[d]:9.3f} {per_dev_metered[d]:9.3f} {per_dev_leased[d] / window:12.1%} "
              f"{per_dev_metered[d] / window:13.1%}")
    print(f"total device-seconds: leased {leased_total:.3f}, metered {metered_total:.3f}, "
          f"gap {leased_total - metered_total:.3f} ({(leased_total - metered_total) / max(leased_total, 1e-9):.1%} "
          f"of leased time not billed)")
    if gaps:
        print(f"per-run gap leased-metered (ms): median {statistics.median(gaps):.1f}, "
              f"p95 {sorted(gaps)[int(len(gaps) * 0.95) - 1]:.1f}, max {max(gaps):.1f}")
    print(f"lease wait (ms): median {statistics.median(waits) * 1000:.1f}, max {max(waits) * 1000:.1f}")
    print(f"device held by two runs at once: {doubled}; voucher reconciliation mismatches: {len(mismatches)}")
    if errors:
        print("first error:", errors[0])
    sys.exit(1 if errors or doubled or mismatches else 0)


if __name__ == "__main__":
    main()
