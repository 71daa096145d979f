import pytest
from sqlmodel import select

from evaluator.quota.inventory import (class_from_name, devices, node_inventory, parse_nvidia_smi,
                                       register_node)
from evaluator.quota.models import Device

NVIDIA_SMI_OUTPUT = """GPU-5b0c2f4e-1111-2222-3333-444455556666, NVIDIA A100-SXM4-80GB, 0
GPU-7d1e3a5b-1111-2222-3333-444455556666, NVIDIA A100-SXM4-80GB, 1
GPU-9f2a4c6d-1111-2222-3333-444455556666, NVIDIA GeForce RTX 4090, 2
"""


def test_nvidia_smi_lines_give_devices_by_uuid_and_class():
    found = parse_nvidia_smi(NVIDIA_SMI_OUTPUT)
    assert [d["uuid"][:12] for d in found] == ["GPU-5b0c2f4e", "GPU-7d1e3a5b", "GPU-9f2a4c6d"]
    assert [d["accel_class"] for d in found] == ["nvidia-a100", "nvidia-a100", "nvidia-rtx4090"]
    assert [d["index"] for d in found] == [0, 1, 2]
    assert class_from_name("NVIDIA H100 80GB HBM3") == "nvidia-h100"


def test_output_captured_from_a_real_h200_node():
    # Verbatim from `nvidia-smi --query-gpu=uuid,name,index --format=csv,noheader` on an H200 worker.
    found = parse_nvidia_smi("GPU-b83343f0-ddfa-f18f-c57a-6148685663c8, NVIDIA H200, 0\n")
    assert found == [{"uuid": "GPU-b83343f0-ddfa-f18f-c57a-6148685663c8", "accel_class": "nvidia-h200",
                      "index": 0, "name": "NVIDIA H200", "source": "nvidia-smi"}]


def test_configured_devices_by_id():
    env = {"NVIDIA_SMI": "", "ACCELERATORS": "GPU-aaaa:nvidia-a100, GPU-bbbb:nvidia-a100", "HUB_NODE_NAME": "n1"}
    found = node_inventory(env)
    assert [(d["uuid"], d["accel_class"], d["index"]) for d in found] == [
        ("GPU-aaaa", "nvidia-a100", 0), ("GPU-bbbb", "nvidia-a100", 1)]


def test_class_count_form_makes_stable_ids_per_node():
    env = {"NVIDIA_SMI": "", "ACCELERATORS": "nvidia-a100:2,ascend-910b:1", "HUB_NODE_NAME": "node-7"}
    first, again = node_inventory(env), node_inventory(env)
    assert [d["uuid"] for d in first] == [d["uuid"] for d in again] == [
        "FAKE-nvidia-a100-node-7-0", "FAKE-nvidia-a100-node-7-1", "FAKE-ascend-910b-node-7-0"]
    other = node_inventory({**env, "HUB_NODE_NAME": "node-8"})
    assert not {d["uuid"] for d in first} & {d["uuid"] for d in other}


def test_no_gpu_and_nothing_configured_is_an_empty_node():
    assert node_inventory({"NVIDIA_SMI": "", "HUB_NODE_NAME": "cpu-node"}) == []


@pytest.mark.parametrize("spec", ["nvidia-a100", "nvidia-a100:0", "GPU-a:Bad Class!", "GPU-a:x,GPU-a:x", ":3"])
def test_bad_configuration_says_which_entry(spec):
    with pytest.raises(ValueError, match="ACCELERATORS"):
        node_inventory({"NVIDIA_SMI": "", "ACCELERATORS": spec, "HUB_NODE_NAME": "n"})


def test_register_node_upserts_and_retires_missing_devices(session):
    env = {"NVIDIA_SMI": "", "ACCELERATORS": "nvidia-a100:3", "HUB_NODE_NAME": "n1"}
    register_node(session, "n1", node_inventory(env))
    register_node(session, "n1", node_inventory(env))  # a restart reports the same devices
    assert len(devices(session)) == 3
    register_node(session, "n1", node_inventory({**env, "ACCELERATORS": "nvidia-a100:2"}))
    rows = session.exec(select(Device).order_by(Device.index)).all()
    assert [(r.uuid.endswith(str(r.index)), r.active) for r in rows] == [(True, True), (True, True), (True, False)]
    # A device moved to another node follows its UUID.
    register_node(session, "n2", [{"uuid": rows[2].uuid, "accel_class": "nvidia-a100", "index": 0}])
    moved = session.exec(select(Device).where(Device.uuid == rows[2].uuid)).one()
    assert (moved.node, moved.active) == ("n2", True)
