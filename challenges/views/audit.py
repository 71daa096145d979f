"""The audit log page, for a city's staff (their city's lines) and the platform admin (every line)."""
from __future__ import annotations

from flask import abort, render_template
from flask_login import current_user
from sqlmodel import select

from challenges.views.blueprints import bp
from hub import audit
from hub.models import Role, User
from hub.web import db, role_required


@bp.get("/audit", endpoint="audit")
@role_required(Role.GOV, Role.ADMIN)
def audit_log():
    org_id = None if current_user.role == Role.ADMIN else current_user.org_id
    if org_id is None and current_user.role != Role.ADMIN:
        abort(403)  # staff with no active membership of a city: no city's log (None would mean every line)
    lines = audit.lines_for(db(), org_id=org_id, limit=300)
    actors = {u.id: u for u in db().exec(select(User).where(User.id.in_({ln.actor_id for ln in lines
                                                                          if ln.actor_id})))}
    return render_template("challenges/audit.html", lines=lines, actors=actors)

