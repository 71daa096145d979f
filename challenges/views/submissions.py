"""Submission pages: a team's own submissions, one submission's page and its disqualification."""
from __future__ import annotations

from flask import current_app, render_template, url_for
from flask_babel import gettext
from flask_login import current_user

from challenges import access, challenges, judging, leaderboard, submissions, teams
from challenges.forms import ReasonForm
from challenges.models import Team
from challenges.views.blueprints import bp
from challenges.views.helpers import visible_challenge
from hub.models import Role
from hub.web import button_post, db, login_required, role_required


@bp.get("/challenges/<slug>/submissions/mine")
@login_required
def my_submissions(slug: str):
    session = db()
    challenge = visible_challenge(slug)
    t = teams.team_for_user(session, challenge.id, current_user.id)
    rows = submissions.history(session, challenge.id, t.id) if t else []
    phase_rows = {p.id: p for p in challenges.phases_of(session, challenge.id)}
    shown = {s.id: submissions.scores_shown(session, current_user, s, phase_rows[s.phase_id], challenge)
             for s in rows}
    usage = {}
    current = challenges.current_phase(session, challenge)
    if t and current:
        usage = submissions.usage(session, challenge, t.id, current)
    return render_template("challenges/my_submissions.html", challenge=challenge, team=t, rows=rows,
                           phases=phase_rows, shown=shown, usage=usage, current=current,
                           can_submit_link="evaluator.submit" in current_app.view_functions)


@bp.get("/submissions/<int:submission_id>")
@login_required
def submission(submission_id: int):
    session = db()
    sub, phase, challenge = submissions.get_for_viewer(session, submission_id, current_user)
    log_url = (url_for("evaluator_api.submission_log", submission_id=sub.id)
               if "evaluator_api.submission_log" in current_app.view_functions
               else f"/api/v1/submissions/{sub.id}/log")
    can_read_log = submissions.can_read_log(session, current_user, sub, phase, challenge)
    return render_template("challenges/submission.html", sub=sub, phase=phase, challenge=challenge,
                           team=session.get(Team, sub.team_id),
                           show_scores=submissions.scores_shown(session, current_user, sub, phase, challenge),
                           can_judge=(access.is_organiser(current_user, challenge)
                                      or access.is_panel_judge(session, current_user, challenge)),
                           can_read_log=can_read_log, reason=submissions.visible_reason(sub, can_read_log),
                           log_withheld_text=submissions.LOG_WITHHELD,
                           check_url=(url_for("evaluator.submit", slug=challenge.slug, kind="check")
                                      if "evaluator.submit" in current_app.view_functions
                                      and submissions.sample_dataset(session, phase) is not None else None),
                           metrics=leaderboard.metrics_of(challenge), log_url=log_url, form=ReasonForm())


@bp.post("/submissions/<int:submission_id>/disqualify")
@role_required(Role.GOV, Role.JUDGE)
def disqualify_submission(submission_id: int):
    form = ReasonForm()
    sub, _phase, _challenge = submissions.get_for_viewer(db(), submission_id, current_user)
    return button_post(lambda: judging.disqualify_submission(db(), current_user, sub, form.reason.data or ""),
                       url_for("challenges.submission", submission_id=submission_id),
                       gettext("The submission was disqualified."))

