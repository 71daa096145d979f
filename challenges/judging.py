"""Judging: the panel, conflicts of interest, rubric scores, disqualification, the final ranking,
the 公示 notice period with objections, and the sign-off that announces the winner (挂帅)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, select

from challenges import access, leaderboard
from challenges.challenges import final_phase, phases_of
from challenges.models import (Challenge, ChallengeStatus, ConflictDeclaration, JudgeAssignment, Objection,
                               RubricScore, Submission, Team, TeamStatus)
from challenges.signals import winner_announced
from hub import audit
from hub.errors import Conflict, DomainError, Forbidden, N_, NotFound
from hub.models import Role, User, utcnow
from marketplace.scenarios import award_by_challenge

SCORING_STATUSES = (ChallengeStatus.FROZEN, ChallengeStatus.FINAL_REVIEW)


# ---------------------------------------------------------------- panel
def panel(session: Session, challenge_id: int) -> list[User]:
    return list(session.exec(select(User).join(JudgeAssignment, JudgeAssignment.judge_id == User.id)
                             .where(JudgeAssignment.challenge_id == challenge_id).order_by(User.display_name)))


def challenges_of_judge(session: Session, judge_id: int) -> list[Challenge]:
    return list(session.exec(select(Challenge).join(JudgeAssignment, JudgeAssignment.challenge_id == Challenge.id)
                             .where(JudgeAssignment.judge_id == judge_id).order_by(Challenge.closes_at.desc())))


def assign_judge(session: Session, actor: User, challenge: Challenge, judge_id: int) -> JudgeAssignment:
    access.require_organiser(actor, challenge)
    judge = session.get(User, judge_id)
    if judge is None or judge.role != Role.JUDGE or not judge.active:
        raise DomainError(N_("Choose an expert with a judge account."), field="judge_id")
    if session.exec(select(JudgeAssignment).where(JudgeAssignment.challenge_id == challenge.id,
                                                  JudgeAssignment.judge_id == judge_id)).first():
        raise Conflict(N_("This judge is already on the panel."), field="judge_id")
    row = JudgeAssignment(challenge_id=challenge.id, judge_id=judge_id)
    session.add(row)
    session.flush()
    audit.record(session, actor.id, "judge.assign", "challenge", challenge.id, challenge.city_id,
                 judge_id=judge_id, judge=judge.display_name)
    session.commit()
    return row


def remove_judge(session: Session, actor: User, challenge: Challenge, judge_id: int) -> None:
    access.require_organiser(actor, challenge)
    _require_not_published(challenge)
    row = session.exec(select(JudgeAssignment).where(JudgeAssignment.challenge_id == challenge.id,
                                                     JudgeAssignment.judge_id == judge_id)).first()
    if row is None:
        raise NotFound(N_("This judge is not on the panel."))
    session.delete(row)
    audit.record(session, actor.id, "judge.remove", "challenge", challenge.id, challenge.city_id, judge_id=judge_id)
    session.commit()


def _team_of(session: Session, challenge: Challenge, team_id: int) -> Team:
    team = session.get(Team, team_id)
    if team is None or team.challenge_id != challenge.id:
        raise NotFound(N_("No such team."))
    return team


def _require_not_published(challenge: Challenge) -> None:
    if challenge.notice_starts_at is not None or challenge.status in (ChallengeStatus.AWARDED,
                                                                      ChallengeStatus.ARCHIVED):
        raise DomainError(N_("The proposed ranking is already published; judging can no longer change."),
                          code="published")


def declare_conflict(session: Session, judge: User, challenge: Challenge, team_id: int,
                     note: str = "") -> ConflictDeclaration:
    """A judge declares a conflict of interest and is kept off that team (earlier scores for it are dropped)."""
    access.require_judge(session, judge, challenge)
    team = _team_of(session, challenge, team_id)
    _require_not_published(challenge)
    if team_id in access.conflicted_team_ids(session, challenge.id, judge.id):
        raise Conflict(N_("You already declared a conflict with this team."))
    row = ConflictDeclaration(challenge_id=challenge.id, judge_id=judge.id, team_id=team.id,
                              note=(note or "").strip()[:500])
    session.add(row)
    for score in session.exec(select(RubricScore).where(RubricScore.challenge_id == challenge.id,
                                                        RubricScore.judge_id == judge.id,
                                                        RubricScore.team_id == team.id)):
        session.delete(score)
    session.flush()
    audit.record(session, judge.id, "judge.conflict", "team", team.id, challenge.city_id, challenge=challenge.slug,
                 note=row.note)
    session.commit()
    return row


def is_conflicted(session: Session, judge: User, challenge: Challenge, team_id: int) -> bool:
    return team_id in access.conflicted_team_ids(session, challenge.id, judge.id)


# ---------------------------------------------------------------- rubric
def score_team(session: Session, judge: User, challenge: Challenge, team_id: int,
               scores: dict[str, tuple[float, str]]) -> list[RubricScore]:
    """Record (or revise) one judge's rubric scores for one team: criterion → (score, comment)."""
    access.require_judge(session, judge, challenge)
    team = _team_of(session, challenge, team_id)
    if challenge.status not in SCORING_STATUSES:
        raise DomainError(N_("Rubric scores are given once submissions are closed (frozen or final review)."))
    _require_not_published(challenge)
    if is_conflicted(session, judge, challenge, team.id):
        raise Forbidden(N_("You declared a conflict of interest with this team and cannot judge it."))
    if team.status != TeamStatus.APPROVED:
        raise DomainError(N_("Only teams still in the competition are judged."))
    criteria = {c["key"]: c for c in challenge.rubric}
    clean: dict[str, tuple[float, str]] = {}
    for key, (value, comment) in scores.items():
        if key not in criteria:
            raise DomainError(N_("Unknown rubric criterion: %(key)s"), field=key, key=key)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DomainError(N_("Give a score between 0 and %(max)s."), field=key, max=criteria[key]["max"]) from None
        if not 0 <= number <= float(criteria[key]["max"]) or number != number:
            raise DomainError(N_("Give a score between 0 and %(max)s."), field=key, max=criteria[key]["max"])
        if len(comment or "") > 2000:
            raise DomainError(N_("A comment may have at most %(n)s characters."), field=key, n=2000)
        clean[key] = (number, (comment or "").strip())
    missing = [k for k in criteria if k not in clean]
    if missing:
        raise DomainError(N_("Score every criterion (missing: %(keys)s)."), field=missing[0], keys=", ".join(missing))
    existing = {r.criterion: r for r in session.exec(select(RubricScore).where(
        RubricScore.challenge_id == challenge.id, RubricScore.judge_id == judge.id, RubricScore.team_id == team.id))}
    rows = []
    for key, (number, comment) in clean.items():
        row = existing.get(key) or RubricScore(challenge_id=challenge.id, judge_id=judge.id, team_id=team.id,
                                               criterion=key, score=number)
        row.score, row.comment, row.updated_at = number, comment, utcnow()
        session.add(row)
        rows.append(row)
    audit.record(session, judge.id, "judge.rubric", "team", team.id, challenge.city_id, challenge=challenge.slug,
                 scores={k: v[0] for k, v in clean.items()})
    session.commit()
    return rows


