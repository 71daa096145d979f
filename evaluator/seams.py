"""The evaluation pipeline's calls into the packages beside it (challenges, quota, sandbox, scoring), in one place.

Each function is a thin pass-through with the pipeline's own vocabulary, so that a change in a neighbour's
signature is a one-line change here and nowhere else.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from challenges.models import Challenge, Dataset, Phase, Submission, Team
from hub.models import User


# ---------------------------------------------------------------- challenges
def challenge_by_slug(session: Session, slug: str) -> Challenge:
    from challenges.challenges import get_by_slug

    return get_by_slug(session, slug)


def current_phase(session: Session, challenge: Challenge) -> Phase | None:
    from challenges.challenges import current_phase as _current

    return _current(session, challenge)


def team_for_user(session: Session, challenge_id: int, user_id: int) -> Team | None:
    from challenges.teams import team_for_user as _team

    return _team(session, challenge_id, user_id)


def check_can_submit(session: Session, team_id: int, phase_id: int, **kind: Any) -> None:
    """The limits of a submission (or, with kind="check", of a check run)."""
    from challenges.submissions import check_can_submit as _check

    _check(session, team_id, phase_id, **kind)


def create_submission(session: Session, **fields: Any) -> Submission:
    from challenges.submissions import create_submission as _create

    return _create(session, **fields)


def check_image_storage(session: Session, team_id: int, cap: int) -> int:
    """The team's stored image bytes, or a DomainError when its storage is already full."""
    from challenges.submissions import check_image_storage as _check

    return _check(session, team_id, cap)


def get_submission_for_viewer(session: Session, submission_id: int, viewer: User | None) -> Submission:
    """The submission if `viewer` may see its page (same rule as the submission page), else NotFound."""
    from challenges.submissions import get_for_viewer

    sub, _phase, _challenge = get_for_viewer(session, submission_id, viewer)
    return sub


def visible_reason(sub: Submission, show_log: bool) -> str:
    """The reason as a viewer who may (not) read the log sees it (challenges.submissions.visible_reason)."""
    from challenges.submissions import visible_reason as _visible

    return _visible(sub, show_log)


def can_read_log(session: Session, viewer: User | None, sub: Submission) -> bool:
    """Whether `viewer` may read this submission's log (challenges.submissions.can_read_log, the one rule)."""
    from challenges.submissions import can_read_log as _can

    challenge = session.get(Challenge, sub.challenge_id)
    phase = session.get(Phase, sub.phase_id)
    return challenge is not None and phase is not None and _can(session, viewer, sub, phase, challenge)


def describe_outcome(status: str, outcome: str | None) -> str:
    from challenges.outcomes import describe_submission

    return describe_submission(status, outcome)


def dataset_for(session: Session, challenge_id: int, split: str) -> Dataset | None:
    return session.exec(select(Dataset).where(Dataset.challenge_id == challenge_id,
                                              Dataset.split == split)).first()


def sample_archive(dataset: Dataset) -> Path | None:
    """The zip of the split's public sample (its inputs and their truth), or None when it has none."""
    from challenges.datasets import SAMPLE_NAME

    return Path(dataset.sample_dir) / SAMPLE_NAME if dataset.sample_dir else None


# ---------------------------------------------------------------- quota
def check_submit_quota(session: Session, team_id: int, challenge_id: int) -> None:
    from evaluator.quota.team_quota import check_submit_quota as _check

    _check(session, team_id, challenge_id)


def run_time_cap(session: Session, team_id: int, challenge_id: int, devices: int, time_limit_s: float) -> float:
    from evaluator.quota.team_quota import run_time_cap as _cap

    return _cap(session, team_id, challenge_id, devices, time_limit_s)


def acquire_lease(session: Session, *, submission_id: int, attempt: int, challenge_id: int, accel_class: str,
                  count: int, node: str, ttl_s: float) -> Any | None:
    from evaluator.quota.leases import acquire

    return acquire(session, submission_id=submission_id, attempt=attempt, challenge_id=challenge_id,
                   accel_class=accel_class, count=count, node=node, ttl_s=ttl_s)


def heartbeat_lease(session: Session, lease_id: int, ttl_s: float) -> bool:
    from evaluator.quota.leases import heartbeat

    return heartbeat(session, lease_id, ttl_s)


def release_lease(session: Session, lease_id: int) -> None:
    from evaluator.quota.leases import release

    release(session, lease_id)


def active_leases(session: Session) -> list[Any]:
    from evaluator.quota.leases import active_leases as _active

    return _active(session)


def expire_stale_leases(session: Session) -> int:
    from evaluator.quota.leases import expire_stale

    return expire_stale(session)


