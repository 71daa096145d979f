"""Phases: dates, split, submission limits, visibility, freeze/reveal, and the 赛马制 cut."""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from challenges import leaderboard
from challenges.access import require_organiser
from challenges.challenges import phases_of, refuse_if_locked
from challenges.models import Challenge, Phase, Team, TeamStatus
from challenges.scoring.metrics import REGISTRY
from challenges.signals import phase_ended
from hub import audit
from hub.errors import N_, DomainError, NotFound
from hub.models import User, utcnow

SPLIT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PHASE_FIELDS = ("name", "name_en", "starts_at", "ends_at", "split", "per_day_limit", "total_limit",
                "concurrent_limit", "scores_visible", "freeze_at", "cut_bar")


def get(session: Session, phase_id: int, challenge: Challenge | None = None) -> Phase:
    phase = session.get(Phase, phase_id)
    if phase is None or (challenge is not None and phase.challenge_id != challenge.id):
        raise NotFound(N_("No such phase."))
    return phase


def _limit(v: dict[str, Any], name: str, low: int, high: int) -> None:
    try:
        v[name] = int(v[name])
    except (TypeError, ValueError, KeyError):
        raise DomainError(N_("Enter a whole number between %(low)s and %(high)s."), field=name,
                          low=low, high=high) from None
    if not low <= v[name] <= high:
        raise DomainError(N_("Enter a whole number between %(low)s and %(high)s."), field=name, low=low, high=high)


def _clean(session: Session, challenge: Challenge, values: dict[str, Any], phase: Phase | None) -> dict[str, Any]:
    v = {k: values[k] for k in PHASE_FIELDS if k in values}
    merged = {k: v.get(k, getattr(phase, k) if phase else None) for k in PHASE_FIELDS}
    merged["name"] = (merged["name"] or "").strip()
    merged["name_en"] = (merged["name_en"] or "").strip()
    if not merged["name"] or len(merged["name"]) > 100:
        raise DomainError(N_("Give the phase a name of at most 100 characters."), field="name")
    merged["split"] = (merged["split"] or "").strip().lower()
    if not SPLIT_RE.match(merged["split"]):
        raise DomainError(N_("The split is a short name such as public or private (letters, digits, - and _)."),
                          field="split")
    starts, ends = merged["starts_at"], merged["ends_at"]
    if starts is None or ends is None:
        raise DomainError(N_("Give the phase's start and end."), field="starts_at")
    if ends <= starts:
        raise DomainError(N_("A phase must end after it starts."), field="ends_at")
    if starts < challenge.opens_at or ends > challenge.closes_at:
        raise DomainError(N_("A phase must lie within the challenge's dates (%(opens)s – %(closes)s UTC)."),
                          field="starts_at", opens=challenge.opens_at.strftime("%Y-%m-%d %H:%M"),
                          closes=challenge.closes_at.strftime("%Y-%m-%d %H:%M"))
    for other in phases_of(session, challenge.id):
        if phase is not None and other.id == phase.id:
            continue
        if starts < other.ends_at and other.starts_at < ends:
            raise DomainError(N_("The dates overlap with phase %(name)s."), field="starts_at", name=other.name)
    _limit(merged, "per_day_limit", 1, 1000)
    _limit(merged, "total_limit", 1, 100000)
    _limit(merged, "concurrent_limit", 1, 100)
    if merged["total_limit"] < merged["per_day_limit"]:
        raise DomainError(N_("The total limit cannot be below the daily limit."), field="total_limit")
    if merged["scores_visible"] not in ("now", "reveal"):
        raise DomainError(N_("Scores are shown now or at the reveal."), field="scores_visible")
    freeze = merged["freeze_at"]
    if freeze is not None and not starts < freeze <= ends:
        raise DomainError(N_("The freeze time must lie within the phase."), field="freeze_at")
    if merged["cut_bar"] in ("", None):
        merged["cut_bar"] = None
    else:
        try:
            merged["cut_bar"] = float(merged["cut_bar"])
        except (TypeError, ValueError):
            raise DomainError(N_("The cut bar must be a number."), field="cut_bar") from None
    return merged


def create_phase(session: Session, actor: User, challenge: Challenge, **values: Any) -> Phase:
    require_organiser(actor, challenge)
    v = _clean(session, challenge, values, None)
    existing = phases_of(session, challenge.id)
    if existing and v["starts_at"] < existing[-1].ends_at:
        raise DomainError(N_("A new phase must start after the last one ends."), field="starts_at")
    phase = Phase(challenge_id=challenge.id, position=(existing[-1].position + 1) if existing else 1, **v)
    session.add(phase)
    session.flush()
    audit.record(session, actor.id, "phase.create", "phase", phase.id, challenge.city_id, name=phase.name,
                 challenge=challenge.slug)
    session.commit()
    return phase


