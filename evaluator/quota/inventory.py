"""What accelerators a worker node has: NVIDIA devices by UUID, or a configured inventory.

`ACCELERATORS` (used when `nvidia-smi` is absent or reports nothing) is a comma-separated list whose
entries take one of two forms, which may be mixed:

* ``<device id>:<class>`` names one device, e.g.
  ``ACCELERATORS="GPU-aaaa:nvidia-a100,GPU-bbbb:nvidia-a100"``;
* ``<class>:<count>`` declares `count` devices of a class, e.g. ``ACCELERATORS="nvidia-a100:2"``. They get
  stable ids ``FAKE-<class>-<node>-<n>`` (node = `HUB_NODE_NAME`, else the host name), so restarting a
  worker keeps its devices' identity and two nodes never share one.

Classes are lower-case slugs (letters, digits, ``-``, ``_``, ``.``). `NVIDIA_SMI` names the binary to
probe (default ``nvidia-smi``); set it empty to ignore NVML on a node and use the configured list.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Mapping

from sqlmodel import Session, func, select

from evaluator.quota.models import Device
from hub.models import utcnow

CLASS_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,119}$")
MAX_DECLARED = 1024


def node_name(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("HUB_NODE_NAME") or socket.gethostname()


def class_from_name(name: str) -> str:
    """'NVIDIA A100-SXM4-80GB' -> 'nvidia-a100', 'NVIDIA GeForce RTX 4090' -> 'nvidia-rtx4090'."""
    words = [w for w in re.split(r"\s+", name.lower().strip()) if w not in ("nvidia", "geforce", "tesla", "")]
    model: list[str] = []
    for word in words:
        if any(ch.isdigit() for ch in word):
            model.append(word.split("-")[0])
            break
        model.append(word)
    slug = re.sub(r"[^a-z0-9]+", "", "".join(model)) or "gpu"
    return f"nvidia-{slug}"


def parse_nvidia_smi(output: str) -> list[dict]:
    """Lines of `nvidia-smi --query-gpu=uuid,name,index --format=csv,noheader`."""
    devices = []
    for line in output.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].startswith(("GPU-", "MIG-")):
            continue
        uuid, name, index = parts[0], ",".join(parts[1:-1]), parts[-1]
        devices.append({"uuid": uuid, "accel_class": class_from_name(name), "index": int(index) if index.isdigit() else 0,
                        "name": name, "source": "nvidia-smi"})
    return devices


def parse_accelerators(spec: str, node: str) -> list[dict]:
    """The configured form (see the module docstring); raises ValueError with the bad entry."""
    devices: list[dict] = []
    per_class: dict[str, int] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        left, sep, right = entry.rpartition(":")
        if not sep or not left or not right:
            raise ValueError(f"ACCELERATORS entry {entry!r}: expected '<device id>:<class>' or '<class>:<count>'")
        if right.isdigit():
            accel_class, count = left.lower(), int(right)
            if not CLASS_RE.match(accel_class):
                raise ValueError(f"ACCELERATORS entry {entry!r}: bad class name {accel_class!r}")
            if not 0 < count <= MAX_DECLARED:
                raise ValueError(f"ACCELERATORS entry {entry!r}: count must be 1..{MAX_DECLARED}")
            for _ in range(count):
                n = per_class.get(accel_class, 0)
                per_class[accel_class] = n + 1
                devices.append({"uuid": f"FAKE-{accel_class}-{node}-{n}", "accel_class": accel_class, "index": n,
                                "name": accel_class, "source": "config"})
        else:
            uuid, accel_class = left, right.lower()
            if not ID_RE.match(uuid) or not CLASS_RE.match(accel_class):
                raise ValueError(f"ACCELERATORS entry {entry!r}: bad device id or class")
            n = per_class.get(accel_class, 0)
            per_class[accel_class] = n + 1
            devices.append({"uuid": uuid, "accel_class": accel_class, "index": n, "name": accel_class,
                            "source": "config"})
    uuids = [d["uuid"] for d in devices]
    if len(set(uuids)) != len(uuids):
        raise ValueError("ACCELERATORS names the same device twice")
    return devices


def _probe_nvidia(binary: str) -> list[dict]:
    path = shutil.which(binary) if binary else None
    if not path:
        return []
    try:
        done = subprocess.run([path, "--query-gpu=uuid,name,index", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []


def node_inventory(env: Mapping[str, str] | None = None) -> list[dict]:
    """This node's devices: [{"uuid", "accel_class", "index", "name", "source"}], NVML first."""
    env = os.environ if env is None else env
    devices = _probe_nvidia(env.get("NVIDIA_SMI", "nvidia-smi"))
    if devices:
        return devices
    return parse_accelerators(env.get("ACCELERATORS", ""), node_name(env))


def register_node(session: Session, node_name: str, devices: list[dict]) -> None:
    """Upsert the node's devices; devices it no longer reports become inactive (never leased again)."""
    now = utcnow()
    seen: set[str] = set()
    for d in devices:
        uuid = d["uuid"]
        seen.add(uuid)
        row = session.exec(select(Device).where(Device.uuid == uuid)).first()
        if row is None:
            row = Device(uuid=uuid, node=node_name, accel_class=d.get("accel_class") or d["class"])
        row.node = node_name
        row.accel_class = d.get("accel_class") or d.get("class") or row.accel_class
        row.index = int(d.get("index", 0))
        row.name = d.get("name", "") or row.accel_class
        row.source = d.get("source", "config")
        row.active = True
        row.last_seen = now
        session.add(row)
    for row in session.exec(select(Device).where(Device.node == node_name, Device.active == True)):  # noqa: E712
        if row.uuid not in seen:
            row.active = False
            session.add(row)
    session.commit()


def devices(session: Session) -> list[Device]:
    return list(session.exec(select(Device).order_by(Device.node, Device.accel_class, Device.index, Device.id)))


def capacity(session: Session, accel_class: str) -> int:
    """Active devices of a class across all nodes."""
    return len(session.exec(select(Device.id).where(Device.accel_class == accel_class,
                                                    Device.active == True)).all())  # noqa: E712


def report_node(session: Session, env: Mapping[str, str] | None = None) -> list[dict]:
    """A worker's start-up and heartbeat: register what this node has under its name."""
    found = node_inventory(env)
    register_node(session, node_name(env), found)
    return found


def free_devices(session: Session, accel_class: str, nodes: list[str]) -> int:
    """Active devices of a class on these nodes that no lease holds."""
    if not nodes:
        return 0
    return int(session.exec(select(func.count(Device.id)).where(
        Device.accel_class == accel_class, Device.active == True, Device.lease_id == None,  # noqa: E711,E712
        Device.node.in_(nodes))).one())  # type: ignore[attr-defined]
