"""The hostile-image catalogue shared by tests/evaluator/test_hostile.py and bench/hostile_table.py.

Each run-time attack is a busybox script (built FROM scratch, offline) plus the typed outcome
(challenges.models.Outcome) the pipeline must give it under the challenge limits it names. Attacks that
the sandbox contains without failing the run (network, truth reads, writes outside /output, setuid, env)
end with a correct model, so the right outcome is "scored" and what they tried is printed to the log.
Upload-side attacks are archives that intake must refuse before anything is loaded.

The truth file carries MARKER in a column the scorer ignores; no script contains it (scripts only name
paths), so the marker in a log means the container read the truth.
"""
from __future__ import annotations

import io
import socket
import tarfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from challenges.models import Outcome
from evaluator import images

MIB = 1 << 20
MARKER = "TRUTH-SECRET-" + uuid.uuid4().hex[:12].upper()
# ids 1-4 like tests.factories.make_eval_setup's default truth, plus a column no model should ever see.
TRUTH = "id,label,note\n" + "".join(f"{i},{'a' if i % 2 else 'b'},{MARKER}\n" for i in range(1, 5))
LEAK = "LEAK"   # what an attack prints when it got through; never in a log of a contained attack

# A correct model (accuracy 1.0 against TRUTH), appended to the attacks that should still score.
MODEL = """echo "id,label" > /output/predictions.csv
for i in $(cat /input/ids.txt); do if [ $((i % 2)) -eq 1 ]; then echo "$i,a"; else echo "$i,b"; fi; done \\
  >> /output/predictions.csv
"""


@dataclass
class Context:
    """Host facts an attack aims at: where the truth and the platform's services really are."""

    truth_path: Path
    input_dir: Path
    redis_socket: str = ""
    ports: dict[str, int] = field(default_factory=dict)   # name -> TCP port listening on the host
    hosts: list[str] = field(default_factory=list)        # host addresses as a container would see them


@dataclass
class Attack:
    """One hostile image: its script, the outcome it must get, and the challenge limits it runs under."""

    name: str
    what: str
    script: Callable[[Context], str]
    outcome: str
    time_limit_s: int = 3
    memory_mb: int = 64
    image_opts: dict[str, Any] = field(default_factory=dict)


def _fixed(text: str) -> Callable[[Context], str]:
    return lambda _ctx: text


def _network(ctx: Context) -> str:
    lines = []
    targets = [(h, p) for h in ["127.0.0.1", *ctx.hosts] for p in ctx.ports.values()]
    targets += [("1.1.1.1", 80), ("169.254.169.254", 80), ("8.8.8.8", 53)]
    for host, port in targets:
        lines.append(f"nc -w 1 {host} {port} </dev/null && echo {LEAK}-tcp-{host}-{port}")
        lines.append(f"wget -q -T 1 -O /dev/null http://{host}:{port}/ && echo {LEAK}-http-{host}-{port}")
    lines.append("nslookup example.com 2>&1 | grep -q Address && echo LEAK-dns")
    if ctx.redis_socket:
        # The platform's Redis listens on a unix socket: it must not even be visible.
        lines.append(f"[ -e {ctx.redis_socket} ] && echo {LEAK}-redis-socket-visible")
    lines.append("ls /sys/class/net")
    return "\n".join(lines) + "\n" + MODEL


def _truth_read(ctx: Context) -> str:
    t = ctx.truth_path
    paths = [t, f"/proc/1/root{t}", "/input/../truth.csv", "/input/../../truth.csv", f"/input/..{t}",
             "../truth.csv", "/truth.csv", f"/proc/self/root{t}", f"/proc/1/cwd/../{t.name}"]
    lines = ["cd /input"] + [f"cat {p} 2>&1" for p in paths]
    # Look everywhere the container can see for a file named like the truth, and print what is there.
    lines.append("find / -xdev -name 'truth*' 2>/dev/null | while read f; do echo \"found $f\"; cat \"$f\"; done")
    lines.append("ls -la /proc/1/root/ /input/.. 2>&1")
    return "\n".join(lines) + "\n" + MODEL


def _write_outside(ctx: Context) -> str:
    targets = ["/x", "/app/x", "/etc/x", "/input/x", "/output/../x", f"{ctx.input_dir}/x",
               f"{ctx.truth_path.parent}/x", "/proc/1/root/x"]
    lines = [f"(echo hostile > {p}) 2>&1 && echo {LEAK}-wrote-{p}" for p in targets]
    lines.append(f"touch /output/../../x 2>&1 && [ -e /x ] && echo {LEAK}-escaped")
    lines.append(f"ln -s /input/ids.txt /output/link 2>&1; mkdir /output/sub && echo ok > /output/sub/f")
    return "\n".join(lines) + "\n" + MODEL


