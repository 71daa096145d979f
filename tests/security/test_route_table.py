"""Every route of the app × every kind of user → the answer it must get, and no route ever leaks a secret.

The tests:
- the guard: each (endpoint, method) of `app.url_map` has a row here (ROUTE_TABLE) or is listed as covered by
  another table (COVERED_ELSEWHERE); a new route without a row fails with its name;
- the table: role × route → 200 / 302 / 400 / 401 / 403 / 404 / LOGIN (redirect to the login page) / REFUSED
  (a redirect carrying an error message: the user got past the door, a rule said no), for pages, and for the
  JSON API both with the session cookie and with an API token; one run, one report of every differing cell;
- the secrets: every GET route, filled with real ids, read by team A, the public and others who must not see
  them, never shows team B's log, the truth, or a score of a board before its reveal (with a control that
  those who may read them do);
- the tokens: a token made on the account page opens every API row as its role; one revoked there opens none (401).
"""
from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.factories import login
from tests.security.conftest import ROLES, World

LOGIN = "LOGIN"
REFUSED = "REFUSED"
Outcome = int | str
# A request: the URL, or (URL, form data). Builders may create fresh objects for the request.
Request = Callable[[World], "str | tuple[str, dict[str, Any]]"]


@dataclass(frozen=True)
class Case:
    method: str
    request: Request
    expected: dict[str, Outcome]
    note: str = ""
    content_type: str | None = None


def expect(default: Outcome, *bases: dict[str, Outcome], **cells: Outcome) -> dict[str, Outcome]:
    """A row: `default` for every role but those named (in `bases`, then in `cells`)."""
    for base in reversed(bases):
        cells = {**base, **cells}
    unknown = set(cells) - set(ROLES)
    assert not unknown, f"unknown roles {unknown}"
    return {role: cells.get(role, default) for role in ROLES}


ALL_200 = expect(200)
TEAMS_ONLY = dict(anonymous=LOGIN, member=200, captain=200, other_team=200)
OPS_ONLY = dict(anonymous=LOGIN, operator=200, admin=200)
ORGANISER_ONLY = dict(anonymous=LOGIN, gov_owner=200)

# Routes whose table lives in another test module: endpoint → methods covered there.
COVERED_ELSEWHERE: dict[str, dict[str, set[str]]] = {
    "tests/hub/test_access_table.py": {
        "home": {"GET"},
        "marketplace.index": {"GET"}, "marketplace.city": {"GET"}, "marketplace.detail": {"GET"},
        "marketplace.create": {"GET", "POST"}, "marketplace.edit": {"GET", "POST"},
        "marketplace.set_status": {"POST"}, "marketplace.apply": {"GET", "POST"},
        "marketplace.review_list": {"GET"}, "marketplace.my_applications": {"GET"},
        "marketplace.application": {"GET"}, "marketplace.review": {"POST"}, "marketplace.withdraw": {"POST"},
        "marketplace.download": {"GET"},
        "marketplace_api.api_scenarios": {"GET"}, "marketplace_api.api_scenario": {"GET"},
        "marketplace_api.api_cities": {"GET"},
        "auth.login": {"GET"}, "auth.register": {"GET"}, "auth.account": {"GET", "POST"},
        "auth.set_language": {"GET"}, "auth.logout": {"POST"},
        "auth.revoke_token": {"POST"}, "auth.change_password": {"POST"},
    },
    "tests/hub/test_membership.py": {
        "auth.join_request": {"POST"}, "auth.my_membership_action": {"POST"}, "auth.leave_org": {"POST"},
        "auth.org_members": {"GET"}, "auth.org_invite": {"POST"}, "auth.org_member_action": {"POST"},
    },
}


def _arena_team(w: World, *, member: str | None = None, member_status: str = "active", spare_pending: bool = False,
                status: str = "approved"):  # type: ignore[no-untyped-def]
    """A fresh challenge with a team captained by the `captain` role; `member` is in it as `member_status`,
    the spare account asks to join if `spare_pending`."""
    members = ((w.users[member], member_status),) if member else ()
    if spare_pending:
        members += ((w.spare, "pending"),)
    arena = w.arena()
    return arena, w.team_in(arena, w.users["captain"], status=status, members=members)


