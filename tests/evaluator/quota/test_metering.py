"""Ledger, prices, team quota, 算力券 rules and reconciliation."""
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import delete, update
from sqlmodel import Session, select

from evaluator.quota import ledger, team_quota, vouchers
from evaluator.quota.inventory import node_inventory, register_node
from evaluator.quota.leases import acquire
from evaluator.quota.models import AppendOnlyError, LedgerLine, Voucher
from hub.errors import DomainError
from hub.models import OrgKind, OrgRelation
from tests.evaluator.quota.conftest import at, make_submission
from tests.factories import make_org

A100 = "nvidia-a100"
T0 = datetime(2026, 3, 2, 1, 0, 0, tzinfo=timezone.utc)


def _price(session, yuan="36.00"):
    return ledger.set_price(session, accel_class=A100, fen_per_device_hour=ledger.parse_yuan(yuan), actor_id=None,
                            valid_from=T0 - timedelta(days=400))


def _voucher(session, w, percent=50, cap_yuan="3000000", start=None, days=365, company=None):
    start = start or T0 - timedelta(days=30)
    return vouchers.issue(session, company_id=(company or w.company).id, bureau_id=w.bureau.id,
                          supplier_id=w.center.id, scheme="西咸新区算力券", percent=percent,
                          cap_fen=ledger.parse_yuan(cap_yuan), valid_from=start,
                          valid_until=start + timedelta(days=days), actor_id=w.operator.id)


def _meter(session, sub, seconds, devices=("GPU-a",), start=T0, lease_id=None):
    return ledger.meter_run(session, submission_id=sub.id, lease_id=lease_id, device_class=A100,
                            device_ids=list(devices), started_at=start, finished_at=start + timedelta(seconds=seconds))


# ---------------------------------------------------------------- metering
def test_a_run_is_metered_from_its_container_times_with_voucher_and_payable_shares(session, world):
    _price(session, "36.00")
    v = _voucher(session, world)
    sub = make_submission(session, world.team, world.phase)
    line = _meter(session, sub, 1800.5, devices=("GPU-a", "GPU-b"))
    assert line.seconds == pytest.approx(1800.5)
    assert line.device_seconds == pytest.approx(3601.0)
    assert line.amount_fen == 3601  # 3601 device-seconds at 36 yuan per device-hour
    assert (line.voucher_fen, line.payable_fen) == (1800, 1801)
    assert line.voucher_id == v.id and line.org_id == world.company.id and line.team_id == world.team.id
    assert ledger.line_is_consistent(line)


def test_a_job_that_runs_twice_meters_once(session, world):
    _price(session)
    _voucher(session, world)
    sub = make_submission(session, world.team, world.phase)
    first = _meter(session, sub, 600)
    again = _meter(session, sub, 900)  # the re-run of the same attempt reports other times
    assert again.id == first.id and again.seconds == 600
    assert len(session.exec(select(LedgerLine)).all()) == 1
    assert ledger.reconcile(session) == []


def test_metering_per_lease(session, world):
    register_node(session, "n1", node_inventory({"NVIDIA_SMI": "", "ACCELERATORS": "nvidia-a100:2",
                                                 "HUB_NODE_NAME": "n1"}))
    sub = make_submission(session, world.team, world.phase)
    lease = acquire(session, submission_id=sub.id, attempt=1, challenge_id=sub.challenge_id, accel_class=A100,
                    count=2, node="n1", ttl_s=60)
    line = _meter(session, sub, 10, devices=lease.device_ids, lease_id=lease.id)
    assert line.meter_key == f"lease:{lease.id}" and line.device_ids == lease.device_ids
    assert _meter(session, sub, 99, lease_id=lease.id).id == line.id


def test_bad_times_are_refused(session, world):
    sub = make_submission(session, world.team, world.phase)
    with pytest.raises(DomainError):
        _meter(session, sub, -5)
    assert session.exec(select(LedgerLine)).all() == []


def test_the_price_of_the_run_start_applies(session, world):
    _price(session, "36.00")
    ledger.set_price(session, accel_class=A100, fen_per_device_hour=7200, actor_id=None, valid_from=T0)
    before, after = (make_submission(session, world.team, world.phase) for _ in range(2))
    assert _meter(session, before, 3600, start=T0 - timedelta(hours=2)).amount_fen == 3600
    assert _meter(session, after, 3600, start=T0).amount_fen == 7200


@pytest.mark.parametrize("text", ["-1", "abc", "1.234", ""])
def test_bad_prices_are_refused(text):
    with pytest.raises(DomainError):
        ledger.parse_yuan(text)


