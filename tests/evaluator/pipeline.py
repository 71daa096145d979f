"""Helpers for the evaluation pipeline's tests: real worker nodes as subprocesses, polling, model scripts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlmodel import Session

from challenges.models import Submission

ROOT = Path(__file__).resolve().parents[2]

# Truth in make_eval_setup: 1,a 2,b 3,a 4,b. This model gets ids 1-3 right and id 4 wrong: accuracy 0.75.
MODEL_075 = """#!/bin/sh
echo "model starting"
echo "id,label" > /output/predictions.csv
for i in $(cat /input/ids.txt); do
  if [ "$i" = "4" ]; then echo "$i,a"; elif [ $((i % 2)) -eq 1 ]; then echo "$i,a"; else echo "$i,b"; fi
done >> /output/predictions.csv
echo "model done"
"""
PERFECT_MODEL = """#!/bin/sh
echo "id,label" > /output/predictions.csv
for i in $(cat /input/ids.txt); do if [ $((i % 2)) -eq 1 ]; then echo "$i,a"; else echo "$i,b"; fi; done \
  >> /output/predictions.csv
"""


def slow_model(seconds: float) -> str:
    return f"#!/bin/sh\necho started\nsleep {seconds}\n" + PERFECT_MODEL.split("\n", 1)[1]


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def fresh(session: Session, submission_id: int) -> Submission:
    sub = session.get(Submission, submission_id, populate_existing=True)
    assert sub is not None
    return sub


def ended(session: Session, submission_id: int) -> Submission | None:
    sub = fresh(session, submission_id)
    return sub if sub.status in ("scored", "failed", "cancelled") else None


def pipeline_env(db_url: str, redis_url: str, tmp_path: Path, registry_url: str = "", **extra: str) -> dict[str, str]:
    """A node's environment; `registry_url`: the center's registry it pulls uploads from (HUB_REGISTRY_URL)."""
    env = dict(os.environ)
    env.update({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "HUB_DATA_DIR": str(tmp_path / "data"),
                "HUB_INSTANCE": str(tmp_path / "instance"), "SECRET_KEY": "test-secret",
                "HUB_WORKER_DEAD_AFTER": "4", "NVIDIA_SMI": "", "PYTHONUNBUFFERED": "1",
                "HUB_REGISTRY_URL": registry_url})
    env.update(extra)
    return env


class Node:
    """`flask --app app worker` as a subprocess: a worker node with its own name and inventory."""

    def __init__(self, env: dict[str, str], name: str, *, queues: str = "cpu", accelerators: str = "none",
                 log_dir: Path, reaper_interval: float = 0.5) -> None:
        self.name = name
        self.log_path = log_dir / f"worker-{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "worker", "--name", name, "--queues", queues,
             "--accelerators", accelerators, "--reaper-interval", str(reaper_interval)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def horse_pids(self) -> list[int]:
        """The work horses: children of the worker process."""
        try:
            out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True,
                                 text=True, check=False).stdout
        except OSError:
            return []
        return [int(p) for p in out.split()]

    def kill9(self, horse_too: bool = True) -> None:
        horses = self.horse_pids()
        os.kill(self.proc.pid, signal.SIGKILL)
        if horse_too:
            for pid in horses:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        horses = self.horse_pids()
        if self.proc.poll() is None:
            # Warm shutdown first (finish the job), then make sure the whole group is gone.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for pid in horses:  # a horse has its own process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class Nodes:
    """Start nodes in a test; every one is stopped at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir, self.started = env, log_dir, []  # type: ignore[var-annotated]

    def start(self, name: str, **kwargs: Any) -> Node:
        node = Node(self.env, name, log_dir=self.log_dir, **kwargs)
        self.started.append(node)
        return node

    def stop_all(self) -> None:
        for node in self.started:
            node.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {n.name}\n{n.output()[-3000:]}" for n in self.started)


def tagged(docker_client: Any, image_id: str) -> str:
    """Tag a test image so that a `docker image prune` elsewhere on the machine does not remove it mid-test."""
    docker_client.api.tag(image_id, "hub-eval-test", tag=image_id.split(":")[-1][:20])
    return image_id
