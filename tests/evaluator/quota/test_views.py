"""Pages and API: what each role sees, and that a company never sees another's statement."""
from datetime import timedelta

from sqlmodel import select

from evaluator.quota import team_quota, vouchers
from evaluator.quota.inventory import node_inventory, register_node
from evaluator.quota.leases import acquire
from evaluator.quota.models import Reservation, Voucher
from hub.models import Role, utcnow
from hub.users import issue_api_token
from tests.evaluator.quota.conftest import make_submission, metered_world
from tests.factories import login, make_user


def test_team_sees_its_usage_and_remaining_quota_in_chinese(client, session, world):
    metered_world(session, world)
    team_quota.set_quota(session, team_id=world.team.id, allowed_seconds=10_000, actor_id=None)
    login(client, world.member)
    page = client.get("/compute/usage").get_data(as_text=True)
    assert "算力使用" in page
    assert "6400" in page and "10000" in page  # remaining of allowed accelerator-seconds
    assert world.team.name in page and world.other_team.name not in page
    data = client.get("/api/v1/quota/usage").get_json()
    assert data["teams"][0]["remaining_device_seconds"] == 6400


def test_company_statement_is_a_printable_certificate_with_plot_and_csv(client, session, world):
    v, mine, theirs = metered_world(session, world)
    login(client, world.member)
    page = client.get("/compute/vouchers").get_data(as_text=True)
    assert v.code in page
    resp = client.get("/compute/statement")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "智能算力交付凭证" in body
    assert "GPU-mine-0001" in body and "GPU-theirs-0002" not in body
    assert "<svg" in body and "<rect" in body
    assert "¥36.00" in body and "¥18.00" in body  # amount and the voucher's 50 %
    assert "style=" not in body and "<script>" not in body
    csv = client.get("/compute/statement.csv")
    text = csv.get_data(as_text=True)
    assert csv.mimetype == "text/csv"
    assert "GPU-mine-0001" in text and "GPU-theirs-0002" not in text
    assert ",36.00," in text and ",18.00,18.00" in text
    assert v.code in text