def test_ledger_lines_cannot_be_changed_or_deleted(session, world):
    sub = make_submission(session, world.team, world.phase)
    line = _meter(session, sub, 60)
    line.seconds = 1
    session.add(line)
    with pytest.raises(AppendOnlyError):
        session.commit()
    session.rollback()
    session.delete(session.get(LedgerLine, line.id))
    with pytest.raises(AppendOnlyError):
        session.commit()
    session.rollback()
    with pytest.raises(AppendOnlyError):
        session.exec(update(LedgerLine).values(amount_fen=0))
    with pytest.raises(AppendOnlyError):
        session.exec(delete(LedgerLine))
    session.rollback()
    assert session.get(LedgerLine, line.id).seconds == 60


def test_a_correction_is_a_new_line_that_reverses_the_old(session, world):
    _price(session)
    v = _voucher(session, world)
    sub = make_submission(session, world.team, world.phase)
    line = _meter(session, sub, 3600)
    fix = ledger.reverse_line(session, line.id, reason="误计量 (test)", actor_id=world.operator.id)
    assert (fix.kind, fix.corrects_id, fix.amount_fen, fix.voucher_fen) == ("correction", line.id, -3600, -1800)
    session.refresh(v)
    assert v.used_fen == 0 and ledger.reconcile(session) == []
    with pytest.raises(DomainError):
        ledger.reverse_line(session, line.id, reason="again", actor_id=None)


# ---------------------------------------------------------------- vouchers
def test_voucher_stops_at_the_cap(session, world):
    # The policy's smallest yearly cap (2,000,000 yuan), reached with a price that makes each run cost as much.
    _price(session, "7200000.00")
    v = _voucher(session, world, percent=50, cap_yuan="2000000")
    subs = [make_submission(session, world.team, world.phase) for _ in range(3)]
    first = _meter(session, subs[0], 1000)     # 2,000,000 yuan, voucher 1,000,000
    second = _meter(session, subs[1], 1000, start=T0 + timedelta(hours=1))  # voucher cut at the 1,000,000 left
    third = _meter(session, subs[2], 1000, start=T0 + timedelta(hours=2))
    assert [first.voucher_fen, second.voucher_fen, third.voucher_fen] == [100_000_000, 100_000_000, 0]
    assert third.payable_fen == third.amount_fen == 200_000_000 and third.voucher_id is None
    session.refresh(v)
    assert v.used_fen == v.cap_fen == 200_000_000


def test_expired_voucher_pays_nothing(session, world):
    _price(session)
    _voucher(session, world, start=T0 - timedelta(days=400), days=365)
    line = _meter(session, make_submission(session, world.team, world.phase), 3600)
    assert (line.voucher_fen, line.voucher_id, line.payable_fen) == (0, None, 3600)


def test_vouchers_are_not_transferable(session, world):
    _price(session)
    v = _voucher(session, world)
    # Another company's run never draws on it ...
    line = _meter(session, make_submission(session, world.other_team, world.phase), 3600)
    assert line.voucher_fen == 0 and line.org_id == world.other_company.id
    # ... and its holder cannot be changed.
    v.company_id = world.other_company.id
    session.add(v)
    with pytest.raises(AppendOnlyError):
        session.commit()
    session.rollback()
    assert session.get(Voucher, v.id).company_id == world.company.id


def test_one_scheme_per_company_and_period(session, world):
    _voucher(session, world)
    with pytest.raises(DomainError, match="double subsidy"):
        _voucher(session, world, start=T0)
    # The next period is fine, and so is another company.
    _voucher(session, world, start=T0 + timedelta(days=340))
    _voucher(session, world, company=world.other_company)


def test_related_party_supplier_is_refused(session, world):
    session.add(OrgRelation(org_id=world.center.id, related_org_id=world.company.id, kind="subsidiary"))
    session.commit()
    with pytest.raises(DomainError, match="related party"):
        _voucher(session, world)
    assert session.exec(select(Voucher)).all() == []


@pytest.mark.parametrize("kwargs,field", [
    ({"percent": 0}, "percent"), ({"percent": 101}, "percent"), ({"percent": 19}, "percent"),
    ({"percent": 61}, "percent"), ({"cap_yuan": "0"}, "cap_yuan"), ({"cap_yuan": "10000000.01"}, "cap_yuan"),
    ({"days": 400}, "valid_until"), ({"days": -1}, "valid_until")])
def test_voucher_terms_are_checked(session, world, kwargs, field):
    with pytest.raises(DomainError) as err:
        _voucher(session, world, **kwargs)
    assert err.value.field == field


