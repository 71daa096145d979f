"""Challenges' side of the run contract: what a settled run of a submission changes here.

Importing this module subscribes it to `evaluator.contract.run_settled` (hub.models_registry imports it wherever
the tables are loaded: the app, its workers, the CLI, the tests). The receiver runs inside the evaluator's transaction: the first scored submission of a challenge locks its
evaluation contract (metric, data, limits) in the same commit as the score, and `submission_finished` tells
whoever listens. Until the Run table lands (docs/ARCHITECTURE.md §8, step 3) the evaluator still writes the
submission's final row itself and says here only how it ended.
"""
from __future__ import annotations

from typing import Any

from sqlmodel import Session

from challenges.challenges import lock_contract
from challenges.models import Submission
from challenges.signals import submission_finished
from evaluator.contract import run_settled

OWNER_KIND = "submission"


def owner_of(submission_id: int) -> str:
    """The owner reference a run of this submission carries."""
    return f"{OWNER_KIND}:{submission_id}"


def submission_of(owner: str) -> int | None:
    """The submission id of an owner reference made by owner_of, or None for another owner's run."""
    kind, _, rest = owner.partition(":")
    return int(rest) if kind == OWNER_KIND and rest.isdigit() else None


@run_settled.connect
def on_run_settled(session: Session, *, owner: str, attempt: int, scored: bool = False, **_: Any) -> None:
    """A run of one of our submissions ended and its final state is in this transaction."""
    submission_id = submission_of(owner)
    if submission_id is None:
        return
    sub = session.get(Submission, submission_id)
    if sub is None:
        return
    if scored:
        lock_contract(session, sub.challenge_id)
    submission_finished.send(session, submission_id=sub.id, challenge_id=sub.challenge_id, phase_id=sub.phase_id,
                             team_id=sub.team_id, kind=sub.kind, status=sub.status, outcome=sub.outcome,
                             primary_score=sub.primary_score)

