"""The client's wheel stands alone: no dependency but the optional Docker SDK, nothing of the server imported.

Built offline (`--no-build-isolation --no-index`: the test venv's setuptools), from a copy of client/ so that
the build leaves nothing behind in the source tree.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow]

# Top-level modules a team's laptop must never be made to import (`docker` only when it saves an image).
SERVER_SIDE = {"flask", "werkzeug", "sqlalchemy", "sqlmodel", "psycopg", "redis", "rq", "docker", "requests",
               "hub", "evaluator", "challenges", "marketplace", "app"}
PROBE = """
import json, sys
import hub_submit, hub_submit.cli
assert hub_submit.cli.build_parser().prog == "hub-submit"
print(json.dumps({"file": hub_submit.__file__, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _run(cmd: list[str], cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src") / "client"
    shutil.copytree(ROOT / "client", src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          str(src), "-w", str(out)])
    (built,) = out.glob("hub_submit-0.1.0-*.whl")
    return built


def test_the_wheel_declares_no_dependency_outside_the_docker_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = Parser().parsestr(zf.read("hub_submit-0.1.0.dist-info/METADATA").decode())
        entry_points = zf.read("hub_submit-0.1.0.dist-info/entry_points.txt").decode()
    assert {n.split("/", 1)[0] for n in names} == {"hub_submit", "hub_submit-0.1.0.dist-info"}
    assert meta["Name"] == "hub-submit" and meta["Requires-Python"] == ">=3.11"
    assert meta.get_all("Provides-Extra") == ["docker"]
    requires = meta.get_all("Requires-Dist") or []
    assert requires and all('extra == "docker"' in r for r in requires), requires
    assert "hub-submit = hub_submit.cli:main" in entry_points


def test_the_wheel_alone_imports_nothing_of_the_server(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    fresh = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(fresh)])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | {"PYTHONPATH": str(site)}
    # A bare venv (nothing installed) and the test venv (the server's packages and the Docker SDK installed, so
    # importing any of them by accident would show).
    for python in (fresh / "bin" / "python", Path(sys.executable)):
        probe = json.loads(_run([str(python), "-c", PROBE], cwd=tmp_path, env=env).stdout)
        assert Path(probe["file"]).is_relative_to(site), probe["file"]
        assert not SERVER_SIDE & set(probe["modules"]), sorted(SERVER_SIDE & set(probe["modules"]))
    usage = _run([str(fresh / "bin" / "python"), "-m", "hub_submit.cli", "submit", "--help"], cwd=tmp_path, env=env)
    assert "--challenge" in usage.stdout and "--registry" in usage.stdout
