"""The demo's baseline scripts run with busybox alone and write a valid predictions file."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import require

from challenges.demo import BASELINES, CARGO_SLUG, PV_SLUG, cargo_rows, pv_rows


@pytest.mark.parametrize("slug, rows, column", [(CARGO_SLUG, cargo_rows, "tonnes"), (PV_SLUG, pv_rows, "power_kw")])
def test_baseline_script_writes_one_prediction_per_input_row(tmp_path, slug, rows, column):
    busybox = shutil.which("busybox")
    require(busybox is not None, "busybox (Debian's busybox-static)")
    (tmp_path / "input").mkdir()
    (tmp_path / "output").mkdir()
    inputs, _truth, _ys, expected = rows("public", 12)
    (tmp_path / "input" / "inputs.csv").write_text(inputs)
    # The container mounts /input and /output; here the same script runs against a temporary folder.
    script = (BASELINES[slug].replace(" /input/inputs.csv", f" {tmp_path}/input/inputs.csv")
              .replace(" /output/", f" {tmp_path}/output/"))
    done = subprocess.run([busybox, "sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "output" / "predictions.csv").read_text().splitlines()
    assert lines[0] == f"id,{column}"
    assert [float(line.split(",")[1]) for line in lines[1:]] == expected


def test_generated_data_is_deterministic():
    assert cargo_rows("public", 30) == cargo_rows("public", 30)
    assert pv_rows("private", 30)[1] == pv_rows("private", 30)[1]
    assert cargo_rows("public", 5)[0] != cargo_rows("private", 5)[0]
