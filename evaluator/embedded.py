"""`python app.py`: the whole platform on one machine, for a newcomer or a laptop.

SQLite under instance/; if REDIS_URL is unset, Debian's `redis-server` on a unix socket under instance/
(stopped on exit); if HUB_REGISTRY_URL is unset, Debian's `docker-registry` on loopback (port
$HUB_REGISTRY_PORT or a free one, storage under instance/registry, deletes enabled), garbage-collected at each
start before it serves (the stated maintenance step: no push can race it then), stopped on exit; without the
binary uploads fall back to kept archives loaded into this engine; the schema migrated; the demo seeded once
(with a real baseline evaluation per demo challenge); one worker node as a child process; Flask's server on 127.0.0.1:${PORT:-5000}.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluator.registry import RegistryError, garbage_collect

ROOT = Path(__file__).resolve().parent.parent


def start_redis(instance: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on instance/redis.sock (no TCP port, no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("REDIS_URL is not set and redis-server is not installed (apt install redis-server).")
    workdir = instance / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    sock = workdir / "redis.sock"
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not sock.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the embedded redis-server did not start")
        time.sleep(0.05)
    return proc, f"unix://{sock}"


def registry_config(workdir: Path, port: int) -> Path:
    """The embedded registry's config.yml: loopback only, filesystem storage, deletes on (retention prunes)."""
    path = workdir / "config.yml"
    path.write_text("version: 0.1\nlog:\n  level: error\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {workdir / 'data'}\n  delete:\n    enabled: true\n"
                    f"http:\n  addr: 127.0.0.1:{port}\n")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_registry(instance: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """A private docker-registry on 127.0.0.1 (None: not installed); its storage is garbage-collected first."""
    binary = shutil.which("docker-registry")
    if binary is None:
        return None
    workdir = instance / "registry"
    workdir.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("HUB_REGISTRY_PORT") or 0) or _free_port()
    config = registry_config(workdir, port)
    if (workdir / "data").exists():
        try:
            garbage_collect(config, binary=binary)
        except (RegistryError, subprocess.TimeoutExpired) as err:   # a failed sweep only leaves garbage behind
            print(f"  registry garbage collection failed: {err}", file=sys.stderr)
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v2/", timeout=1) as resp:
                if resp.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise SystemExit(f"the embedded docker-registry did not start on port {port}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[Any] | None, grace: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def run_embedded(create_app: Callable[..., Any]) -> None:
    from hub import demo
    from hub.db import session_scope
    from hub.migrate import upgrade

    instance = Path(os.environ.get("HUB_INSTANCE") or ROOT / "instance")
    instance.mkdir(parents=True, exist_ok=True)
    redis_proc = None
    if not os.environ.get("REDIS_URL"):
        redis_proc, os.environ["REDIS_URL"] = start_redis(instance)
        atexit.register(_stop, redis_proc)
    registry = None
    if not os.environ.get("HUB_REGISTRY_URL"):
        # Set before the app and the worker child read their config, so both use it.
        registry = start_registry(instance)
        if registry is not None:
            os.environ["HUB_REGISTRY_URL"] = registry[1]
            atexit.register(_stop, registry[0])
    app = create_app()
    url = app.config["DATABASE_URL"]
    upgrade(url)
    with session_scope(url) as session:
        seeded = demo.seed(session)
    port = int(os.environ.get("PORT", "5000"))
    print("AI+ Scenario Hub / AI+ 场景开放平台")
    print(f"  database: {url}")
    print(f"  redis:    {os.environ['REDIS_URL']}" + (" (embedded)" if redis_proc else ""))
    registry_text = os.environ.get("HUB_REGISTRY_URL") or "none (apt install docker-registry): uploads kept as archives"
    print(f"  registry: {registry_text}" + (" (embedded)" if registry else ""))
    print("  demo data loaded" if seeded else "  demo data already present")
    print(f"  demo accounts (password: {demo.DEMO_PASSWORD}):")
    for email, role, _org, name in demo.ACCOUNTS:
        print(f"    {role:9} {email:32} {name}")

    env = {**os.environ, "HUB_INSTANCE": str(instance)}
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker", "--name",
                               os.environ.get("HUB_NODE_NAME", "embedded-node")], cwd=ROOT, env=env)
    atexit.register(_stop, worker)
    print(f"  worker:   one node (pid {worker.pid}); more: flask --app app worker --name NODE")
    print(f"\n  open http://127.0.0.1:{port}/\n", flush=True)
    # A plain `kill` (SIGTERM) must stop the worker and the embedded redis-server too, as Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        app.run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)
    finally:
        _stop(worker)
        _stop(registry[0] if registry else None)
        _stop(redis_proc)
