"""The pages Blueprint, apart so that the area modules can import it while the package imports them."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("challenges", __name__)