def _team_action(action: str, **setup: Any) -> Request:
    def build(w: World) -> tuple[str, dict[str, Any]]:
        _arena, team = _arena_team(w, **setup)
        return f"/teams/{team.id}/{action}", {"email": w.spare.email}
    return build


def _member_action(action: str, target: str, **setup: Any) -> Request:
    def build(w: World) -> tuple[str, dict[str, Any]]:
        _arena, team = _arena_team(w, **setup)
        user_id = w.spare.id if target == "spare" else w.users[target].id
        return f"/teams/{team.id}/{action}/{user_id}", {}
    return build


def _fresh_team(w: World, status: str = "open") -> tuple[Any, Any]:
    arena = w.arena(status=status)
    return arena, w.team_in(arena, w.spare)


def _conflict(w: World) -> tuple[str, dict[str, Any]]:
    arena, team = _fresh_team(w)
    return f"/challenges/{arena.slug}/conflicts", {"team_id": team.id, "note": "曾合作"}


def _rubric(w: World) -> tuple[str, dict[str, Any]]:
    arena, team = _fresh_team(w, status="frozen")
    return f"/challenges/{arena.slug}/teams/{team.id}/rubric", {"score_technical": "8", "score_feasibility": "7",
                                                                 "score_cost": "6"}


def _disqualify_team(w: World) -> tuple[str, dict[str, Any]]:
    arena, team = _fresh_team(w)
    return f"/challenges/{arena.slug}/teams/{team.id}/disqualify", {"reason": "违反竞赛规则"}


def _join(w: World) -> tuple[str, dict[str, Any]]:
    _arena, team = _fresh_team(w)
    return f"/teams/join/{team.invite_token}", {}


def _registration(w: World) -> tuple[str, dict[str, Any]]:
    _arena, team = _arena_team(w, member="member", status="forming")
    return f"/teams/{team.id}/registration", {"tech_route": "时间序列特征 + 梯度提升树",
                                             "indicator_plan": "各项指标逐项验证，误差低于要求"}


def _reveal(w: World) -> str:
    arena = w.arena()
    return f"/challenges/{arena.slug}/phases/{w.phase_of(arena).id}/reveal"


