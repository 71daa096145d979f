"""The sandbox runner: one submission (or organiser scoring) container under the profile of DESIGN.md.

Docker only: no Flask, no database. One create + start + wait + remove per run, no extra image or helper
container.

How /output is size-capped (the kernel cannot cap a plain bind mount): /output is a bind mount of a host
directory, and two things hold it to `output_max_bytes`:
  * RLIMIT_FSIZE (ulimit fsize) stops any single file at the cap + 1 byte: the writer gets SIGXFSZ/EFBIG;
  * a watcher thread measures the directory (bytes and entries) every `watch_interval_s` while the container
    runs, and kills the container as soon as it is over; the result is then `output_too_large`.
  The honest bound: between two polls a writer can add at most (write rate x interval) over the cap, and each
  file is capped by fsize, so the disk never fills. The alternative (a tmpfs volume kept mounted by a holder
  container and read back with get_archive) costs a second container start per run, which is over the
  0.3 s overhead budget (bench/sandbox_overhead.py).
After the run, anything in /output that is not a plain file or directory (symlinks that would make the host
scorer read a host file such as the truth, FIFOs that would block it) is removed and reported.

What the image's own config declares is not trusted (see `create`):
  * every declared VOLUME is masked by a size-capped tmpfs, so Docker never makes an anonymous volume on the
    node's disk; a VOLUME that cannot be masked is refused (UnsafeImageConfig);
  * HEALTHCHECK is disabled, STOPSIGNAL replaced by SIGKILL, USER and the guarded env overridden; EXPOSE means
    nothing without a network, ONBUILD only acts on builds;
  * each run gets its own uid from the node's pool (`uid_pool`), so no per-uid kernel budget (RLIMIT_NPROC,
    inotify instances, message queues, keyrings) is shared between two teams' concurrent runs.
"""
from __future__ import annotations

import logging
import os
import posixpath
import random
import re
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors
import requests.exceptions
from docker.models.containers import Container
from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

log = logging.getLogger(__name__)

LABEL = "hub.sandbox"
UID_LABEL = "hub.uid"        # the run's uid: the engine's container list is the node's uid allocation table
UIDS_ENV = "HUB_SANDBOX_UIDS"
# 0x70000000 and up: above systemd-nspawn's container ranges and every subordinate-uid range useradd hands
# out, below 2^31; no host account or other container runtime is expected there.
DEFAULT_UIDS = range(0x7000_0000, 0x7000_0000 + 4096)
# A container in one of these states may still have processes (or is about to): its uid is in use.
_LIVE_STATES = ["created", "running", "paused", "restarting", "removing"]
_UID_TRIES = 8
# The platform's own mounts; a declared VOLUME there is already masked by them.
PLATFORM_MOUNTS = ("/input", "/output", "/tmp")
MAX_DECLARED_VOLUMES = 16
MIB = 1 << 20
DEFAULT_TMP_MB = 256
# Image env that could reach devices outside the lease or inject code; the runner always sets these.
GUARDED_ENV_PREFIXES = ("NVIDIA_", "LD_")
_ALWAYS_EMPTY = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "NVIDIA_MIG_CONFIG_DEVICES",
                 "NVIDIA_MIG_MONITOR_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
                 "GPU_DEVICE_ORDINAL")


class SandboxInfraError(Exception):
    """The platform failed (engine unreachable, API error): the caller may retry; not the team's fault."""


class UnsafeImageConfig(Exception):
    """The image's own config asks for something the sandbox cannot bound (a VOLUME it cannot mask)."""


def uid_pool(value: str | None = None) -> range:
    """The node's sandbox uids: HUB_SANDBOX_UIDS as "FIRST-LAST" (inclusive), else DEFAULT_UIDS."""
    raw = (os.environ.get(UIDS_ENV, "") if value is None else value).strip()
    if not raw:
        return DEFAULT_UIDS
    match = re.fullmatch(r"(\d+)\s*-\s*(\d+)", raw)
    pool = range(int(match[1]), int(match[2]) + 1) if match else range(0)
    # 65534 (nobody) is shared with host daemons; a range that holds it would share their per-uid budgets.
    if not pool or not 0 < pool.start < pool.stop <= 2**31 or 65534 in pool:
        raise ValueError(f"{UIDS_ENV} must be FIRST-LAST, uids in 1..2147483647 without 65534, not {raw!r}")
    return pool


