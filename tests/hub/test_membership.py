"""Organisation membership as people meet it: register with no rights, ask to join, approval, refusal with a
reason, invitations, one membership at a time, leaving and removal ending access at once."""
from __future__ import annotations

import io

import pytest
from sqlmodel import select

from hub import membership
from hub.errors import Conflict, DomainError, Forbidden
from hub.models import AuditLog, Membership, OrgKind, Role, User
from hub.users import issue_api_token
from marketplace.attachments import AttachmentStore, Upload
from marketplace.models import Attachment
from tests.factories import (PASSWORD, PDF_BYTES, login, make_application, make_city, make_newcomer, make_org,
                             make_org_admin, make_scenario, make_user)


def _register(client, email: str, org_id: int | str = ""):  # type: ignore[no-untyped-def]
    return client.post("/register", data={"email": email, "display_name": "新人", "org": str(org_id),
                                          "password": PASSWORD, "confirm": PASSWORD})


def _user(session, email: str) -> User:  # type: ignore[no-untyped-def]
    session.expire_all()
    return session.exec(select(User).where(User.email == email)).one()


def _row(session, user: User) -> Membership | None:  # type: ignore[no-untyped-def]
    session.expire_all()
    return membership.open_membership(session, user.id)


@pytest.fixture
def company(app, session):  # type: ignore[no-untyped-def]
    """秦创-like: an administrator, an application with an attachment to a city's scenario."""
    org = make_org(session, name="秦创智能科技有限公司")
    admin = make_org_admin(session, org)
    store = AttachmentStore(app.config["DATA_DIR"], app.config["MAX_ATTACHMENT_BYTES"])
    scenario = make_scenario(session)
    application = make_application(session, scenario, admin, [Upload("方案.pdf", io.BytesIO(PDF_BYTES))], store,
                                   proposal="秦创的揭榜方案-机密")
    attachment = session.exec(select(Attachment).where(Attachment.application_id == application.id)).one()
    return org, admin, application, attachment


def test_register_gives_no_organisation_rights_and_the_request_is_pending_on_both_sides(app, client, session, company):
    org, admin, application, attachment = company
    resp = _register(client, "stranger@example.com", org.id)
    assert resp.status_code == 302
    stranger = _user(session, "stranger@example.com")
    assert stranger.org_id is None
    assert _row(session, stranger).status == "pending"

    account = client.get("/account").get_data(as_text=True)
    assert "等待其管理员批准" in account and org.name in account
    # Nothing of the company is open to the stranger.
    assert client.get(f"/applications/{application.id}").status_code == 403
    assert client.get(f"/attachments/{attachment.id}").status_code == 403
    assert "秦创的揭榜方案" not in client.get("/applications").get_data(as_text=True)
    assert client.post(f"/applications/{application.id}/withdraw").status_code == 403
    session.refresh(application)
    assert application.status != "withdrawn"

    admin_client = app.test_client()
    login(admin_client, admin)
    page = admin_client.get("/org/members").get_data(as_text=True)
    assert "stranger@example.com" in page and 'id="pending"' in page


def test_register_without_an_organisation_and_the_list_grants_nothing(client, session):
    city = make_city(session)
    assert city.name in client.get("/register").get_data(as_text=True)  # one may ask to join, nothing more
    assert _register(client, "alone@example.com").status_code == 302
    alone = _user(session, "alone@example.com")
    assert alone.org_id is None and _row(session, alone) is None
    assert "您不属于任何单位" in client.get("/account").get_data(as_text=True)


def test_refusal_needs_a_reason_and_the_person_reads_it(app, client, session, company):
    org, admin, _application, _attachment = company
    newcomer = make_newcomer(session)
    login(client, newcomer)
    client.post("/account/membership/request", data={"org": str(org.id)})
    row = _row(session, newcomer)
    assert row.status == "pending"

    admin_client = app.test_client()
    login(admin_client, admin)
    admin_client.post(f"/org/members/{row.id}/refuse", data={"reason": ""})
    assert _row(session, newcomer).status == "pending"  # no reason, no refusal
    admin_client.post(f"/org/members/{row.id}/refuse", data={"reason": "本公司未聘用此人"})
    assert _row(session, newcomer) is None
    page = client.get("/account").get_data(as_text=True)
    assert "本公司未聘用此人" in page and "已拒绝" in page
    assert _user(session, newcomer.email).org_id is None


