"""Inventory parsing against `nvidia-smi` output recorded on a real NVIDIA H200 node."""
from __future__ import annotations

from pathlib import Path

from evaluator.quota.inventory import parse_nvidia_smi

DATA = Path(__file__).parent / "data"


def test_recorded_h200_output_yields_its_device_by_uuid():
    devices = parse_nvidia_smi((DATA / "nvidia_smi_h200.csv").read_text())
    assert devices == [{"uuid": "GPU-ffd36e67-54e2-7ee7-799d-66a43b44e344", "accel_class": "nvidia-h200",
                        "index": 0, "name": "NVIDIA H200", "source": "nvidia-smi"}]
