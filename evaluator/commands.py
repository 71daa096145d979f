"""Flask CLI commands of the evaluator (worker, reaper)."""
from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    pass
