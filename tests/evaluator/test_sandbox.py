"""The sandbox runner against the real Docker engine, with FROM-scratch busybox images."""
from __future__ import annotations

import ipaddress
import itertools
import os
import socket
import threading
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from evaluator import sandbox
from evaluator.sandbox import SandboxSpec
from tests.evaluator.hostile import engine_volumes, open_dirs_layer

pytestmark = pytest.mark.docker

MIB = 1 << 20
_names = itertools.count(1)


@pytest.fixture(autouse=True)
def no_volume_left(docker_client):
    """No run may leave a volume on the engine: its volume list is the same after every test."""
    before = engine_volumes(docker_client)
    yield
    assert engine_volumes(docker_client) == before


def make_spec(image_id: str, tmp_path: Path, **overrides: Any) -> SandboxSpec:
    """A small spec: the test inputs in tmp_path/input, a fresh output dir, tight limits."""
    n = next(_names)
    input_dir = tmp_path / "input"
    if not input_dir.exists():
        input_dir.mkdir()
        (input_dir / "test.csv").write_text("id,x\n1,0.5\n2,0.7\n")
    fields: dict[str, Any] = dict(image_id=image_id, name=f"hub-test-{os.getpid()}-{n}", input_dir=input_dir,
                                  output_dir=tmp_path / f"output{n}", time_limit_s=20, memory_mb=64, cpus=1.0,
                                  pids_limit=32, tmp_size_mb=8, output_max_bytes=4 * MIB, log_max_bytes=64 * 1024,
                                  labels={"hub.test": str(os.getpid())})
    fields.update(overrides)
    return SandboxSpec(**fields)


def container_exists(client: Any, name: str) -> bool:
    return any(c.name == name for c in client.containers.list(all=True, filters={"name": name}))


def test_correct_image_writes_output_and_exits_zero(docker_client, busybox_image, tmp_path):
    image = busybox_image("echo predicting; cp /input/test.csv /output/pred.csv; echo done\n")
    spec = make_spec(image, tmp_path)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok" and result.exit_code == 0
    assert (spec.output_dir / "pred.csv").read_text() == "id,x\n1,0.5\n2,0.7\n"
    assert result.log == b"predicting\ndone\n"
    assert result.started_at is not None and result.finished_at is not None
    assert result.started_at.tzinfo is UTC and result.finished_at >= result.started_at
    assert not container_exists(docker_client, spec.name)


def test_nonzero_exit_code_is_a_result(docker_client, busybox_image, tmp_path):
    result = sandbox.run(docker_client, make_spec(busybox_image("echo broken >&2; exit 3\n"), tmp_path))
    assert result.outcome == "nonzero_exit" and result.exit_code == 3
    assert b"broken" in result.log


def test_missing_entrypoint_binary_is_start_failed(docker_client, busybox_image, tmp_path):
    image = busybox_image("true\n", entrypoint=["/no/such/binary"])
    spec = make_spec(image, tmp_path)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "start_failed" and "/no/such/binary" in (result.start_error or "")
    assert not container_exists(docker_client, spec.name)


def test_time_limit_kills_and_removes(docker_client, busybox_image, tmp_path):
    spec = make_spec(busybox_image("echo started; sleep 1000\n"), tmp_path, time_limit_s=2)
    result = sandbox.run(docker_client, spec)
    assert result.timed_out and result.outcome == "time_limit"
    assert result.exit_code == 137
    assert result.log == b"started\n"
    assert result.finished_at is not None
    assert not container_exists(docker_client, spec.name)


def test_memory_limit_is_oom(docker_client, busybox_image, tmp_path):
    # dd allocates its 200 MiB block and fills it from /dev/zero: far over the 32 MiB limit.
    spec = make_spec(busybox_image("exec dd if=/dev/zero of=/dev/null bs=200M count=1\n"), tmp_path,
                     memory_mb=32)
    result = sandbox.run(docker_client, spec)
    assert result.oom_killed and result.outcome == "memory_limit"
    assert result.exit_code == 137