@dataclass
class SandboxSpec:
    """Everything one sandboxed run needs; `name` is fixed per attempt (e.g. "hub-3b92e65d0a-sub-12-a1")."""

    image_id: str
    name: str
    output_dir: Path
    input_dir: Path | None = None
    time_limit_s: float = 600
    memory_mb: int = 2048
    cpus: float = 1.0
    pids_limit: int = 256
    tmp_size_mb: int = DEFAULT_TMP_MB
    output_max_bytes: int = 64 * MIB
    output_max_files: int = 10_000
    log_max_bytes: int = 1 * MIB
    shm_size_mb: int = 64
    nofile: int = 1024
    device_ids: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None      # overrides the image CMD (organiser scoring images)
    entrypoint: list[str] | None = None   # overrides the image ENTRYPOINT (then `command` is its arguments)
    watch_interval_s: float = 0.1
    uids: range | None = None             # the node's uid pool; None: uid_pool() (HUB_SANDBOX_UIDS)


@dataclass
class RunResult:
    """What happened to one container. Container failures are results; only infra failures raise."""

    name: str
    exit_code: int | None
    timed_out: bool = False
    oom_killed: bool = False
    output_too_large: bool = False
    start_error: str | None = None        # the image could not start (missing entrypoint binary …)
    started_at: datetime | None = None    # the container's own State.StartedAt (aware UTC)
    finished_at: datetime | None = None   # State.FinishedAt (aware UTC)
    log: bytes = b""
    log_truncated: bool = False
    output_bytes: int = 0
    output_files: int = 0
    output_removed: list[str] = field(default_factory=list)   # symlinks/FIFOs taken out of /output
    peak_memory_bytes: int | None = None
    uid: int | None = None                # the uid (and gid) the run had to itself
    masked_volumes: list[str] = field(default_factory=list)   # declared VOLUMEs given a capped tmpfs

    @property
    def outcome(self) -> str:
        """One typed outcome: ok, output_too_large, time_limit, memory_limit, start_failed, nonzero_exit."""
        if self.output_too_large:
            return "output_too_large"
        if self.timed_out:
            return "time_limit"
        if self.oom_killed:
            return "memory_limit"
        if self.start_error is not None:
            return "start_failed"
        if self.exit_code != 0:
            return "nonzero_exit"
        return "ok"

    @property
    def runtime_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return max(0.0, (self.finished_at - self.started_at).total_seconds())
        return None


def guarded_env_names() -> tuple[str, ...]:
    return ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", *_ALWAYS_EMPTY)


def sandbox_env(spec: SandboxSpec) -> list[str]:
    """The container env: the spec's extra env, then the guarded variables, which nothing can override."""
    env = {"HOME": "/tmp", **spec.extra_env}
    leased = [str(d) for d in spec.device_ids]
    env["NVIDIA_VISIBLE_DEVICES"] = ",".join(leased) if leased else "void"
    # Inside the container the leased devices are renumbered from 0; an empty value hides every GPU.
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(leased)))
    env["NVIDIA_DRIVER_CAPABILITIES"] = "compute,utility" if leased else ""
    for name in _ALWAYS_EMPTY:
        env[name] = ""
    return [f"{k}={v}" for k, v in env.items()]


