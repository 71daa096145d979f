"""Challenge pages, one module per area: thin handlers that read the request, call a service and render."""
from __future__ import annotations

from challenges.api import api

# The area modules register their routes on `bp` as they are imported; bp itself lives in blueprints.py,
# which they import, so this package's import of them makes no cycle.
from challenges.views import (audit, challenges, datasets, helpers, judging, leaderboard, phases,  # noqa: F401
                              registration, submissions, teams)
from challenges.views.blueprints import bp

__all__ = ["api", "bp"]
