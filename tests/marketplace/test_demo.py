"""The demo data: every new city with its themes, at least 12 scenarios, applications in several states."""
from __future__ import annotations

from collections import Counter

from sqlmodel import select

from hub import demo
from hub.models import Organisation
from marketplace.models import Application, Scenario


def test_demo_seeds_cities_scenarios_and_applications(session):
    assert demo.seed(session, with_domains=False)
    orgs = {o.code: o for o in session.exec(select(Organisation))}
    from hub.models import User
    accounts = {u.email: u for u in session.exec(select(User))}
    import marketplace.demo
    marketplace.demo.seed(session, orgs, accounts)
    session.commit()

    scenarios = list(session.exec(select(Scenario)))
    assert len(scenarios) >= 12
    by_city = Counter(s.city_id for s in scenarios)
    for code, _name, _en, themes in demo.CITIES:
        city = orgs[code]
        assert by_city[city.id] >= 2, code
        own = {s.industry for s in scenarios if s.city_id == city.id}
        assert own <= set(themes) and own, code     # each city publishes in its own themes
    assert {s.status for s in scenarios} == {"draft", "published", "open_call", "under_review", "awarded", "closed"}
    titles = {s.title: s for s in scenarios}
    air = titles["航空物流货量智能预测"]
    pv = titles["园区光伏发电功率预测"]
    assert (air.city_id, air.industry) == (orgs["konggang"].id, "smart_logistics")
    assert (pv.city_id, pv.industry) == (orgs["fengxi"].id, "smart_energy")
    assert air.status in ("published", "open_call") and pv.status in ("published", "open_call")
    states = Counter(a.status for a in session.exec(select(Application)))
    assert set(states) == {"submitted", "accepted", "rejected", "withdrawn"}