def test_approval_by_the_organisations_administrator_grants_the_rights(app, client, session, company):
    org, admin, application, attachment = company
    newcomer = make_newcomer(session)
    login(client, newcomer)
    client.post("/account/membership/request", data={"org": str(org.id)})
    row = _row(session, newcomer)

    admin_client = app.test_client()
    login(admin_client, admin)
    assert admin_client.post(f"/org/members/{row.id}/approve").status_code == 302
    member = _user(session, newcomer.email)
    assert member.org_id == org.id and member.role == Role.TEAM
    assert client.get(f"/applications/{application.id}").status_code == 200
    assert client.get(f"/attachments/{attachment.id}").status_code == 200
    assert "秦创智能科技有限公司" in client.get("/account").get_data(as_text=True)
    actions = set(session.exec(select(AuditLog.action).where(AuditLog.object_type == "membership")))
    assert {"membership.request", "membership.approve"} <= actions


def test_only_the_organisations_own_administrator_decides(session, company):
    org, admin, _application, _attachment = company
    other_org = make_org(session)
    other_admin = make_org_admin(session, other_org)
    plain_member = make_user(session, Role.TEAM, org)
    platform_admin = make_user(session, Role.ADMIN)
    newcomer = make_newcomer(session)
    row = membership.request_to_join(session, newcomer, org.id)
    for who in (other_admin, plain_member, newcomer, platform_admin):
        with pytest.raises(Forbidden):
            membership.approve(session, who, org.id, row.id)
        # Acting "for" one's own organisation on another's row finds nothing.
    with pytest.raises(DomainError):
        membership.approve(session, other_admin, other_org.id, row.id)
    assert _row(session, newcomer).status == "pending" and _user(session, newcomer.email).org_id is None


def test_the_members_page_is_for_administrators_only(app, client, session, company):
    org, _admin, _application, _attachment = company
    newcomer = make_newcomer(session)
    row = membership.request_to_join(session, newcomer, org.id)
    for user in (make_user(session, Role.TEAM, org), newcomer, make_user(session, Role.ADMIN)):
        c = app.test_client()
        login(c, user)
        assert c.get("/org/members").status_code == 403
        assert c.post(f"/org/members/{row.id}/approve").status_code == 403
    assert _row(session, newcomer).status == "pending"


def test_removal_ends_the_open_session_and_the_api_token_at_once(app, client, session, company):
    org, admin, application, attachment = company
    member = make_user(session, Role.TEAM, org)
    token = issue_api_token(session, member)
    session.commit()
    login(client, member)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/applications/{application.id}").status_code == 200
    assert client.get(f"/compute/statement?org={org.id}").status_code == 200
    assert api.get(f"/api/v1/quota/statement?org={org.id}", headers=headers).status_code == 200

    admin_client = app.test_client()
    login(admin_client, admin)
    row = membership.active_membership(session, member.id)
    admin_client.post(f"/org/members/{row.id}/remove", data={"reason": "已离职"})

    assert client.get(f"/applications/{application.id}").status_code == 403
    assert client.get(f"/attachments/{attachment.id}").status_code == 403
    assert client.get(f"/compute/statement?org={org.id}").status_code == 403
    assert client.post(f"/applications/{application.id}/withdraw").status_code == 403
    assert api.get(f"/api/v1/quota/statement?org={org.id}", headers=headers).status_code == 403
    session.refresh(application)
    assert application.status != "withdrawn"
    assert "已离职" in client.get("/account").get_data(as_text=True)


def test_leaving_ends_access_at_once(client, session, company):
    org, _admin, application, _attachment = company
    member = make_user(session, Role.TEAM, org)
    login(client, member)
    assert client.get(f"/applications/{application.id}").status_code == 200
    assert client.post("/account/membership/leave").status_code == 302
    assert client.get(f"/applications/{application.id}").status_code == 403
    assert _user(session, member.email).org_id is None


def test_invitation_of_an_existing_account_accept_and_decline(app, client, session, company):
    org, admin, application, _attachment = company
    invitee = make_newcomer(session)
    admin_client = app.test_client()
    login(admin_client, admin)
    admin_client.post("/org/members/invite", data={"email": invitee.email.upper()})
    row = _row(session, invitee)
    assert row.status == "invited" and _user(session, invitee.email).org_id is None
    assert invitee.email in admin_client.get("/org/members").get_data(as_text=True)

    login(client, invitee)
    assert org.name in client.get("/account").get_data(as_text=True)
    assert client.get(f"/applications/{application.id}").status_code == 403  # invited is not a member yet
    client.post(f"/account/membership/{row.id}/accept")
    assert _user(session, invitee.email).org_id == org.id
    assert client.get(f"/applications/{application.id}").status_code == 200

    second = make_newcomer(session)
    row2 = membership.invite(session, admin, org.id, second.email)
    membership.decline_invitation(session, second, row2.id)
    assert _row(session, second) is None and _user(session, second.email).org_id is None


