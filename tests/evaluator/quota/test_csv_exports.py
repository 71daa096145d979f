"""Statement CSVs (a company's 智能算力交付凭证 and the operators' monthly export) neutralise names that a
spreadsheet would run as formulas, and keep the platform's amounts (negative ones too) as numbers."""
from __future__ import annotations

import csv
import io

from evaluator.quota import ledger
from evaluator.quota.statements import CHINA
from tests.evaluator.quota.conftest import metered_world
from tests.factories import login


def _hostile_world(session, w):  # type: ignore[no-untyped-def]
    """The company is named `=HYPERLINK(...)`, its team `-2+3`; one run and its correction are metered."""
    w.company.name, w.team.name = '=HYPERLINK("http://x")', "-2+3"
    w.other_company.name, w.other_team.name = "@SUM(1+1)", "+cmd|' /C calc'!A0"
    session.add_all([w.company, w.team, w.other_company, w.other_team])
    session.commit()
    _, mine, _ = metered_world(session, w)
    ledger.reverse_line(session, mine.id, reason="误计量 (test)", actor_id=w.operator.id)
    return mine.started_at


def _rows(resp) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))


def test_a_company_statement_csv_neutralises_names_and_keeps_negative_amounts_numeric(client, session, world):
    _hostile_world(session, world)
    login(client, world.member)
    rows = _rows(client.get("/compute/statement.csv"))
    assert [r["kind 类型"] for r in rows] == ["run", "correction"]
    assert {r["organisation 单位"] for r in rows} == {"'=HYPERLINK(\"http://x\")"}
    assert {r["team 团队"] for r in rows} == {"'-2+3"}
    correction = rows[1]
    assert (correction["amount_yuan 金额(元)"], correction["voucher_yuan 券抵扣(元)"],
            correction["payable_yuan 应付(元)"]) == ("-36.00", "-18.00", "-18.00")
    assert correction["seconds 秒"] == "-3600.000000"


def test_the_monthly_export_neutralises_every_name(client, session, world):
    t = _hostile_world(session, world)
    login(client, world.operator)
    month = t.astimezone(CHINA)
    rows = _rows(client.get(f"/ops/statement.csv?month={month:%Y-%m}"))
    names = {(r["organisation 单位"], r["team 团队"]) for r in rows}
    assert names == {("'=HYPERLINK(\"http://x\")", "'-2+3"), ("'@SUM(1+1)", "'+cmd|' /C calc'!A0")}
    for r in rows:
        for value in r.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")), value
            assert not value.startswith("-") or value.replace("-", "", 1).replace(".", "", 1).isdigit(), value
