"""揭榜 applications: who may apply, one active per organisation, review, withdraw, attachments."""
from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from sqlmodel import select

from hub.errors import Conflict, DomainError, Forbidden, NotFound
from hub.models import AuditLog, OrgRelation, Role, User
from marketplace import applications as apps
from marketplace.attachments import AttachmentStore, Upload
from marketplace.models import Application, Attachment
from tests.factories import (PDF_BYTES, PNG_BYTES, make_application, make_city, make_scenario, make_user,
                             ooxml_bytes)


@pytest.fixture
def store(tmp_path):  # type: ignore[no-untyped-def]
    return AttachmentStore(tmp_path / "data", max_bytes=64 * 1024)


def _files(store: AttachmentStore) -> list:  # type: ignore[type-arg]
    return sorted(store.root.iterdir()) if store.root.exists() else []


def _gov(session, scenario) -> User:  # type: ignore[no-untyped-def]
    return session.get(User, scenario.created_by)


def test_first_application_opens_the_call_and_is_in_the_history(session, store):
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    a = make_application(session, s, team, [Upload("方案.pdf", io.BytesIO(PDF_BYTES))], store)
    session.refresh(s)
    assert a.status == "submitted" and a.applicant_org_id == team.org_id
    assert s.status == "open_call"
    from marketplace.scenarios import history
    last = history(session, s.id)[-1]
    assert (last.from_status, last.to_status, last.actor_id) == ("published", "open_call", team.id)
    att = session.exec(select(Attachment)).one()
    assert att.filename == "方案.pdf" and att.size == len(PDF_BYTES)
    assert att.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
    assert att.content_type == "application/pdf"
    stored = _files(store)
    assert [p.name for p in stored] == [att.stored_name] and stored[0].read_bytes() == PDF_BYTES
    assert "方案" not in att.stored_name  # random name on disk


def test_one_active_application_per_organisation(session):
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    colleague = make_user(session, Role.TEAM, _org(session, team))
    first = make_application(session, s, team)
    with pytest.raises(Conflict, match="already applied"):
        make_application(session, s, colleague)
    apps.review(session, _gov(session, s), first.id, "reject", "指标方案不完整")
    again = make_application(session, s, colleague)  # after a rejection the organisation may try again
    assert again.status == "submitted"


def _org(session, user):  # type: ignore[no-untyped-def]
    from hub.models import Organisation
    return session.get(Organisation, user.org_id)


@pytest.mark.parametrize("status", ["under_review", "closed"])
def test_no_application_outside_the_call(session, status):
    s = make_scenario(session, status=status)
    with pytest.raises(Conflict, match="not taking applications"):
        make_application(session, s)
    assert session.exec(select(Application)).all() == []


def test_draft_is_not_found_and_deadline_is_enforced(session):
    with pytest.raises(NotFound):
        make_application(session, make_scenario(session, status="draft"))
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    with pytest.raises(Conflict, match="deadline"):
        apps.apply(session, team, s.id, apps.ApplicationInput("p", "t", "i"), [], None,
                   today=s.deadline + timedelta(days=1))


@pytest.mark.parametrize("role", [Role.GOV, Role.JUDGE, Role.OPERATOR, Role.ADMIN])
def test_only_teams_apply(session, role):
    s = make_scenario(session)
    with pytest.raises(Forbidden):
        make_application(session, s, make_user(session, role))


@pytest.mark.parametrize("fields, field", [
    ({"proposal": ""}, "proposal"), ({"tech_route": " "}, "tech_route"), ({"indicator_plan": ""}, "indicator_plan"),
    ({"proposal": "x" * 20_001}, "proposal"), ({"budget_yuan": -5}, "budget_yuan"),
])
def test_bad_application_input_changes_nothing(session, store, fields, field):
    s = make_scenario(session)
    with pytest.raises(DomainError) as err:
        make_application(session, s, uploads=[Upload("a.pdf", io.BytesIO(PDF_BYTES))], store=store, **fields)
    assert err.value.field == field
    session.refresh(s)
    assert s.status == "published" and session.exec(select(Application)).all() == [] and _files(store) == []


@pytest.mark.parametrize("name, data, message", [
    ("virus.exe", b"MZ\x90\x00", "not accepted"),
    ("report.pdf", b"MZ\x90\x00 not a pdf", "not really a PDF"),
    ("photo.png", PDF_BYTES, "not really a PNG"),
    ("plan.docx", b"PK\x03\x04garbage", "not really a DOCX"),
    ("plan.docx", ooxml_bytes("xl"), "not really a DOCX"),     # a spreadsheet renamed
    ("notes.txt", b"abc\x00def", "not really a TXT"),
    ("empty.pdf", b"", "is empty"),
    ("big.pdf", b"%PDF-" + b"0" * (64 * 1024), "larger than"),
])
def test_wrong_or_oversized_files_are_refused_and_nothing_is_kept(session, store, name, data, message):
    s = make_scenario(session)
    good = Upload("ok.pdf", io.BytesIO(PDF_BYTES))
    with pytest.raises(DomainError, match=message) as err:
        make_application(session, s, uploads=[good, Upload(name, io.BytesIO(data))], store=store)
    assert err.value.field == "attachments"
    assert session.exec(select(Application)).all() == [] and session.exec(select(Attachment)).all() == []
    assert _files(store) == []  # the good file stored first was removed too


