"""Leaderboards: one SQL query per board (window function), freeze and reveal, baselines, CSV, chart data."""
from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy import (DateTime, Integer, and_, case, cast, false, func, literal_column, null, or_, select,
                        union_all)
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select
from sqlmodel import Session

from challenges import access
from challenges.models import (Baseline, Challenge, Phase, Submission, SubmissionKind, SubmissionStatus, Team,
                               TeamMember, TeamStatus)
from challenges.scoring.metrics import REGISTRY, Metric
from hub import csvsafe
from hub.cache import ChallengeOf, VersionedCache, challenge_scope, next_change, versions
from hub.errors import N_, NotFound
from hub.models import User, utcnow

# Ranked rows per (phase, what the viewer may see, the viewer), for one version of the challenge's scope.
BOARDS = VersionedCache("boards", max_entries=256, max_bytes=32 * 1024 * 1024)


@dataclass
class BoardRow:
    rank: int | None              # None for baseline rows
    team_id: int | None
    team_name: str
    submission_id: int | None
    primary_score: float | None   # None only where withheld
    scores: dict[str, float]
    submitted_at: datetime | None
    baseline: bool = False
    own: bool = False             # the viewer's own team
    after_freeze: bool = False    # only the viewer sees this score; the public board is frozen before it
    withheld: bool = False        # a judge's declared conflict: the row stays, its figures and link do not


@dataclass
class Board:
    challenge: Challenge
    phase: Phase
    metrics: list[Metric]         # the primary metric first, then the challenge's extra metrics
    mode: str                     # best | latest
    direction: str                # max | min
    rows: list[BoardRow] = field(default_factory=list)
    hidden: bool = False          # a private board before its reveal
    frozen: bool = False          # the public board stopped moving at phase.freeze_at
    private_view: bool = False    # organisers, judges, admin: the live, unfrozen board
    # What these rows depend on besides the data: (phase, private, hidden, frozen, viewer id or None); with
    # the data version, it keys every cached rendering of this board.
    view_key: tuple = ()

    @property
    def teams(self) -> list[BoardRow]:
        return [r for r in self.rows if not r.baseline]


def metrics_of(challenge: Challenge) -> list[Metric]:
    keys = [challenge.metric] + [m for m in challenge.extra_metrics if m != challenge.metric]
    return [REGISTRY[k] for k in keys if k in REGISTRY]


def visibility(session: Session, challenge: Challenge, phase: Phase, viewer: User | None,
               now: datetime | None = None) -> tuple[bool, bool, bool]:
    """(private_view, hidden, frozen) for this viewer now."""
    now = now or utcnow()
    private = access.is_privileged(session, viewer, challenge)
    revealed = phase.revealed_at is not None and phase.revealed_at <= now
    hidden = not private and phase.scores_visible == "reveal" and not revealed
    frozen = (not private and not hidden and phase.freeze_at is not None and now >= phase.freeze_at
              and not revealed)
    return private, hidden, frozen


def _viewer_team(challenge_id: int, viewer_id: int | None):  # type: ignore[no-untyped-def]
    if viewer_id is None:
        return None
    return (select(TeamMember.team_id)
            .where(TeamMember.challenge_id == challenge_id, TeamMember.user_id == viewer_id,
                   TeamMember.status == "active")
            .limit(1).scalar_subquery())