def test_a_company_never_sees_another_companys_statement(client, session, world):
    metered_world(session, world)
    login(client, world.member)
    assert client.get(f"/compute/statement?org={world.other_company.id}").status_code == 403
    assert client.get(f"/compute/statement.csv?org={world.other_company.id}").status_code == 403
    assert client.get(f"/compute/vouchers?org={world.other_company.id}").status_code == 403
    token = issue_api_token(session, world.member)
    session.commit()
    resp = client.get(f"/api/v1/quota/statement?org={world.other_company.id}",
                      headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
    own = client.get("/api/v1/quota/statement").get_json()
    assert [ln["device_ids"] for ln in own["lines"]] == [["GPU-mine-0001"]]


def test_other_roles_cannot_open_operator_pages(client, session, world):
    login(client, world.member)
    for url in ("/ops/devices", "/ops/quota", "/ops/vouchers", "/ops/statement.csv?month=2026-01"):
        assert client.get(url).status_code == 403
    gov = make_user(session, Role.GOV, org=world.city)
    client.post("/logout")
    login(client, gov)
    assert client.get("/compute/statement").status_code == 403


def test_operator_sees_devices_holders_and_utilisation(client, session, world):
    register_node(session, "gpu-node-1", node_inventory({"NVIDIA_SMI": "", "ACCELERATORS": "nvidia-a100:2",
                                                         "HUB_NODE_NAME": "gpu-node-1"}))
    sub = make_submission(session, world.team, world.phase)
    lease = acquire(session, submission_id=sub.id, attempt=1, challenge_id=sub.challenge_id,
                    accel_class="nvidia-a100", count=1, node="gpu-node-1", ttl_s=60)
    metered_world(session, world)
    login(client, world.operator)
    page = client.get("/ops/devices").get_data(as_text=True)
    assert "gpu-node-1" in page and "FAKE-nvidia-a100-gpu-node-1-1" in page
    assert f"#{sub.id}" in page  # what holds the leased device
    assert world.challenge.title in page
    data = client.get("/api/v1/quota/devices").get_json()
    held = [d for d in data["devices"] if d["lease_id"] == lease.id]
    assert [d["uuid"] for d in held] == lease.device_ids


def test_operator_sets_reservation_quota_price_and_sees_refusals(client, session, world):
    register_node(session, "n1", node_inventory({"NVIDIA_SMI": "", "ACCELERATORS": "nvidia-a100:2",
                                                 "HUB_NODE_NAME": "n1"}))
    login(client, world.operator)
    today = utcnow().date()
    ok = client.post("/ops/quota/reservations", data={
        "r-challenge_id": world.challenge.id, "r-accel_class": "nvidia-a100", "r-count": 2,
        "r-starts_on": today.isoformat(), "r-ends_on": (today + timedelta(days=30)).isoformat()})
    assert ok.status_code == 302
    refused = client.post("/ops/quota/reservations", data={
        "r-challenge_id": world.challenge.id, "r-accel_class": "nvidia-a100", "r-count": 1,
        "r-starts_on": (today + timedelta(days=40)).isoformat(), "r-ends_on": (today + timedelta(days=50)).isoformat()})
    assert refused.status_code == 302  # a later period still fits
    over = client.post("/ops/quota/reservations", data={
        "r-challenge_id": world.challenge.id + 0, "r-accel_class": "nvidia-a100", "r-count": 3,
        "r-starts_on": (today + timedelta(days=60)).isoformat(), "r-ends_on": (today + timedelta(days=61)).isoformat()})
    assert over.status_code == 400
    assert "现有 2 台" in over.get_data(as_text=True)
    assert len(session.exec(select(Reservation)).all()) == 2
    assert client.post("/ops/quota/team-quotas", data={"q-team_id": world.team.id, "q-org_id": 0,
                                                       "q-challenge_id": 0, "q-hours": "2.5"}).status_code == 302
    assert team_quota.remaining_seconds(session, world.team.id, world.challenge.id) == 9000
    bad = client.post("/ops/quota/prices", data={"p-accel_class": "nvidia-a100", "p-yuan": "abc"})
    assert bad.status_code == 400 and "12.50" in bad.get_data(as_text=True)
    assert client.post("/ops/quota/prices", data={"p-accel_class": "nvidia-a100", "p-yuan": "28.80"}).status_code == 302
    assert "¥28.80" in client.get("/ops/quota").get_data(as_text=True)


def test_operator_issues_vouchers_and_rules_show_as_form_errors(client, session, world):
    login(client, world.operator)
    today = utcnow().date()
    form = {"v-company_id": world.company.id, "v-bureau_id": world.bureau.id, "v-supplier_id": world.center.id,
            "v-scheme": "西咸新区算力券", "v-percent": 50, "v-cap_yuan": "3000000",
            "v-valid_from": today.isoformat(), "v-valid_until": (today + timedelta(days=364)).isoformat()}
    assert client.post("/ops/vouchers", data=form).status_code == 302
    again = client.post("/ops/vouchers", data=form)
    assert again.status_code == 400 and "重复补贴" in again.get_data(as_text=True)
    assert len(session.exec(select(Voucher)).all()) == 1
    page = client.get("/ops/vouchers").get_data(as_text=True)
    assert "西咸新区算力券" in page and "¥3,000,000.00" in page


def test_operator_exports_a_month(client, session, world):
    _, mine, theirs = metered_world(session, world)
    login(client, world.operator)
    month = mine.started_at.astimezone(vouchers.CHINA).strftime("%Y-%m")
    resp = client.get(f"/ops/statement.csv?month={month}")
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "GPU-mine-0001" in text and "GPU-theirs-0002" in text
    assert client.get("/ops/statement.csv?month=bad").status_code == 302
