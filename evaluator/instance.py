"""Which platform instance a sandbox container belongs to.

Several platform instances (a staging and a production hub, two test runs) may share one Docker engine, and
their submission ids overlap. Every container therefore carries its instance id in its name and in a label,
and a reaper only ever touches its own instance's containers.

The id is `HUB_INSTANCE_ID` when set (lower-case letters, digits, at most 16), else a stable hash of the
database URL: the database is what defines an instance, and every process of one instance (web, reaper,
each worker node) knows it without further configuration.
"""
from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlmodel import Session

from hub.db import normalize_url

ENV = "HUB_INSTANCE_ID"
LABEL = "hub.instance"
NODE_LABEL = "hub.node"
_VALID = re.compile(r"^[a-z0-9]{1,16}$")


def instance_id(database_url: str | URL) -> str:
    """HUB_INSTANCE_ID, or the first 10 hex digits of the SHA-256 of the (password-free) database URL."""
    explicit = os.environ.get(ENV, "").strip()
    if explicit:
        if not _VALID.match(explicit):
            raise ValueError(f"{ENV} must be 1-16 lower-case letters or digits, not {explicit!r}")
        return explicit
    url = make_url(normalize_url(database_url)) if isinstance(database_url, str) else database_url
    # The password does not tell two instances apart, and must not leak into a container name.
    canonical = url.render_as_string(hide_password=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]


def of_session(session: Session) -> str:
    """The instance id of the database this session talks to."""
    bind: Any = session.get_bind()
    return instance_id(bind.url)
