"""Fixtures for the challenge tests: a data folder and a published challenge with one running phase."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import make_open_challenge


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def open_challenge(session, data_dir):  # type: ignore[no-untyped-def]
    return make_open_challenge(session, data_dir)


def count(session, model, **where) -> int:  # type: ignore[no-untyped-def]
    """Rows of `model` matching the equality filters (to show that a refusal changed nothing)."""
    from sqlmodel import func, select

    q = select(func.count()).select_from(model)
    for name, value in where.items():
        q = q.where(getattr(model, name) == value)
    return session.exec(q).one()
