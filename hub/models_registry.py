"""Import every table module so SQLModel.metadata (and Alembic) sees the whole schema, and every module whose
signal receivers must be connected wherever those tables are written (the app, its workers, the CLI, tests)."""
from __future__ import annotations

import importlib

from sqlmodel import SQLModel

TABLE_MODULES = ("hub.models", "marketplace.models", "challenges.models", "evaluator.models",
                 "evaluator.quota.models")
RECEIVER_MODULES = ("hub.cache", "challenges.teams", "challenges.runs")


def load_all() -> type[SQLModel]:
    for name in TABLE_MODULES + RECEIVER_MODULES:
        importlib.import_module(name)
    return SQLModel