def open_dirs_layer(*paths: str) -> bytes:
    """A layer with world-writable directories (where an image would mount its declared VOLUMEs)."""
    return images.layer_tar([images.Entry(p.strip("/"), kind=tarfile.DIRTYPE, mode=0o1777) for p in paths])


def engine_volumes(client: Any) -> set[str]:
    """The names of the engine's volumes (`docker volume ls`): a run must leave this unchanged."""
    return {v["Name"] for v in client.api.volumes().get("Volumes") or []}


def setuid_layer() -> bytes:
    """A layer with a setuid-root copy of busybox (named busybox-…, so it runs its first argument)."""
    return images.layer_tar([images.Entry("app/busybox-suid", images.BUSYBOX.read_bytes(), mode=0o4755)])


SETUID = f"""ls -l /app/busybox-suid
/app/busybox-suid id -u
/app/busybox-suid sh -c 'grep -E "^(Uid|CapEff|NoNewPrivs)" /proc/self/status'
/app/busybox-suid sh -c 'echo r00t >> /etc/passwd' 2>&1 && echo {LEAK}-passwd
[ "$(/app/busybox-suid id -u)" = 0 ] && echo {LEAK}-root
""" + MODEL

DECLARED_VOLUME = """for i in 1 2 3; do dd if=/dev/zero of=/data/f$i bs=1M count=64 2>&1 | grep -o 'No space left on device'; done
du -m /data | tail -n 1 | sed 's/^/volume-mib /'
grep ' /data ' /proc/mounts
""" + MODEL
HEALTH_PROBE = {"Test": ["CMD-SHELL", "touch /tmp/probe; sleep 100 &"], "Interval": 100_000_000,
                "Timeout": 1_000_000_000, "Retries": 1}
HEALTH_CHECKED = f"""sleep 2
[ -e /tmp/probe ] && echo {LEAK}-healthcheck-ran
n=0; for p in /proc/[0-9]*; do n=$((n+1)); done; echo "processes $n"
""" + MODEL
IGNORES_SIGTERM = "trap '' TERM INT HUP QUIT\necho trapped\nwhile :; do sleep 1; done\n"
IMAGE_CONFIG = f"""id -u | sed 's/^/uid /'
[ "$(id -u)" = 0 ] && echo {LEAK}-root
[ -e /tmp/onbuild ] && echo {LEAK}-onbuild
""" + MODEL

ENV_GRAB = """env | grep -E '^(NVIDIA|CUDA|LD_|HIP|ROCR)' | sort
ls /dev | grep -i nvidia && echo LEAK-gpu-device
""" + MODEL