def tmp_size_for(memory_mb: int, default_mb: int = DEFAULT_TMP_MB) -> int:
    """/tmp's cap under a memory limit: half of it at most.

    tmpfs pages are charged to the container's memory cgroup, so a /tmp as large as the memory limit turns
    "filled /tmp" into an OOM kill (memory_limit) instead of the plain ENOSPC a model can handle, and leaves
    the model no memory of its own.
    """
    return max(1, min(default_mb, memory_mb // 2))


def fsize_bytes(spec: SandboxSpec) -> int:
    """RLIMIT_FSIZE: no single file, in /output or /tmp, may grow past the output cap + 1 byte.

    The cap + 1 (not the cap) lets the watcher and the final measure see "over the cap" for a file stopped
    by the limit. The limit is per process, not per mount, so it holds a single /tmp file too; /tmp as a
    whole is bounded by its tmpfs size (tmp_size_for).
    """
    return spec.output_max_bytes + 1


def volume_masks(declared: Iterable[str]) -> list[str]:
    """The paths to mask with a capped tmpfs for the VOLUMEs an image declares (normalized as Docker does).

    Masking rather than refusing: a VOLUME cannot be undone by an image built FROM a base that declares one,
    so refusing would turn away every image of such a base. A tmpfs is bounded by its size and, because its
    pages are charged to the container's memory cgroup, by the memory limit too, whatever the count; Docker
    makes no anonymous volume for a path that already has a mount. The image's own files under a declared
    path are hidden by the (empty) tmpfs, as they would be under any mount. Raises UnsafeImageConfig for
    what cannot be masked: a relative path or "/", a path inside /input or /output (a mount point there
    would reach into the host's directories), or more than MAX_DECLARED_VOLUMES paths.
    """
    paths = sorted({str(p) for p in declared})
    if len(paths) > MAX_DECLARED_VOLUMES:
        raise UnsafeImageConfig(f"the image declares {len(paths)} VOLUMEs; at most {MAX_DECLARED_VOLUMES} "
                                "are allowed")
    masks = []
    for raw in paths:
        if not raw.startswith("/"):
            raise UnsafeImageConfig(f"the image declares VOLUME {raw!r}, which is not an absolute path")
        path = "/" + posixpath.normpath(raw).lstrip("/")
        if path == "/":
            raise UnsafeImageConfig(f"the image declares VOLUME {raw!r}: the root cannot be a volume")
        if path in PLATFORM_MOUNTS:
            continue   # the platform's own mount is already there
        if path.startswith(("/input/", "/output/")):
            raise UnsafeImageConfig(f"the image declares VOLUME {raw!r}, inside the platform's "
                                    f"/{path.split('/')[1]}")
        masks.append(path)
    return sorted(set(masks))


def host_config_kwargs(spec: SandboxSpec, volumes: Iterable[str] = ()) -> dict[str, Any]:
    """The HostConfig of DESIGN.md's sandbox profile, as docker SDK keyword arguments.

    `volumes`: the image's declared VOLUME paths as volume_masks() returns them; each gets a tmpfs of
    /tmp's size.
    """
    memory = f"{spec.memory_mb}m"
    fsize = fsize_bytes(spec)
    mounts = [Mount(target="/output", source=str(Path(spec.output_dir).resolve()), type="bind", read_only=False)]
    if spec.input_dir is not None:
        mounts.insert(0, Mount(target="/input", source=str(Path(spec.input_dir).resolve()), type="bind",
                               read_only=True))
    kwargs: dict[str, Any] = dict(
        network_mode="none",
        cap_drop=["ALL"],
        privileged=False,
        security_opt=["no-new-privileges"],
        read_only=True,
        tmpfs={"/tmp": f"rw,size={spec.tmp_size_mb}m,noexec,nosuid,nodev,mode=1777",
               **{path: f"rw,size={spec.tmp_size_mb}m,noexec,nosuid,nodev,mode=1777" for path in volumes}},
        pids_limit=spec.pids_limit,
        ulimits=[
            Ulimit(name="nofile", soft=spec.nofile, hard=spec.nofile),
            # RLIMIT_NPROC counts every process of the run's uid on the host; each run has a uid of its
            # own (create), so this budget is the run's alone. The pids cgroup is the limit; this a backstop.
            Ulimit(name="nproc", soft=max(4 * spec.pids_limit, 1024), hard=max(4 * spec.pids_limit, 1024)),
            Ulimit(name="fsize", soft=fsize, hard=fsize),
            Ulimit(name="core", soft=0, hard=0),
        ],
        mem_limit=memory,
        memswap_limit=memory,
        nano_cpus=int(spec.cpus * 1e9),
        shm_size=f"{spec.shm_size_mb}m",
        oom_score_adj=500,   # under memory pressure the kernel kills a sandbox before the worker
        ipc_mode="private",
        log_config=LogConfig(type="json-file", config={"max-size": f"{log_file_bytes(spec) // 1024}k",
                                                       "max-file": "2"}),
        mounts=mounts,
    )
    if spec.device_ids:
        kwargs["device_requests"] = [DeviceRequest(device_ids=[str(d) for d in spec.device_ids],
                                                   capabilities=[["gpu"]])]
    return kwargs


def log_file_bytes(spec: SandboxSpec) -> int:
    """json-file max-size: each printed line costs ~70 bytes of JSON on top of its text, so Docker keeps
    (two files of) several times the cap to leave at least `log_max_bytes` of text for the reader."""
    return max(4 * spec.log_max_bytes, MIB) // 1024 * 1024


def _prepare_output(output_dir: Path, uid: int) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(output_dir, uid, uid)
        output_dir.chmod(0o755)
    else:
        # Without root the directory cannot be given to the run's uid; the worker's own temp dir (0700) is
        # what keeps other host users out.
        output_dir.chmod(0o777)


def _api_failure(err: Exception, action: str) -> SandboxInfraError:
    return SandboxInfraError(f"{action}: {err.__class__.__name__}: {err}")


_IMAGE_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_START_FAILURES = re.compile(r"executable file not found|no such file or directory|permission denied|"
                             r"exec format error|not a directory", re.I)


def declared_volumes(client: Any, image_id: str) -> list[str]:
    """The VOLUME paths the image's config declares (the engine's inspect of the image)."""
    try:
        attrs = client.api.inspect_image(image_id)
    except docker.errors.ImageNotFound:
        return []   # create_container then says the image is missing
    except (docker.errors.APIError, requests.exceptions.ConnectionError) as err:
        raise _api_failure(err, "inspecting the image") from err
    return sorted((attrs.get("Config") or {}).get("Volumes") or {})


def _uids_in_use(client: Any, uid: int | None = None) -> dict[str, int]:
    """{container id: uid} of the engine's live sandbox containers (every instance's), or of one uid's."""
    wanted = f"{UID_LABEL}={uid}" if uid is not None else UID_LABEL
    try:
        found = client.api.containers(all=True, filters={"label": [wanted], "status": _LIVE_STATES})
    except (docker.errors.APIError, requests.exceptions.ConnectionError) as err:
        raise _api_failure(err, "listing the sandbox uids in use") from err
    used = {}
    for item in found:
        try:
            used[item["Id"]] = int((item.get("Labels") or {})[UID_LABEL])
        except (KeyError, TypeError, ValueError):
            continue
    return used


def create(client: Any, spec: SandboxSpec) -> Container:
    """Create (not start) the sandbox container for `spec`; a leftover container of the same name goes first.

    See _create for the uid and the image's VOLUMEs.
    """
    cid, uid, _masks = _create(client, spec)
    return Container(attrs={"Id": cid, "Name": spec.name, "Config": {"User": f"{uid}:{uid}"}}, client=client,
                     collection=client.containers)


def _create(client: Any, spec: SandboxSpec) -> tuple[str, int, list[str]]:
    """Create the container; returns (its ID, the run's uid, the declared VOLUMEs masked with a tmpfs).

    `spec.output_dir` should be empty: it becomes the container's /output, owned by the run's uid.

    The run's uid: a free one of the pool, taken without a lock by labelling the container with it and then
    checking that no other live container (of any worker process or platform instance on this engine) has
    the same label; two creators that raced to one uid both see each other and both draw again, so the
    engine never runs two containers with one uid. Raises UnsafeImageConfig (nothing left behind) when the
    image declares a VOLUME the sandbox cannot mask.
    """
    if not _IMAGE_ID.match(spec.image_id):
        raise ValueError(f"the sandbox runs images by ID (sha256:…), not {spec.image_id!r}")
    masks = volume_masks(declared_volumes(client, spec.image_id))
    host_config = client.api.create_host_config(**host_config_kwargs(spec, masks))
    pool = spec.uids if spec.uids is not None else uid_pool()
    renamed = False
    for _ in range(_UID_TRIES):
        uid = _draw_uid(pool, set(_uids_in_use(client).values()))
        _prepare_output(Path(spec.output_dir), uid)
        labels = {LABEL: "1", **{k: str(v) for k, v in spec.labels.items()}, UID_LABEL: str(uid)}
        try:
            created = client.api.create_container(
                image=spec.image_id, command=spec.command, entrypoint=spec.entrypoint, name=spec.name,
                user=f"{uid}:{uid}", environment=sandbox_env(spec), labels=labels, host_config=host_config,
                hostname="sandbox", network_disabled=True, stdin_open=False, tty=False,
                # The image's HEALTHCHECK would run its command in the sandbox every interval, outside the
                # process the platform waits for; its STOPSIGNAL could make a stop wait on a trap.
                healthcheck={"test": ["NONE"]}, stop_signal="SIGKILL")
        except docker.errors.APIError as err:
            if err.status_code == 409 and not renamed:
                # A re-run of the same attempt: the earlier container is stale by construction.
                kill_and_remove(client, spec.name)
                renamed = True
                continue
            raise _api_failure(err, "creating the sandbox container") from err
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as err:
            raise _api_failure(err, "creating the sandbox container") from err
        cid = created["Id"]
        try:
            if set(_uids_in_use(client, uid)) - {cid}:
                kill_and_remove(client, cid)   # another run took this uid at the same moment: draw again
                continue
            _check_no_volume(client, cid)
        except BaseException:
            kill_and_remove(client, cid, quiet=True)
            raise
        return cid, uid, masks
    raise SandboxInfraError("creating the sandbox container: no free uid after several draws")


def _draw_uid(pool: range, used: set[int]) -> int:
    """A random uid of `pool` not in `used` (random: two racing creators rarely draw the same one)."""
    if sum(1 for uid in used if uid in pool) >= len(pool):
        raise SandboxInfraError(f"every sandbox uid of the pool ({pool.start}-{pool.stop - 1}) is in use")
    if len(pool) <= 65536:
        return random.choice([uid for uid in pool if uid not in used])
    while True:
        uid = random.choice(pool)
        if uid not in used:
            return uid


def _check_no_volume(client: Any, cid: str) -> None:
    """Fail closed: a created container with any volume mount (an image VOLUME the masks missed) is removed."""
    try:
        mounts = client.api.inspect_container(cid).get("Mounts") or []
    except (docker.errors.APIError, requests.exceptions.ConnectionError) as err:
        raise _api_failure(err, "inspecting the created container") from err
    volumes = [m.get("Destination") for m in mounts if m.get("Type") == "volume"]
    if volumes:
        # The caller removes the container (v=True: its anonymous volumes go with it).
        raise UnsafeImageConfig(f"the image's VOLUME {', '.join(map(str, volumes))} would get an uncapped "
                                "volume")


def _parse_time(value: str | None) -> datetime | None:
    """Docker's RFC 3339 with nanoseconds ("…T12:00:00.123456789Z") as an aware UTC datetime."""
    if not value or value.startswith("0001-01-01"):
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not match:
        return None
    micro = (match[2] or "0")[:6].ljust(6, "0")
    tz = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(f"{match[1]}.{micro}{tz}").astimezone(UTC)


def measure_output(output_dir: Path, stop_after_files: int | None = None) -> tuple[int, int]:
    """(bytes, entries) under `output_dir`, not following links; sparse files count at their full size."""
    total = entries = 0
    stack = [str(output_dir)]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
                    else:
                        total += max(st.st_size, st.st_blocks * 512)
                    if stop_after_files is not None and entries > stop_after_files:
                        return total, entries
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
    return total, entries


def _sanitize_output(output_dir: Path) -> list[str]:
    """Remove what a host scorer must never open from /output: links, FIFOs, sockets, devices."""
    removed = []
    for root, dirs, files in os.walk(output_dir, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                path.unlink(missing_ok=True)
                removed.append(str(path.relative_to(output_dir)))
        dirs[:] = [d for d in dirs if (Path(root) / d).is_dir() and not (Path(root) / d).is_symlink()]
    return removed


class _Watcher(threading.Thread):
    """Polls /output while the container runs and kills it when over the cap; samples peak memory."""

    def __init__(self, client: Any, container_id: str, spec: SandboxSpec) -> None:
        super().__init__(name=f"sandbox-watch-{spec.name}", daemon=True)
        self.client, self.container_id, self.spec = client, container_id, spec
        self.halt = threading.Event()
        self.over_cap = False
        self.peak_memory: int | None = None

    def run(self) -> None:
        next_stats = time.monotonic() + 1.0
        while not self.halt.wait(self.spec.watch_interval_s):
            size, entries = measure_output(Path(self.spec.output_dir), self.spec.output_max_files)
            if size > self.spec.output_max_bytes or entries > self.spec.output_max_files:
                self.over_cap = True
                _quiet_kill(self.client, self.container_id)
                return
            if time.monotonic() >= next_stats:
                # One-shot stats: on cgroup v1 max_usage is the peak, so one late sample is enough.
                next_stats = time.monotonic() + 2.0
                self.sample_memory()

    def sample_memory(self) -> None:
        try:
            stats = self.client.api.stats(self.container_id, stream=False, one_shot=True)
        except Exception:  # noqa: BLE001 - a missed sample only weakens the OOM guess
            return
        mem = stats.get("memory_stats") or {}
        seen = max(int(mem.get("max_usage") or 0), int(mem.get("usage") or 0))
        if seen:
            self.peak_memory = max(self.peak_memory or 0, seen)


def _quiet_kill(client: Any, container_id: str) -> None:
    try:
        client.api.kill(container_id)
    except (docker.errors.APIError, requests.exceptions.ConnectionError):
        pass   # already gone or stopped


_JSON_LINE_OVERHEAD = len('{"log":"","stream":"stdout","time":"2006-01-02T15:04:05.999999999Z"}\n')


def _read_log(client: Any, container_id: str, max_bytes: int,
              file_bytes: int | None = None) -> tuple[bytes, bool]:
    """(the last `max_bytes` of the log Docker kept, whether anything was dropped), streamed: memory stays
    at the cap. Docker's rotation drops the oldest lines; when the kept JSON (estimated from the text and its
    line count) reaches one file's `file_bytes`, a rotation happened and the log is flagged truncated."""
    kept = bytearray()
    total = lines = 0
    stream = client.api.logs(container_id, stdout=True, stderr=True, stream=True, follow=False)
    try:
        for chunk in stream:
            total += len(chunk)
            lines += chunk.count(b"\n")
            kept += chunk
            if len(kept) > max_bytes:
                del kept[: len(kept) - max_bytes]
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()
    rotated = file_bytes is not None and total + lines * _JSON_LINE_OVERHEAD >= 0.9 * file_bytes
    return bytes(kept), total > max_bytes or rotated


def run(client: Any, spec: SandboxSpec) -> RunResult:
    """Create, start and wait (wall-clock limit from outside), collect the outcome, always remove."""
    result = RunResult(name=spec.name, exit_code=None)
    try:
        cid, result.uid, result.masked_volumes = _create(client, spec)
    except UnsafeImageConfig as err:
        # The team's image asked for what the sandbox cannot bound: it never starts (nothing was created).
        result.start_error = str(err)
        result.exit_code = 127
        return result
    watcher = _Watcher(client, cid, spec)
    try:
        try:
            client.api.start(cid)
        except docker.errors.APIError as err:
            message = str(err.explanation or err)
            if err.status_code in (400, 500) and _START_FAILURES.search(message):
                result.start_error = message
                result.exit_code = 127
                return result
            raise _api_failure(err, "starting the sandbox container") from err
        except (requests.exceptions.ConnectionError, docker.errors.DockerException) as err:
            raise _api_failure(err, "starting the sandbox container") from err
        watcher.start()
        deadline = time.monotonic() + spec.time_limit_s
        try:
            status = client.api.wait(cid, timeout=spec.time_limit_s)
        except requests.exceptions.RequestException as err:
            if time.monotonic() < deadline - 0.5:
                raise _api_failure(err, "waiting for the sandbox container") from err
            result.timed_out = True
            _quiet_kill(client, cid)
            try:
                status = client.api.wait(cid, timeout=30)
            except requests.exceptions.RequestException as err2:
                raise _api_failure(err2, "waiting for the killed container") from err2
        except docker.errors.APIError as err:
            raise _api_failure(err, "waiting for the sandbox container") from err
        watcher.halt.set()
        watcher.join(timeout=5)
        result.exit_code = int(status.get("StatusCode", -1))
        try:
            attrs = client.api.inspect_container(cid)
            result.log, result.log_truncated = _read_log(client, cid, spec.log_max_bytes, log_file_bytes(spec))
        except (docker.errors.APIError, requests.exceptions.RequestException) as err:
            raise _api_failure(err, "reading the finished container") from err
        state = attrs.get("State") or {}
        result.started_at = _parse_time(state.get("StartedAt"))
        result.finished_at = _parse_time(state.get("FinishedAt"))
        result.peak_memory_bytes = watcher.peak_memory
        result.output_too_large = watcher.over_cap
        limit = spec.memory_mb * MIB
        # Exit 137 that we did not cause is a SIGKILL; near the memory limit it is the OOM killer even when
        # the engine did not flag it (a child process killed, cgroup v2 accounting).
        result.oom_killed = bool(state.get("OOMKilled")) or (
            result.exit_code == 137 and not result.timed_out and not result.output_too_large
            and watcher.peak_memory is not None and watcher.peak_memory >= 0.9 * limit)
        return result
    finally:
        watcher.halt.set()
        kill_and_remove(client, cid, quiet=True)
        _finish_output(spec, result)


def _finish_output(spec: SandboxSpec, result: RunResult) -> None:
    output_dir = Path(spec.output_dir)
    if not output_dir.is_dir():
        return
    result.output_removed = _sanitize_output(output_dir)
    result.output_bytes, result.output_files = measure_output(output_dir)
    if result.output_bytes > spec.output_max_bytes or result.output_files > spec.output_max_files:
        result.output_too_large = True


def kill_and_remove(client: Any, name: str, *, quiet: bool = False) -> bool:
    """Remove a container (by name or ID) whatever its state; False if it was not there.

    The reaper calls this for orphans; with quiet=True an API failure is logged, not raised, and the
    container is left for the reaper (it carries the hub.sandbox label).
    """
    try:
        client.api.remove_container(name, force=True, v=True)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as err:
        if err.status_code == 409:   # removal already in progress
            return True
        if quiet:
            log.warning("could not remove sandbox container %s: %s", name, err)
            return False
        raise _api_failure(err, "removing the sandbox container") from err
    except requests.exceptions.ConnectionError as err:
        if quiet:
            log.warning("could not remove sandbox container %s: %s", name, err)
            return False
        raise _api_failure(err, "removing the sandbox container") from err


def stream_log(client: Any, name: str, max_bytes: int) -> bytes:
    """The last `max_bytes` of a (running) container's log, for a live tail; b"" if it is gone."""
    try:
        return _read_log(client, name, max_bytes)[0]
    except docker.errors.NotFound:
        return b""
    except (docker.errors.APIError, requests.exceptions.RequestException) as err:
        raise _api_failure(err, "reading the container log") from err


def list_hub_containers(client: Any, labels: dict[str, str] | None = None) -> list[Container]:
    """Every container the sandbox created (running or not), optionally narrowed by label values."""
    wanted = [LABEL] + [f"{k}={v}" for k, v in (labels or {}).items()]
    try:
        return client.containers.list(all=True, filters={"label": wanted}, ignore_removed=True)
    except (docker.errors.APIError, requests.exceptions.ConnectionError) as err:
        raise _api_failure(err, "listing sandbox containers") from err


__all__ = ["LABEL", "RunResult", "SandboxInfraError", "SandboxSpec", "UID_LABEL", "UnsafeImageConfig", "create",
           "declared_volumes", "guarded_env_names", "host_config_kwargs", "kill_and_remove", "list_hub_containers",
           "measure_output", "run", "sandbox_env", "stream_log", "uid_pool", "volume_masks"]


def spec_for(*, name: str, image_id: str, input_dir: Path | None, output_dir: Path, time_limit_s: float,
             memory_mb: int, cpus: float, device_ids: list[str], log_max_bytes: int,
             labels: dict[str, str] | None = None) -> SandboxSpec:
    """The SandboxSpec of a run under a challenge's limits (bench/hostile_table.py uses it too)."""
    # Devices declared by count in ACCELERATORS ("class:2") get FAKE-… ids: they are leased and metered
    # like real ones, but there is nothing for Docker to attach.
    real_devices = [d for d in device_ids if not str(d).startswith("FAKE-")]
    return SandboxSpec(image_id=image_id, name=name, output_dir=output_dir, input_dir=input_dir,
                       time_limit_s=time_limit_s, memory_mb=memory_mb, cpus=cpus, tmp_size_mb=tmp_size_for(memory_mb),
                       device_ids=real_devices, log_max_bytes=log_max_bytes, labels=dict(labels or {}))
