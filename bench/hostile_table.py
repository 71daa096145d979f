"""The hostile-image table: each attack of tests/evaluator/hostile.py against the real sandbox, with the
ceiling it actually reached beside the limit that was set.

    .venv/bin/python bench/hostile_table.py [--only fork_bomb,log_flood]

Run-time attacks go through evaluator.sandbox.run() with the spec the pipeline builds (the sandbox's
defaults for pids, /tmp, /output; the challenge's time and memory limits; the pipeline's log cap), then
through the pipeline's own classification (evaluator.jobs.classify) and scorer, so the "outcome" column
is the typed outcome a team would read. While each container runs, a poller reads its cgroup (pids,
memory) and the size of Docker's log file. Upload-side attacks go through intake (stream with the byte
cap, then check_image_tar). The "orphan" column says whether a container or a volume of the run was left
on the engine. `fork_storm_beside` runs two containers at once: a fork storm at a pids limit of 1024 and,
beside it, the pipeline's spec for a well-behaved model that forks 200 processes. Prints one table; exits 0
whatever the figures are.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from challenges.scoring import files as scoring  # noqa: E402
from evaluator import images, intake, jobs, sandbox  # noqa: E402
from tests.evaluator import hostile  # noqa: E402

MIB = 1 << 20


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _pids_events_max(path: Path) -> int | None:
    try:
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "max":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


class Poller(threading.Thread):
    """Samples a running container's cgroup (pids, memory) and Docker's log file until stopped."""

    def __init__(self, client: Any, name: str) -> None:
        super().__init__(daemon=True)
        self.client, self.name = client, name
        self.halt = threading.Event()
        self.pids_peak = 0
        self.fork_refusals: int | None = None
        self.mem_peak: int | None = None
        self.log_file_peak = 0

    def _dirs(self, cid: str) -> tuple[Path | None, Path | None]:
        v1_pids, v1_mem = Path(f"/sys/fs/cgroup/pids/docker/{cid}"), Path(f"/sys/fs/cgroup/memory/docker/{cid}")
        if v1_pids.is_dir():
            return v1_pids, v1_mem if v1_mem.is_dir() else None
        for v2 in (Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope"), Path(f"/sys/fs/cgroup/docker/{cid}")):
            if v2.is_dir():
                return v2, v2
        return None, None

    def run(self) -> None:
        cid = log_path = None
        pids_dir = mem_dir = None
        while not self.halt.is_set():
            if cid is None or not log_path or pids_dir is None:
                # Docker names the log file, and the kernel makes the cgroup, when the container starts,
                # which may be a moment after it is created: look again until both are there.
                try:
                    attrs = self.client.api.inspect_container(self.name)
                    cid, log_path = attrs["Id"], attrs.get("LogPath")
                except Exception:  # noqa: BLE001 - not created yet
                    time.sleep(0.01)
                    continue
                pids_dir, mem_dir = self._dirs(cid)
            if pids_dir is not None:
                self.pids_peak = max(self.pids_peak, _read_int(pids_dir / "pids.current") or 0)
                self.fork_refusals = _pids_events_max(pids_dir / "pids.events")
            if mem_dir is not None:
                peak = (_read_int(mem_dir / "memory.max_usage_in_bytes") or _read_int(mem_dir / "memory.peak")
                        or _read_int(mem_dir / "memory.usage_in_bytes") or _read_int(mem_dir / "memory.current"))
                if peak:
                    self.mem_peak = max(self.mem_peak or 0, peak)
            if log_path:
                try:
                    size = sum(p.stat().st_size for p in Path(log_path).parent.glob(Path(log_path).name + "*"))
                    self.log_file_peak = max(self.log_file_peak, size)
                except OSError:
                    pass
            time.sleep(0.02)


def typed_outcome(run: Any, attack: hostile.Attack, output_dir: Path, truth: Path) -> tuple[str, str]:
    """The outcome the pipeline gives this run: its classification, else what the scorer says."""
    verdict = jobs.classify(run, attack.time_limit_s, attack.memory_mb)
    if verdict is not None:
        return verdict
    try:
        scores = scoring.score_file(output_dir / "predictions.csv", truth, "id", "label", ["accuracy"])
    except scoring.OutputError as err:
        return err.outcome, err.detail
    return "scored", f"accuracy {scores['accuracy']:g}"


def ceiling(attack: hostile.Attack, spec: sandbox.SandboxSpec, run: Any, poll: Poller, wall: float,
            log_text: str) -> tuple[str, str]:
    """(reached, limit) for the attack's own ceiling."""
    name = attack.name
    if name == "fork_bomb":
        refused = f", {poll.fork_refusals} forks refused" if poll.fork_refusals is not None else ""
        return f"{poll.pids_peak} pids{refused}", f"pids_limit {spec.pids_limit}"
    if name in ("memory_bomb", "tmp_fill"):
        reached = poll.mem_peak or run.peak_memory_bytes
        if name == "tmp_fill":
            # What dd got into /tmp before the tmpfs refused more: its own count of 1 MiB records, on stderr.
            copied = re.search(r"(\d+)\+\d+ records out", log_text)
            stop = "ENOSPC" if "No space left on device" in log_text else "no ENOSPC"
            return (f"{fmt_bytes(int(copied.group(1)) * MIB) if copied else '?'} into /tmp ({stop}), "
                    f"{fmt_bytes(reached)} memory", f"/tmp {spec.tmp_size_mb} MiB, memory {spec.memory_mb} MiB")
        return f"{fmt_bytes(reached)} memory", f"{spec.memory_mb} MiB"
    if name in ("output_fill", "oversized_prediction"):
        return (f"{fmt_bytes(run.output_bytes)} written",
                f"{fmt_bytes(spec.output_max_bytes)} cap (fsize {fmt_bytes(sandbox.fsize_bytes(spec))})")
    if name == "log_flood":
        return (f"{fmt_bytes(len(run.log))} kept, {fmt_bytes(poll.log_file_peak)} on disk",
                f"{fmt_bytes(spec.log_max_bytes)} kept, {fmt_bytes(2 * sandbox.log_file_bytes(spec))} on disk")
    if name in ("never_exits",):
        return f"{wall:.2f} s wall, {run.runtime_s or 0:.2f} s container", f"{spec.time_limit_s:g} s"
    if name == "network":
        leaks = log_text.count(hostile.LEAK)
        return f"{leaks} connections made", "0"
    if name == "truth_read":
        return f"marker seen {log_text.count(hostile.MARKER)} times", "0"
    if name == "write_outside":
        return f"{log_text.count(hostile.LEAK)} writes landed, {len(run.output_removed)} links removed", "0"
    if name == "setuid":
        uid = next((ln.split()[1:3] for ln in log_text.splitlines() if ln.startswith("Uid:")), ["?", "?"])
        return f"uid {uid[0]}, euid {uid[1]}", f"the run's uid {run.uid} (no-new-privileges)"
    if name == "declared_volume":
        written = re.search(r"volume-mib (\d+)", log_text)
        fs = "tmpfs" if " /data tmpfs " in log_text else "NOT tmpfs"
        return (f"{written.group(1) if written else '?'} MiB into /data ({fs}, masked {run.masked_volumes})",
                f"/data {spec.tmp_size_mb} MiB; 3 x {fmt_bytes(spec.output_max_bytes)} tried")
    if name == "volume_in_output":
        return f"refused: {run.start_error or 'ran'}"[:90], "never runs"
    if name == "health_check":
        procs = re.search(r"processes (\d+)", log_text)
        return f"{procs.group(1) if procs else '?'} processes, probe ran: {hostile.LEAK in log_text}", "1, no"
    if name == "ignored_sigterm":
        return f"{wall:.2f} s wall, exit {run.exit_code}", f"{spec.time_limit_s:g} s, SIGKILL"
    if name == "image_config":
        uid = re.search(r"uid (\d+)", log_text)
        return f"uid {uid.group(1) if uid else '?'}", "the run's uid, not 0"
    if name == "env_grab":
        env = dict(ln.split("=", 1) for ln in log_text.splitlines() if "=" in ln)
        return (f"NVIDIA_VISIBLE_DEVICES={env.get('NVIDIA_VISIBLE_DEVICES', '?')} "
                f"LD_PRELOAD={env.get('LD_PRELOAD', '?')!r}"), "void / ''"
    if name == "exits_early":
        return f"{run.output_files} output files", "predictions.csv expected"
    return "", ""