def rubric_of(session: Session, challenge_id: int, judge_id: int | None = None) -> list[RubricScore]:
    q = select(RubricScore).where(RubricScore.challenge_id == challenge_id)
    if judge_id is not None:
        q = q.where(RubricScore.judge_id == judge_id)
    return list(session.exec(q))


# ---------------------------------------------------------------- disqualification
def disqualify_team(session: Session, actor: User, challenge: Challenge, team_id: int, reason: str) -> Team:
    access.require_organiser_or_judge(session, actor, challenge)
    team = _team_of(session, challenge, team_id)
    _require_not_published(challenge)
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= 1000:
        raise DomainError(N_("Give the reason for the disqualification (2 to 1000 characters)."), field="reason")
    if team.status == TeamStatus.DISQUALIFIED:
        raise Conflict(N_("This team is already disqualified."))
    if not access.official_reader_of_team(session, actor, challenge, team.id):
        raise Forbidden(N_("You declared a conflict of interest with this team and cannot judge it."))
    team.status, team.reason = TeamStatus.DISQUALIFIED, reason
    session.add(team)
    for sub in session.exec(select(Submission).where(Submission.team_id == team.id)):
        sub.disqualified, sub.dq_reason = True, reason
        session.add(sub)
    audit.record(session, actor.id, "team.disqualify", "team", team.id, challenge.city_id, challenge=challenge.slug,
                 reason=reason)
    session.commit()
    return team


