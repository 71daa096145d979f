"""JSON API (/api/v1): challenges, leaderboards and submissions, under the same visibility rules as the pages."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, url_for
from flask_babel import gettext
from flask_login import current_user

from challenges import challenges, datasets, leaderboard, outcomes, phases, submissions
from challenges.models import Challenge, Phase, Team
from evaluator import api as evaluator_api
from hub.cache import ChallengeOf, VersionedCache, next_change
from hub.models import utcnow
from hub.web import cached_response, db, id_arg, json_error, login_required, request_version

api = Blueprint("challenges_api", __name__, url_prefix="/api/v1")


def _viewer():  # type: ignore[no-untyped-def]
    return current_user if current_user.is_authenticated else None


def _iso(value):  # type: ignore[no-untyped-def]
    return value.isoformat() if value else None


def _phase_dict(p: Phase) -> dict[str, Any]:
    return {"id": p.id, "position": p.position, "name": p.name, "name_en": p.name_en, "starts_at": _iso(p.starts_at),
            "ends_at": _iso(p.ends_at), "split": p.split, "per_day_limit": p.per_day_limit,
            "total_limit": p.total_limit, "concurrent_limit": p.concurrent_limit, "scores_visible": p.scores_visible,
            "freeze_at": _iso(p.freeze_at), "revealed_at": _iso(p.revealed_at), "cut_bar": p.cut_bar}


def _summary(c: Challenge) -> dict[str, Any]:
    return {"slug": c.slug, "title": c.title, "title_en": c.title_en, "status": c.status, "city_id": c.city_id,
            "scenario_id": c.scenario_id, "opens_at": _iso(c.opens_at), "closes_at": _iso(c.closes_at),
            "metric": c.metric, "prize": c.prize}


@api.get("/challenges")
def list_challenges():
    return jsonify({"challenges": [_summary(c) for c in challenges.visible_challenges(db(), _viewer())]})


@api.get("/challenges/<slug>")
def get_challenge(slug: str):
    session = db()
    c = challenges.get_by_slug(session, slug)
    challenges.require_visible(_viewer(), c)
    body = _summary(c)
    body.update({
        "description": c.description, "rules": c.rules, "funding_yuan": c.funding_yuan,
        "contract": {"input_format": c.input_format, "output_format": c.output_format, "id_column": c.id_column,
                     "prediction_column": c.prediction_column, "output_file": c.output_file, "metric": c.metric,
                     "direction": leaderboard.REGISTRY[c.metric].direction, "extra_metrics": c.extra_metrics,
                     "time_limit_s": c.time_limit_s, "memory_mb": c.memory_mb, "cpus": c.cpus,
                     "accelerators": c.accelerators, "accelerator_class": c.accelerator_class,
                     "locked_at": _iso(challenges.locked_since(session, c))},
        "leaderboard_mode": c.leaderboard_mode, "max_team_size": c.max_team_size,
        "phases": [_phase_dict(p) for p in challenges.phases_of(session, c.id)],
        # Only what anyone may download: the public samples (never a truth path).
        "samples": [{"split": d.split, "sha256": d.sample_sha256,
                     "url": f"/challenges/{c.slug}/samples/{d.split}.zip"}
                    for d in datasets.of_challenge(session, c.id) if d.sample_dir],
        "winner_team_id": c.winner_team_id, "announced_at": _iso(c.announced_at),
    })
    return jsonify(body)


# A board's JSON body per (challenge, board view): every viewer of one visibility class and team shares it.
BOARD_JSON = VersionedCache("board-json", max_entries=256, max_bytes=32 * 1024 * 1024)


@api.get("/challenges/<slug>/leaderboard")
def get_leaderboard(slug: str):
    return cached_response(lambda: _leaderboard(slug), depends=leaderboard.depends_by_slug(slug))


def _leaderboard(slug: str) -> tuple[Any, datetime | None]:
    now = utcnow()
    session = db()
    c = challenges.get_by_slug(session, slug)
    challenges.require_visible(_viewer(), c)
    phase_rows = challenges.phases_of(session, c.id)
    phase_id = id_arg("phase")
    phase = phases.get(session, phase_id, c) if phase_id else challenges.current_phase(session, c, now)
    if phase is None:
        return json_error(404, "not_found", gettext("No such phase.")), None
    version = request_version(leaderboard.depends_by_slug(slug))  # the route's: read once
    board = leaderboard.cached_build(session, c, phase, viewer=_viewer(), now=now, version=version)
    key = (c.slug, board.view_key)
    body = BOARD_JSON.get(key, version)
    if body is None:
        body = jsonify({
            "challenge": c.slug, "phase": _phase_dict(phase), "mode": board.mode, "direction": board.direction,
            "metrics": [m.key for m in board.metrics], "hidden": board.hidden, "frozen": board.frozen,
            "private_view": board.private_view,
            "rows": [{"rank": r.rank, "team": r.team_name, "team_id": r.team_id, "baseline": r.baseline,
                      "score": r.primary_score, "scores": r.scores, "submission_id": r.submission_id,
                      "submitted_at": _iso(r.submitted_at), "own": r.own, "after_freeze": r.after_freeze,
                      "withheld": r.withheld}
                     for r in board.rows],
        }).get_data()
        BOARD_JSON.put(key, version, body, size=len(body))
    return Response(body, mimetype="application/json"), leaderboard.clock_changes(phase_rows, now)


@api.get("/submissions/<int:submission_id>")
@login_required
def get_submission(submission_id: int):
    # The body depends on who asks (team, organiser, judge) and on the clock only through the reveal.
    # It reads the submission's challenge and rows under it (hub.cache.ChallengeOf finds which).
    return cached_response(lambda: _submission(submission_id), vary=("user", current_user.id),
                           depends=(ChallengeOf("submission", submission_id),))


def _submission(submission_id: int) -> tuple[Any, datetime | None]:
    now = utcnow()
    data, phase = submission_document(submission_id, now=now)
    # Until it is done, its place in the queue moves with every other run: such a body is never kept.
    return jsonify(data), (next_change(now, phase.revealed_at) if data["done"] else now)


def wait_text(seconds: float | None) -> str:
    """The estimated wait as the team reads it."""
    if seconds is None:
        return gettext("unknown (no worker is online for this queue)")
    if seconds < 90:
        return gettext("about %(n)s seconds", n=max(1, int(round(seconds))))
    return gettext("about %(n)s minutes", n=int(round(seconds / 60)))


def submission_document(submission_id: int, *, with_log: bool = False,
                        now: datetime | None = None) -> tuple[dict[str, Any], Phase]:
    """The one JSON document of a submission, as the current user may see it (answered by `POST …/submissions`,
    `GET /submissions/<id>` and, with the log so far, `GET /submissions/<id>/log`), and its phase."""
    now = now or utcnow()
    session = db()
    sub, phase, challenge = submissions.get_for_viewer(session, submission_id, current_user)
    shown = submissions.scores_shown(session, current_user, sub, phase, challenge, now)
    text = gettext(outcomes.describe_submission(sub.status, sub.outcome))
    show_log = submissions.can_read_log(session, current_user, sub, phase, challenge)
    data = submissions.as_dict(sub, phase, challenge, session.get(Team, sub.team_id), shown, text, show_log=show_log)
    done = submissions.is_done(sub)
    redis_url = current_app.config.get("REDIS_URL")
    status = None if done else evaluator_api.run_status(session, sub.id, redis_url)  # type: ignore[arg-type]
    data.update({
        "done": done, "position": status.position if status else None, "workers": status.workers if status else 0,
        "est_wait_s": status.est_wait_s if status else None,
        "wait_text": wait_text(status.est_wait_s) if status and status.position else None,
        "url": url_for("challenges.submission", submission_id=sub.id, _external=True),
        "log_url": url_for("evaluator_api.submission_log", submission_id=sub.id, _external=True),
    })
    if not show_log:
        data["log_withheld_text"] = gettext(submissions.LOG_WITHHELD)
    if with_log:
        # A withheld log is never read, from the row or from the live tail in Redis.
        live = evaluator_api.live_log(redis_url, sub.id, sub.attempt) \
            if show_log and sub.status == "running" else ""  # type: ignore[arg-type]
        data["log"] = live or (sub.log_excerpt if show_log else "")
    return data, phase