def _board_query(challenge: Challenge, phase: Phase, viewer_id: int | None, frozen: bool) -> Select:
    S = Submission
    higher = REGISTRY[challenge.metric].direction == "max"
    if challenge.leaderboard_mode == "latest":
        order = [S.created_at.desc(), S.id.desc()]
    else:
        order = [S.primary_score.desc() if higher else S.primary_score.asc(), S.created_at.asc(), S.id.asc()]
    mine = _viewer_team(challenge.id, viewer_id)
    # Constants are inlined (literal_column), not bound: once psycopg prepares the statement, PostgreSQL's
    # generic plan guesses "team.status <> $n" matches one row and re-ranks all submissions per team (100x slower).
    one, zero = literal_column("1"), literal_column("0")
    own = case((S.team_id == mine, one), else_=zero) if mine is not None else zero
    scored, dq = literal_column(f"'{SubmissionStatus.SCORED}'"), literal_column(f"'{TeamStatus.DISQUALIFIED}'")
    entry = literal_column(f"'{SubmissionKind.SUBMISSION}'")   # check runs never rank (nor cut, nor win)
    where = [S.phase_id == phase.id, S.status == scored, S.disqualified == false(), S.primary_score.is_not(None),
             S.kind == entry]
    if frozen:
        # The public board stops at the freeze; the viewer's own team keeps seeing its newer scores.
        where.append(or_(S.created_at <= phase.freeze_at, S.team_id == mine) if mine is not None
                     else S.created_at <= phase.freeze_at)
    # Narrow rows (covered by ix_submission_rank) are ranked; only each team's winner is joined back for its scores.
    ranked = (select(S.id.label("sid"), S.team_id.label("tid"), S.primary_score.label("score"),
                     S.created_at.label("at"), own.label("own"),
                     func.row_number().over(partition_by=S.team_id, order_by=order).label("rn"))
              .where(*where).subquery("ranked"))
    winner = aliased(Submission, name="winner")
    teams = (select(ranked.c.sid, ranked.c.tid, ranked.c.score, winner.scores.label("scores"), ranked.c.at,
                    ranked.c.own, Team.name.label("name"), zero.label("is_baseline"))
             .join(winner, winner.id == ranked.c.sid)
             .join(Team, Team.id == ranked.c.tid)
             .where(ranked.c.rn == one, Team.status != dq))
    baselines = (select(cast(null(), Integer).label("sid"), cast(null(), Integer).label("tid"),
                        Baseline.primary_score.label("score"), Baseline.scores.label("scores"),
                        cast(null(), DateTime(timezone=True)).label("at"), zero.label("own"),
                        Baseline.label.label("name"), one.label("is_baseline"))
                 .where(Baseline.phase_id == phase.id))
    return union_all(teams, baselines)


def _as_aware(value: object) -> datetime | None:
    """SQLite hands a union's timestamp back as text; both backends end up as aware UTC here."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _rows(session: Session, challenge: Challenge, phase: Phase, viewer_id: int | None, frozen: bool) -> list[BoardRow]:
    result = session.execute(_board_query(challenge, phase, viewer_id, frozen)).all()
    higher = REGISTRY[challenge.metric].direction == "max"
    rows = [BoardRow(rank=None, team_id=r.tid, team_name=r.name, submission_id=r.sid,
                     primary_score=float(r.score), scores=dict(r.scores or {}), submitted_at=_as_aware(r.at),
                     baseline=bool(r.is_baseline), own=bool(r.own)) for r in result]
    far = datetime.max.replace(tzinfo=None)
    rows.sort(key=lambda r: (-r.primary_score if higher else r.primary_score, r.baseline,
                             (r.submitted_at.replace(tzinfo=None) if r.submitted_at else far), r.submission_id or 0))
    rank = 0
    for row in rows:
        if not row.baseline:
            rank += 1
            row.rank = rank
        if frozen and row.own and row.submitted_at and phase.freeze_at and row.submitted_at > phase.freeze_at:
            row.after_freeze = True
    return rows


def build(session: Session, phase_id: int, *, viewer: User | None, now: datetime | None = None) -> Board:
    """The phase's board as this viewer may see it; the rows come from one SQL query (or the cache)."""
    phase = session.get(Phase, phase_id)
    if phase is None:
        raise NotFound(N_("No such phase."))
    challenge = session.get(Challenge, phase.challenge_id)
    assert challenge is not None
    return cached_build(session, challenge, phase, viewer=viewer, now=now)


def board_key(session: Session, challenge: Challenge, phase: Phase, viewer: User | None,
              now: datetime | None = None) -> tuple:
    """Everything besides the data that decides the rows this viewer gets: the visibility class and the viewer.

    Logged-in viewers are told apart (their own team is marked, and keeps its newer scores on a frozen
    board); every anonymous visitor shares one entry.
    """
    private, hidden, frozen = visibility(session, challenge, phase, viewer, now)
    return (phase.id, private, hidden, frozen, viewer.id if viewer is not None and not hidden else None)


def clock_changes(phases: list[Phase], now: datetime) -> datetime | None:
    """When the clock next changes what a challenge's boards show: a phase starts or ends, a freeze, a reveal."""
    return next_change(now, *[t for p in phases for t in (p.starts_at, p.ends_at, p.freeze_at, p.revealed_at)])


def depends(challenge_id: int) -> tuple[str, ...]:
    """The cache scopes a board (and its page and JSON) reads: the challenge and the rows under it."""
    return (challenge_scope(challenge_id),)


def depends_by_slug(slug: str) -> tuple[ChallengeOf, ...]:
    """depends() of the challenge at this address, for a request that has not read the challenge yet (the
    version query finds it: hub.cache.ChallengeOf)."""
    return (ChallengeOf("challenge", slug),)


