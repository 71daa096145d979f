"""Visibility as a table: role × page/API → shown or hidden (private board before reveal, truth files,
other teams' logs, organiser pages, drafts)."""
from __future__ import annotations

import pytest

from challenges import judging
from hub.models import Role
from tests.factories import (login, make_approved_team, make_challenge, make_open_challenge, make_scored_submission,
                             make_user)

SCORE, LOG = "0.123457", "SECRET-LOG-OF-TEAM-A"

# target → roles that see it; every other role must not.
TABLE: dict[str, set[str]] = {
    # A judge with a declared conflict sees the team's row on the private board, never its scores.
    "private_board_page": {"judge", "gov", "admin"},
    "private_board_api": {"judge", "gov", "admin"},
    # The log of a run on a private phase's hidden data is withheld from its own team (test_private_logs.py).
    "submission_page": {"judge", "gov", "admin"},
    "submission_api": {"judge", "gov", "admin"},
    "registrations_page": {"gov", "admin"},
    "review_page": {"judge", "conflicted_judge", "gov", "admin"},
    "draft_challenge": {"gov", "admin"},
    "audit_lines_of_the_city": {"gov", "admin"},
}
ROLES = ["anonymous", "other_team", "own_team", "judge", "judge_off_panel", "conflicted_judge", "gov",
         "gov_other_city", "admin"]


@pytest.fixture
def world(session, data_dir):  # type: ignore[no-untyped-def]
    oc = make_open_challenge(session, data_dir, phases=[{"scores_visible": "reveal"}])
    own = make_approved_team(session, oc.challenge, oc.gov, name="甲队")
    other = make_approved_team(session, oc.challenge, oc.gov, name="乙队")
    sub = make_scored_submission(session, own.team, oc.phases[0], 0.1234567, log_excerpt=LOG)
    judge, conflicted = make_user(session, Role.JUDGE), make_user(session, Role.JUDGE)
    for j in (judge, conflicted):
        judging.assign_judge(session, oc.gov, oc.challenge, j.id)
    judging.declare_conflict(session, conflicted, oc.challenge, own.team.id, "亲属关系")
    draft = make_challenge(session, gov=oc.gov, slug="draft-one")
    users = {"other_team": other.users[0], "own_team": own.users[0], "judge": judge,
             "judge_off_panel": make_user(session, Role.JUDGE), "conflicted_judge": conflicted, "gov": oc.gov,
             "gov_other_city": make_user(session, Role.GOV), "admin": make_user(session, Role.ADMIN)}
    return oc, sub, draft, users


def _shown(client, target: str, oc, sub, draft) -> bool:  # type: ignore[no-untyped-def]
    slug, phase = oc.challenge.slug, oc.phases[0].id
    if target == "private_board_page":
        return SCORE in client.get(f"/challenges/{slug}/leaderboard?phase={phase}").get_data(as_text=True)
    if target == "private_board_api":
        body = client.get(f"/api/v1/challenges/{slug}/leaderboard?phase={phase}").get_json()
        return any(r["score"] is not None for r in body["rows"] if not r["baseline"])
    if target == "submission_page":
        resp = client.get(f"/submissions/{sub.id}")
        return resp.status_code == 200 and LOG in resp.get_data(as_text=True)
    if target == "submission_api":
        resp = client.get(f"/api/v1/submissions/{sub.id}")
        return resp.status_code == 200 and resp.get_json()["log_excerpt"] == LOG
    if target == "registrations_page":
        return client.get(f"/challenges/{slug}/registrations").status_code == 200
    if target == "review_page":
        return client.get(f"/challenges/{slug}/review").status_code == 200
    if target == "draft_challenge":
        return client.get(f"/challenges/{draft.slug}").status_code == 200
    if target == "audit_lines_of_the_city":
        resp = client.get("/audit")
        return resp.status_code == 200 and "judge.conflict" in resp.get_data(as_text=True)
    raise AssertionError(target)


def test_visibility_table(app, session, world):
    oc, sub, draft, users = world
    wrong = []
    for role in ROLES:
        client = app.test_client()
        if role != "anonymous":
            login(client, users[role])
        for target, allowed in TABLE.items():
            expected = role in allowed
            # A declared conflict keeps a panel judge off that team's submissions and its scores.
            if _shown(client, target, oc, sub, draft) != expected:
                wrong.append(f"{role} × {target}: expected {'shown' if expected else 'hidden'}")
    assert not wrong, "\n".join(wrong)


def test_own_team_sees_its_history_but_not_private_scores_before_the_reveal(app, session, world):
    from challenges import phases

    oc, sub, _draft, users = world
    client = app.test_client()
    login(client, users["own_team"])
    page = client.get(f"/challenges/{oc.challenge.slug}/submissions/mine").get_data(as_text=True)
    assert f"/submissions/{sub.id}" in page and SCORE not in page
    assert client.get(f"/api/v1/submissions/{sub.id}").get_json()["scores"] is None
    phases.reveal(session, oc.gov, oc.challenge, oc.phases[0])
    assert client.get(f"/api/v1/submissions/{sub.id}").get_json()["primary_score"] == pytest.approx(0.1234567)
    assert SCORE in app.test_client().get(f"/challenges/{oc.challenge.slug}/leaderboard").get_data(as_text=True)


def test_truth_is_never_served(app, session, world, data_dir):
    oc, _sub, _draft, users = world
    truth_text = next((data_dir / "truth").rglob("truth.csv")).read_text()
    marker = truth_text.splitlines()[1]  # "1,1.5"
    for role in ("anonymous", "own_team", "judge", "gov", "admin"):
        client = app.test_client()
        if role != "anonymous":
            login(client, users[role])
        detail = client.get(f"/api/v1/challenges/{oc.challenge.slug}").get_data(as_text=True)
        assert "truth" not in detail and str(data_dir) not in detail
        for path in (f"/challenges/{oc.challenge.slug}", f"/challenges/{oc.challenge.slug}/datasets"):
            assert marker not in client.get(path).get_data(as_text=True)
        for guess in ("/challenges/%s/samples/public.zip", "/challenges/%s/samples/..%%2Ftruth.zip"):
            resp = client.get(guess % oc.challenge.slug)
            assert resp.status_code == 404 or marker.encode() not in resp.data
