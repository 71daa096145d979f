"""The test runner's contract: scripts/test.sh runs SQLite then PostgreSQL, and fails loudly.

These tests run the real script on a probe test defined below (only when HUB_INFRA_PROBE is set, so a
normal run never collects it), with the set-up skipped: apt, pip and services are the script's other
half and are exercised by every CI run.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = os.environ.get("HUB_INFRA_PROBE")

if PROBE:
    def test_probe() -> None:
        if PROBE == "ci":
            assert os.environ.get("CI") == "true"
        assert PROBE != "fail", "the probe was asked to fail"

    @pytest.mark.browser
    def test_browser_probe() -> None:
        assert PROBE != "fail"


def run_script(script: str, probe: str, *pytest_args: str, artifacts: Path,
               drop_ci: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    if drop_ci:
        env.pop("CI", None)
    env.update(HUB_INFRA_PROBE=probe, HUB_TEST_SKIP_SETUP="1", HUB_ARTIFACTS=str(artifacts))
    return subprocess.run(["bash", script, "-p", "no:cacheprovider", "-q", *pytest_args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def closing_line(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout.strip().splitlines()[-1]


def test_passing_suite_runs_on_both_databases_and_sums_up(tmp_path: Path) -> None:
    proc = run_script("scripts/test.sh", "pass", "tests/test_infra.py::test_probe", artifacts=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert closing_line(proc) == "total: 2 passed, 0 failed, 0 skipped"
    assert (tmp_path / "junit-sqlite.xml").exists()
    assert (tmp_path / "junit-postgresql.xml").exists()


def test_a_failure_fails_the_script_and_both_runs_still_report(tmp_path: Path) -> None:
    proc = run_script("scripts/test.sh", "fail", "tests/test_infra.py::test_probe", artifacts=tmp_path)
    assert proc.returncode != 0
    assert closing_line(proc) == "total: 0 passed, 2 failed, 0 skipped"
    summary = proc.stdout.split("==> summary", 1)[1]
    assert "sqlite" in summary and "postgresql" in summary
    assert "test run FAILED" in proc.stdout


def test_no_tests_collected_is_a_failure(tmp_path: Path) -> None:
    proc = run_script("scripts/test.sh", "pass", "tests/test_infra.py", "-k", "no_such_test_anywhere",
                      artifacts=tmp_path)
    assert proc.returncode != 0
    assert "no tests" in proc.stdout


def test_browser_tests_run_on_sqlite_only(tmp_path: Path) -> None:
    proc = run_script("scripts/test.sh", "pass", "tests/test_infra.py::test_browser_probe", artifacts=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert closing_line(proc) == "total: 1 passed, 0 failed, 0 skipped"


def test_ci_entry_point_runs_the_suite_with_ci_set(tmp_path: Path) -> None:
    proc = run_script(".ci/run", "ci", "tests/test_infra.py::test_probe", artifacts=tmp_path, drop_ci=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert closing_line(proc) == "total: 2 passed, 0 failed, 0 skipped"