def cached_build(session: Session, challenge: Challenge, phase: Phase, *, viewer: User | None,
                 now: datetime | None = None, version: Hashable | None = None) -> Board:
    """build(), with the ranked rows kept per visibility class and viewer while the challenge's data stays
    the same.

    `version` is hub.cache.versions of scopes covering depends(challenge.id), when the caller has read it
    already (a web request reads it once).
    """
    now = now or utcnow()
    key = board_key(session, challenge, phase, viewer, now)
    _phase_id, private, hidden, frozen, viewer_id = key
    board = Board(challenge=challenge, phase=phase, metrics=metrics_of(challenge), mode=challenge.leaderboard_mode,
                  direction=REGISTRY[challenge.metric].direction, hidden=hidden, frozen=frozen, private_view=private,
                  view_key=key)
    if hidden:
        return board
    if version is None:
        version = versions(session, depends(challenge.id))
    rows = BOARDS.get(key, version)
    if rows is None:
        rows = _withhold(_rows(session, challenge, phase, viewer_id, frozen),
                         access.withheld_team_ids(session, viewer, challenge) if private else set())
        BOARDS.put(key, version, rows, size=300 * len(rows) + 1024)
    board.rows = rows
    return board


def _withhold(rows: list[BoardRow], team_ids: set[int]) -> list[BoardRow]:
    """The rows with the figures of these teams taken out (their place on the board stays)."""
    if not team_ids:
        return rows
    return [BoardRow(rank=r.rank, team_id=r.team_id, team_name=r.team_name, submission_id=None, primary_score=None,
                     scores={}, submitted_at=None, withheld=True) if r.team_id in team_ids else r for r in rows]


def team_scores(session: Session, challenge: Challenge, phase: Phase) -> dict[int, float]:
    """Each team's ranked score on the live board (for cuts and the final ranking)."""
    return {r.team_id: r.primary_score for r in _rows(session, challenge, phase, None, False)
            if r.team_id is not None}


def team_entries(session: Session, challenge: Challenge, phase: Phase) -> dict[int, int]:
    """Each ranked team's submission behind its score on the live board: {team id: submission id}."""
    return {r.team_id: r.submission_id for r in _rows(session, challenge, phase, None, False)
            if r.team_id is not None and r.submission_id is not None}


def to_csv(board: Board) -> str:
    rows = ([r.rank if r.rank is not None else "baseline", r.team_name,
             *[_fmt(r.scores.get(m.key, r.primary_score if m.key == board.challenge.metric else None))
               for m in board.metrics],
             r.submission_id or "", r.submitted_at.isoformat() if r.submitted_at else ""] for r in board.rows)
    return csvsafe.to_csv(["rank", "team", *[m.key for m in board.metrics], "submission_id", "submitted_at_utc"],
                          rows)


def _fmt(value: float | None) -> Decimal | str:
    """A score to 6 significant digits, as a number (csvsafe leaves numbers alone, so a negative score stays one)."""
    return "" if value is None else Decimal(f"{value:.6g}")


def score_history(session: Session, board: Board, top: int = 10) -> dict[str, list[tuple[datetime, float]]]:
    """Best score so far per team over time, for the board's top teams and with the board's own filters."""
    if board.hidden:
        return {}
    names = {r.team_id: r.team_name for r in board.teams[:top] if not r.withheld}
    if not names:
        return {}
    S = Submission
    where = [S.phase_id == board.phase.id, S.status == SubmissionStatus.SCORED, S.disqualified == false(),
             S.primary_score.is_not(None), S.kind == SubmissionKind.SUBMISSION, S.team_id.in_(list(names))]
    if board.frozen:
        own_ids = [r.team_id for r in board.teams if r.own]
        where.append(or_(S.created_at <= board.phase.freeze_at, S.team_id.in_(own_ids)) if own_ids
                     else S.created_at <= board.phase.freeze_at)
    points = session.execute(select(S.team_id, S.created_at, S.primary_score).where(and_(*where))
                             .order_by(S.created_at, S.id)).all()
    higher = board.direction == "max"
    best: dict[int, float] = {}
    series: dict[str, list[tuple[datetime, float]]] = {names[t]: [] for t in names}
    for team_id, at, score in points:
        prev = best.get(team_id)
        if prev is None or (score > prev if higher else score < prev):
            best[team_id] = score
            series[names[team_id]].append((_as_aware(at) or at, float(score)))
    return series
