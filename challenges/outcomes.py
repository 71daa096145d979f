"""A sentence for every way a submission can end, so each status a team sees is explained."""
from __future__ import annotations

from challenges.models import Outcome, SubmissionStatus
from hub.errors import N_

OUTCOME_TEXT: dict[str, str] = {
    Outcome.SCORED: N_("Scored: the predictions were read and measured against the hidden truth."),
    Outcome.TIME_LIMIT: N_("Stopped at the time limit: the container ran longer than the challenge allows."),
    Outcome.MEMORY_LIMIT: N_("Out of memory: the container used more memory than the challenge allows."),
    Outcome.NONZERO_EXIT: N_("The container exited with an error (non-zero exit code; the code is in the detail)."),
    Outcome.MISSING_OUTPUT: N_("No predictions: the container finished without writing the output file."),
    Outcome.BAD_OUTPUT: N_("Malformed predictions: the output file could not be scored "
                           "(the detail names the ids or the line)."),
    Outcome.IMAGE_REJECTED: N_("The image was rejected before it ran (the detail says why)."),
    Outcome.INFRA_ERROR: N_("A platform error stopped the run, even after retries. This is our fault and "
                            "does not count against your limits."),
    Outcome.CANCELLED: N_("Cancelled: the run was stopped before it finished; it does not count against "
                          "your limits."),
    Outcome.QUOTA_EXCEEDED: N_("Not run: the challenge's or your team's compute quota is used up."),
}

STATUS_TEXT: dict[str, str] = {
    SubmissionStatus.QUEUED: N_("Waiting in the queue for a free worker."),
    SubmissionStatus.RUNNING: N_("Running in the sandbox."),
    SubmissionStatus.SCORED: OUTCOME_TEXT[Outcome.SCORED],
    SubmissionStatus.FAILED: N_("Failed."),
    SubmissionStatus.CANCELLED: OUTCOME_TEXT[Outcome.CANCELLED],
}


def describe(outcome: str) -> str:
    """The English msgid explaining an outcome (translate it with gettext at render time)."""
    return OUTCOME_TEXT.get(outcome, N_("Unknown outcome."))


def describe_submission(status: str, outcome: str | None) -> str:
    """The sentence a team sees for a submission: its outcome when it has ended, else its status."""
    if outcome:
        return describe(outcome)
    return STATUS_TEXT.get(status, N_("Unknown outcome."))
