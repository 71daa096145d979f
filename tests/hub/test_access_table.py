"""Every auth and marketplace route × every kind of user → 200 / 302 / 403 / 404 / redirect to login.

Routes that change state get fresh objects for each user, so one user's success does not decide the next
user's answer. A mismatch report lists every cell that differs from the table.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import select

from hub.models import Organisation, Role, User
from marketplace.attachments import AttachmentStore, Upload
from marketplace.models import Attachment
from tests.factories import PDF_BYTES, login, make_application, make_city, make_org, make_scenario, make_user, scenario_input

ROLES = ("anonymous", "team", "team_other", "gov_owner", "gov_other", "judge", "operator", "admin")
LOGIN = "login"


@dataclass
class World:
    session: Any
    users: dict[str, User]
    owner: Organisation
    published: Any
    draft: Any
    application: Any
    attachment: Attachment
    store: AttachmentStore


@pytest.fixture
def world(app, session) -> World:  # type: ignore[no-untyped-def]
    owner, other = make_city(session), make_city(session)
    team_org = make_org(session)
    users = {
        "team": make_user(session, Role.TEAM, team_org),
        "team_other": make_user(session, Role.TEAM),
        "gov_owner": make_user(session, Role.GOV, owner),
        "gov_other": make_user(session, Role.GOV, other),
        "judge": make_user(session, Role.JUDGE),
        "operator": make_user(session, Role.OPERATOR),
        "admin": make_user(session, Role.ADMIN),
    }
    store = AttachmentStore(app.config["DATA_DIR"], app.config["MAX_ATTACHMENT_BYTES"])
    published = make_scenario(session, owner, users["gov_owner"])
    draft = make_scenario(session, owner, users["gov_owner"], status="draft")
    application = make_application(session, published, users["team"], [Upload("a.pdf", io.BytesIO(PDF_BYTES))], store)
    attachment = session.exec(select(Attachment)).one()
    return World(session, users, owner, published, draft, application, attachment, store)


def _fresh_token(w: World) -> int:
    from hub import tokens

    return tokens.lookup(w.session, tokens.issue(w.session, w.users["team"], "t", "read", 30)).id


def _fresh_published(w: World) -> int:
    return make_scenario(w.session, w.owner, w.users["gov_owner"]).id


def _fresh_draft(w: World) -> int:
    return make_scenario(w.session, w.owner, w.users["gov_owner"], status="draft").id


def _fresh_application(w: World) -> int:
    s = make_scenario(w.session, w.owner, w.users["gov_owner"])
    return make_application(w.session, s, w.users["team"]).id


def _scenario_form(w: World) -> dict[str, str]:
    data = scenario_input()
    return {**{k: str(v) for k, v in vars(data).items() if v is not None}, "city": w.owner.code}


ALL_200 = dict.fromkeys(ROLES, 200)


def row(anonymous: Any, team: Any, team_other: Any, gov_owner: Any, gov_other: Any, judge: Any, operator: Any,
        admin: Any) -> dict[str, Any]:
    return dict(zip(ROLES, (anonymous, team, team_other, gov_owner, gov_other, judge, operator, admin)))


# (method, url builder, form-data builder or None, expected per role)
Route = tuple[str, Callable[[World], str], Callable[[World], dict] | None, dict[str, Any]]  # type: ignore[type-arg]

PAGES: list[Route] = [
    ("GET", lambda w: "/", None, ALL_200),
    ("GET", lambda w: "/scenarios", None, ALL_200),
    ("GET", lambda w: f"/cities/{w.owner.code}", None, ALL_200),
    ("GET", lambda w: f"/scenarios/{w.published.id}", None, ALL_200),
    ("GET", lambda w: f"/scenarios/{w.draft.id}", None, row(404, 404, 404, 200, 404, 404, 404, 200)),
    ("GET", lambda w: "/scenarios/new", None, row(LOGIN, 403, 403, 200, 200, 403, 403, 200)),
    # Another city's staff may open the form, but cannot pick the owning city: the post is refused.
    ("POST", lambda w: "/scenarios/new", _scenario_form, row(LOGIN, 403, 403, 302, 400, 403, 403, 302)),
    ("GET", lambda w: f"/scenarios/{w.published.id}/edit", None, row(LOGIN, 403, 403, 200, 403, 403, 403, 200)),
    ("POST", lambda w: f"/scenarios/{_fresh_published(w)}/edit", _scenario_form,
     row(LOGIN, 403, 403, 302, 403, 403, 403, 302)),
    ("POST", lambda w: f"/scenarios/{_fresh_draft(w)}/status", lambda w: {"to": "published"},
     row(LOGIN, 403, 403, 302, 404, 403, 403, 302)),
    ("POST", lambda w: f"/scenarios/{_fresh_published(w)}/status", lambda w: {"to": "closed"},
     row(LOGIN, 403, 403, 302, 403, 403, 403, 302)),
    ("GET", lambda w: f"/scenarios/{w.published.id}/apply", None, row(LOGIN, 200, 200, 403, 403, 403, 403, 403)),
    ("POST", lambda w: f"/scenarios/{_fresh_published(w)}/apply",
     lambda w: {"proposal": "p", "tech_route": "t", "indicator_plan": "i"}, row(LOGIN, 302, 302, 403, 403, 403, 403, 403)),
    ("GET", lambda w: f"/scenarios/{w.published.id}/applications", None, row(LOGIN, 403, 403, 200, 403, 403, 403, 200)),
    ("GET", lambda w: "/applications", None, row(LOGIN, 200, 200, 200, 200, 403, 403, 403)),
    ("GET", lambda w: f"/applications/{w.application.id}", None, row(LOGIN, 200, 403, 200, 403, 403, 403, 200)),
    ("POST", lambda w: f"/applications/{_fresh_application(w)}/review", lambda w: {"decision": "accept"},
     row(LOGIN, 403, 403, 302, 403, 403, 403, 302)),
    ("POST", lambda w: f"/applications/{_fresh_application(w)}/withdraw", lambda w: {},
     row(LOGIN, 302, 403, 403, 403, 403, 403, 403)),
    ("GET", lambda w: f"/attachments/{w.attachment.id}", None, row(LOGIN, 200, 403, 200, 403, 403, 403, 403)),
]

API: list[Route] = [
    ("GET", lambda w: "/api/v1/scenarios", None, ALL_200),
    ("GET", lambda w: f"/api/v1/scenarios/{w.published.id}", None, ALL_200),
    ("GET", lambda w: f"/api/v1/scenarios/{w.draft.id}", None, row(404, 404, 404, 200, 404, 404, 404, 200)),
    ("GET", lambda w: "/api/v1/cities", None, ALL_200),
]

# Last: /lang changes the session's language and /logout ends it.
AUTH: list[Route] = [
    ("GET", lambda w: "/login", None, ALL_200),
    ("GET", lambda w: "/register", None, ALL_200),
    ("GET", lambda w: "/account", None, row(LOGIN, 200, 200, 200, 200, 200, 200, 200)),
    ("POST", lambda w: "/account", lambda w: {"name": "ci", "scope": "read", "days": "30"},
     row(LOGIN, 200, 200, 200, 200, 200, 200, 200)),
    ("POST", lambda w: f"/account/tokens/{_fresh_token(w)}/revoke", lambda w: {},  # the team user's token
     row(LOGIN, 302, 404, 404, 404, 404, 404, 404)),
    ("POST", lambda w: "/account/password", lambda w: {"current_password": "wrong-password", "password": "x",
                                                       "confirm": "x"}, row(LOGIN, 400, 400, 400, 400, 400, 400, 400)),
    ("GET", lambda w: "/lang/en", None, dict.fromkeys(ROLES, 302)),
    ("POST", lambda w: "/logout", lambda w: {}, row(LOGIN, 302, 302, 302, 302, 302, 302, 302)),
]


def _outcome(resp) -> Any:  # type: ignore[no-untyped-def]
    if resp.status_code == 302 and "/login" in resp.headers.get("Location", ""):
        return LOGIN
    return resp.status_code


def _check(app, world: World, routes: list[Route]) -> None:  # type: ignore[no-untyped-def]
    mismatches = []
    for role in ROLES:
        client = app.test_client()
        if role != "anonymous":
            login(client, world.users[role])
        for method, url_of, data_of, expected in routes:
            url = url_of(world)
            data = data_of(world) if data_of else None
            resp = client.open(url, method=method, data=data)
            got = _outcome(resp)
            if got != expected[role]:
                mismatches.append(f"{role:11} {method} {url}: expected {expected[role]}, got {got}")
    assert not mismatches, "\n" + "\n".join(mismatches)


def test_marketplace_pages_access_table(app, world):
    _check(app, world, PAGES)


def test_api_access_table(app, world):
    _check(app, world, API)


def test_auth_routes_access_table(app, world):
    _check(app, world, AUTH)