def test_invitation_to_an_address_without_an_account_waits_for_its_registration(app, client, session, company):
    org, admin, _application, _attachment = company
    row = membership.invite(session, admin, org.id, "later@example.com")
    assert row.user_id is None
    assert _register(client, "later@example.com").status_code == 302
    later = _user(session, "later@example.com")
    assert later.org_id is None  # registering accepts nothing by itself
    page = client.get("/account").get_data(as_text=True)
    assert f'id="accept-{row.id}"' in page
    client.post(f"/account/membership/{row.id}/accept")
    assert _user(session, "later@example.com").org_id == org.id


def test_an_administrator_cancels_an_invitation(session, company):
    org, admin, _application, _attachment = company
    invitee = make_newcomer(session)
    row = membership.invite(session, admin, org.id, invitee.email)
    membership.cancel_invitation(session, admin, org.id, row.id)
    with pytest.raises(DomainError):
        membership.accept_invitation(session, invitee, row.id)
    assert _user(session, invitee.email).org_id is None


def test_one_membership_at_a_time(session, company):
    org, admin, _application, _attachment = company
    other = make_org(session)
    other_admin = make_org_admin(session, other)
    person = make_newcomer(session)
    membership.request_to_join(session, person, org.id)
    with pytest.raises(Conflict):
        membership.request_to_join(session, person, other.id)
    with pytest.raises(Conflict):
        membership.invite(session, other_admin, other.id, person.email)
    member = make_user(session, Role.TEAM, org)
    with pytest.raises(Conflict):
        membership.request_to_join(session, member, other.id)
    # The database says so too, whatever the service is asked.
    session.add(Membership(user_id=member.id, email=member.email, org_id=other.id, status="pending"))
    with pytest.raises(Exception):
        session.commit()
    session.rollback()


def test_withdraw_a_request_then_ask_elsewhere(client, session, company):
    org, _admin, _application, _attachment = company
    other = make_org(session)
    person = make_newcomer(session)
    login(client, person)
    client.post("/account/membership/request", data={"org": str(org.id)})
    row = _row(session, person)
    client.post(f"/account/membership/{row.id}/withdraw")
    assert _row(session, person) is None
    client.post("/account/membership/request", data={"org": str(other.id)})
    assert _row(session, person).org_id == other.id


def test_administrators_name_more_administrators_and_cannot_remove_themselves(session, company):
    org, admin, _application, _attachment = company
    member = make_user(session, Role.TEAM, org)
    row = membership.active_membership(session, member.id)
    membership.set_admin(session, admin, org.id, row.id, True)
    assert membership.can_manage(session, _user(session, member.email), org.id)
    own = membership.active_membership(session, admin.id)
    with pytest.raises(DomainError):
        membership.remove(session, admin, org.id, own.id, "自己移除自己")
    # A removed administrator manages nothing any more.
    membership.remove(session, admin, org.id, row.id, "岗位调整")
    assert not membership.can_manage(session, _user(session, member.email), org.id)


def test_joining_a_city_makes_government_staff(session):
    city = make_city(session)
    city_admin = make_org_admin(session, city, Role.GOV)
    person = make_newcomer(session)
    row = membership.request_to_join(session, person, city.id)
    membership.approve(session, city_admin, city.id, row.id)
    person = _user(session, person.email)
    assert person.role == Role.GOV and person.org_id == city.id


