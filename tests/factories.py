"""Factory helpers: real rows through the real services where a rule matters."""
from __future__ import annotations

import itertools
from typing import Any

from sqlmodel import Session

from hub.models import Organisation, OrgKind, Role, User
from hub.users import create_user

PASSWORD = "correct-horse-9"
_seq = itertools.count(1)


def make_org(session: Session, kind: str = OrgKind.COMPANY, code: str | None = None, name: str | None = None,
             **fields: Any) -> Organisation:
    n = next(_seq)
    org = Organisation(code=code or f"org{n}", name=name or f"测试单位{n}", name_en=f"Test Org {n}", kind=kind,
                       credit_code=fields.pop("credit_code", f"91610000TEST{n:06d}"), **fields)
    session.add(org)
    session.commit()
    return org


def make_city(session: Session, code: str | None = None, name: str | None = None) -> Organisation:
    return make_org(session, OrgKind.CITY, code=code, name=name, credit_code=None)


def make_user(session: Session, role: str = Role.TEAM, org: Organisation | None = None,
              email: str | None = None, password: str = PASSWORD, name: str = "") -> User:
    if org is None and role != Role.ADMIN:
        kind = {Role.GOV: OrgKind.CITY, Role.TEAM: OrgKind.COMPANY, Role.JUDGE: OrgKind.UNIVERSITY,
                Role.OPERATOR: OrgKind.CENTER}[Role(role)]
        org = make_org(session, kind)
    user = create_user(session, email or f"user{next(_seq)}@test.example", password, role,
                       org.id if org else None, name)
    session.commit()
    return user


def login(client, user: User, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    """Log a test client in through the real login form."""
    resp = client.post("/login", data={"email": user.email, "password": password})
    assert resp.status_code == 302, resp.data[:500]
    return resp
