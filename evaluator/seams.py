"""The evaluation pipeline's calls into the packages beside it (challenges, quota, sandbox, scoring), in one place.

Each function is a thin pass-through with the pipeline's own vocabulary, so that a change in a neighbour's
signature is a one-line change here and nowhere else.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from challenges.models import Challenge, Dataset, Phase, Submission, Team
from hub.models import User


# ---------------------------------------------------------------- challenges
def challenge_by_slug(session: Session, slug: str) -> Challenge:
    from challenges.challenges import get_by_slug

    return get_by_slug(session, slug)


def current_phase(session: Session, challenge: Challenge) -> Phase | None:
    from challenges.challenges import current_phase as _current

    return _current(session, challenge)


def team_for_user(session: Session, challenge_id: int, user_id: int) -> Team | None:
    from challenges.teams import team_for_user as _team

    return _team(session, challenge_id, user_id)


def check_can_submit(session: Session, team_id: int, phase_id: int, **kind: Any) -> None:
    """The limits of a submission (or, with kind="check", of a check run)."""
    from challenges.submissions import check_can_submit as _check

    _check(session, team_id, phase_id, **kind)


def create_submission(session: Session, **fields: Any) -> Submission:
    from challenges.submissions import create_submission as _create

    return _create(session, **fields)


def prunable_image_refs(session: Session, now: datetime | None = None) -> tuple[str, ...]:
    """The image references no judging, 公示, objection or check run needs any more (challenges.retention)."""
    from challenges.retention import prunable

    return prunable(session, now).image_refs


def check_image_storage(session: Session, team_id: int, cap: int) -> int:
    """The team's stored image bytes, or a DomainError when its storage is already full."""
    from challenges.submissions import check_image_storage as _check

    return _check(session, team_id, cap)


def get_submission_for_viewer(session: Session, submission_id: int, viewer: User | None) -> Submission:
    """The submission if `viewer` may see its page (same rule as the submission page), else NotFound."""
    from challenges.submissions import get_for_viewer

    sub, _phase, _challenge = get_for_viewer(session, submission_id, viewer)
    return sub


def visible_reason(sub: Submission, show_log: bool) -> str:
    """The reason as a viewer who may (not) read the log sees it (challenges.submissions.visible_reason)."""
    from challenges.submissions import visible_reason as _visible

    return _visible(sub, show_log)


def can_read_log(session: Session, viewer: User | None, sub: Submission) -> bool:
    """Whether `viewer` may read this submission's log (challenges.submissions.can_read_log, the one rule)."""
    from challenges.submissions import can_read_log as _can

    challenge = session.get(Challenge, sub.challenge_id)
    phase = session.get(Phase, sub.phase_id)
    return challenge is not None and phase is not None and _can(session, viewer, sub, phase, challenge)


def describe_outcome(status: str, outcome: str | None) -> str:
    from challenges.outcomes import describe_submission

    return describe_submission(status, outcome)


def dataset_for(session: Session, challenge_id: int, split: str) -> Dataset | None:
    return session.exec(select(Dataset).where(Dataset.challenge_id == challenge_id,
                                              Dataset.split == split)).first()


def sample_archive(dataset: Dataset) -> Path | None:
    """The zip of the split's public sample (its inputs and their truth), or None when it has none."""
    from challenges.datasets import SAMPLE_NAME

    return Path(dataset.sample_dir) / SAMPLE_NAME if dataset.sample_dir else None


# ---------------------------------------------------------------- quota
def check_submit_quota(session: Session, team_id: int, challenge_id: int) -> None:
    from evaluator.quota.team_quota import check_submit_quota as _check

    _check(session, team_id, challenge_id)