def update_phase(session: Session, actor: User, challenge: Challenge, phase: Phase, **values: Any) -> Phase:
    require_organiser(actor, challenge)
    v = _clean(session, challenge, values, phase)
    changed = {k: val for k, val in v.items() if getattr(phase, k) != val}
    if "split" in changed:
        refuse_if_locked(session, challenge, "split")
    if phase.cut_applied_at is not None and "cut_bar" in changed:
        raise DomainError(N_("The cut of this phase was already applied; its bar can no longer change."),
                          field="cut_bar")
    for k, val in changed.items():
        setattr(phase, k, val)
    if changed:
        session.add(phase)
        audit.record(session, actor.id, "phase.edit", "phase", phase.id, challenge.city_id,
                     fields=sorted(changed), challenge=challenge.slug)
        session.commit()
    return phase


def reveal(session: Session, actor: User, challenge: Challenge, phase: Phase, now: datetime | None = None) -> Phase:
    """Show a private board to everyone (and lift a public board's freeze)."""
    require_organiser(actor, challenge)
    if phase.revealed_at is not None:
        raise DomainError(N_("This board was already revealed."))
    phase.revealed_at = now or utcnow()
    session.add(phase)
    audit.record(session, actor.id, "phase.reveal", "phase", phase.id, challenge.city_id, challenge=challenge.slug)
    session.commit()
    return phase


def is_open(phase: Phase, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return phase.starts_at <= now < phase.ends_at


def _passes(score: float | None, bar: float, direction: str) -> bool:
    if score is None:
        return False
    return score >= bar if direction == "max" else score <= bar


def apply_cut(session: Session, actor_id: int | None, challenge: Challenge, phase: Phase,
              now: datetime | None = None, commit: bool = True) -> list[Team]:
    """赛马制: teams whose best score misses the bar (or who never scored) are cut from later phases."""

    now = now or utcnow()
    if phase.cut_bar is None:
        raise DomainError(N_("This phase has no cut bar."))
    if phase.cut_applied_at is not None:
        raise DomainError(N_("The cut of this phase was already applied."))
    if now < phase.ends_at:
        raise DomainError(N_("The cut is applied once the phase has ended (%(when)s UTC)."),
                          when=phase.ends_at.strftime("%Y-%m-%d %H:%M"))
    best = leaderboard.team_scores(session, challenge, phase)
    direction = REGISTRY[challenge.metric].direction
    teams = list(session.exec(select(Team).where(Team.challenge_id == challenge.id,
                                                 Team.status == TeamStatus.APPROVED)))
    cut: list[Team] = []
    for team in teams:
        if not _passes(best.get(team.id), phase.cut_bar, direction):
            team.status = TeamStatus.CUT
            team.cut_at_phase_id = phase.id
            # The figures stay structured: cut_notice() shows them only to those who may see the board.
            team.cut_score = best.get(team.id)
            team.reason = ""
            session.add(team)
            cut.append(team)
    phase.cut_applied_at = now
    session.add(phase)
    audit.record(session, actor_id, "phase.cut", "phase", phase.id, challenge.city_id, challenge=challenge.slug,
                 bar=phase.cut_bar, cut_team_ids=[t.id for t in cut])
    if commit:
        session.commit()
    return cut


def cut_notice(session: Session, viewer: User | None, team: Team,
               now: datetime | None = None) -> tuple[str, dict[str, Any]] | None:
    """Why the team was cut, as (msgid, params): with its score and the bar only where this viewer may see
    the phase's board now (a hidden board keeps its figures until the reveal)."""

    if team.status != TeamStatus.CUT or team.cut_at_phase_id is None:
        return None
    phase = session.get(Phase, team.cut_at_phase_id)
    challenge = session.get(Challenge, team.challenge_id)
    if phase is None or challenge is None:
        return None
    _private, hidden, _frozen = leaderboard.visibility(session, challenge, phase, viewer, now)
    if hidden:
        return N_("Did not reach the bar of phase %(phase)s. The figures are shown when its board is revealed."), \
            {"phase": phase.name}
    if team.cut_score is None:
        return N_("Did not reach the bar of phase %(phase)s: no scored submission (bar %(bar)s)."), \
            {"phase": phase.name, "bar": f"{phase.cut_bar:.6g}" if phase.cut_bar is not None else "—"}
    return N_("Did not reach the bar of phase %(phase)s: best score %(score)s, bar %(bar)s."), \
        {"phase": phase.name, "score": f"{team.cut_score:.6g}",
         "bar": f"{phase.cut_bar:.6g}" if phase.cut_bar is not None else "—"}


def ensure_cuts(session: Session, challenge: Challenge, now: datetime | None = None) -> None:
    """Apply every due cut, so no team submits to a phase it was cut from (run before a phase opens to a team)."""
    now = now or utcnow()
    for phase in phases_of(session, challenge.id):
        if phase.cut_bar is not None and phase.cut_applied_at is None and phase.ends_at <= now:
            apply_cut(session, None, challenge, phase, now)
        if phase.ends_at <= now and phase.ended_signalled_at is None:
            phase.ended_signalled_at = now
            session.add(phase)
            phase_ended.send(session, challenge_id=challenge.id, phase_id=phase.id, ended_at=phase.ends_at)
            session.commit()
