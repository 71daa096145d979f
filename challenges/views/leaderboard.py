"""Leaderboard pages: a phase's board, its CSV export and its chart."""
from __future__ import annotations

from datetime import datetime

from flask import Response, abort, render_template
from flask_babel import get_locale, gettext
from markupsafe import Markup

from challenges import challenges, charts, leaderboard, phases
from challenges.models import Challenge, Phase
from challenges.views.blueprints import bp
from challenges.views.helpers import viewer, visible_challenge
from hub.cache import VersionedCache
from hub.errors import NotFound
from hub.models import utcnow
from hub.web import cached_response, db, id_arg, request_version


def _board_phase(challenge: Challenge, now: datetime | None = None) -> Phase:
    phase_id = id_arg("phase")
    if phase_id:
        return phases.get(db(), phase_id, challenge)
    phase = challenges.current_phase(db(), challenge, now)
    if phase is None:
        raise NotFound("No such phase.")
    return phase


def _chart_svg(board: leaderboard.Board) -> str:
    """The board's best-score-over-time chart."""
    return charts.best_over_time_svg(leaderboard.score_history(db(), board), title=gettext("Best score over time"),
                                     empty_text=gettext("No scores to show yet."))


# The board's table and chart as HTML, per board view (visibility class, own team) and locale.
BOARD_HTML = VersionedCache("board-html", max_entries=256, max_bytes=32 * 1024 * 1024)


@bp.get("/challenges/<slug>/leaderboard")
def leaderboard_page(slug: str):
    return cached_response(lambda: _leaderboard_page(slug), depends=leaderboard.depends_by_slug(slug))


def _leaderboard_page(slug: str) -> tuple[str, datetime | None]:
    now = utcnow()
    challenge = visible_challenge(slug)
    phase_rows = challenges.phases_of(db(), challenge.id)
    phase = _board_phase(challenge, now)
    version = request_version(leaderboard.depends_by_slug(slug))
    board = leaderboard.cached_build(db(), challenge, phase, viewer=viewer(), now=now, version=version)
    key = (board.view_key, str(get_locale()))
    parts = BOARD_HTML.get(key, version)
    if parts is None:
        table = Markup("" if board.hidden else render_template("challenges/_board_table.html", board=board))
        svg = Markup(_chart_svg(board))
        parts = (table, svg)
        BOARD_HTML.put(key, version, parts, size=len(table) + len(svg))
    html = render_template("challenges/leaderboard.html", challenge=challenge, board=board, phases=phase_rows,
                           board_table=parts[0], chart=parts[1])
    return html, leaderboard.clock_changes(phase_rows, now)


@bp.get("/challenges/<slug>/leaderboard.csv")
def leaderboard_csv(slug: str):
    challenge = visible_challenge(slug)
    phase = _board_phase(challenge)
    board = leaderboard.build(db(), phase.id, viewer=viewer())
    if board.hidden:
        abort(404)
    return Response("\ufeff" + leaderboard.to_csv(board), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f"attachment; filename={challenge.slug}-phase{phase.position}.csv"})


@bp.get("/challenges/<slug>/leaderboard.svg")
def leaderboard_svg(slug: str):
    challenge = visible_challenge(slug)
    board = leaderboard.build(db(), _board_phase(challenge).id, viewer=viewer())
    return Response(_chart_svg(board), mimetype="image/svg+xml")

