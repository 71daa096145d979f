"""Scenario opportunity list pages and API."""
from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("marketplace", __name__)
api = Blueprint("marketplace_api", __name__, url_prefix="/api/v1")


@bp.get("/scenarios")
def index():
    return render_template("hub/error.html", status=200, message="TODO")