def test_cli_create_user_grants_an_active_membership_and_set_org_admin_names_the_first_administrator(app, session):
    org = make_org(session, code="qc_cli")
    runner = app.test_cli_runner()
    res = runner.invoke(args=["create-user", "boss@example.com", "--role", "team", "--org", "qc_cli",
                              "--password", "long-enough-9"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    boss = _user(session, "boss@example.com")
    assert boss.org_id == org.id and not membership.can_manage(session, boss, org.id)
    res = runner.invoke(args=["set-org-admin", "--org", "qc_cli", "boss@example.com"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert membership.can_manage(session, _user(session, "boss@example.com"), org.id)
    res = runner.invoke(args=["set-org-admin", "--org", "qc_cli", "nobody@example.com"])
    assert res.exit_code != 0


def test_demo_organisations_have_administrators(session):
    from hub import demo

    demo.seed(session, with_domains=False)
    for code in ("qinchuang_ai", "konggang", "xjtu"):
        org = session.exec(select(membership.Organisation).where(membership.Organisation.code == code)).one()
        admins = [m for m, _u in membership.members_of(session, org.id) if m.is_admin]
        assert admins, code
    qc = _user(session, "team.qinchuang2@hub.example")
    assert qc.org_id is not None and not membership.can_manage(session, qc, qc.org_id)
    assert session.exec(select(membership.Organisation).where(
        membership.Organisation.kind == OrgKind.CITY)).first() is not None


# ---------------------------------------------------------------- the access table of the membership routes
def _outcome(client, resp):  # type: ignore[no-untyped-def]
    with client.session_transaction() as sess:
        flashes = list(sess.pop("_flashes", []))
    if resp.status_code == 302 and "/login" in resp.headers["Location"]:
        return "LOGIN"
    if resp.status_code == 302 and any(category == "error" for category, _m in flashes):
        return "REFUSED"
    return resp.status_code


def test_membership_routes_access_table(app, session, company):
    """Every membership route × anonymous / newcomer / plain member / another company's administrator /
    platform admin / the company's administrator (the rows the route-table guard points here for)."""
    org, admin, _application, _attachment = company
    other_org = make_org(session)
    people = {"newcomer": make_newcomer(session), "member": make_user(session, Role.TEAM, org),
              "other_admin": make_org_admin(session, other_org), "platform_admin": make_user(session, Role.ADMIN),
              "admin": admin}
    seq = iter(range(10_000))

    def fresh_request() -> int:
        return membership.request_to_join(session, make_newcomer(session), org.id).id

    def fresh_member() -> int:
        return membership.active_membership(session, make_user(session, Role.TEAM, org).id).id

    #        (method, url, form, anonymous, newcomer, member, other_admin, platform_admin, admin)
    table = [
        ("GET", lambda: "/org/members", None, "LOGIN", 403, 403, 200, 403, 200),  # other_admin: its own page
        ("POST", lambda: "/org/members/invite", lambda: {"email": f"inv{next(seq)}@example.com"},
         "LOGIN", 403, 403, 302, 403, 302),                                        # other_admin: for its own org
        ("POST", lambda: f"/org/members/{fresh_request()}/approve", None, "LOGIN", 403, 403, "REFUSED", 403, 302),
        ("POST", lambda: f"/org/members/{fresh_request()}/refuse", lambda: {"reason": "不认识此人"},
         "LOGIN", 403, 403, "REFUSED", 403, 302),
        ("POST", lambda: f"/org/members/{fresh_member()}/remove", lambda: {"reason": "已离职"},
         "LOGIN", 403, 403, "REFUSED", 403, 302),
        ("POST", lambda: f"/org/members/{fresh_member()}/make_admin", None, "LOGIN", 403, 403, "REFUSED", 403, 302),
        ("POST", lambda: f"/org/members/{fresh_request()}/nonsense", None, "LOGIN", 404, 404, 404, 404, 404),
    ]
    mismatches = []
    for method, url_of, data_of, *expected in table:
        for who, want in zip(("anonymous", *people), expected):
            client = app.test_client()
            if who != "anonymous":
                login(client, people[who])
            url = url_of()
            got = _outcome(client, client.open(url, method=method, data=data_of() if data_of else {}))
            if got != want:
                mismatches.append(f"{who:14} {method} {url}: expected {want}, got {got}")
    assert not mismatches, "\n" + "\n".join(mismatches)

    # The person's own routes: anyone logged in, refused with a message when there is nothing to act on.
    for url in ("/account/membership/request", "/account/membership/999999/withdraw",
                "/account/membership/999999/accept", "/account/membership/999999/decline",
                "/account/membership/leave"):
        anonymous = app.test_client()
        assert _outcome(anonymous, anonymous.post(url)) == "LOGIN"
        client = app.test_client()
        login(client, make_newcomer(session))
        assert _outcome(client, client.post(url)) == "REFUSED", url
    client = app.test_client()
    login(client, people["member"])
    assert client.post("/account/membership/999999/nonsense").status_code == 404
