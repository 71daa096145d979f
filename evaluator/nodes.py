"""Node liveness in Redis: a node's beat is one key, never a database write.

Every HEARTBEAT_S a node writes `hub:node:<name>` = JSON {classes, devices, runs: [[submission id, attempt]], at}
with a time to live of `dead_after_s()`, and its name with the beat's time into the ZSETs `hub:nodes` and
`hub:nodes:<class>` (so the live names of a class are one ZRANGEBYSCORE, their beats one MGET). A node is alive while its key exists; a run is alive while its node's key lists
it, which is also what keeps its device lease (no lease heartbeat). The WorkerNode row is written at registration only.

A Redis restart empties every key at once. So that the reaper does not take that for 450 dead nodes, the first beat
(or sweep) after the restart sets `hub:epoch`, and nobody is declared dead until `dead_after_s()` after it: by then
every live node has announced itself again.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from redis import Redis

NODES = "hub:nodes"
EPOCH = "hub:epoch"
FORGET_S = 24 * 3600.0      # a node silent this long leaves the ZSET (its row stays for the operators' page)


def dead_after_s() -> float:
    """A node whose last beat is older than this is gone (its work is handed to another)."""
    return float(os.environ.get("HUB_WORKER_DEAD_AFTER", "10"))


def node_key(node: str) -> str:
    return f"hub:node:{node}"


@dataclass(frozen=True)
class LiveNode:
    """A node as its last beat described it (attribute names as WorkerNode's, for the callers of both)."""

    name: str
    queues: list[str]
    accelerators: list[dict[str, Any]]
    runs: frozenset[tuple[int, int]] = field(default_factory=frozenset)
    beat_at: datetime | None = None


def class_set(accel_class: str | None) -> str:
    return NODES if accel_class is None else f"{NODES}:{accel_class}"


def beat(conn: Redis, node: str, classes: list[str], devices: list[dict[str, Any]],
         runs: list[tuple[int, int]] | tuple[tuple[int, int], ...] = ()) -> None:
    """One beat: the node's key (with its runs), its time in the live sets, and the epoch if Redis lost it."""
    now = time.time()
    doc = json.dumps({"classes": list(classes), "devices": list(devices), "runs": [list(r) for r in runs], "at": now})
    pipe = conn.pipeline(transaction=False)
    pipe.set(node_key(node), doc, px=max(1, int(dead_after_s() * 1000)))
    for zset in [NODES] + [class_set(c) for c in classes]:
        pipe.zadd(zset, {node: now})
        pipe.zremrangebyscore(zset, "-inf", now - FORGET_S)   # the sets forget nodes gone for good
    pipe.set(EPOCH, now, nx=True)
    pipe.execute()


def leave(conn: Redis, node: str, classes: list[str]) -> None:
    """A node that stops on purpose says so at once."""
    pipe = conn.pipeline(transaction=False)
    pipe.delete(node_key(node))
    for zset in [NODES] + [class_set(c) for c in classes]:
        pipe.zrem(zset, node)
    pipe.execute()


def live_names(conn: Redis, accel_class: str | None = None) -> list[str]:
    """Names of the nodes (serving `accel_class`) that beat within dead_after_s(): one ZRANGEBYSCORE."""
    names = conn.zrangebyscore(class_set(accel_class), time.time() - dead_after_s(), "+inf")
    return sorted(n.decode() if isinstance(n, bytes) else n for n in names)


def live_count(conn: Redis, accel_class: str | None = None) -> int:
    """How many nodes (serving `accel_class`) beat within dead_after_s(): one ZCOUNT."""
    return int(conn.zcount(class_set(accel_class), time.time() - dead_after_s(), "+inf"))


def live(conn: Redis, accel_class: str | None = None) -> list[LiveNode]:
    """The live nodes (serving `accel_class`) as their last beat described them: live_names and one MGET."""
    names = live_names(conn, accel_class)
    if not names:
        return []
    out = []
    for name, raw in zip(names, conn.mget([node_key(n) for n in names])):
        if raw is None:
            continue     # expired since the ZRANGEBYSCORE: the key decides
        doc = json.loads(raw)
        out.append(LiveNode(name, list(doc.get("classes") or []), list(doc.get("devices") or []),
                            frozenset((int(i), int(a)) for i, a in doc.get("runs") or []),
                            datetime.fromtimestamp(float(doc.get("at") or 0), timezone.utc)))
    return out


def may_declare_dead(conn: Redis) -> bool:
    """False until `dead_after_s()` has passed since Redis (re)started, so every live node could beat again."""
    now = time.time()
    pipe = conn.pipeline(transaction=False)
    pipe.set(EPOCH, now, nx=True)
    pipe.get(EPOCH)
    _, epoch = pipe.execute()
    return now - float(epoch) >= dead_after_s()