def run_attacks(client: Any, work: Path, only: set[str]) -> list[list[str]]:
    rows = []
    data = work / "dataset"
    (data / "inputs").mkdir(parents=True, exist_ok=True)
    (data / "inputs" / "ids.txt").write_text("1\n2\n3\n4\n")
    truth = data / "truth.csv"
    truth.write_text(hostile.TRUTH)
    listeners = hostile.Listeners()
    ctx = hostile.Context(truth_path=truth, input_dir=data / "inputs", redis_socket=str(work / "redis.sock"),
                          ports=listeners.ports, hosts=hostile.host_addresses(client))
    (work / "redis.sock").write_text("")   # where the platform's socket would be; the container must not see it
    built: list[str] = []
    try:
        for attack in hostile.RUN_ATTACKS:
            if only and attack.name not in only:
                continue
            image = images.build_busybox_image(client, "#!/bin/sh\n" + attack.script(ctx), workdir=work / "img",
                                               **attack.image_opts)
            built.append(image)
            # The very spec evaluator.jobs builds for a challenge with these limits.
            spec = sandbox.spec_for(image_id=image, name=f"hub-bench-hostile-{os.getpid()}-{attack.name}",
                                      output_dir=work / f"out-{attack.name}", input_dir=data / "inputs",
                                      time_limit_s=attack.time_limit_s, memory_mb=attack.memory_mb, cpus=1.0,
                                      device_ids=[], log_max_bytes=jobs.LOG_CAP_BYTES)
            poll = Poller(client, spec.name)
            poll.start()
            volumes_before = hostile.engine_volumes(client)
            t0 = time.monotonic()
            run = sandbox.run(client, spec)
            wall = time.monotonic() - t0
            poll.halt.set()
            poll.join(timeout=2)
            log_text = run.log.decode("utf-8", "replace")
            outcome, _detail = typed_outcome(run, attack, spec.output_dir, truth)
            reached, limit = ceiling(attack, spec, run, poll, wall, log_text)
            ok = "yes" if outcome == attack.outcome else f"NO (want {attack.outcome})"
            leaked = hostile.MARKER in log_text
            left = [c.name for c in sandbox.list_hub_containers(client) if c.name == spec.name]
            left += sorted(hostile.engine_volumes(client) - volumes_before)
            rows.append([attack.name, outcome, ok, reached, limit, f"{wall:.1f}",
                         "LEAK" if leaked or hostile.LEAK in log_text else "no", "yes" if left else "no"])
            print(f"  ran {attack.name}: {outcome} in {wall:.1f} s", file=sys.stderr, flush=True)
        if not only or "fork_storm_beside" in only:
            rows.append(storm_beside(client, work, data, truth, built))
        if listeners.accepted:
            rows.append(["(listeners)", f"{len(listeners.accepted)} connections ACCEPTED", "NO", "", "", "", "", ""])
    finally:
        listeners.close()
        for image in built:
            try:
                client.images.remove(image, force=True)
            except Exception:  # noqa: BLE001
                pass
    return rows