ROUTE_TABLE: dict[str, list[Case]] = {
    # ---------------------------------------------------------------- shared core
    "healthz": [Case("GET", lambda w: "/healthz", ALL_200)],
    "auth.login": [Case("POST", lambda w: ("/login", {"email": w.users["member"].email, "password": "wrong-pass"}),
                        expect(401), "a wrong password, whoever asks")],
    "auth.register": [Case("POST", lambda w: ("/register", {}), expect(400), "an empty form is refused on the form")],

    # ---------------------------------------------------------------- challenges: browsing
    "challenges.index": [Case("GET", lambda w: "/challenges", ALL_200)],
    "challenges.detail": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}", ALL_200),
        Case("GET", lambda w: f"/challenges/{w.draft.slug}", expect(404, gov_owner=200, admin=200), "a draft"),
    ],
    "challenges.sample": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/samples/public.zip", ALL_200),
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/samples/private.zip", expect(404), "no public sample"),
    ],
    "challenges.leaderboard_page": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/leaderboard?phase={w.p_private.id}", ALL_200),
        Case("GET", lambda w: f"/challenges/{w.draft.slug}/leaderboard", expect(404, gov_owner=200, admin=200)),
    ],
    "challenges.leaderboard_csv": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/leaderboard.csv?phase={w.p_public.id}", ALL_200),
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/leaderboard.csv?phase={w.p_private.id}",
             expect(404, gov_owner=200, judge=200, admin=200), "a private board before its reveal"),
    ],
    "challenges.leaderboard_svg": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/leaderboard.svg?phase={w.p_private.id}", ALL_200)],
    "challenges.notice": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/notice", expect(404, gov_owner=200, judge=200, admin=200),
             "not published yet"),
        Case("GET", lambda w: f"/challenges/{w.noticed.slug}/notice", ALL_200, "published (公示)"),
    ],

    # ---------------------------------------------------------------- challenges: the organiser's desk
    "challenges.new": [
        Case("GET", lambda w: "/challenges/new", expect(403, anonymous=LOGIN, gov_owner=200, gov_other=200)),
        Case("POST", lambda w: ("/challenges/new", {}), expect(403, anonymous=LOGIN, gov_owner=400, gov_other=400)),
    ],
    "challenges.edit": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/edit", expect(403, ORGANISER_ONLY)),
        Case("GET", lambda w: f"/challenges/{w.draft.slug}/edit", expect(403, ORGANISER_ONLY, gov_other=404)),
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/edit", {}), expect(403, anonymous=LOGIN, gov_owner=400)),
    ],
    "challenges.change_status": [
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/status", {"action": "no-such-step"}),
             expect(403, anonymous=LOGIN, gov_owner=REFUSED)),
    ],
    "challenges.phase_new": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/phases/new", expect(403, ORGANISER_ONLY)),
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/phases/new", {}),
             expect(403, anonymous=LOGIN, gov_owner=400)),
    ],
    "challenges.phase_edit": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/phases/{w.p_private.id}/edit", expect(403, ORGANISER_ONLY)),
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/phases/{w.p_private.id}/edit", {}),
             expect(403, anonymous=LOGIN, gov_owner=400)),
    ],
    "challenges.phase_action": [
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/phases/{w.p_public.id}/cut", {}),
             expect(403, anonymous=LOGIN, gov_owner=REFUSED), "the phase has no cut bar"),
        Case("POST", _reveal, expect(403, anonymous=LOGIN, gov_owner=302), "reveal a fresh challenge's board"),
    ],
    "challenges.datasets_page": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/datasets", expect(403, ORGANISER_ONLY)),
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/datasets", {}), expect(403, anonymous=LOGIN, gov_owner=400)),
    ],
    "challenges.judges": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/judges", expect(403, ORGANISER_ONLY)),
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/judges", {}), expect(403, ORGANISER_ONLY),
             "no judge chosen: the form again"),
    ],
    "challenges.registrations": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/registrations", expect(403, ORGANISER_ONLY, admin=200))],
    "challenges.review_registration": [
        Case("POST", lambda w: (f"/registrations/{w.pending_registration().id}/review", {"decision": "approve"}),
             expect(403, anonymous=LOGIN, gov_owner=302, gov_other=REFUSED)),
    ],
    "challenges.audit": [
        Case("GET", lambda w: "/audit", expect(403, anonymous=LOGIN, gov_owner=200, gov_other=200, admin=200))],

    # ---------------------------------------------------------------- challenges: teams and registration
    "challenges.team_new": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/teams/new", expect(403, TEAMS_ONLY)),
        Case("POST", lambda w: (f"/challenges/{w.arena().slug}/teams/new", {"name": "新队伍"}),
             expect(403, anonymous=LOGIN, member=302, captain=302, other_team=302)),
    ],
    "challenges.team": [
        Case("GET", lambda w: f"/teams/{w.team_a.id}",
             expect(404, anonymous=LOGIN, member=200, captain=200, gov_owner=200, judge=200, admin=200)),
    ],
    "challenges.join": [
        Case("GET", lambda w: f"/teams/join/{w.team_a.invite_token}", expect(403, TEAMS_ONLY)),
        Case("POST", _join, expect(403, anonymous=LOGIN, member=302, captain=302, other_team=302)),
    ],
    "challenges.my_teams": [Case("GET", lambda w: "/my/teams", expect(403, TEAMS_ONLY))],
    "challenges.register": [
        Case("GET", lambda w: f"/teams/{w.team_a.id}/registration",
             expect(403, anonymous=LOGIN, member=200, captain=200, other_team=404)),
        Case("POST", _registration, expect(403, anonymous=LOGIN, member=400, captain=302, other_team=404),
             "only the captain files it"),
    ],
    "challenges.team_action": [
        Case("POST", _team_action("invite"), expect(REFUSED, anonymous=LOGIN, captain=302)),
        Case("POST", _team_action("new_link"), expect(REFUSED, anonymous=LOGIN, captain=302)),
        Case("POST", _team_action("leave", member="member"), expect(REFUSED, anonymous=LOGIN, member=302),
             "a captain with members hands over first"),
        Case("POST", _team_action("accept", member="member", member_status="invited"),
             expect(REFUSED, anonymous=LOGIN, member=302)),
        Case("POST", _team_action("decline_invitation", member="member", member_status="invited"),
             expect(REFUSED, anonymous=LOGIN, member=302)),
    ],
    "challenges.team_member_action": [
        Case("POST", _member_action("approve", "spare", spare_pending=True),
             expect(REFUSED, anonymous=LOGIN, captain=302)),
        Case("POST", _member_action("decline", "spare", spare_pending=True),
             expect(REFUSED, anonymous=LOGIN, captain=302)),
        Case("POST", _member_action("captain", "member", member="member"),
             expect(REFUSED, anonymous=LOGIN, captain=302)),
    ],

    # ---------------------------------------------------------------- challenges: submissions and judging
    "challenges.my_submissions": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/submissions/mine", expect(200, anonymous=LOGIN))],
    "challenges.submission": [
        Case("GET", lambda w: f"/submissions/{w.sub_b_hidden.id}",
             expect(404, anonymous=LOGIN, other_team=200, gov_owner=200, judge=200, admin=200), "team B's"),
    ],
    "challenges.disqualify_submission": [
        Case("POST", lambda w: (f"/submissions/{w.submission_in(w.arena(), 'scored').id}/disqualify",
                                {"reason": "使用了测试数据"}),
             expect(403, anonymous=LOGIN, gov_owner=302, gov_other=404, judge=302, judge_off=404)),
    ],
    "challenges.judge_home": [
        Case("GET", lambda w: "/judging", expect(403, anonymous=LOGIN, judge=200, judge_off=200))],
    "challenges.review": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/review",
             expect(403, anonymous=LOGIN, gov_owner=200, judge=200, admin=200)),
    ],
    "challenges.rubric": [Case("POST", _rubric, expect(403, anonymous=LOGIN, judge=302, judge_off=REFUSED))],
    "challenges.conflict": [Case("POST", _conflict, expect(403, anonymous=LOGIN, judge=302, judge_off=REFUSED))],
    "challenges.disqualify_team": [
        Case("POST", _disqualify_team,
             expect(403, anonymous=LOGIN, gov_owner=302, gov_other=REFUSED, judge=302, judge_off=REFUSED)),
    ],
    "challenges.publish_notice": [
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/notice/publish", {"days": "7"}),
             expect(403, anonymous=LOGIN, gov_owner=REFUSED), "not in final review"),
    ],
    "challenges.objection": [
        Case("POST", lambda w: (f"/challenges/{w.noticed.slug}/objections", {"text": "对评审结果有异议，请复核。"}),
             expect(302, anonymous=LOGIN), "anyone logged in, during the notice period"),
    ],
    "challenges.answer": [
        Case("POST", lambda w: (f"/challenges/{w.noticed.slug}/objections/{w.objection()}/answer",
                                {"answer": "已复核，维持原结果。"}),
             expect(403, anonymous=LOGIN, gov_owner=302)),
    ],
    "challenges.announce": [
        Case("POST", lambda w: (f"/challenges/{w.noticed.slug}/announce", {}),
             expect(403, anonymous=LOGIN, gov_owner=REFUSED), "the notice period still runs"),
    ],

    # ---------------------------------------------------------------- challenges: JSON API
    "challenges_api.list_challenges": [Case("GET", lambda w: "/api/v1/challenges", ALL_200)],
    "challenges_api.get_challenge": [
        Case("GET", lambda w: f"/api/v1/challenges/{w.ch.slug}", ALL_200),
        Case("GET", lambda w: f"/api/v1/challenges/{w.draft.slug}", expect(404, gov_owner=200, admin=200)),
    ],
    "challenges_api.get_leaderboard": [
        Case("GET", lambda w: f"/api/v1/challenges/{w.ch.slug}/leaderboard?phase={w.p_private.id}", ALL_200),
        Case("GET", lambda w: f"/api/v1/challenges/{w.draft.slug}/leaderboard", expect(404, gov_owner=200, admin=200)),
    ],
    "challenges_api.get_submission": [
        Case("GET", lambda w: f"/api/v1/submissions/{w.sub_b_hidden.id}",
             expect(404, anonymous=401, other_team=200, gov_owner=200, judge=200, admin=200), "team B's"),
    ],

    # ---------------------------------------------------------------- evaluator
    "evaluator.submit": [
        Case("GET", lambda w: f"/challenges/{w.ch.slug}/submit", expect(403, TEAMS_ONLY)),
        Case("GET", lambda w: f"/challenges/{w.draft.slug}/submit",
             expect(403, anonymous=LOGIN, member=404, captain=404, other_team=404), "a draft is not there"),
        Case("POST", lambda w: (f"/challenges/{w.ch.slug}/submit", {}),
             expect(403, anonymous=LOGIN, member=400, captain=400, other_team=400), "no image chosen"),
        Case("POST", lambda w: (f"/challenges/{w.draft.slug}/submit", {"reference": "registry.invalid/m:1"}),
             expect(403, anonymous=LOGIN, member=404, captain=404, other_team=404), "a draft is not there",
             "multipart/form-data"),
    ],
    "evaluator_api.create_submission": [
        Case("POST", lambda w: (f"/api/v1/challenges/{w.ch.slug}/submissions", {}),
             expect(403, anonymous=401, member=400, captain=400, other_team=400), "no image in the body"),
        Case("POST", lambda w: (f"/api/v1/challenges/{w.draft.slug}/submissions",
                                {"reference": "registry.invalid/m:1"}),
             expect(403, anonymous=401, member=404, captain=404, other_team=404), "a draft is not there",
             "multipart/form-data"),
    ],
    "evaluator_api.submission_log": [
        Case("GET", lambda w: f"/api/v1/submissions/{w.sub_b_hidden.id}/log",
             expect(404, anonymous=401, other_team=200, gov_owner=200, judge=200, admin=200), "team B's"),
    ],
    "evaluator.ops": [Case("GET", lambda w: "/ops", expect(403, OPS_ONLY))],
    "evaluator.ops_log": [Case("GET", lambda w: f"/ops/submissions/{w.sub_a.id}/log", expect(403, OPS_ONLY))],
    "evaluator.ops_action": [
        Case("POST", lambda w: (f"/ops/submissions/{w.submission_in(w.arena(panel=False)).id}/cancel", {}),
             expect(403, anonymous=LOGIN, operator=302, admin=302)),
        Case("POST", lambda w: (f"/ops/submissions/{w.submission_in(w.arena(panel=False), 'failed').id}/rerun", {}),
             expect(403, anonymous=LOGIN, operator=302, admin=302)),
        Case("POST", lambda w: (f"/ops/submissions/{w.sub_a.id}/delete", {}),
             expect(403, anonymous=LOGIN, operator=404, admin=404), "no such action"),
    ],

    # ---------------------------------------------------------------- quota and 算力券
    "quota.usage": [Case("GET", lambda w: "/compute/usage", expect(403, TEAMS_ONLY))],
    "quota_api.api_usage": [Case("GET", lambda w: "/api/v1/quota/usage", expect(403, TEAMS_ONLY, anonymous=401))],
    "quota.company": [
        Case("GET", lambda w: f"/compute/vouchers?org={w.org_a.id}",
             expect(403, anonymous=LOGIN, member=200, captain=200, operator=200, admin=200), "company A's"),
    ],
    "quota.statement": [
        Case("GET", lambda w: f"/compute/statement?org={w.org_a.id}",
             expect(403, anonymous=LOGIN, member=200, captain=200, operator=200, admin=200), "company A's"),
    ],
    "quota.statement_csv": [
        Case("GET", lambda w: f"/compute/statement.csv?org={w.org_a.id}",
             expect(403, anonymous=LOGIN, member=200, captain=200, operator=200, admin=200), "company A's"),
    ],
    "quota_api.api_statement": [
        Case("GET", lambda w: f"/api/v1/quota/statement?org={w.org_a.id}",
             expect(403, anonymous=401, member=200, captain=200, operator=200, admin=200), "company A's"),
    ],
    "quota.devices": [Case("GET", lambda w: "/ops/devices", expect(403, OPS_ONLY))],
    "quota_api.api_devices": [Case("GET", lambda w: "/api/v1/quota/devices", expect(403, OPS_ONLY, anonymous=401))],
    "quota.quota_admin": [Case("GET", lambda w: "/ops/quota", expect(403, OPS_ONLY))],
    "quota.month_csv": [Case("GET", lambda w: "/ops/statement.csv?month=2026-01", expect(403, OPS_ONLY))],
    "quota.vouchers_admin": [
        Case("GET", lambda w: "/ops/vouchers", expect(403, OPS_ONLY)),
        Case("POST", lambda w: ("/ops/vouchers", {}), expect(403, anonymous=LOGIN, operator=400, admin=400)),
    ],
    "quota.reserve": [
        Case("POST", lambda w: ("/ops/quota/reservations", {}), expect(403, anonymous=LOGIN, operator=400, admin=400))],
    "quota.set_quota": [
        Case("POST", lambda w: ("/ops/quota/team-quotas", {}), expect(403, anonymous=LOGIN, operator=400, admin=400))],
    "quota.set_price": [
        Case("POST", lambda w: ("/ops/quota/prices", {}), expect(403, anonymous=LOGIN, operator=400, admin=400))],
    "quota.cancel_reservation": [
        Case("POST", lambda w: (f"/ops/quota/reservations/{w.reservation().id}/cancel", {}),
             expect(403, anonymous=LOGIN, operator=302, admin=302)),
    ],
    "quota.revoke_voucher": [
        Case("POST", lambda w: (f"/ops/vouchers/{w.voucher().id}/revoke", {}),
             expect(403, anonymous=LOGIN, operator=302, admin=302)),
    ],
}


