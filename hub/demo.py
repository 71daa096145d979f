"""Demo data: the district's six new cities, companies, universities, and one account per role."""
from __future__ import annotations

import importlib

from sqlmodel import Session, select

from hub.models import Organisation, OrgKind, OrgRelation, Role, User
from hub import membership
from hub.users import create_user

DEMO_PASSWORD = "demo-pass-2026"

# The new cities and their AI+ themes, as the source document assigns them.
CITIES: list[tuple[str, str, str, list[str]]] = [
    ("konggang", "空港新城", "Konggang New City", ["smart_logistics"]),
    ("fengdong", "沣东新城", "Fengdong New City", ["smart_health", "public_services"]),
    ("qinhan", "秦汉新城", "Qinhan New City", ["smart_tourism", "digital_culture"]),
    ("fengxi", "沣西新城", "Fengxi New City", ["smart_energy", "smart_park"]),
    ("jinghe", "泾河新城", "Jinghe New City", ["smart_manufacturing"]),
    ("energy_finance", "能源金贸区", "Energy & Finance Trade Zone", ["smart_finance"]),
]

OTHERS: list[tuple[str, str, str, str, str | None]] = [
    ("xixian_admin", "西咸新区管委会", "Xixian New Area Administrative Committee", OrgKind.DISTRICT, None),
    ("xixian_bigdata", "西咸新区大数据管理局", "Xixian Big Data Bureau", OrgKind.DISTRICT, None),
    ("aicc", "西咸新区智算中心", "Xixian Intelligent Computing Center", OrgKind.CENTER, None),
    ("qinchuang_ai", "秦创智能科技有限公司", "Qinchuang AI Technology Co., Ltd.", OrgKind.COMPANY, "91610000MA6TQC0001"),
    ("silkroad_vision", "丝路视觉科技有限公司", "Silk Road Vision Tech Co., Ltd.", OrgKind.COMPANY, "91610000MA6TQC0002"),
    ("fengxi_energy_ai", "沣西能源智能有限公司", "Fengxi Energy AI Co., Ltd.", OrgKind.COMPANY, "91610000MA6TQC0003"),
    ("airport_logistics", "空港智慧物流有限公司", "Airport Smart Logistics Co., Ltd.", OrgKind.COMPANY, "91610000MA6TQC0004"),
    ("xjtu", "西安交通大学", "Xi'an Jiaotong University", OrgKind.UNIVERSITY, "12100000435230133X"),
    ("nwpu", "西北工业大学", "Northwestern Polytechnical University", OrgKind.UNIVERSITY, "12100000435230141R"),
    ("xidian", "西安电子科技大学", "Xidian University", OrgKind.UNIVERSITY, "12100000435230150P"),
    ("ai_joint_lab", "人工智能联合实验室", "AI Joint Laboratory", OrgKind.LAB, "52610000MJZ000001X"),
]

# (email, role, org code, display name)
ACCOUNTS: list[tuple[str, str, str | None, str]] = [
    ("admin@hub.example", Role.ADMIN, "aicc", "平台管理员"),
    ("operator@hub.example", Role.OPERATOR, "aicc", "算力运维"),
    ("gov.konggang@hub.example", Role.GOV, "konggang", "空港新城科创局"),
    ("gov.fengdong@hub.example", Role.GOV, "fengdong", "沣东新城科创局"),
    ("gov.qinhan@hub.example", Role.GOV, "qinhan", "秦汉新城科创局"),
    ("gov.fengxi@hub.example", Role.GOV, "fengxi", "沣西新城科创局"),
    ("gov.jinghe@hub.example", Role.GOV, "jinghe", "泾河新城科创局"),
    ("gov.energy@hub.example", Role.GOV, "energy_finance", "能源金贸区科创局"),
    ("team.qinchuang@hub.example", Role.TEAM, "qinchuang_ai", "秦创智能 张工"),
    ("team.qinchuang2@hub.example", Role.TEAM, "qinchuang_ai", "秦创智能 李工"),
    ("team.silkroad@hub.example", Role.TEAM, "silkroad_vision", "丝路视觉 王博士"),
    ("team.energy@hub.example", Role.TEAM, "fengxi_energy_ai", "沣西能源 赵工"),
    ("team.logistics@hub.example", Role.TEAM, "airport_logistics", "空港物流 陈工"),
    ("team.xjtu@hub.example", Role.TEAM, "xjtu", "西交大 刘老师"),
    ("team.nwpu@hub.example", Role.TEAM, "nwpu", "西工大 周老师"),
    ("judge.xidian@hub.example", Role.JUDGE, "xidian", "评审专家 孙教授"),
    ("judge.lab@hub.example", Role.JUDGE, "ai_joint_lab", "评审专家 吴研究员"),
    ("judge.center@hub.example", Role.JUDGE, "aicc", "评审专家 郑高工"),
]

# Domain packages that add their own demo records, in dependency order.
DEMO_MODULES = ("marketplace.demo", "challenges.demo", "evaluator.quota.demo", "evaluator.demo")


def seed_organisations(session: Session) -> dict[str, Organisation]:
    orgs: dict[str, Organisation] = {}
    for code, name, name_en, themes in CITIES:
        orgs[code] = Organisation(code=code, name=name, name_en=name_en, kind=OrgKind.CITY, themes=themes)
    for code, name, name_en, kind, credit in OTHERS:
        orgs[code] = Organisation(code=code, name=name, name_en=name_en, kind=kind, credit_code=credit)
    session.add_all(orgs.values())
    session.flush()
    # A related-party tie the formal check and voucher rules must catch.
    session.add(OrgRelation(org_id=orgs["airport_logistics"].id, related_org_id=orgs["konggang"].id,
                            kind="state_owned_subsidiary"))
    return orgs


def seed_accounts(session: Session, orgs: dict[str, Organisation]) -> dict[str, User]:
    accounts: dict[str, User] = {}
    for email, role, org_code, name in ACCOUNTS:
        accounts[email] = create_user(session, email, DEMO_PASSWORD, role,
                                      orgs[org_code].id if org_code else None, name)
    # The first demo account of each organisation administers it (approves requests, invites colleagues).
    first: dict[str, str] = {}
    for email, _role, org_code, _name in ACCOUNTS:
        if org_code:
            first.setdefault(org_code, email)
    for org_code, email in first.items():
        membership.name_first_admin(session, None, org_code, email)
    return accounts


def is_seeded(session: Session) -> bool:
    return session.exec(select(Organisation).limit(1)).first() is not None


def seed(session: Session, with_domains: bool = True) -> bool:
    """Load the demo once; returns False when data is already there."""
    if is_seeded(session):
        return False
    orgs = seed_organisations(session)
    accounts = seed_accounts(session, orgs)
    session.commit()
    if with_domains:
        for name in DEMO_MODULES:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as err:
                if err.name == name:
                    continue
                raise
            module.seed(session, orgs, accounts)
            session.commit()
    return True
