"""Submission intake and operators' pages."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("evaluator", __name__)
api = Blueprint("evaluator_api", __name__, url_prefix="/api/v1")
