"""算力券 within the policy (../shared/DOMAIN.md): a 20–60 % share and a yearly cap of 2,000,000 to
10,000,000 yuan per company; values outside are refused with the allowed range, in Chinese on the page."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from evaluator.quota import ledger, vouchers
from evaluator.quota.models import Voucher
from hub.errors import DomainError
from hub.models import utcnow
from tests.factories import login

T0 = datetime(2026, 3, 2, 1, 0, 0, tzinfo=timezone.utc)


def _issue(session, w, *, percent: int = 50, cap_yuan: str = "3000000"):  # type: ignore[no-untyped-def]
    return vouchers.issue(session, company_id=w.company.id, bureau_id=w.bureau.id, supplier_id=w.center.id,
                          scheme="西咸新区算力券", percent=percent, cap_fen=ledger.parse_yuan(cap_yuan),
                          valid_from=T0, valid_until=T0 + timedelta(days=365), actor_id=w.operator.id)


@pytest.mark.parametrize("percent", [100, 5, 19, 61, 0])
def test_a_share_outside_20_to_60_percent_is_refused(session, world, percent):
    with pytest.raises(DomainError) as err:
        _issue(session, world, percent=percent)
    assert err.value.field == "percent" and err.value.params == {"low": 20, "high": 60}
    assert session.exec(select(Voucher)).all() == []


@pytest.mark.parametrize("cap_yuan", ["20000000", "10000000.01", "1999999.99", "1000", "0"])
def test_a_yearly_cap_outside_2_to_10_million_yuan_is_refused(session, world, cap_yuan):
    with pytest.raises(DomainError) as err:
        _issue(session, world, cap_yuan=cap_yuan)
    assert err.value.field == "cap_yuan"
    assert session.exec(select(Voucher)).all() == []


@pytest.mark.parametrize("percent, cap_yuan", [(20, "2000000"), (60, "10000000"), (50, "3000000")])
def test_values_inside_the_bounds_are_accepted(session, world, percent, cap_yuan):
    v = _issue(session, world, percent=percent, cap_yuan=cap_yuan)
    assert (v.percent, v.cap_fen) == (percent, ledger.parse_yuan(cap_yuan))


def test_the_operator_reads_the_allowed_range_in_chinese(client, session, world):
    login(client, world.operator)
    page = client.get("/ops/vouchers").get_data(as_text=True)
    assert "政策范围：补贴比例为计量费用的 20% 至 60%，每家企业年度补贴上限为 2,000,000 元至 10,000,000 元" in page
    today = utcnow().date()
    form = {"v-company_id": world.company.id, "v-bureau_id": world.bureau.id, "v-supplier_id": world.center.id,
            "v-scheme": "西咸新区算力券", "v-percent": 100, "v-cap_yuan": "3000000",
            "v-valid_from": today.isoformat(), "v-valid_until": (today + timedelta(days=364)).isoformat()}
    resp = client.post("/ops/vouchers", data=form)
    assert resp.status_code == 400 and "20% 至 60%" in resp.get_data(as_text=True)
    resp = client.post("/ops/vouchers", data={**form, "v-percent": 50, "v-cap_yuan": "20000000"})
    assert resp.status_code == 400 and "2,000,000 元至 10,000,000 元" in resp.get_data(as_text=True)
    assert session.exec(select(Voucher)).all() == []
    assert client.post("/ops/vouchers", data={**form, "v-percent": 60, "v-cap_yuan": "10000000"}).status_code == 302