@pytest.mark.parametrize("name, data", [
    ("a.pdf", PDF_BYTES), ("b.PNG", PNG_BYTES), ("c.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20),
    ("d.docx", ooxml_bytes("word")), ("e.xlsx", ooxml_bytes("xl")), ("f.pptx", ooxml_bytes("ppt")),
    ("g.txt", "中文说明，UTF-8".encode()), ("h.txt", "国标编码说明".encode("gb18030")),
])
def test_accepted_file_types(session, store, name, data):
    s = make_scenario(session)
    make_application(session, s, uploads=[Upload(name, io.BytesIO(data))], store=store)
    assert session.exec(select(Attachment)).one().filename == name


def test_too_many_files_and_path_names_are_handled(session, store):
    s = make_scenario(session)
    with pytest.raises(DomainError, match="At most 5"):
        make_application(session, s, uploads=[Upload(f"{i}.pdf", io.BytesIO(PDF_BYTES)) for i in range(6)],
                         store=store)
    make_application(session, s, uploads=[Upload("../../etc/方案.pdf", io.BytesIO(PDF_BYTES))], store=store)
    assert session.exec(select(Attachment)).one().filename == "方案.pdf"


def test_review_accept_and_reject_need_the_owning_city_and_a_reason(session):
    s = make_scenario(session)
    gov = _gov(session, s)
    a = make_application(session, s)
    with pytest.raises(Forbidden):
        apps.review(session, make_user(session, Role.GOV, make_city(session)), a.id, "accept")
    with pytest.raises(DomainError) as err:
        apps.review(session, gov, a.id, "reject", "  ")
    assert err.value.field == "reason"
    session.refresh(a)
    assert a.status == "submitted"
    apps.review(session, gov, a.id, "reject", "缺少数据安全方案")
    assert (a.status, a.reason, a.reviewed_by) == ("rejected", "缺少数据安全方案", gov.id)
    with pytest.raises(Conflict, match="already decided"):
        apps.review(session, gov, a.id, "accept")
    line = session.exec(select(AuditLog).where(AuditLog.action == "application.reject")).one()
    assert line.org_id == s.city_id and line.detail["reason"] == "缺少数据安全方案"


def test_withdraw_by_the_applicant_only(session):
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    a = make_application(session, s, team)
    with pytest.raises(Forbidden):
        apps.withdraw(session, make_user(session, Role.TEAM), a.id)
    with pytest.raises(Forbidden):
        apps.withdraw(session, _gov(session, s), a.id)
    assert apps.withdraw(session, team, a.id).status == "withdrawn"
    with pytest.raises(Conflict):
        apps.withdraw(session, team, a.id)


def test_both_sides_see_the_application_and_its_status(session):
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    a = make_application(session, s, team)
    gov = _gov(session, s)
    assert [x.id for x in apps.applications_for(session, team)] == [a.id]
    assert [x.id for x in apps.applications_for(session, gov)] == [a.id]
    assert apps.applications_for(session, make_user(session, Role.GOV, make_city(session))) == []
    assert apps.applications_for(session, make_user(session, Role.TEAM)) == []
    for outsider in (make_user(session, Role.TEAM), make_user(session, Role.JUDGE), None):
        with pytest.raises((Forbidden, NotFound)):
            apps.get_visible_application(session, outsider, a.id)


def test_download_only_for_applicant_and_owning_city(session, store):
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    make_application(session, s, team, [Upload("a.pdf", io.BytesIO(PDF_BYTES))], store)
    att = session.exec(select(Attachment)).one()
    for allowed in (team, _gov(session, s)):
        assert apps.attachment_for_download(session, allowed, att.id, store)[1].read_bytes() == PDF_BYTES
    for role in (Role.TEAM, Role.JUDGE, Role.OPERATOR, Role.ADMIN):
        with pytest.raises(Forbidden):
            apps.attachment_for_download(session, make_user(session, role), att.id, store)


def test_related_party_is_flagged(session):
    s = make_scenario(session)
    team = make_user(session, Role.TEAM)
    session.add(OrgRelation(org_id=team.org_id, related_org_id=s.city_id, kind="state_owned_subsidiary"))
    session.commit()
    assert apps.is_related_party(session, team.org_id, s.city_id)
    assert not apps.is_related_party(session, make_user(session, Role.TEAM).org_id, s.city_id)