def test_pids_limit_stops_fork_bomb(docker_client, busybox_image, tmp_path):
    # A subshell starts 200 background processes (busybox sh gives up at the first failed fork), then
    # the live ones are counted with shell builtins only (no fork).
    script = ("(i=0; while [ $i -lt 200 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null\n"
              "n=0; for p in /proc/[0-9]*; do n=$((n+1)); done\n"
              "echo $n > /output/procs\n")
    spec = make_spec(busybox_image(script), tmp_path, pids_limit=20)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok", result.log
    assert 1 < int((spec.output_dir / "procs").read_text()) <= 20
    assert not container_exists(docker_client, spec.name)


def test_classic_fork_bomb_ends_within_limits(docker_client, busybox_image, tmp_path):
    spec = make_spec(busybox_image("bomb() { bomb | bomb & }; bomb; sleep 60\n"), tmp_path, pids_limit=24,
                     time_limit_s=4)
    result = sandbox.run(docker_client, spec)
    assert result.outcome in ("time_limit", "nonzero_exit")
    assert not container_exists(docker_client, spec.name)


def test_tmp_is_size_capped_and_noexec(docker_client, busybox_image, tmp_path):
    script = ("dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>/dev/null; echo $? > /output/dd_rc\n"
              "stat -c %s /tmp/fill > /output/size\n"
              "rm /tmp/fill; cp /bin/busybox /tmp/bb; /tmp/bb true 2>/dev/null; echo $? > /output/exec_rc\n")
    spec = make_spec(busybox_image(script), tmp_path, tmp_size_mb=8)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok", result.log
    assert (spec.output_dir / "dd_rc").read_text().strip() != "0"
    assert int((spec.output_dir / "size").read_text()) <= 8 * MIB
    assert (spec.output_dir / "exec_rc").read_text().strip() == "126"   # permission denied: noexec


def test_output_single_file_fill_is_stopped(docker_client, busybox_image, tmp_path):
    spec = make_spec(busybox_image("dd if=/dev/zero of=/output/big bs=1M count=500\nsleep 30\n"), tmp_path,
                     output_max_bytes=2 * MIB, tmp_size_mb=1)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "output_too_large"
    # RLIMIT_FSIZE stopped the file one byte over the cap.
    assert (spec.output_dir / "big").stat().st_size == 2 * MIB + 1


def test_a_larger_tmp_does_not_raise_the_single_file_cap(docker_client, busybox_image, tmp_path):
    # /tmp may be larger than the output cap; one file written to /output (or /tmp) still stops at the cap.
    script = ("dd if=/dev/zero of=/tmp/t bs=1M count=6 2>/dev/null; stat -c %s /tmp/t > /output/tmp_size\n"
              "dd if=/dev/zero of=/output/big bs=1M count=500\nsleep 30\n")
    spec = make_spec(busybox_image(script), tmp_path, output_max_bytes=2 * MIB, tmp_size_mb=16)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "output_too_large"
    assert int((spec.output_dir / "tmp_size").read_text()) == 2 * MIB + 1
    assert (spec.output_dir / "big").stat().st_size == 2 * MIB + 1


def test_the_pipeline_keeps_tmp_within_half_the_memory_limit(tmp_path):
    def spec(memory_mb: int) -> SandboxSpec:
        return sandbox.spec_for(name="hub-x", image_id="sha256:" + "a" * 64, input_dir=None,
                                  output_dir=tmp_path / "out", time_limit_s=10, memory_mb=memory_mb, cpus=1.0,
                                  device_ids=["FAKE-gpu-0", "GPU-1"], log_max_bytes=1024)

    # tmpfs pages count against the memory limit: filling /tmp must be ENOSPC, never an OOM kill.
    assert spec(64).tmp_size_mb == 32
    assert spec(4096).tmp_size_mb == sandbox.DEFAULT_TMP_MB
    assert spec(64).device_ids == ["GPU-1"]            # FAKE-… devices are metered, never attached
    host = sandbox.host_config_kwargs(spec(64))
    assert "size=32m" in host["tmpfs"]["/tmp"]
    fsize = next(u for u in host["ulimits"] if u["Name"] == "fsize")
    assert fsize["Soft"] == fsize["Hard"] == spec(64).output_max_bytes + 1