def storm_beside(client: Any, work: Path, data: Path, truth: Path, built: list[str]) -> list[str]:
    """Two runs at once: a fork storm at a pids limit of 1024, and a well-behaved neighbour with the pipeline's
    spec (pids 256) that forks 200 processes. With one uid for both, the storm's processes would fill the
    neighbour's RLIMIT_NPROC (1024 per uid, host-wide) and it could not fork."""
    storm_image = images.build_busybox_image(client, "#!/bin/sh\n" + hostile.STORM, workdir=work / "img")
    neighbour_image = images.build_busybox_image(client, "#!/bin/sh\n" + hostile.NEIGHBOUR, workdir=work / "img")
    built += [storm_image, neighbour_image]
    base = f"hub-bench-hostile-{os.getpid()}"
    storm = dataclasses.replace(
        sandbox.spec_for(image_id=storm_image, name=f"{base}-storm", output_dir=work / "out-storm",
                           input_dir=data / "inputs", time_limit_s=120, memory_mb=512, cpus=1.0, device_ids=[],
                           log_max_bytes=jobs.LOG_CAP_BYTES), pids_limit=1024)
    neighbour = sandbox.spec_for(image_id=neighbour_image, name=f"{base}-neighbour", output_dir=work / "out-nb",
                                   input_dir=data / "inputs", time_limit_s=60, memory_mb=256, cpus=1.0,
                                   device_ids=[], log_max_bytes=jobs.LOG_CAP_BYTES)
    volumes_before = hostile.engine_volumes(client)
    poll = Poller(client, storm.name)
    poll.start()
    results: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: results.update(storm=sandbox.run(client, storm)), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while b"storm at the pids limit" not in sandbox.stream_log(client, storm.name, 4096):
            if time.monotonic() > deadline or not thread.is_alive():
                break
            time.sleep(0.05)
        t0 = time.monotonic()
        run = sandbox.run(client, neighbour)
        wall = time.monotonic() - t0
    finally:
        try:
            client.api.kill(storm.name)
        except Exception:  # noqa: BLE001 - already over
            pass
        thread.join(60)
        poll.halt.set()
        poll.join(timeout=2)
    log_text = run.log.decode("utf-8", "replace")
    attack = hostile.Attack("fork_storm_beside", "", lambda _c: "", "scored", time_limit_s=60, memory_mb=256)
    outcome, _detail = typed_outcome(run, attack, neighbour.output_dir, truth)
    forked = re.search(r"forked (\d+)", log_text)
    storm_uid = results["storm"].uid if "storm" in results else "?"
    reached = (f"neighbour forked {forked.group(1) if forked else 0}/200 beside {poll.pids_peak} storm pids; "
               f"uids {storm_uid} / {run.uid}")
    left = [c.name for c in sandbox.list_hub_containers(client) if c.name in (storm.name, neighbour.name)]
    left += sorted(hostile.engine_volumes(client) - volumes_before)
    print(f"  ran fork_storm_beside: {outcome} in {wall:.1f} s", file=sys.stderr, flush=True)
    return ["fork_storm_beside", outcome, "yes" if outcome == "scored" else "NO (want scored)", reached,
            f"storm pids {storm.pids_limit}, neighbour pids {neighbour.pids_limit}", f"{wall:.1f}",
            "LEAK" if hostile.MARKER in log_text else "no", "yes" if left else "no"]


