"""The attack of the issue "Anyone can act for any company": a stranger registers, picks 秦创智能 and acts for it.

Every route that shows or changes something of one organisation (揭榜 applications and their attachments, the
teams led for it, their registrations and submissions, its compute statement, its vouchers and quota) is walked,
web and API, reads and unsafe actions, by
- a person whose request to join is still pending,
- a former member, right after removal, with the browser session and API token opened while a member,
- a former captain of the company's team, right after removal;
each is refused (403 / 404 / sent back with an error) and nothing changes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import func, select

from challenges.models import Registration, Submission, Team, TeamMember
from evaluator.quota.models import TeamQuota, Voucher
from hub import membership
from hub.models import Role, User
from hub.users import issue_api_token
from marketplace.attachments import AttachmentStore, Upload
from marketplace.models import Application, Attachment
from tests.factories import PDF_BYTES, login, make_application, make_newcomer, make_org_admin, make_scenario
from tests.security.conftest import World
from tests.security.test_route_table import LOGIN, REFUSED, outcome

SECRET = "秦创揭榜方案-内部资料"
REFUSALS = {403, 404, 401, LOGIN, REFUSED}


@dataclass
class Company:
    w: World
    application: Application
    attachment: Attachment
    voucher: Voucher
    admin: User


@pytest.fixture
def company(app, world) -> Company:  # type: ignore[no-untyped-def]
    """Company A of the route-table world, with an administrator, an application with an attachment, a voucher
    and a quota for the whole company (its team, registration and submissions are there already)."""
    s = world.session
    admin = world.users["captain"]
    membership.name_first_admin(s, None, world.org_a.code, admin.email)
    store = AttachmentStore(app.config["DATA_DIR"], app.config["MAX_ATTACHMENT_BYTES"])
    application = make_application(s, make_scenario(s), admin, [Upload("方案.pdf", io.BytesIO(PDF_BYTES))], store,
                                   proposal=SECRET)
    attachment = s.exec(select(Attachment).where(Attachment.application_id == application.id)).one()
    s.add(TeamQuota(org_id=world.org_a.id, allowed_seconds=3600.0))
    s.commit()
    return Company(world, application, attachment, world.voucher(), admin)


def _routes(c: Company) -> list[tuple[str, str, dict[str, Any] | None, str | None]]:
    """(method, url, form, content type) of every route scoped to company A."""
    w, org, team = c.w, c.w.org_a, c.w.team_a
    return [
        ("GET", f"/applications/{c.application.id}", None, None),
        ("GET", f"/attachments/{c.attachment.id}", None, None),
        ("POST", f"/applications/{c.application.id}/withdraw", {}, None),
        ("GET", f"/scenarios/{c.application.scenario_id}/apply", None, None),
        ("POST", f"/scenarios/{c.application.scenario_id}/apply",
         {"proposal": "冒名申报", "tech_route": "t", "indicator_plan": "i"}, None),
        ("GET", f"/teams/{team.id}", None, None),
        ("GET", f"/teams/{team.id}/registration", None, None),
        ("POST", f"/teams/{team.id}/registration", {"tech_route": "冒名报名的技术路线，足够长的描述",
                                                     "indicator_plan": "冒名报名的指标方案，足够长的描述"}, None),
        ("POST", f"/teams/{team.id}/invite", {"email": w.spare.email}, None),
        ("POST", f"/teams/{team.id}/new_link", {}, None),
        ("POST", f"/teams/{team.id}/approve/{w.spare.id}", {}, None),
        ("POST", f"/teams/join/{team.invite_token}", {}, None),
        ("POST", f"/challenges/{w.arena().slug}/teams/new", {"name": "冒名队伍"}, None),
        ("GET", f"/submissions/{w.sub_a.id}", None, None),
        ("GET", f"/api/v1/submissions/{w.sub_a.id}", None, None),
        ("GET", f"/api/v1/submissions/{w.sub_a.id}/log", None, None),
        ("POST", f"/challenges/{w.ch.slug}/submit", {"reference": "registry.invalid/m:1"}, "multipart/form-data"),
        ("POST", f"/api/v1/challenges/{w.ch.slug}/submissions", {"reference": "registry.invalid/m:1"},
         "multipart/form-data"),
        ("GET", f"/compute/vouchers?org={org.id}", None, None),
        ("GET", "/compute/vouchers", None, None),
        ("GET", f"/compute/statement?org={org.id}", None, None),
        ("GET", "/compute/statement", None, None),
        ("GET", f"/compute/statement.csv?org={org.id}", None, None),
        ("GET", f"/api/v1/quota/statement?org={org.id}", None, None),
        ("GET", "/api/v1/quota/statement", None, None),
    ]


# Pages everyone of the role may open: they must show nothing of company A.
LISTS = ("/applications", "/my/teams", "/compute/usage", "/api/v1/quota/usage", "/account",
         "/challenges/{slug}/submissions/mine", "/scenarios/{scenario}")


def _counts(c: Company) -> tuple[Any, ...]:
    s = c.w.session
    s.expire_all()
    n = lambda model: s.exec(select(func.count()).select_from(model)).one()  # noqa: E731
    return (n(Application), n(Team), n(TeamMember), n(Registration), n(Submission), s.get(Application, c.application.id).status,
            s.get(Team, c.w.team_a.id).captain_id, s.get(Team, c.w.team_a.id).invite_token,
            s.get(Registration, s.exec(select(Registration.id).where(Registration.team_id == c.w.team_a.id)).one()).tech_route)


def _refusal(client, resp) -> Any:  # type: ignore[no-untyped-def]
    """outcome(), where a page or JSON body that says why it refused (the form again, with the error) is REFUSED."""
    with client.session_transaction() as sess:
        errors = [m for category, m in sess.get("_flashes", []) if category == "error"]
    got = outcome(client, resp)
    if got in (200, 400):
        body = resp.get_data(as_text=True)
        said_why = bool(errors) or 'class="error"' in body or "flash-error" in body
        if resp.is_json:
            said_why = "error" in (resp.get_json() or {})
        if said_why:
            return REFUSED
    return got


def _walk(app, c: Company, who: User, browser, token: str) -> list[str]:  # type: ignore[no-untyped-def]
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    problems = []
    before = _counts(c)
    for method, url, data, content_type in _routes(c):
        ways = [("session", browser, {})] + ([("token", api, headers)] if url.startswith("/api/") else [])
        for how, client, hdrs in ways:
            got = _refusal(client, client.open(url, method=method, data=data, headers=hdrs,
                                               content_type=content_type))
            if got not in REFUSALS:
                problems.append(f"{how:7} {method:4} {url}: {got}")
    for url in LISTS:
        url = url.format(slug=c.w.ch.slug, scenario=c.application.scenario_id)
        ways = [("session", browser, {})] + ([("token", api, headers)] if url.startswith("/api/") else [])
        for how, client, hdrs in ways:
            resp = client.get(url, headers=hdrs)
            text = resp.get_data(as_text=True)
            for needle, what in ((SECRET, "the application"), (c.w.team_a.name, "team A"),
                                 (c.voucher.code, "the voucher"), (f"/applications/{c.application.id}/withdraw",
                                                                   "the withdraw button")):
                if needle in text:
                    problems.append(f"{how:7} GET  {url} ({resp.status_code}) shows {what}")
    if _counts(c) != before:
        problems.append(f"something changed: {before} -> {_counts(c)}")
    return problems


def test_a_pending_member_can_see_and_do_nothing_for_the_company(app, company):
    c = company
    s = c.w.session
    browser = app.test_client()
    resp = browser.post("/register", data={"email": "stranger@evil.example", "display_name": "冒名者",
                                           "org": str(c.w.org_a.id), "password": "correct-horse-9",
                                           "confirm": "correct-horse-9"})
    assert resp.status_code == 302
    stranger = s.exec(select(User).where(User.email == "stranger@evil.example")).one()
    assert membership.open_membership(s, stranger.id).status == "pending"
    token = issue_api_token(s, stranger)
    s.commit()
    problems = _walk(app, c, stranger, browser, token)
    assert not problems, "\n" + "\n".join(problems)


def test_a_removed_member_loses_everything_at_once_session_and_token(app, company):
    c = company
    s = c.w.session
    member = c.w.users["member"]  # in team A, with the world's API token
    browser = app.test_client()
    login(browser, member)
    assert browser.get(f"/applications/{c.application.id}").status_code == 200  # the control
    assert browser.get(f"/teams/{c.w.team_a.id}").status_code == 200
    row = membership.active_membership(s, member.id)
    membership.remove(s, c.admin, c.w.org_a.id, row.id, "已离职")
    problems = _walk(app, c, member, browser, c.w.tokens["member"])
    assert not problems, "\n" + "\n".join(problems)


def test_a_removed_captain_no_longer_leads_the_companys_team(app, company):
    c = company
    s = c.w.session
    captain = c.w.users["captain"]
    other_admin = c.w.users["member"]
    membership.set_admin(s, c.admin, c.w.org_a.id, membership.active_membership(s, other_admin.id).id, True)
    browser = app.test_client()
    login(browser, captain)
    assert browser.get(f"/teams/{c.w.team_a.id}").status_code == 200  # the control
    membership.remove(s, other_admin, c.w.org_a.id, membership.active_membership(s, captain.id).id, "已离职")
    s.expire_all()
    team = s.get(Team, c.w.team_a.id)
    assert team.captain_id == other_admin.id  # the company's remaining member leads its team now
    problems = _walk(app, c, captain, browser, c.w.tokens["captain"])
    assert not problems, "\n" + "\n".join(problems)


def test_leaving_ends_the_team_ties_too(app, company):
    c = company
    s = c.w.session
    member = c.w.users["member"]
    browser = app.test_client()
    login(browser, member)
    assert browser.post("/account/membership/leave").status_code == 302
    assert browser.get(f"/teams/{c.w.team_a.id}").status_code == 404
    s.expire_all()
    assert s.exec(select(TeamMember).where(TeamMember.user_id == member.id,
                                           TeamMember.team_id == c.w.team_a.id)).first() is None


def test_a_newcomer_cannot_be_made_a_member_by_anyone_but_the_company(app, company):
    """The platform admin and another company's members cannot approve; the company's administrator can."""
    c = company
    s = c.w.session
    newcomer = make_newcomer(s)
    row = membership.request_to_join(s, newcomer, c.w.org_a.id)
    for role in ("other_team", "admin", "member", "gov_owner"):
        browser = app.test_client()
        login(browser, c.w.users[role])
        got = outcome(browser, browser.post(f"/org/members/{row.id}/approve"))
        assert got in REFUSALS, role
    s.expire_all()
    assert s.get(User, newcomer.id).org_id is None
    browser = app.test_client()
    login(browser, c.admin)
    assert outcome(browser, browser.post(f"/org/members/{row.id}/approve")) == 302
    s.expire_all()
    assert s.get(User, newcomer.id).org_id == c.w.org_a.id
    assert Role.TEAM == s.get(User, newcomer.id).role


def test_a_removed_lone_captain_cannot_act_for_the_team_left_behind(app, company):
    c = company
    s = c.w.session
    w = c.w
    lone = w.users["other_team"]  # captain of team B, alone in it, of company B
    boss = make_org_admin(s, w.org_b)  # company B's administrator, a colleague made for the purpose
    browser = app.test_client()
    login(browser, lone)
    assert browser.get(f"/teams/{w.team_b.id}").status_code == 200  # the control
    membership.remove(s, boss, w.org_b.id, membership.active_membership(s, lone.id).id, "已离职")
    before = (s.get(Team, w.team_b.id).invite_token, s.exec(select(func.count()).select_from(Submission)).one())
    for method, url, data in (("GET", f"/teams/{w.team_b.id}", None),
                              ("POST", f"/teams/{w.team_b.id}/invite", {"email": w.spare.email}),
                              ("POST", f"/teams/{w.team_b.id}/new_link", {}),
                              ("POST", f"/teams/{w.team_b.id}/registration",
                               {"tech_route": "冒名报名的技术路线，足够长的描述", "indicator_plan": "冒名报名的指标方案，足够长的描述"}),
                              ("POST", f"/challenges/{w.ch.slug}/submit", {"reference": "registry.invalid/m:1"})):
        got = _refusal(browser, browser.open(url, method=method, data=data,
                                             content_type="multipart/form-data" if "submit" in url else None))
        assert got in REFUSALS, f"{method} {url}: {got}"
    s.expire_all()
    assert (s.get(Team, w.team_b.id).invite_token, s.exec(select(func.count()).select_from(Submission)).one()) == before


def test_removed_government_staff_lose_the_citys_desk_and_its_audit_log(app, company):
    """A city is an organisation too: its staff, once removed, see nothing of the city and not the whole audit log."""
    w = company.w
    s = w.session
    gov = w.users["gov_owner"]
    city_admin = make_org_admin(s, w.owner, Role.GOV)
    browser = app.test_client()
    login(browser, gov)
    assert browser.get(f"/challenges/{w.ch.slug}/registrations").status_code == 200  # the control
    membership.remove(s, city_admin, w.owner.id, membership.active_membership(s, gov.id).id, "调离岗位")
    marker = "membership.remove"  # the audit line just written, of the city's own log
    problems = []
    for method, url, data in (
            ("GET", "/audit", None),
            ("GET", f"/challenges/{w.ch.slug}/edit", None),
            ("GET", f"/challenges/{w.ch.slug}/registrations", None),
            ("GET", f"/challenges/{w.ch.slug}/datasets", None),
            ("GET", f"/challenges/{w.ch.slug}/judges", None),
            ("GET", f"/challenges/{w.draft.slug}", None),
            ("GET", f"/scenarios/{company.application.scenario_id}/applications", None),
            ("POST", f"/registrations/{w.pending_registration().id}/review", {"decision": "approve"}),
            ("POST", f"/challenges/{w.ch.slug}/status", {"action": "close"}),
            ("POST", "/scenarios/new", {"title": "冒名场景", "city": w.owner.code})):
        resp = browser.open(url, method=method, data=data)
        got = _refusal(browser, resp)
        if got not in REFUSALS or marker in resp.get_data(as_text=True):
            problems.append(f"{method} {url}: {got}")
    assert not problems, "\n" + "\n".join(problems)