def test_only_companies_universities_and_labs_hold_vouchers(session, world):
    with pytest.raises(DomainError):
        _voucher(session, world, company=world.city)
    _voucher(session, world, company=make_org(session, OrgKind.UNIVERSITY))


def test_ledger_reconciles_with_voucher_used_amounts_under_concurrency(session, engine, world):
    _price(session, "1800000.00")
    v = _voucher(session, world, cap_yuan="2000000")  # the 30 runs would take 2,358,750.00
    subs = [make_submission(session, world.team, world.phase) for _ in range(30)]
    errors = []

    def run(i, sub):
        try:
            with Session(engine, expire_on_commit=False) as s:
                _meter(s, sub, 300 + i, start=T0 + timedelta(minutes=i))
                _meter(s, sub, 300 + i, start=T0 + timedelta(minutes=i))  # a duplicate report
        except Exception as err:  # noqa: BLE001
            errors.append(repr(err))

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(subs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    session.expire_all()
    lines = session.exec(select(LedgerLine)).all()
    assert len(lines) == 30
    v = session.get(Voucher, v.id)
    assert v.used_fen == sum(ln.voucher_fen for ln in lines) == ledger.voucher_ledger_fen(session, v.id) == 200_000_000
    assert ledger.reconcile(session) == []
    assert all(ledger.line_is_consistent(ln) for ln in lines)


# ---------------------------------------------------------------- team quota
def test_submission_refused_when_quota_is_used_up_with_the_remaining_figure(session, world):
    team_quota.set_quota(session, team_id=world.team.id, challenge_id=world.challenge.id, allowed_seconds=1000,
                         actor_id=world.operator.id)
    assert team_quota.remaining_seconds(session, world.team.id, world.challenge.id) == 1000
    _meter(session, make_submission(session, world.team, world.phase), 400, devices=("a", "b"))
    assert team_quota.remaining_seconds(session, world.team.id, world.challenge.id) == pytest.approx(200)
    team_quota.check_submit_quota(session, world.team.id, world.challenge.id)  # 200 left: allowed
    assert team_quota.run_time_cap(session, world.team.id, world.challenge.id, 2, 600) == pytest.approx(100)
    _meter(session, make_submission(session, world.team, world.phase), 200)
    with pytest.raises(DomainError) as err:
        team_quota.check_submit_quota(session, world.team.id, world.challenge.id)
    assert err.value.code == "quota_exceeded" and err.value.params == {"remaining": 0, "allowed": 1000}
    # Other teams are not affected, and no quota means unlimited.
    team_quota.check_submit_quota(session, world.other_team.id, world.challenge.id)
    assert team_quota.remaining_seconds(session, world.other_team.id, world.challenge.id) is None


def test_company_quota_covers_all_its_teams_and_the_tightest_scope_wins(session, world):
    team_quota.set_quota(session, org_id=world.company.id, allowed_seconds=500, actor_id=None)
    team_quota.set_quota(session, team_id=world.team.id, allowed_seconds=5000, actor_id=None)
    _meter(session, make_submission(session, world.team, world.phase), 450)
    assert team_quota.remaining_seconds(session, world.team.id, world.challenge.id) == pytest.approx(50)
    team_quota.set_quota(session, org_id=world.company.id, allowed_seconds=800, actor_id=None)  # replaces
    assert team_quota.remaining_seconds(session, world.team.id, world.challenge.id) == pytest.approx(350)


def test_running_leases_count_against_the_quota(session, world):
    register_node(session, "n1", node_inventory({"NVIDIA_SMI": "", "ACCELERATORS": "nvidia-a100:1",
                                                 "HUB_NODE_NAME": "n1"}))
    team_quota.set_quota(session, team_id=world.team.id, allowed_seconds=100, actor_id=None)
    sub = make_submission(session, world.team, world.phase)
    lease = acquire(session, submission_id=sub.id, attempt=1, challenge_id=sub.challenge_id, accel_class=A100,
                    count=1, node="n1", ttl_s=600)
    lease.acquired_at = at(seconds=-90)
    session.add(lease)
    session.commit()
    assert team_quota.remaining_seconds(session, world.team.id, world.challenge.id) < 11


def test_quota_input_is_checked(session, world):
    with pytest.raises(DomainError):
        team_quota.set_quota(session, allowed_seconds=10, actor_id=None)
    with pytest.raises(DomainError):
        team_quota.set_quota(session, team_id=world.team.id, allowed_seconds=-1, actor_id=None)