RUN_ATTACKS: list[Attack] = [
    # pids_limit stops it; the loop that follows needs no fork, so the wall clock ends the run. 128 MiB
    # because the sandbox's 256 processes of sh need ~50 MiB: the pids limit, not memory, must bind.
    Attack("fork_bomb", "bomb() { bomb | bomb & }", _fixed("bomb() { bomb | bomb & }; bomb\nwhile :; do :; done\n"),
           Outcome.TIME_LIMIT, memory_mb=128),
    Attack("memory_bomb", "a string doubling forever", _fixed('x=0123456789abcdef\nwhile :; do x="$x$x"; done\n'),
           Outcome.MEMORY_LIMIT),
    # /tmp is a tmpfs, whose pages are charged to the container's memory; the pipeline caps it at half the
    # memory limit, so filling it is a plain "No space left on device" and the model goes on to score.
    Attack("tmp_fill", "1000 MiB into /tmp", _fixed("dd if=/dev/zero of=/tmp/fill bs=1M count=1000\n" + MODEL),
           Outcome.SCORED),
    Attack("output_fill", "1000 MiB into /output", _fixed("dd if=/dev/zero of=/output/big bs=1M count=1000\n" + MODEL),
           Outcome.BAD_OUTPUT),
    Attack("log_flood", "1 GiB to stdout", _fixed("dd if=/dev/zero bs=1M count=1024 2>/dev/null | tr '\\0' 'x'\n"
                                                    + MODEL), Outcome.SCORED, time_limit_s=30),
    Attack("oversized_prediction", "a 200 MiB predictions.csv",
           _fixed(MODEL + "yes 9999,a | head -c 200000000 >> /output/predictions.csv\n"), Outcome.BAD_OUTPUT,
           time_limit_s=10),
    Attack("network", "TCP/HTTP/DNS out, the platform's Redis and web ports", _network, Outcome.SCORED,
           time_limit_s=20),
    Attack("truth_read", "the truth's host path, /proc/1/root, ../", _truth_read, Outcome.SCORED, time_limit_s=20),
    Attack("write_outside", "writes to /, /app, /input, host paths", _write_outside, Outcome.SCORED,
           time_limit_s=10),
    Attack("setuid", "a setuid-root busybox", _fixed(SETUID), Outcome.SCORED,
           image_opts={"extra_layers": (setuid_layer(),)}),
    Attack("env_grab", "NVIDIA_VISIBLE_DEVICES=all, LD_PRELOAD", _fixed(ENV_GRAB), Outcome.SCORED,
           image_opts={"env": {"NVIDIA_VISIBLE_DEVICES": "all", "LD_PRELOAD": "/app/evil.so",
                               "CUDA_VISIBLE_DEVICES": "0,1,2,3", "LD_LIBRARY_PATH": "/app"}}),
    Attack("never_exits", "a busy loop", _fixed("echo spinning\nwhile :; do :; done\n"), Outcome.TIME_LIMIT),
    Attack("exits_early", "exit 0 before writing", _fixed("echo bye\nexit 0\n"), Outcome.MISSING_OUTPUT),
    # What the image's own config declares. A declared VOLUME would be an anonymous volume on the node's disk,
    # beside every cap: 3x the /output cap goes into it. The sandbox masks it with a tmpfs of /tmp's size.
    Attack("declared_volume", "VOLUME /data, 3 x 64 MiB written there", _fixed(DECLARED_VOLUME), Outcome.SCORED,
           time_limit_s=20, image_opts={"volumes": ["/data"], "extra_layers": (open_dirs_layer("data"),)}),
    Attack("volume_in_output", "VOLUME /output/cache (cannot be masked)", _fixed(MODEL), Outcome.IMAGE_REJECTED,
           image_opts={"volumes": ["/output/cache"]}),
    Attack("health_check", "a HEALTHCHECK running a command every 100 ms", _fixed(HEALTH_CHECKED), Outcome.SCORED,
           time_limit_s=10, image_opts={"healthcheck": HEALTH_PROBE}),
    Attack("ignored_sigterm", "trap '' TERM, STOPSIGNAL SIGTERM", _fixed(IGNORES_SIGTERM), Outcome.TIME_LIMIT,
           image_opts={"stop_signal": "SIGTERM"}),
    Attack("image_config", "USER 0, EXPOSE 8080, ONBUILD, STOPSIGNAL SIGUSR1", _fixed(IMAGE_CONFIG), Outcome.SCORED,
           image_opts={"user": "0:0", "exposed_ports": ["8080/tcp"], "on_build": ["RUN touch /tmp/onbuild"],
                       "stop_signal": "SIGUSR1"}),
]

# A fork storm at its pids limit beside a well-behaved run on the same node, at the same time: the
# neighbour forks 200 processes, allocates 32 MiB, writes /tmp and /output, and must score normally.
STORM = """id -u | sed 's/^/uid /'
(while :; do sleep 1000 & done) 2>/dev/null
echo storm at the pids limit
exec sleep 1000
"""
NEIGHBOUR = """id -u | sed 's/^/uid /'
n=0; while [ $n -lt 200 ]; do sleep 30 & n=$((n+1)); done
echo "forked $n"
dd if=/dev/zero of=/tmp/scratch bs=1M count=8 2>/dev/null && dd if=/dev/zero of=/dev/null bs=32M count=1 2>/dev/null \
  && echo "memory and /tmp ok"
""" + MODEL


# ---------------------------------------------------------------- upload side
@dataclass
class Upload:
    """A hostile archive (written by `build(dest)`) and the intake reason code it must be refused with.

    An empty `reason` means intake accepts the archive and the attack must simply have no effect (the
    re-tagging archive: the demo tag it names still points at the demo image after the load).
    """

    name: str
    what: str
    build: Callable[[Path], Path]
    reason: str
    max_bytes: int | None = None   # the upload cap, when the attack is about it
    needs_victims: bool = False    # plant_victims() first: the demo tag and another team's image on the node


def _parts(tag: str) -> images.ImageParts:
    # A script unique to the attack: its image ID is then new, so "not loaded" can be checked by ID.
    return images.busybox_parts(f"#!/bin/sh\necho {tag}-{uuid.uuid4().hex}\n" + MODEL)


