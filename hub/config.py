"""Configuration from the environment, with embedded defaults under instance/."""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def _secret_key(instance: Path) -> str:
    """A stable secret per instance, so sessions survive restarts without a configured key."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = instance / "secret_key"
    if not path.exists():
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def load_config(instance_path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    env = os.environ
    cfg: dict[str, Any] = {
        "SECRET_KEY": _secret_key(instance),
        "DATABASE_URL": env.get("DATABASE_URL") or f"sqlite:///{instance / 'hub.sqlite3'}",
        # Unset means: python app.py starts an embedded redis-server on a socket under instance/.
        "REDIS_URL": env.get("REDIS_URL") or None,
        "DATA_DIR": env.get("HUB_DATA_DIR") or str(instance / "data"),
        "BABEL_DEFAULT_LOCALE": "zh_CN",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
        "LANGUAGES": ["zh_CN", "en"],
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": env.get("HUB_SECURE_COOKIES", "0") == "1",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": env.get("HUB_SECURE_COOKIES", "0") == "1",
        "WTF_CSRF_TIME_LIMIT": 8 * 3600,
        # A login lasts until HUB_SESSION_IDLE_HOURS pass without a request, and HUB_SESSION_MAX_DAYS at most.
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=float(env.get("HUB_SESSION_IDLE_HOURS", 12))),
        "SESSION_MAX_AGE": timedelta(days=float(env.get("HUB_SESSION_MAX_DAYS", 7))),
        "RATELIMIT_STORAGE_URI": env.get("RATELIMIT_STORAGE_URI", "memory://"),
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute;50 per hour"),
        # Failed passwords on one account from all addresses together (see hub.throttle for the rule).
        "LOGIN_ACCOUNT_RATE_LIMIT": env.get("LOGIN_ACCOUNT_RATE_LIMIT", "5 per minute;20 per hour"),
        # How many proxies stand in front of the app and append X-Forwarded-For/-Proto: exactly those
        # are trusted (0: the client's address is the socket's, forwarded headers are ignored).
        "PROXY_HOPS": env.get("HUB_PROXY_HOPS", "0"),
        # A request body that sends nothing for this many seconds, or is not complete after the total, is
        # cut with a 408 (hub.bodytime). The buffering proxy in front makes both moot for honest clients.
        "BODY_IDLE_TIMEOUT": float(env.get("HUB_BODY_IDLE_TIMEOUT", 30)),
        "BODY_TIMEOUT": float(env.get("HUB_BODY_TIMEOUT", 1800)),
        "MAX_ATTACHMENT_BYTES": int(env.get("MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)),
        "MAX_IMAGE_BYTES": int(env.get("MAX_IMAGE_BYTES", 2 * 1024 * 1024 * 1024)),
        # All image archives the platform keeps for one team's uploads together (0: no cap).
        "MAX_TEAM_IMAGE_BYTES": int(env.get("MAX_TEAM_IMAGE_BYTES", 20 * 1024 * 1024 * 1024)),
        "MAX_DATASET_BYTES": int(env.get("MAX_DATASET_BYTES", 512 * 1024 * 1024)),
        # The center's own registry hosts that teams may name images in, comma-separated.
        "REGISTRY_ALLOWLIST": env.get("REGISTRY_ALLOWLIST", ""),
        # The center's registry the platform pushes images to (evaluator.registry; unset: none), and its
        # basic-auth push credential: the only one, teams never hold registry credentials.
        "REGISTRY_URL": env.get("HUB_REGISTRY_URL", ""),
        "REGISTRY_USER": env.get("HUB_REGISTRY_USER", ""),
        "REGISTRY_PASSWORD": env.get("HUB_REGISTRY_PASSWORD", ""),
        "PAGE_SIZE": 10,
        # Check runs a team may start per day; unset: challenges.submissions.CHECK_RUNS_PER_DAY.
        "CHECK_RUNS_PER_DAY": env.get("HUB_CHECK_RUNS_PER_DAY") or None,
        "DEMO_DATA": env.get("HUB_DEMO_DATA", "0") == "1",
    }
    if overrides:
        cfg.update(overrides)
    # The registry uploads are pushed to is one that nodes pull from (and teams may name): its host is allowed.
    pushed_to = urlsplit(str(cfg.get("REGISTRY_URL") or "").strip()).netloc.lower()
    cfg["REGISTRY_ALLOWLIST"] = host_list(cfg["REGISTRY_ALLOWLIST"])
    if pushed_to and pushed_to not in cfg["REGISTRY_ALLOWLIST"]:
        cfg["REGISTRY_ALLOWLIST"] += (pushed_to,)
    cfg["PROXY_HOPS"] = proxy_hops(cfg["PROXY_HOPS"])
    return cfg


def host_list(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Host names from a comma-separated setting (or a list of them), blanks dropped."""
    items = value.split(",") if isinstance(value, str) else (value or ())
    return tuple(h.strip() for h in items if h.strip())


def proxy_hops(value: str | int) -> int:
    """HUB_PROXY_HOPS as a count; anything else stops start-up with a sentence saying what to set."""
    try:
        hops = int(value)
    except (TypeError, ValueError):
        hops = -1
    if not 0 <= hops <= 10:
        raise ValueError(f"HUB_PROXY_HOPS must be the number of proxies in front of the app (0-10), not {value!r}")
    return hops