def disqualify_submission(session: Session, actor: User, sub: Submission, reason: str) -> Submission:
    challenge = session.get(Challenge, sub.challenge_id)
    assert challenge is not None
    access.require_organiser_or_judge(session, actor, challenge)
    _require_not_published(challenge)
    if not access.official_reader_of_team(session, actor, challenge, sub.team_id):
        raise Forbidden(N_("You declared a conflict of interest with this team and cannot judge it."))
    reason = (reason or "").strip()
    if not 2 <= len(reason) <= 1000:
        raise DomainError(N_("Give the reason for the disqualification (2 to 1000 characters)."), field="reason")
    if sub.disqualified:
        raise Conflict(N_("This submission is already disqualified."))
    sub.disqualified, sub.dq_reason = True, reason
    session.add(sub)
    audit.record(session, actor.id, "submission.disqualify", "submission", sub.id, challenge.city_id,
                 challenge=challenge.slug, team_id=sub.team_id, reason=reason)
    session.commit()
    return sub


# ---------------------------------------------------------------- final ranking
@dataclass
class FinalRow:
    rank: int
    team_id: int
    team_name: str
    objective: float          # the team's score on the final phase's private board
    normalised: float         # 0 … 1, 1 = best objective score
    rubric: float             # 0 … 1, mean over judges of (mean over criteria of score / max)
    judges: int               # judges who scored the team
    final: float              # w × normalised + (1 − w) × rubric, × 100


def final_ranking(session: Session, challenge: Challenge) -> list[FinalRow]:
    phase = final_phase(session, challenge)
    if phase is None:
        return []
    board = leaderboard.team_scores(session, challenge, phase)
    teams = {t.id: t for t in session.exec(select(Team).where(Team.challenge_id == challenge.id,
                                                              Team.status == TeamStatus.APPROVED))}
    scores = {tid: s for tid, s in board.items() if tid in teams}
    if not scores:
        return []
    higher = leaderboard.REGISTRY[challenge.metric].direction == "max"
    lo, hi = min(scores.values()), max(scores.values())
    maxima = {c["key"]: float(c["max"]) for c in challenge.rubric}
    per_judge: dict[tuple[int, int], list[float]] = {}
    for r in rubric_of(session, challenge.id):
        if r.criterion in maxima and r.team_id in scores:
            per_judge.setdefault((r.team_id, r.judge_id), []).append(r.score / maxima[r.criterion])
    w = challenge.objective_weight
    rows = []
    for tid, score in scores.items():
        norm = 1.0 if hi == lo else ((score - lo) / (hi - lo) if higher else (hi - score) / (hi - lo))
        judge_means = [sum(v) / len(v) for (t, _j), v in per_judge.items() if t == tid]
        rubric = sum(judge_means) / len(judge_means) if judge_means else 0.0
        rows.append(FinalRow(0, tid, teams[tid].name, score, norm, rubric, len(judge_means),
                             round(100 * (w * norm + (1 - w) * rubric), 4)))
    rows.sort(key=lambda r: (-r.final, -r.normalised, r.team_id))
    for i, row in enumerate(rows, start=1):
        row.rank = i
    return rows


# ---------------------------------------------------------------- 公示, objections, sign-off
def publish_notice(session: Session, actor: User, challenge: Challenge, days: int,
                   now: datetime | None = None) -> Challenge:
    """Publish the proposed ranking for a notice period (公示) in which objections can be lodged."""
    access.require_organiser(actor, challenge)
    now = now or utcnow()
    if challenge.status != ChallengeStatus.FINAL_REVIEW:
        raise DomainError(N_("The proposed ranking is published during the final review."))
    if challenge.notice_starts_at is not None:
        raise Conflict(N_("The proposed ranking is already published."))
    try:
        days = int(days)
    except (TypeError, ValueError):
        raise DomainError(N_("The notice period lasts 1 to 30 days."), field="days") from None
    if not 1 <= days <= 30:
        raise DomainError(N_("The notice period lasts 1 to 30 days."), field="days")
    if not panel(session, challenge.id):
        raise DomainError(N_("Appoint a judge panel first."))
    ranking = final_ranking(session, challenge)
    if not ranking:
        raise DomainError(N_("No team has a score on the final phase yet."))
    challenge.notice_starts_at, challenge.notice_ends_at = now, now + timedelta(days=days)
    session.add(challenge)
    audit.record(session, actor.id, "challenge.notice", "challenge", challenge.id, challenge.city_id,
                 ends_at=challenge.notice_ends_at.isoformat(),
                 ranking=[{"rank": r.rank, "team": r.team_name, "final": r.final} for r in ranking])
    session.commit()
    return challenge