def _member(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def _with_extra(*extra: tuple) -> Callable[[Path], Path]:
    return lambda dest: images.write_image_archive(dest, [_parts(dest.stem)], extra=extra)


def _truncated(dest: Path) -> Path:
    images.write_image_archive(dest, [_parts("trunc")])
    data = dest.read_bytes()
    dest.write_bytes(data[: int(len(data) * 0.6)])
    return dest


def _not_an_image(dest: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("README.md", b"# my model\n"), ("weights.bin", b"\0" * 4096)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dest.write_bytes(buf.getvalue())
    return dest


def valid_archive(dest: Path) -> Path:
    return images.write_image_archive(dest, [_parts("valid")])


# What the two image-level attacks aim at: the demo's tag on the node, and another team's image there.
VICTIM_TAG = f"hub-demo/hostile-{uuid.uuid4().hex[:10]}:baseline"
# Unique per process: another test session on the same engine removing its victim must not remove ours.
VICTIM_SCRIPT = f"#!/bin/sh\necho the other team's model {uuid.uuid4().hex}\n" + MODEL


def victim_parts() -> images.ImageParts:
    return images.busybox_parts(VICTIM_SCRIPT)


def plant_victims(client: Any, workdir: Path) -> str:
    """Load the other team's image and point the demo-like VICTIM_TAG at it; return its image ID."""
    image_id = images.build_busybox_image(client, VICTIM_SCRIPT, workdir=workdir)
    repo, tag = VICTIM_TAG.rsplit(":", 1)
    client.api.tag(image_id, repo, tag=tag)
    return image_id


def _retagging(dest: Path) -> Path:
    parts = images.busybox_parts(f"#!/bin/sh\necho retag-{uuid.uuid4().hex}\n" + MODEL, repo_tags=[VICTIM_TAG])
    return images.write_image_archive(dest, [parts])


def _borrowed_layers(dest: Path) -> Path:
    # The victim's layer digest in rootfs.diff_ids, the attacker's own files in the layer: an engine that
    # already has the victim's layer would skip this one and run the attacker's config on the victim's files.
    own = [images.busybox_layer(f"#!/bin/sh\necho borrowed-{uuid.uuid4().hex}\n" + MODEL)]
    config = images.image_config(own, entrypoint=["/bin/sh", "/app/run.sh"], env={"TEAM": "attacker"})
    config["rootfs"]["diff_ids"] = list(victim_parts().config["rootfs"]["diff_ids"])
    return images.write_image_archive(dest, [images.ImageParts(config=config, layers=own)])


UPLOAD_ATTACKS: list[Upload] = [
    Upload("retagging_archive", "RepoTags naming the demo's tag, other code", _retagging, "", needs_victims=True),
    Upload("borrowed_layers", "another team's layer digests in diff_ids, other files", _borrowed_layers,
           "layer_digest", needs_victims=True),
    Upload("tar_symlink_out", "a member symlink -> /etc/shadow",
           _with_extra(_member("evil", kind=tarfile.SYMTYPE, linkname="/etc/shadow")), "unsafe_link"),
    Upload("tar_dotdot", "a member ../../../tmp/evil", _with_extra(_member("../../../tmp/evil")), "unsafe_path"),
    Upload("tar_truncated", "the archive cut at 60 %", _truncated, "truncated"),
    Upload("tar_not_image", "a tar of a README and weights", _not_an_image, "not_an_image"),
    Upload("upload_over_cap", "a valid image over a 64 KiB upload cap", valid_archive, "too_large",
           max_bytes=64 * 1024),
]


# ---------------------------------------------------------------- helpers
class Listeners:
    """TCP listeners standing in for the platform's web and Redis ports; records every connection."""

    def __init__(self, names: tuple[str, ...] = ("web", "redis")) -> None:
        self.accepted: list[tuple[str, Any]] = []
        self.ports: dict[str, int] = {}
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        for name in names:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", 0))
            sock.listen(16)
            sock.settimeout(0.2)
            self.ports[name] = sock.getsockname()[1]
            self._socks.append(sock)
            t = threading.Thread(target=self._accept, args=(name, sock), daemon=True)
            t.start()
            self._threads.append(t)

    def _accept(self, name: str, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = sock.accept()
            except OSError:
                continue
            self.accepted.append((name, peer))
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        for sock in self._socks:
            sock.close()


def host_addresses(client: Any) -> list[str]:
    """The host as a container on the default bridge would reach it, and the host's outward address."""
    found = []
    try:
        for config in client.networks.get("bridge").attrs["IPAM"]["Config"] or []:
            if config.get("Gateway"):
                found.append(config["Gateway"])
    except Exception:  # noqa: BLE001 - no bridge network: nothing to add
        pass
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))   # UDP connect sends nothing; it only picks the outward address
            found.append(probe.getsockname()[0])
        except OSError:
            pass
    return sorted(set(found))
