"""Challenge pages and API."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("challenges", __name__)
api = Blueprint("challenges_api", __name__, url_prefix="/api/v1")