def test_output_many_files_fill_is_stopped(docker_client, busybox_image, tmp_path):
    script = "i=0; while true; do dd if=/dev/zero of=/output/f$i bs=64k count=1 2>/dev/null; i=$((i+1)); done\n"
    spec = make_spec(busybox_image(script), tmp_path, output_max_bytes=2 * MIB, time_limit_s=30)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "output_too_large" and not result.timed_out
    assert result.output_bytes < 64 * MIB


def test_output_inode_flood_is_stopped(docker_client, busybox_image, tmp_path):
    script = "i=0; while true; do : > /output/e$i; i=$((i+1)); done\n"
    spec = make_spec(busybox_image(script), tmp_path, output_max_files=200, time_limit_s=30)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "output_too_large"


def test_output_links_are_removed_before_scoring(docker_client, busybox_image, tmp_path):
    script = "ln -s /etc/passwd /output/pred.csv; mkfifo /output/pipe; echo ok > /output/real.csv\n"
    spec = make_spec(busybox_image(script), tmp_path)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok"
    assert sorted(result.output_removed) == ["pipe", "pred.csv"]
    assert sorted(p.name for p in spec.output_dir.iterdir()) == ["real.csv"]


def test_log_flood_is_capped(docker_client, busybox_image, tmp_path):
    spec = make_spec(busybox_image("yes 0123456789abcdef0123456789abcdef\n"), tmp_path, time_limit_s=3,
                     log_max_bytes=64 * 1024)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "time_limit"
    assert 0 < len(result.log) <= 64 * 1024 and result.log_truncated
    assert set(result.log) <= set(b"0123456789abcdef\n")   # the flood's own text, nothing else


def host_addresses(client: Any) -> list[str]:
    """The host as a container would reach it: the bridge gateway and the host's outward address."""
    found = []
    for config in client.networks.get("bridge").attrs["IPAM"]["Config"] or []:
        if config.get("Gateway"):
            found.append(config["Gateway"])
        elif config.get("Subnet") and ":" not in config["Subnet"]:
            found.append(str(next(ipaddress.ip_network(config["Subnet"]).hosts())))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))   # UDP connect sends nothing; it only picks the outward address
        found.append(probe.getsockname()[0])
    return sorted(set(found))


