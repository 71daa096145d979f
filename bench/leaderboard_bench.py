"""Time one leaderboard build over 10,000 submissions from 500 teams, on SQLite and on PostgreSQL.

    .venv/bin/python bench/leaderboard_bench.py [--pg-url postgresql://hub:hub@127.0.0.1:5432/hub_bench]
Target: ≤ 20 ms per build (one SQL query builds the board).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from hub.db import dispose_engines, get_engine  # noqa: E402
from hub.models_registry import load_all  # noqa: E402

TEAMS, SUBMISSIONS, BUILDS, TARGET_MS = 500, 10_000, 50, 20.0


def populate(url: str) -> tuple[int, int]:
    """Fresh schema with one challenge, one phase, 500 teams and 10,000 scored submissions."""
    from challenges.models import Baseline, Challenge, Phase, Submission, Team, TeamMember
    from hub.models import Organisation, User, utcnow
    from marketplace.models import Scenario

    engine = get_engine(url)
    metadata = load_all().metadata
    metadata.drop_all(engine)
    metadata.create_all(engine)
    rng = random.Random(7)
    now = utcnow()
    with Session(engine) as s:
        city = Organisation(code="city", name="城", kind="city")
        company = Organisation(code="co", name="公司", kind="company", credit_code="91610000BENCH00001")
        s.add_all([city, company])
        s.flush()
        user = User(email="bench@example.org", password_hash="x", role="team", org_id=company.id)
        s.add(user)
        s.flush()
        scen = Scenario(city_id=city.id, title="t", industry="smart_energy", description="d", expected_outcome="e",
                        indicators="i", deadline=now.date(), contact_name="c", contact_info="c")
        s.add(scen)
        s.flush()
        ch = Challenge(scenario_id=scen.id, city_id=city.id, slug="bench", title="bench", metric="rmse",
                       extra_metrics=["mae"], opens_at=now - timedelta(days=30), closes_at=now + timedelta(days=30),
                       status="open")
        s.add(ch)
        s.flush()
        ph = Phase(challenge_id=ch.id, name="p", starts_at=now - timedelta(days=30), ends_at=now + timedelta(days=30),
                   split="public")
        s.add(ph)
        s.flush()
        teams = [Team(challenge_id=ch.id, name=f"team-{i:03d}", lead_org_id=company.id, captain_id=user.id,
                      invite_token=f"t{i}", status="approved") for i in range(TEAMS)]
        s.add_all(teams)
        s.flush()
        s.add(TeamMember(team_id=teams[0].id, challenge_id=ch.id, user_id=user.id, role="captain", status="active"))
        s.add(Baseline(phase_id=ph.id, label="baseline", primary_score=30.0, scores={"rmse": 30.0, "mae": 20.0}))
        rows = []
        for k in range(SUBMISSIONS):
            team = teams[(k * 7) % TEAMS]
            score = round(rng.uniform(5, 40), 4)
            at = now - timedelta(minutes=rng.randint(0, 60 * 24 * 29))
            rows.append(dict(challenge_id=ch.id, phase_id=ph.id, team_id=team.id, submitted_by=user.id, created_at=at,
                             status="scored" if k % 7 else "failed", outcome="scored" if k % 7 else "bad_output",
                             scores={"rmse": score, "mae": score * 0.7} if k % 7 else {},
                             primary_score=score if k % 7 else None, reason="", log_excerpt=""))
        s.commit()
        s.execute(Submission.__table__.insert(), rows)
        s.commit()
        s.execute(text("ANALYZE"))
        s.commit()
        return ph.id, user.id


def measure(url: str, label: str) -> None:
    from challenges import leaderboard
    from hub.models import User

    phase_id, user_id = populate(url)
    engine = get_engine(url)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    from challenges.models import Challenge, Phase

    with Session(engine) as s:
        viewer = s.get(User, user_id)
        # A page holds its challenge and phase already (it looked them up by slug), so they stay in the
        # session's identity map and the build itself runs the one board query.
        phase = s.get(Phase, phase_id)
        challenge = s.get(Challenge, phase.challenge_id)  # noqa: F841 - kept alive on purpose
        board = leaderboard.build(s, phase_id, viewer=None)
        statements.clear()
        timings: dict[str, list[float]] = {"anonymous": [], "team member": []}
        cpu: dict[str, list[float]] = {"anonymous": [], "team member": []}
        for who, v in (("anonymous", None), ("team member", viewer)):
            for _ in range(BUILDS):
                t0, c0 = time.perf_counter(), time.process_time()
                board = leaderboard.build(s, phase_id, viewer=v)
                timings[who].append((time.perf_counter() - t0) * 1000)
                cpu[who].append((time.process_time() - c0) * 1000)
        per_build = len(statements) / (2 * BUILDS)
    print(f"{label}: {len(board.rows) - 1} teams ranked from {SUBMISSIONS} submissions; "
          f"{per_build:.0f} SQL statement(s) per build")
    for who, ts in timings.items():
        med, p95 = statistics.median(ts), sorted(ts)[int(0.95 * len(ts)) - 1]
        verdict = "ok" if med <= TARGET_MS else "MISSED"
        # On a shared machine the wall clock includes waiting for a core; this process's CPU time does not
        # (for PostgreSQL it leaves out the server's own work).
        print(f"  {who:12s} median {med:6.2f} ms  p95 {p95:6.2f} ms  (target ≤ {TARGET_MS:.0f} ms: {verdict});"
              f"  client CPU median {statistics.median(cpu[who]):6.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL")
                        or "postgresql://hub:hub@127.0.0.1:5432/hub_bench")
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{tmp}/bench.sqlite3", "SQLite")
        dispose_engines()
    if not args.skip_pg:
        try:
            with get_engine(args.pg_url).connect() as conn:
                conn.execute(text("select 1"))
        except Exception as err:  # noqa: BLE001 - report and carry on: a missing server is a figure too
            print(f"PostgreSQL: not measured ({err.__class__.__name__}: {str(err).splitlines()[0][:120]})")
        else:
            measure(args.pg_url, "PostgreSQL")
        dispose_engines()
    return 0


if __name__ == "__main__":
    sys.exit(main())
