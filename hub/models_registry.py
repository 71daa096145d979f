"""Import every table module so SQLModel.metadata (and Alembic) sees the whole schema."""
from __future__ import annotations

import importlib

from sqlmodel import SQLModel

TABLE_MODULES = ("hub.models", "marketplace.models", "challenges.models", "evaluator.models",
                 "evaluator.quota.models")


def load_all() -> type[SQLModel]:
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return SQLModel