def test_no_network(docker_client, busybox_image, tmp_path):
    """Neither the host (bridge gateway) nor loopback services are reachable; only `lo` exists."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[Any] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    targets = ["127.0.0.1", *host_addresses(docker_client)]
    script = "".join(f"nc -w 2 {host} {port} </dev/null; echo $? > /output/nc_{n}\n"
                     f"wget -q -T 2 -O /dev/null http://{host}:{port}/; echo $? > /output/wget_{n}\n"
                     for n, host in enumerate(targets))
    script += "ls /sys/class/net > /output/ifaces\n"
    try:
        spec = make_spec(busybox_image(script), tmp_path)
        result = sandbox.run(docker_client, spec)
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert result.outcome == "ok", result.log
    for n, host in enumerate(targets):
        assert (spec.output_dir / f"nc_{n}").read_text().strip() != "0", host
        assert (spec.output_dir / f"wget_{n}").read_text().strip() != "0", host
    assert (spec.output_dir / "ifaces").read_text().split() == ["lo"]
    assert accepted == []


def test_root_read_only_non_root_no_capabilities(docker_client, busybox_image, tmp_path):
    script = ("touch /app/x 2>/dev/null; echo $? > /output/touch_rc\n"
              "id -u > /output/uid; id -g > /output/gid\n"
              "grep CapEff /proc/self/status > /output/cap\n"
              "grep NoNewPrivs /proc/self/status > /output/nnp\n")
    spec = make_spec(busybox_image(script), tmp_path)
    assert sandbox.run(docker_client, spec).outcome == "ok"
    out = spec.output_dir
    assert out.joinpath("touch_rc").read_text().strip() != "0"
    uid = int(out.joinpath("uid").read_text())
    assert uid in sandbox.uid_pool() and int(out.joinpath("gid").read_text()) == uid   # a uid of the run's own
    assert out.joinpath("cap").read_text().split() == ["CapEff:", "0000000000000000"]
    assert out.joinpath("nnp").read_text().split() == ["NoNewPrivs:", "1"]


def test_only_input_and_output_are_reachable(docker_client, busybox_image, tmp_path):
    truth_dir = tmp_path / "truth"
    truth_dir.mkdir()
    (truth_dir / "labels.csv").write_text("id,y\n1,TRUTH-MARK-7731\n")
    # The marker is assembled at run time so that the script itself does not contain it.
    script = (f"cat {truth_dir}/labels.csv; cat /truth/labels.csv\n"
              "echo x > /input/new 2>/dev/null; echo $? > /output/input_write_rc\n"
              "m=TRUTH-MARK; grep -r \"$m-7731\" /input /tmp /app /etc /bin /home /root /mnt /var 2>/dev/null\n"
              "true\n")
    spec = make_spec(busybox_image(script), tmp_path, time_limit_s=60)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok"
    assert b"TRUTH-MARK" not in result.log
    assert (spec.output_dir / "input_write_rc").read_text().strip() != "0"
    assert not (spec.input_dir / "new").exists()


def test_image_env_cannot_grab_devices_or_preload(docker_client, busybox_image, tmp_path):
    image = busybox_image("env > /output/env\n", env={"LD_PRELOAD": "/evil.so", "NVIDIA_VISIBLE_DEVICES": "all",
                                                      "LD_LIBRARY_PATH": "/evil", "CUDA_VISIBLE_DEVICES": "0,1",
                                                      "MODEL": "kept"})
    spec = make_spec(image, tmp_path)
    assert sandbox.run(docker_client, spec).outcome == "ok"
    env = dict(line.split("=", 1) for line in (spec.output_dir / "env").read_text().splitlines() if "=" in line)
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert env["LD_PRELOAD"] == "" and env["LD_LIBRARY_PATH"] == "" and env["CUDA_VISIBLE_DEVICES"] == ""
    assert env["MODEL"] == "kept"


def _created(docker_client: Any, spec: SandboxSpec) -> dict:
    container = sandbox.create(docker_client, spec)
    try:
        return docker_client.api.inspect_container(container.id)
    finally:
        sandbox.kill_and_remove(docker_client, container.id)


def test_created_container_has_the_sandbox_profile(docker_client, busybox_image, tmp_path):
    spec = make_spec(busybox_image("true\n"), tmp_path, memory_mb=128, cpus=0.5, pids_limit=50)
    attrs = _created(docker_client, spec)
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none" and host["CapDrop"] == ["ALL"] and host["Privileged"] is False
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["ReadonlyRootfs"] is True
    assert host["Memory"] == host["MemorySwap"] == 128 * MIB
    assert host["NanoCpus"] == 500_000_000 and host["PidsLimit"] == 50
    assert {u["Name"] for u in host["Ulimits"]} >= {"nofile", "nproc", "fsize"}
    assert host["LogConfig"]["Type"] == "json-file" and "max-size" in host["LogConfig"]["Config"]
    assert "noexec" in host["Tmpfs"]["/tmp"] and "size=8m" in host["Tmpfs"]["/tmp"]
    uid = int(attrs["Config"]["Labels"][sandbox.UID_LABEL])
    assert uid in sandbox.uid_pool() and attrs["Config"]["User"] == f"{uid}:{uid}"
    assert attrs["Image"] == spec.image_id
    assert attrs["Config"]["Healthcheck"]["Test"] == ["NONE"] and attrs["Config"]["StopSignal"] == "SIGKILL"
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert set(mounts) == {"/input", "/output"}
    assert mounts["/input"]["RW"] is False and mounts["/output"]["RW"] is True
    assert not any("docker.sock" in str(m.get("Source")) for m in attrs["Mounts"])
    assert not host.get("DeviceRequests")
    assert attrs["Config"]["Labels"]["hub.sandbox"] == "1"


def test_device_requests_only_for_leased_devices(docker_client, busybox_image, tmp_path):
    spec = make_spec(busybox_image("true\n"), tmp_path, device_ids=["GPU-aaaa", "3"])
    attrs = _created(docker_client, spec)
    requests_ = attrs["HostConfig"]["DeviceRequests"]
    assert len(requests_) == 1
    assert requests_[0]["DeviceIDs"] == ["GPU-aaaa", "3"] and requests_[0]["Capabilities"] == [["gpu"]]
    env = dict(item.split("=", 1) for item in attrs["Config"]["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-aaaa,3" and env["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_rerun_of_same_attempt_replaces_stale_container(docker_client, busybox_image, tmp_path):
    image = busybox_image("echo second > /output/x\n")
    spec = make_spec(image, tmp_path)
    sandbox.create(docker_client, spec)   # left behind by a worker that died
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok" and (spec.output_dir / "x").read_text() == "second\n"
    assert not container_exists(docker_client, spec.name)


def test_live_log_list_and_kill(docker_client, busybox_image, tmp_path):
    spec = make_spec(busybox_image("echo line1; echo line2; sleep 1000\n"), tmp_path,
                     labels={"hub.submission": "41", "hub.test": str(os.getpid())})
    container = sandbox.create(docker_client, spec)
    try:
        container.start()
        tail = b""
        for _ in range(100):
            tail = sandbox.stream_log(docker_client, spec.name, 8)
            if tail.endswith(b"line2\n"):
                break
            threading.Event().wait(0.05)
        assert tail == b"1\nline2\n"   # the last 8 bytes
        found = sandbox.list_hub_containers(docker_client, {"hub.submission": "41"})
        assert [c.name for c in found] == [spec.name]
    finally:
        assert sandbox.kill_and_remove(docker_client, spec.name) is True
    assert sandbox.kill_and_remove(docker_client, spec.name) is False
    assert sandbox.stream_log(docker_client, spec.name, 8) == b""
    assert sandbox.list_hub_containers(docker_client, {"hub.submission": "41"}) == []


def test_organiser_command_override(docker_client, busybox_image, tmp_path):
    image = busybox_image("echo team-code > /output/team\n")
    spec = make_spec(image, tmp_path, entrypoint=["/bin/sh", "-c"],
                     command=["cat /input/test.csv | wc -l > /output/lines"])
    assert sandbox.run(docker_client, spec).outcome == "ok"
    assert sorted(p.name for p in spec.output_dir.iterdir()) == ["lines"]
    assert (spec.output_dir / "lines").read_text().strip() == "3"


def test_images_run_by_id_only(docker_client, tmp_path):
    with pytest.raises(ValueError):
        sandbox.create(docker_client, make_spec("busybox:latest", tmp_path))


def test_unreachable_engine_is_an_infra_error(busybox_binary, tmp_path):
    import docker

    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.41", timeout=5)
    with pytest.raises(sandbox.SandboxInfraError):
        sandbox.run(client, make_spec("sha256:" + "a" * 64, tmp_path))
    with pytest.raises(sandbox.SandboxInfraError):
        sandbox.list_hub_containers(client)


# ---------------------------------------------------------------- the image's own config is not trusted
def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_declared_volume_gets_a_capped_tmpfs_not_a_disk_volume(docker_client, busybox_image, tmp_path):
    # Three files, each at the /output cap (RLIMIT_FSIZE stops a single file there), into a declared VOLUME:
    # 3x the cap. An anonymous volume would take all of it on the node's disk, beside every limit.
    script = ("for i in 1 2 3; do dd if=/dev/zero of=/data/f$i bs=64k count=32 2>>/output/dd_err; done\n"
              "du -k /data | tail -n 1 > /output/du\n"
              "grep ' /data ' /proc/mounts > /output/mount\n")
    image = busybox_image(script, volumes=["/data"], extra_layers=(open_dirs_layer("data"),))
    spec = make_spec(image, tmp_path, output_max_bytes=2 * MIB, tmp_size_mb=3)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok", result.log
    assert int(_read(spec.output_dir / "du").split()[0]) <= 3 * 1024          # KiB: the tmpfs cap, not 6 MiB
    assert "No space left on device" in _read(spec.output_dir / "dd_err")
    mount = _read(spec.output_dir / "mount").split()
    assert mount[2] == "tmpfs" and "size=3072k" in mount[3] and "noexec" in mount[3]
    assert result.masked_volumes == ["/data"]
    assert not container_exists(docker_client, spec.name)


@pytest.mark.parametrize("declared", [["/"], ["/output/cache"], ["/models", "/input/extra"]])
def test_a_volume_the_sandbox_cannot_mask_never_runs(declared, docker_client, busybox_image, tmp_path):
    spec = make_spec(busybox_image("echo ran > /output/ran\n", volumes=declared), tmp_path)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "start_failed" and "VOLUME" in (result.start_error or "")
    assert not container_exists(docker_client, spec.name)
    assert not (spec.output_dir / "ran").exists()


def test_volume_masks_normalize_and_refuse():
    assert sandbox.volume_masks(["/data/", "/a/../b", "/tmp", "/output", "/input", "/tmp/cache"]) == \
        ["/b", "/data", "/tmp/cache"]
    for bad in (["data"], ["/"], ["//"], ["/output/x"], ["/input/../input/x"], [f"/v{i}" for i in range(17)]):
        with pytest.raises(sandbox.UnsafeImageConfig):
            sandbox.volume_masks(bad)


def test_image_health_check_never_runs(docker_client, busybox_image, tmp_path):
    # Docker would run this every 100 ms inside the sandbox, beside the process the platform waits for.
    probe = {"Test": ["CMD-SHELL", "echo probe >> /output/health; sleep 100 &"], "Interval": 100_000_000,
             "Timeout": 1_000_000_000, "Retries": 1}
    script = "sleep 2\nn=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo $n > /output/procs\n"
    spec = make_spec(busybox_image(script, healthcheck=probe), tmp_path)
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok", result.log
    assert not (spec.output_dir / "health").exists()
    assert _read(spec.output_dir / "procs").strip() == "1"     # the image's own shell, nothing else


def test_image_that_ignores_sigterm_still_ends_at_the_time_limit(docker_client, busybox_image, tmp_path):
    script = "trap '' TERM INT HUP QUIT; echo trapped; while :; do sleep 1; done\n"
    spec = make_spec(busybox_image(script, stop_signal="SIGTERM"), tmp_path, time_limit_s=2)
    result = sandbox.run(docker_client, spec)
    assert result.timed_out and result.outcome == "time_limit" and result.exit_code == 137
    assert result.log == b"trapped\n"
    assert not container_exists(docker_client, spec.name)


def test_image_user_ports_onbuild_stopsignal_and_env_change_nothing(docker_client, busybox_image, tmp_path):
    image = busybox_image("id -u > /output/uid; env > /output/env; ls -A /tmp > /output/tmp\n", user="0:0",
                          exposed_ports=["8080/tcp", "53/udp"], on_build=["RUN touch /tmp/onbuild"],
                          stop_signal="SIGUSR1", env={"NVIDIA_VISIBLE_DEVICES": "all", "HOME": "/root"})
    spec = make_spec(image, tmp_path)
    attrs = _created(docker_client, spec)
    assert attrs["Config"]["StopSignal"] == "SIGKILL" and attrs["Config"]["User"] != "0:0"
    assert attrs["HostConfig"]["NetworkMode"] == "none" and attrs["HostConfig"]["PublishAllPorts"] is False
    assert not attrs["HostConfig"]["PortBindings"]
    result = sandbox.run(docker_client, spec)
    assert result.outcome == "ok", result.log
    assert int(_read(spec.output_dir / "uid")) == result.uid and result.uid in sandbox.uid_pool()
    env = dict(line.split("=", 1) for line in _read(spec.output_dir / "env").splitlines() if "=" in line)
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void" and env["HOME"] == "/tmp"
    assert _read(spec.output_dir / "tmp").strip() == ""        # ONBUILD acts on builds only


STORM = "(while :; do sleep 1000 & done) 2>/dev/null\necho full > /output/full\nexec sleep 1000\n"
NEIGHBOUR = """n=0; while [ $n -lt 200 ]; do sleep 30 & n=$((n+1)); done
echo $n > /output/forked
dd if=/dev/zero of=/tmp/scratch bs=1M count=8 2>/dev/null
dd if=/dev/zero of=/dev/null bs=32M count=1 2>/dev/null
dd if=/dev/zero of=/output/pred bs=1M count=2 2>/dev/null
echo done > /output/done
"""


def _wait_for_file(path: Path, timeout: float = 60) -> None:
    deadline = threading.Event()
    for _ in range(int(timeout / 0.05)):
        if path.exists():
            return
        deadline.wait(0.05)
    raise AssertionError(f"{path} never appeared")


def test_a_fork_storm_cannot_starve_a_concurrent_run(docker_client, busybox_image, tmp_path):
    """Two concurrent runs on one node: A forks up to its pids limit (1024, a challenge that allows many
    processes), B forks 200, allocates 32 MiB and writes /tmp and /output. On a shared uid A's processes
    would fill B's RLIMIT_NPROC (1024 processes per uid on the whole host) and B could not fork at all."""
    storm = make_spec(busybox_image(STORM), tmp_path, pids_limit=1024, memory_mb=512, time_limit_s=120)
    neighbour = make_spec(busybox_image(NEIGHBOUR), tmp_path, pids_limit=256, memory_mb=256, tmp_size_mb=16)
    results: dict[str, sandbox.RunResult] = {}
    thread = threading.Thread(target=lambda: results.update(storm=sandbox.run(docker_client, storm)), daemon=True)
    thread.start()
    try:
        _wait_for_file(storm.output_dir / "full")   # A is at its pids limit
        result = sandbox.run(docker_client, neighbour)
    finally:
        try:
            docker_client.api.kill(storm.name)
        except Exception:  # noqa: BLE001 - already over
            pass
        thread.join(60)
    assert result.outcome == "ok", result.log
    assert _read(neighbour.output_dir / "forked").strip() == "200"
    assert _read(neighbour.output_dir / "done").strip() == "done"
    assert results["storm"].uid != result.uid
    assert not container_exists(docker_client, storm.name)