def run_uploads(client: Any, work: Path, only: set[str], default_cap: int) -> list[list[str]]:
    rows = []
    victim: str | None = None
    loaded: list[str] = []
    try:
        for attack in hostile.UPLOAD_ATTACKS:
            if only and attack.name not in only:
                continue
            if attack.needs_victims and victim is None:
                # The demo-like tag and another team's image on the node: what the image-level attacks aim at.
                victim = hostile.plant_victims(client, work / "victims")
            src = attack.build(work / f"{attack.name}.tar")
            cap = attack.max_bytes or default_cap
            dest = work / "uploads" / f"{attack.name}.tar"
            t0 = time.monotonic()
            reason, written, image_id = "accepted", 0, ""
            try:
                with src.open("rb") as fh:
                    written, _ = intake.stream_upload_to_file(fh, dest, cap)
                info = intake.check_image_tar(dest, max_bytes=cap, max_layers=64)
                if not attack.reason:
                    # An accepted archive is loaded as intake loads it: without the names it carries.
                    image_id = intake.load_image(client, dest, expected_id=info.image_id)
                    loaded.append(image_id)
            except intake.ImageRejected as err:
                reason = err.reason
            wall = time.monotonic() - t0
            kept = dest.stat().st_size if dest.exists() else 0
            outcome = "image_rejected" if reason != "accepted" else "accepted"
            want = attack.reason or "accepted"
            ok = "yes" if reason == want else f"NO (want {want})"
            reached = f"{reason}; {fmt_bytes(kept)} kept on disk of {fmt_bytes(src.stat().st_size)}"
            limit = f"cap {fmt_bytes(cap)}"
            if attack.needs_victims:
                moved = client.images.get(hostile.VICTIM_TAG).id != victim
                reached = (f"{reason}{f' as {image_id[:19]}' if image_id else ''}; demo tag "
                           f"{'MOVED' if moved else 'unchanged'}")
                limit = "tag unchanged" if not attack.reason else "refused before load"
                if moved:
                    ok = "NO (the demo tag moved)"
            rows.append([attack.name, outcome, ok, reached, limit, f"{wall:.2f}", "no", "no"])
            dest.unlink(missing_ok=True)
    finally:
        for ref in [*loaded, hostile.VICTIM_TAG, *([victim] if victim else [])]:
            try:
                client.images.remove(ref, force=True)
            except Exception:  # noqa: BLE001
                pass
    return rows


def print_table(rows: list[list[str]]) -> None:
    head = ["attack", "outcome", "right?", "ceiling reached", "limit set", "wall s", "leak", "orphan"]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated attack names")
    args = parser.parse_args()
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    client = docker.from_env(timeout=120)
    with tempfile.TemporaryDirectory(prefix="hub-hostile-") as tmp:
        work = Path(tmp)
        print(f"hostile images against the sandbox (Docker {client.version().get('Version')}, "
              f"cgroup {'v1' if Path('/sys/fs/cgroup/pids').is_dir() else 'v2'}); truth marker {hostile.MARKER}")
        rows = run_attacks(client, work, only) + run_uploads(client, work, only, 2 * 1024 * MIB)
    print_table(rows)
    wrong = [r[0] for r in rows if r[2] != "yes"]
    print(f"\n{len(rows)} attacks, {len(rows) - len(wrong)} with the expected outcome"
          + (f"; unexpected: {', '.join(wrong)}" if wrong else ""))


if __name__ == "__main__":
    main()
