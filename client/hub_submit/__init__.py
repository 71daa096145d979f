"""hub-submit: the team's command line for the AI+ Scenario Hub (standard library only; `docker` optional)."""
from __future__ import annotations

__version__ = "0.1.0"


class CliError(Exception):
    """A failure the command line reports as one `error: …` line (exit status 2)."""