# ---------------------------------------------------------------- the guard
def _app_routes(app) -> set[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(rule.endpoint, method) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}}


def route_table_problems(app) -> list[str]:  # type: ignore[no-untyped-def]
    """What the access tables miss (a route without a row), keep in vain (a row without a route) or repeat."""
    routes = _app_routes(app)
    here = {(endpoint, case.method) for endpoint, cases in ROUTE_TABLE.items() for case in cases}
    elsewhere = {(endpoint, method): where for where, table in COVERED_ELSEWHERE.items()
                 for endpoint, methods in table.items() for method in methods}
    missing = sorted(r for r in routes if r not in here and r not in elsewhere)
    stale = sorted((set(here) | set(elsewhere)) - routes)
    twice = sorted(here & set(elsewhere))
    problems = [f"no access row for {m} {e} (add it to ROUTE_TABLE in {__name__})" for e, m in missing]
    problems += [f"a row for {m} {e}, which the app no longer has" for e, m in stale]
    problems += [f"{m} {e} has rows here and in {elsewhere[(e, m)]}" for e, m in twice]
    return problems


def test_every_route_has_a_row_in_an_access_table(app):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    assert all((root / where).is_file() for where in COVERED_ELSEWHERE), "COVERED_ELSEWHERE names a missing file"
    problems = route_table_problems(app)
    assert not problems, "\n" + "\n".join(problems)


