"""Demo compute accounting: prices, 算力券 for two demo companies, team quotas, and the ledger of the
demo's historical runs, so a newcomer finds a filled-in statement (智能算力交付凭证)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import Session, select

from challenges.models import Submission, Team, TeamStatus
from evaluator.quota import ledger, team_quota, vouchers
from hub.models import Organisation, User

# fen per device-hour
PRICES = {"cpu": 300, "nvidia-a100": 2_000, "nvidia-h200": 4_000}
PRICES_FROM = datetime(2026, 1, 1, tzinfo=timezone.utc)
# (company code, scheme, percent, yearly cap in yuan)
VOUCHERS = [
    ("qinchuang_ai", "西咸新区算力券（2026 年第一批）", 50, 3_000_000),
    ("silkroad_vision", "西咸新区算力券（2026 年第一批）", 30, 2_000_000),
]
VALID = (datetime(2026, 9, 1, tzinfo=timezone.utc), datetime(2027, 8, 31, tzinfo=timezone.utc))
TEAM_QUOTA_S = 10 * 3600  # device-seconds per team per demo challenge


def seed(session: Session, orgs: dict[str, Organisation], accounts: dict[str, User]) -> None:
    operator = accounts["operator@hub.example"]
    for accel_class, fen in PRICES.items():
        ledger.set_price(session, accel_class=accel_class, fen_per_device_hour=fen, actor_id=operator.id,
                         valid_from=PRICES_FROM)
    for code, scheme, percent, cap_yuan in VOUCHERS:
        vouchers.issue(session, company_id=orgs[code].id, bureau_id=orgs["xixian_bigdata"].id,
                       supplier_id=orgs["aicc"].id, scheme=scheme, percent=percent, cap_fen=cap_yuan * 100,
                       valid_from=VALID[0], valid_until=VALID[1], actor_id=operator.id)
    for team in session.exec(select(Team).where(Team.status == TeamStatus.APPROVED)):
        team_quota.set_quota(session, allowed_seconds=TEAM_QUOTA_S, actor_id=operator.id, team_id=team.id,
                             challenge_id=team.challenge_id)
    # The demo's historical runs are metered from their containers' own start and finish, like live ones.
    runs = session.exec(select(Submission).where(Submission.container_started_at != None,  # noqa: E711
                                                 Submission.container_finished_at != None)  # noqa: E711
                        .order_by(Submission.id))
    for sub in runs:
        ledger.meter_run(session, submission_id=sub.id, lease_id=None, device_class="cpu", device_ids=[],
                         started_at=sub.container_started_at, finished_at=sub.container_finished_at)
    session.commit()