def notice_open(challenge: Challenge, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (challenge.notice_starts_at is not None and challenge.notice_ends_at is not None
            and challenge.notice_starts_at <= now < challenge.notice_ends_at)


def objections(session: Session, challenge_id: int) -> list[Objection]:
    return list(session.exec(select(Objection).where(Objection.challenge_id == challenge_id)
                             .order_by(Objection.lodged_at, Objection.id)))


def lodge_objection(session: Session, actor: User, challenge: Challenge, text: str,
                    now: datetime | None = None) -> Objection:
    if not notice_open(challenge, now):
        raise DomainError(N_("Objections are lodged during the notice period only."))
    text = (text or "").strip()
    if not 5 <= len(text) <= 5000:
        raise DomainError(N_("Write the objection in 5 to 5000 characters."), field="text")
    row = Objection(challenge_id=challenge.id, lodged_by=actor.id, text=text)
    session.add(row)
    session.flush()
    audit.record(session, actor.id, "objection.lodge", "objection", row.id, challenge.city_id,
                 challenge=challenge.slug)
    session.commit()
    return row


def answer_objection(session: Session, actor: User, challenge: Challenge, objection_id: int, answer: str) -> Objection:
    access.require_organiser(actor, challenge)
    row = session.get(Objection, objection_id)
    if row is None or row.challenge_id != challenge.id:
        raise NotFound(N_("No such objection."))
    answer = (answer or "").strip()
    if not 2 <= len(answer) <= 5000:
        raise DomainError(N_("Write the answer in 2 to 5000 characters."), field="answer")
    if challenge.status != ChallengeStatus.FINAL_REVIEW:
        raise DomainError(N_("The winner is already announced."))
    row.answer, row.answered_by, row.answered_at = answer, actor.id, utcnow()
    session.add(row)
    audit.record(session, actor.id, "objection.answer", "objection", row.id, challenge.city_id,
                 challenge=challenge.slug)
    session.commit()
    return row


def announce(session: Session, actor: User, challenge: Challenge, now: datetime | None = None) -> Challenge:
    """Sign off the ranking and announce the winner (挂帅): the challenge and its scenario become awarded."""
    access.require_organiser(actor, challenge)
    now = now or utcnow()
    if challenge.status != ChallengeStatus.FINAL_REVIEW:
        raise DomainError(N_("The winner is announced at the end of the final review."))
    if challenge.notice_ends_at is None:
        raise DomainError(N_("Publish the proposed ranking for its notice period (公示) first."))
    if now < challenge.notice_ends_at:
        raise DomainError(N_("The notice period runs until %(when)s UTC; the winner is announced after it."),
                          when=challenge.notice_ends_at.strftime("%Y-%m-%d %H:%M"))
    open_objections = [o for o in objections(session, challenge.id) if not o.answer]
    if open_objections:
        raise DomainError(N_("Answer every objection first (%(n)s open)."), n=len(open_objections))
    ranking = final_ranking(session, challenge)
    if not ranking:
        raise DomainError(N_("No team has a score on the final phase yet."))
    winner = ranking[0]
    challenge.status = ChallengeStatus.AWARDED
    challenge.winner_team_id, challenge.announced_at, challenge.signed_off_by = winner.team_id, now, actor.id
    challenge.updated_at = now
    session.add(challenge)
    for phase in phases_of(session, challenge.id):
        if phase.revealed_at is None:  # the award makes every board public
            phase.revealed_at = now
            session.add(phase)
    audit.record(session, actor.id, "challenge.announce", "challenge", challenge.id, challenge.city_id,
                 winner_team_id=winner.team_id, winner=winner.team_name, final=winner.final)
    _award_scenario(session, actor, challenge, winner.team_name)
    winner_announced.send(session, challenge_id=challenge.id, team_id=winner.team_id, announced_at=now)
    session.commit()
    return challenge


def _award_scenario(session: Session, actor: User, challenge: Challenge, winner: str) -> None:
    """The scenario behind the challenge is awarded too, by the marketplace's own rule for a challenge's award."""
    award_by_challenge(session, actor, challenge.scenario_id, f"挂帅: {winner} ({challenge.slug})")
