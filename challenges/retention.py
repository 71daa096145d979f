"""Which submissions' images the center may delete: the retention rule (evaluator.registry deletes, by digest).

Judging, the 公示 notice and objections need the images, so every image of a challenge stays until the challenge
is awarded (or archived), its notice period (`notice_ends_at`) is over and every objection is answered. From then
on only the images of the submissions behind the final ranking (each ranked team's scoring entry on the final
phase) and of anything disqualified (evidence: the submission or its whole team) are kept. A check run never
ranks: its image goes 14 days after it was made, whatever the challenge's state, and not before. A run still
queued or running keeps its image. Two submissions of the same image share one manifest: it goes only when all may go.
This module decides only; it imports nothing of the evaluator.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, true
from sqlmodel import Session, select

from challenges import judging, leaderboard
from challenges.challenges import final_phase
from challenges.models import (Challenge, ChallengeStatus, Objection, Submission, SubmissionKind, SubmissionStatus,
                               Team, TeamStatus)
from hub.models import utcnow

CHECK_RUN_DAYS = 14
_ENDED = (SubmissionStatus.SCORED, SubmissionStatus.FAILED, SubmissionStatus.CANCELLED)


@dataclass(frozen=True)
class Prunable:
    submission_ids: tuple[int, ...]   # submissions whose image nothing needs any more
    image_refs: tuple[str, ...]       # image references all of whose submissions are in submission_ids


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def settled(session: Session, challenge: Challenge, now: datetime) -> bool:
    """Awarded (or archived), past its notice period, and every objection answered."""
    if challenge.status not in (ChallengeStatus.AWARDED, ChallengeStatus.ARCHIVED):
        return False
    if challenge.notice_ends_at is None or _aware(challenge.notice_ends_at) > now:
        return False
    unanswered = session.exec(select(Objection.id).where(Objection.challenge_id == challenge.id,
                                                         Objection.answer == "")).first()
    return unanswered is None


def kept_after_award(session: Session, challenge: Challenge) -> set[int]:
    """The submissions of a settled challenge whose images stay: behind the final ranking, or disqualified."""
    keep: set[int] = set()
    phase = final_phase(session, challenge)
    if phase is not None:
        ranked = {row.team_id for row in judging.final_ranking(session, challenge)}
        keep |= {sid for tid, sid in leaderboard.team_entries(session, challenge, phase).items() if tid in ranked}
    disqualified_teams = select(Team.id).where(Team.challenge_id == challenge.id,
                                               Team.status == TeamStatus.DISQUALIFIED)
    evidence = or_(Submission.disqualified == true(), Submission.team_id.in_(disqualified_teams))  # type: ignore[attr-defined]
    keep |= set(session.exec(select(Submission.id).where(Submission.challenge_id == challenge.id, evidence)))
    return keep


def prunable(session: Session, now: datetime | None = None) -> Prunable:
    """Every submission whose image may leave the registry now, and the image references that may go."""
    now = now or utcnow()
    check_cutoff = now - timedelta(days=CHECK_RUN_DAYS)
    S = Submission
    rows = session.exec(select(S.id, S.challenge_id, S.kind, S.created_at, S.status, S.image_pull)
                        .where(S.image_pull != "")).all()
    settled_keep: dict[int, set[int] | None] = {}   # challenge id -> kept ids once settled, None: keep all

    def kept_of(challenge_id: int) -> set[int] | None:
        if challenge_id not in settled_keep:
            challenge = session.get(Challenge, challenge_id)
            settled_keep[challenge_id] = (kept_after_award(session, challenge)
                                          if challenge is not None and settled(session, challenge, now) else None)
        return settled_keep[challenge_id]

    may_go: set[int] = set()
    by_ref: dict[str, list[int]] = defaultdict(list)
    for sid, challenge_id, kind, created_at, status, ref in rows:
        by_ref[ref].append(sid)
        if status not in _ENDED:
            continue
        if kind == SubmissionKind.CHECK:   # its age alone decides: it never ranks, nor is it judged
            if _aware(created_at) <= check_cutoff:
                may_go.add(sid)
            continue
        kept = kept_of(challenge_id)
        if kept is not None and sid not in kept:
            may_go.add(sid)
    refs = tuple(sorted(ref for ref, ids in by_ref.items() if all(i in may_go for i in ids)))
    return Prunable(submission_ids=tuple(sorted(may_go)), image_refs=refs)