def meter_run(session: Session, *, submission_id: int, lease_id: int | None, device_class: str,
              device_ids: list[str], started_at: datetime, finished_at: datetime) -> Any:
    from evaluator.quota.ledger import meter_run as _meter

    return _meter(session, submission_id=submission_id, lease_id=lease_id, device_class=device_class,
                  device_ids=device_ids, started_at=started_at, finished_at=finished_at)


def node_inventory() -> list[dict[str, Any]]:
    from evaluator.quota.inventory import node_inventory as _inventory

    return _inventory()


def parse_accelerators(spec: str, node: str) -> list[dict[str, Any]]:
    from evaluator.quota.inventory import parse_accelerators as _parse

    return _parse(spec, node)


def free_devices(session: Session, accel_class: str, nodes: list[str]) -> int:
    """Active devices of a class on these nodes that no lease holds."""
    from sqlalchemy import func

    from evaluator.quota.models import Device

    if not nodes:
        return 0
    return int(session.exec(select(func.count(Device.id)).where(
        Device.accel_class == accel_class, Device.active == True, Device.lease_id == None,  # noqa: E711,E712
        Device.node.in_(nodes))).one())  # type: ignore[attr-defined]


def release_attempt_leases(session: Session, submission_id: int, attempt: int) -> list[int]:
    """End the leases still held by one attempt (its worker is gone); returns their ids."""
    released = []
    for lease in active_leases(session):
        if lease.submission_id == submission_id and lease.attempt == attempt:
            release_lease(session, lease.id)
            released.append(lease.id)
    return released


def attempt_lease_ended(session: Session, submission_id: int, attempt: int) -> bool:
    """Whether this attempt had a lease that has ended (released or expired): it can never get one back."""
    from evaluator.quota.models import Lease

    lease = session.exec(select(Lease).where(Lease.submission_id == submission_id, Lease.attempt == attempt)
                         .execution_options(populate_existing=True)).first()
    return lease is not None and lease.released_at is not None


def register_node(session: Session, node: str, devices: list[dict[str, Any]]) -> None:
    from evaluator.quota.inventory import register_node as _register

    _register(session, node, devices)


# ---------------------------------------------------------------- scoring
def score_file(pred_path: Path, truth_path: Path, id_column: str, prediction_column: str,
               metrics: list[str]) -> dict[str, float]:
    from evaluator.scoring import score_file as _score

    return _score(pred_path, truth_path, id_column, prediction_column, metrics)


# ---------------------------------------------------------------- sandbox and images
def sandbox_spec(*, name: str, image_id: str, input_dir: Path | None, output_dir: Path, time_limit_s: float,
                 memory_mb: int, cpus: float, device_ids: list[str], log_max_bytes: int,
                 labels: dict[str, str] | None = None) -> Any:
    """The sandbox's SandboxSpec for a run under a challenge's limits (bench/hostile_table.py uses it too)."""
    from evaluator import sandbox

    # Devices declared by count in ACCELERATORS ("class:2") get FAKE-… ids: they are leased and metered
    # like real ones, but there is nothing for Docker to attach.
    real_devices = [d for d in device_ids if not str(d).startswith("FAKE-")]
    return sandbox.SandboxSpec(image_id=image_id, name=name, output_dir=output_dir, input_dir=input_dir,
                               time_limit_s=time_limit_s, memory_mb=memory_mb, cpus=cpus,
                               tmp_size_mb=sandbox.tmp_size_for(memory_mb), device_ids=real_devices,
                               log_max_bytes=log_max_bytes, labels=dict(labels or {}))


def run_sandbox(client: Any, *, name: str, image_id: str, input_dir: Path | None, output_dir: Path,
                time_limit_s: float, memory_mb: int, cpus: float, device_ids: list[str],
                log_max_bytes: int, labels: dict[str, str] | None = None) -> Any:
    """One sandboxed container run; returns the sandbox's RunResult (raises SandboxInfraError)."""
    from evaluator import sandbox

    return sandbox.run(client, sandbox_spec(name=name, image_id=image_id, input_dir=input_dir, output_dir=output_dir,
                                            time_limit_s=time_limit_s, memory_mb=memory_mb, cpus=cpus,
                                            device_ids=device_ids, log_max_bytes=log_max_bytes, labels=labels))


def inspect_image(client: Any, image_id: str, *, max_image_bytes: int) -> Any:
    from evaluator.intake import inspect_for_run

    return inspect_for_run(client, image_id, max_image_bytes=max_image_bytes)


def hub_container_names(client: Any, labels: dict[str, str] | None = None) -> list[str]:
    """Names of the sandbox containers on this engine, optionally only those with these label values."""
    from evaluator import sandbox

    return [c.name for c in sandbox.list_hub_containers(client, labels)]


def live_log_snapshot(client: Any, name: str, max_bytes: int) -> bytes:
    from evaluator import sandbox

    return sandbox.stream_log(client, name, max_bytes)
