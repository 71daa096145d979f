"""Judging pages: the panel, the final review and rubric scores, the notice period (公示), objections, the award."""
from __future__ import annotations

from typing import Any

from flask import abort, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlmodel import select

from challenges import access, challenges, judging, leaderboard
from challenges.forms import AnswerForm, ConflictForm, JudgeForm, NoticeForm, ObjectionForm, ReasonForm
from challenges.models import Team
from challenges.views.blueprints import bp
from challenges.views.helpers import organised_challenge, viewer, visible_challenge
from hub.forms import EmptyForm
from hub.models import Role, User
from hub.web import button_post, db, login_required, role_required


@bp.get("/judging")
@role_required(Role.JUDGE)
def judge_home():
    return render_template("challenges/judge_home.html", rows=judging.challenges_of_judge(db(), current_user.id))


@bp.route("/challenges/<slug>/judges", methods=["GET", "POST"])
@role_required(Role.GOV)
def judges(slug: str):
    session = db()
    challenge = organised_challenge(slug)
    form = JudgeForm()
    candidates = list(session.exec(select(User).where(User.role == Role.JUDGE, User.active == True)  # noqa: E712
                                   .order_by(User.display_name)))
    form.judge_id.choices = [(u.id, f"{u.display_name} ({u.email})") for u in candidates]
    if form.validate_on_submit():
        change = judging.remove_judge if request.form.get("remove") else judging.assign_judge
        return button_post(lambda: change(session, current_user, challenge, form.judge_id.data),
                           url_for("challenges.judges", slug=slug), gettext("Saved."))
    return render_template("challenges/judges.html", challenge=challenge, form=form,
                           panel=judging.panel(session, challenge.id))


@bp.get("/challenges/<slug>/review")
@role_required(Role.GOV, Role.JUDGE, Role.ADMIN)
def review(slug: str):
    session = db()
    challenge = visible_challenge(slug)
    if not access.is_privileged(session, current_user, challenge):
        abort(403)
    final = challenges.final_phase(session, challenge)
    board = leaderboard.build(session, final.id, viewer=current_user) if final else None
    team_rows = list(session.exec(select(Team).where(Team.challenge_id == challenge.id).order_by(Team.name)))
    is_judge = access.is_panel_judge(session, current_user, challenge)
    conflicts = access.conflicted_team_ids(session, challenge.id, current_user.id) if is_judge else set()
    mine: dict[tuple[int, str], Any] = {}
    if is_judge:
        mine = {(r.team_id, r.criterion): r for r in judging.rubric_of(session, challenge.id, current_user.id)}
    conflict_form = ConflictForm()
    conflict_form.team_id.choices = [(t.id, t.name) for t in team_rows if t.id not in conflicts]
    return render_template("challenges/review.html", challenge=challenge, board=board, teams=team_rows,
                           ranking=judging.final_ranking(session, challenge), is_judge=is_judge,
                           is_organiser=access.is_organiser(current_user, challenge), conflicts=conflicts,
                           mine=mine, panel=judging.panel(session, challenge.id), conflict_form=conflict_form,
                           form=EmptyForm(), reason_form=ReasonForm(), notice_form=NoticeForm(),
                           published=challenge.notice_starts_at is not None)


@bp.post("/challenges/<slug>/teams/<int:team_id>/rubric")
@role_required(Role.JUDGE)
def rubric(slug: str, team_id: int):
    EmptyForm()
    challenge = visible_challenge(slug)
    scores = {c["key"]: (request.form.get(f"score_{c['key']}", ""), request.form.get(f"comment_{c['key']}", ""))
              for c in challenge.rubric}
    return button_post(lambda: judging.score_team(db(), current_user, challenge, team_id, scores),
                       url_for("challenges.review", slug=slug) + f"#team-{team_id}",
                       gettext("Your rubric scores were saved."))


@bp.post("/challenges/<slug>/conflicts")
@role_required(Role.JUDGE)
def conflict(slug: str):
    challenge = visible_challenge(slug)
    form = ConflictForm()
    return button_post(lambda: judging.declare_conflict(db(), current_user, challenge,
                                                        int(request.form.get("team_id", 0) or 0), form.note.data or ""),
                       url_for("challenges.review", slug=slug),
                       gettext("Your conflict of interest was recorded; you are kept off this team."))


@bp.post("/challenges/<slug>/teams/<int:team_id>/disqualify")
@role_required(Role.GOV, Role.JUDGE)
def disqualify_team(slug: str, team_id: int):
    form = ReasonForm()
    challenge = visible_challenge(slug)
    return button_post(lambda: judging.disqualify_team(db(), current_user, challenge, team_id, form.reason.data or ""),
                       url_for("challenges.review", slug=slug), gettext("The team was disqualified."))


# ---------------------------------------------------------------- 公示 and the award
@bp.get("/challenges/<slug>/notice")
def notice(slug: str):
    session = db()
    challenge = visible_challenge(slug)
    published = challenge.notice_starts_at is not None
    if not published and not access.is_privileged(session, viewer(), challenge):
        abort(404)
    return render_template("challenges/notice.html", challenge=challenge,
                           ranking=judging.final_ranking(session, challenge),
                           objections=judging.objections(session, challenge.id),
                           notice_open=judging.notice_open(challenge),
                           is_organiser=access.is_organiser(viewer(), challenge),
                           winner=session.get(Team, challenge.winner_team_id) if challenge.winner_team_id else None,
                           objection_form=ObjectionForm(), answer_form=AnswerForm(), form=EmptyForm())


@bp.post("/challenges/<slug>/notice/publish")
@role_required(Role.GOV)
def publish_notice(slug: str):
    form = NoticeForm()
    challenge = organised_challenge(slug)
    days = form.days.data if form.days.data is not None else 0
    return button_post(lambda: judging.publish_notice(db(), current_user, challenge, days),
                       url_for("challenges.notice", slug=slug),
                       gettext("The proposed ranking is published for its notice period."),
                       error_to=url_for("challenges.review", slug=slug))


@bp.post("/challenges/<slug>/objections")
@login_required
def objection(slug: str):
    form = ObjectionForm()
    challenge = visible_challenge(slug)
    return button_post(lambda: judging.lodge_objection(db(), current_user, challenge, form.text.data or ""),
                       url_for("challenges.notice", slug=slug),
                       gettext("Your objection was lodged; the city will answer it."))


@bp.post("/challenges/<slug>/objections/<int:objection_id>/answer")
@role_required(Role.GOV)
def answer(slug: str, objection_id: int):
    form = AnswerForm()
    challenge = organised_challenge(slug)
    return button_post(lambda: judging.answer_objection(db(), current_user, challenge, objection_id,
                                                        form.answer.data or ""),
                       url_for("challenges.notice", slug=slug), gettext("Saved."))


@bp.post("/challenges/<slug>/announce")
@role_required(Role.GOV)
def announce(slug: str):
    EmptyForm()
    challenge = organised_challenge(slug)
    return button_post(lambda: judging.announce(db(), current_user, challenge), url_for("challenges.detail", slug=slug),
                       gettext("The winner is announced (挂帅)."), error_to=url_for("challenges.notice", slug=slug))

