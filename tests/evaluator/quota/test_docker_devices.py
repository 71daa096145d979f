"""A leased run's container gets exactly the leased devices (real Docker: created, inspected, never started)."""
import pytest

from evaluator import sandbox
from evaluator.quota import leases
from evaluator.quota.inventory import node_inventory, register_node
from tests.evaluator.quota.conftest import make_submission


@pytest.mark.docker
def test_container_gets_only_the_leased_devices(docker_client, busybox_image, session, world, tmp_path):
    register_node(session, "n1", node_inventory({"NVIDIA_SMI": "", "HUB_NODE_NAME": "n1",
                                                 "ACCELERATORS": "GPU-aaaa:nvidia-a100,GPU-bbbb:nvidia-a100,"
                                                                 "GPU-cccc:nvidia-a100"}))
    first = make_submission(session, world.team, world.phase)
    second = make_submission(session, world.team, world.phase)
    held = leases.acquire(session, submission_id=first.id, attempt=1, challenge_id=first.challenge_id,
                          accel_class="nvidia-a100", count=1, node="n1", ttl_s=60)
    lease = leases.acquire(session, submission_id=second.id, attempt=1, challenge_id=second.challenge_id,
                           accel_class="nvidia-a100", count=2, node="n1", ttl_s=60)
    assert not set(held.device_ids) & set(lease.device_ids)
    # The image asks for every GPU; the lease decides.
    image = busybox_image("true\n", env={"NVIDIA_VISIBLE_DEVICES": "all", "CUDA_VISIBLE_DEVICES": "0,1,2"})
    spec = sandbox.SandboxSpec(image_id=image, name=f"hub-quota-test-{second.id}", output_dir=tmp_path / "out",
                               device_ids=lease.device_ids)
    container = sandbox.create(docker_client, spec)
    try:
        info = docker_client.api.inspect_container(container.id)
        requests = info["HostConfig"]["DeviceRequests"]
        assert [r["DeviceIDs"] for r in requests] == [lease.device_ids]
        assert requests[0]["Capabilities"] == [["gpu"]]
        env = dict(e.split("=", 1) for e in info["Config"]["Env"])
        assert env["NVIDIA_VISIBLE_DEVICES"] == ",".join(lease.device_ids)
        assert held.device_ids[0] not in env["NVIDIA_VISIBLE_DEVICES"]
        assert info["State"]["Status"] == "created"
    finally:
        docker_client.api.remove_container(container.id, force=True)
    leases.release(session, lease.id)
