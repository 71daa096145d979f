"""Overhead of evaluator.sandbox.run() over a bare `docker run --rm` of the same image with the same limits.

    .venv/bin/python bench/sandbox_overhead.py [--runs 30]

Builds a trivial FROM-scratch busybox image offline, then alternates the two ways of running it (so both
see the same machine load) and prints p50/p95 of each and of the difference. Target: ≤ 0.3 s p50 overhead.
Also prints what a second, helper container per run would cost (the tmpfs-volume design for /output that
the sandbox does not use).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import docker  # noqa: E402

from evaluator import images, sandbox  # noqa: E402

SCRIPT = "echo 'id,y' > /output/pred.csv; echo '1,0' >> /output/pred.csv\n"
TARGET_P50_S = 0.3


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bare_run(image_id: str, spec: sandbox.SandboxSpec) -> float:
    """`docker run --rm` with the sandbox's limits, timed from the CLI's start to its exit."""
    cmd = ["docker", "run", "--rm", "--network", "none", "--cap-drop", "ALL",
           "--security-opt", "no-new-privileges", "--user", "65534:65534", "--read-only",
           "--tmpfs", f"/tmp:rw,size={spec.tmp_size_mb}m,noexec,nosuid,nodev",
           "--pids-limit", str(spec.pids_limit), "--memory", f"{spec.memory_mb}m",
           "--memory-swap", f"{spec.memory_mb}m", "--cpus", str(spec.cpus),
           "--ulimit", "nofile=1024:1024", "--ulimit", f"fsize={spec.output_max_bytes + 1}",
           "--log-opt", "max-size=1m",
           "-v", f"{spec.input_dir}:/input:ro", "-v", f"{spec.output_dir}:/output", image_id]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def helper_container(client: docker.DockerClient, image_id: str) -> float:
    """create + start + remove of one extra idle container: the price of a holder for a tmpfs volume."""
    t0 = time.perf_counter()
    c = client.api.create_container(image_id, command=["/bin/sleep", "60"], network_disabled=True,
                                    host_config=client.api.create_host_config(network_mode="none"))
    client.api.start(c["Id"])
    client.api.remove_container(c["Id"], force=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()

    client = docker.from_env(timeout=120)
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as tmp:
        work = Path(tmp)
        image_id = images.build_busybox_image(client, SCRIPT, workdir=work)
        (work / "input").mkdir()
        (work / "input" / "test.csv").write_text("id\n1\n")
        hub_s, bare_s, helper_s = [], [], []
        for i in range(args.runs + 2):
            spec = sandbox.SandboxSpec(image_id=image_id, name=f"hub-bench-{i}", input_dir=work / "input",
                                       output_dir=work / f"out-{i}", time_limit_s=60, memory_mb=256,
                                       cpus=1.0, pids_limit=64, tmp_size_mb=64, output_max_bytes=16 << 20,
                                       labels={"hub.bench": "1"})
            t0 = time.perf_counter()
            result = sandbox.run(client, spec)
            elapsed = time.perf_counter() - t0
            assert result.outcome == "ok", result
            bare_spec = sandbox.SandboxSpec(**{**spec.__dict__, "output_dir": work / f"bare-{i}"})
            bare_spec.output_dir.mkdir(mode=0o777)
            bare_spec.output_dir.chmod(0o777)
            bare = bare_run(image_id, bare_spec)
            helper = helper_container(client, image_id)
            if i >= 2:   # the first runs warm caches
                hub_s.append(elapsed)
                bare_s.append(bare)
                helper_s.append(helper)
        diffs = [h - b for h, b in zip(hub_s, bare_s)]
        print(f"engine: Docker {client.version()['Version']}, runs: {args.runs}")
        print(f"sandbox.run()       p50 {statistics.median(hub_s):.3f} s   p95 {pct(hub_s, 0.95):.3f} s")
        print(f"docker run --rm     p50 {statistics.median(bare_s):.3f} s   p95 {pct(bare_s, 0.95):.3f} s")
        print(f"overhead (paired)   p50 {statistics.median(diffs):+.3f} s   p95 {pct(diffs, 0.95):+.3f} s"
              f"   target p50 <= {TARGET_P50_S} s: {'OK' if statistics.median(diffs) <= TARGET_P50_S else 'MISSED'}")
        print(f"extra holder container (tmpfs /output design, not used) p50 {statistics.median(helper_s):.3f} s")
        client.images.remove(image_id, force=True)


if __name__ == "__main__":
    main()