def test_a_new_route_without_a_row_is_named(app):
    app.add_url_rule("/secret-export/<int:team_id>", "secret_export", lambda team_id: "", methods=["GET", "POST"])
    assert route_table_problems(app) == [
        f"no access row for GET secret_export (add it to ROUTE_TABLE in {__name__})",
        f"no access row for POST secret_export (add it to ROUTE_TABLE in {__name__})"]


# ---------------------------------------------------------------- the table
def _pop_flashes(client) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with client.session_transaction() as sess:
        return list(sess.pop("_flashes", []))


def outcome(client, resp) -> Outcome:  # type: ignore[no-untyped-def]
    """What the user got: a status, LOGIN (sent to log in) or REFUSED (sent back with an error message)."""
    flashes = _pop_flashes(client)
    if resp.status_code == 302:
        if urlsplit(resp.headers.get("Location", "")).path == "/login":
            return LOGIN
        if any(category == "error" for category, _message in flashes):
            return REFUSED
    return resp.status_code


def _clients(app, world: World) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Per role: a browser (session cookie) and an API client (Bearer token; the anonymous one sends a bad one)."""
    out = {}
    for role in ROLES:
        browser = app.test_client()
        if role != "anonymous":
            login(browser, world.users[role])
        token = world.tokens.get(role, "hub_not-a-token")
        out[role] = {"session": browser, "token": (app.test_client(), {"Authorization": f"Bearer {token}"})}
    return out


def test_access_table_over_every_route(app, world):
    adapter = app.url_map.bind("localhost")
    clients = _clients(app, world)
    mismatches, cells = [], 0
    for endpoint, cases in ROUTE_TABLE.items():
        for case in cases:
            for role in ROLES:
                built = case.request(world)
                url, data = (built, None) if isinstance(built, str) else built
                path = urlsplit(url).path
                matched, _args = adapter.match(path, method=case.method)
                assert matched == endpoint, f"{case.method} {url} goes to {matched}, not {endpoint}"
                ways = [("session", clients[role]["session"], {})]
                if path.startswith("/api/"):
                    api_client, headers = clients[role]["token"]
                    ways.append(("token", api_client, headers))
                for how, client, headers in ways:
                    resp = client.open(url, method=case.method, data=data, headers=headers,
                                       content_type=case.content_type)
                    got = outcome(client, resp)
                    cells += 1
                    if got != case.expected[role]:
                        note = f" ({case.note})" if case.note else ""
                        mismatches.append(f"{role:10} {how:7} {case.method:4} {endpoint} {url}{note}: "
                                          f"expected {case.expected[role]}, got {got}")
    assert cells > 500
    assert not mismatches, f"\n{len(mismatches)} of {cells} cells differ:\n" + "\n".join(mismatches)


# ---------------------------------------------------------------- the secrets
# Concrete values for every path argument a GET route may take; a new argument name fails the test by name.
ARG_VALUES: dict[str, Callable[[World], list[Any]]] = {
    "slug": lambda w: [w.ch.slug, w.draft.slug, w.noticed.slug],
    "submission_id": lambda w: [w.sub_b_hidden.id, w.sub_b_public.id, w.sub_a.id],
    "team_id": lambda w: [w.team_b.id, w.team_a.id],
    "phase_id": lambda w: [w.p_private.id, w.p_public.id],
    "split": lambda w: ["public", "private"],
    "code": lambda w: [w.owner.code, "en"],
    "token": lambda w: [w.team_b.invite_token],
    "scenario_id": lambda w: [w.ch.scenario_id],
    "application_id": lambda w: [1],
    "attachment_id": lambda w: [1],
}
# Query strings the routes read (phase of a board, organisation of a statement), tried on every route.
QUERIES: tuple[Callable[[World], str], ...] = (
    lambda w: "", lambda w: f"?phase={w.p_private.id}", lambda w: f"?org={w.org_b.id}")
# Who may read what: the organisers, the panel and the admin see logs and hidden scores; team B its own log.
# Operators read every log on their own page (/ops/submissions/<id>/log, audited) to chase failures.
MAY_READ_LOG_B = {"other_team", "gov_owner", "judge", "admin", "operator"}
MAY_READ_HIDDEN = {"gov_owner", "judge", "admin"}


def _get_urls(app, world: World) -> list[str]:  # type: ignore[no-untyped-def]
    from itertools import product

    urls, unknown = [], []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static" or "GET" not in (rule.methods or set()):
            continue
        names = sorted(rule.arguments)
        missing = [n for n in names if n not in ARG_VALUES]
        if missing:
            unknown.append(f"{rule.rule}: give ARG_VALUES a value for {', '.join(missing)}")
            continue
        for combo in product(*(ARG_VALUES[n](world) for n in names)):
            built = rule.build(dict(zip(names, combo)), append_unknown=False)
            assert built is not None, rule.rule
            for query in QUERIES:
                urls.append(built[1] + query(world))
    assert not unknown, "\n".join(unknown)
    return list(dict.fromkeys(urls))


def _readable(resp) -> str:  # type: ignore[no-untyped-def]
    """Everything a client gets: headers, body, and the files inside a zip download."""
    body = resp.get_data()
    parts = [str(resp.headers), body.decode("utf-8", "replace")]
    if body.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            parts += [archive.read(name).decode("utf-8", "replace") for name in archive.namelist()]
    return "\n".join(parts)


def _forbidden(role: str, world: World) -> dict[str, str]:
    s = world.secrets
    out = {s.truth: "the truth"}
    if role not in MAY_READ_LOG_B:
        out[s.log_b] = "team B's log"
    if role not in MAY_READ_HIDDEN:
        out.update(s.forms_of_hidden())
    return out


def test_the_secrets_are_there_for_those_who_may_read_them(app, world):
    """The control for the test below: the markers are real, so their absence there means something."""
    from pathlib import Path

    assert world.secrets.truth in Path(world.data_dir, "truth", str(world.ch.id), "private", "truth.csv").read_text()
    clients = _clients(app, world)
    team_b = clients["other_team"]["session"]
    assert world.secrets.log_b in team_b.get(f"/api/v1/submissions/{world.sub_b_hidden.id}/log").get_data(as_text=True)
    assert world.secrets.log_b in team_b.get(f"/submissions/{world.sub_b_hidden.id}").get_data(as_text=True)
    gov = clients["gov_owner"]["session"]
    board = gov.get(f"/api/v1/challenges/{world.ch.slug}/leaderboard?phase={world.p_private.id}").get_json()
    assert world.secrets.hidden_b in [row["score"] for row in board["rows"]]
    page = gov.get(f"/challenges/{world.ch.slug}/leaderboard?phase={world.p_private.id}").get_data(as_text=True)
    assert f"{world.secrets.hidden_b:.6g}" in page


def test_no_route_shows_another_teams_log_the_truth_or_a_hidden_score(app, world):
    urls = _get_urls(app, world)
    clients = _clients(app, world)
    leaks, reads = [], 0
    for role in ROLES:
        forbidden = _forbidden(role, world)
        for url in urls:
            ways = [("session", clients[role]["session"], {})]
            if url.startswith("/api/"):
                api_client, headers = clients[role]["token"]
                ways.append(("token", api_client, headers))
            for how, client, headers in ways:
                resp = client.get(url, headers=headers)
                _pop_flashes(client)
                reads += 1
                text = _readable(resp)
                found = sorted({what for needle, what in forbidden.items() if needle in text})
                if found:
                    leaks.append(f"{role:10} {how:7} GET {url} ({resp.status_code}) shows {', '.join(found)}")
    assert reads > 1000
    assert not leaks, f"\n{len(leaks)} leaks in {reads} reads:\n" + "\n".join(leaks)


# ---------------------------------------------------------------- API tokens
def test_a_token_from_the_account_page_opens_every_api_route_and_a_revoked_one_none(app, world):
    """A new token (POST /account) opens what the role may open; the one revoked on the page is refused (401)."""
    import re

    from hub import tokens

    clients = _clients(app, world)
    api_reads = [(endpoint, case) for endpoint, cases in ROUTE_TABLE.items() for case in cases
                 if case.method == "GET" and case.request(world).startswith("/api/")]  # type: ignore[union-attr]
    assert len(api_reads) >= 10
    mismatches = []
    for role in ("member", "other_team", "gov_owner", "judge", "operator", "admin"):
        browser = clients[role]["session"]
        page = browser.post("/account", data={"name": "CI", "scope": "submit", "days": "90"}).get_data(as_text=True)
        new = re.search(r'<code class="token">([^<]+)</code>', page)
        assert new is not None and new.group(1) != world.tokens[role], role
        old_id = tokens.lookup(world.session, world.tokens[role]).id
        assert browser.post(f"/account/tokens/{old_id}/revoke").status_code == 302
        _pop_flashes(browser)
        for token, which in ((world.tokens[role], "revoked"), (new.group(1), "new")):
            client = app.test_client()
            for endpoint, case in api_reads:
                url = case.request(world)
                got = outcome(client, client.get(url, headers={"Authorization": f"Bearer {token}"}))
                expected = 401 if which == "revoked" else case.expected[role]
                if got != expected:
                    mismatches.append(f"{role:10} {which} token GET {url}: expected {expected}, got {got}")
    assert not mismatches, "\n" + "\n".join(mismatches)