def test_concurrent_creates_never_share_a_uid(docker_client, busybox_image, tmp_path):
    pool = range(0x7100_0000, 0x7100_0004)   # four uids, apart from the default pool other tests use
    image = busybox_image("true\n")
    specs = [make_spec(image, tmp_path, uids=pool) for _ in range(4)]
    barrier = threading.Barrier(len(specs))
    created: dict[str, Any] = {}

    def make(spec: SandboxSpec) -> None:
        barrier.wait()
        created[spec.name] = sandbox.create(docker_client, spec)

    threads = [threading.Thread(target=make, args=(spec,)) for spec in specs]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        uids = [int(docker_client.api.inspect_container(spec.name)["Config"]["Labels"][sandbox.UID_LABEL])
                for spec in specs]
        assert sorted(uids) == list(pool)                   # four containers, four uids
        with pytest.raises(sandbox.SandboxInfraError, match="in use"):
            sandbox.create(docker_client, make_spec(image, tmp_path, uids=pool))
    finally:
        for spec in specs:
            sandbox.kill_and_remove(docker_client, spec.name)


def test_uid_pool_setting():
    assert sandbox.uid_pool("") == sandbox.DEFAULT_UIDS
    assert sandbox.uid_pool("200000-200009") == range(200000, 200010)
    for bad in ("0-10", "10-5", "65530-65540", "x", "100"):
        with pytest.raises(ValueError):
            sandbox.uid_pool(bad)
