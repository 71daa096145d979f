import threading
import time
from datetime import timedelta

import pytest
from sqlmodel import Session, select

from evaluator.quota import leases, reservations
from evaluator.quota.inventory import node_inventory, register_node
from evaluator.quota.models import Device, Lease
from hub.models import utcnow
from tests.evaluator.quota.conftest import at, make_challenge, make_submission, make_team

A100 = "nvidia-a100"


def _declare(session, node="n1", spec="nvidia-a100:4"):
    register_node(session, node, node_inventory({"NVIDIA_SMI": "", "ACCELERATORS": spec, "HUB_NODE_NAME": node}))


def _acquire(session, sub, count=1, node="n1", ttl=60, attempt=None):
    return leases.acquire(session, submission_id=sub.id, attempt=sub.attempt if attempt is None else attempt,
                          challenge_id=sub.challenge_id, accel_class=A100, count=count, node=node, ttl_s=ttl)


def test_lease_takes_exactly_the_devices_asked_for_and_release_returns_them(session, world):
    _declare(session)
    sub = make_submission(session, world.team, world.phase)
    lease = _acquire(session, sub, count=2)
    assert len(lease.device_ids) == 2 and len(set(lease.device_ids)) == 2
    held = session.exec(select(Device).where(Device.lease_id == lease.id)).all()
    assert sorted(d.uuid for d in held) == sorted(lease.device_ids)
    leases.release(session, lease.id)
    leases.release(session, lease.id)  # harmless twice
    assert session.exec(select(Device).where(Device.lease_id != None)).all() == []  # noqa: E711


def test_same_attempt_gets_the_same_lease(session, world):
    _declare(session)
    sub = make_submission(session, world.team, world.phase)
    first = _acquire(session, sub)
    again = _acquire(session, sub)
    assert again.id == first.id and again.device_ids == first.device_ids
    assert len(session.exec(select(Lease)).all()) == 1
    leases.release(session, first.id)
    assert _acquire(session, sub) is None  # that attempt is over


def test_only_devices_on_the_workers_node(session, world):
    _declare(session, "n1", "nvidia-a100:1")
    _declare(session, "n2", "nvidia-a100:2")
    subs = [make_submission(session, world.team, world.phase) for _ in range(3)]
    got = _acquire(session, subs[0], node="n1")
    assert got.device_ids == ["FAKE-nvidia-a100-n1-0"]
    assert _acquire(session, subs[1], node="n1") is None
    assert _acquire(session, subs[2], node="n2", count=2).device_ids == [
        "FAKE-nvidia-a100-n2-0", "FAKE-nvidia-a100-n2-1"]


def test_a_failed_lease_holds_nothing(session, world):
    _declare(session, spec="nvidia-a100:2")
    a, b = make_submission(session, world.team, world.phase), make_submission(session, world.team, world.phase)
    _acquire(session, a, count=1)
    assert _acquire(session, b, count=2) is None
    assert len(session.exec(select(Device).where(Device.lease_id != None)).all()) == 1  # noqa: E711
    assert session.exec(select(Lease).where(Lease.submission_id == b.id)).all() == []


def test_reserved_pool_and_shared_remainder(session, world):
    _declare(session)  # 4 devices
    reservations.reserve(session, challenge_id=world.challenge.id, accel_class=A100, count=3, starts_at=at(-1),
                         ends_at=at(10), actor_id=None)
    other, other_phase = make_challenge(session, world.city)
    other_team = make_team(session, other, world.other_company, world.outsider)
    mine = [make_submission(session, world.team, world.phase) for _ in range(4)]
    theirs = [make_submission(session, other_team, other_phase) for _ in range(2)]
    # The reserved challenge draws only from its pool of 3 ...
    assert all(_acquire(session, s) is not None for s in mine[:3])
    assert _acquire(session, mine[3]) is None
    # ... and the others share the one device nobody reserved.
    assert _acquire(session, theirs[0]) is not None
    assert _acquire(session, theirs[1]) is None


def test_others_cannot_take_a_pool_even_while_it_is_idle(session, world):
    _declare(session, spec="nvidia-a100:2")
    reservations.reserve(session, challenge_id=world.challenge.id, accel_class=A100, count=2, starts_at=at(-1),
                         ends_at=at(10), actor_id=None)
    other, other_phase = make_challenge(session, world.city)
    other_team = make_team(session, other, world.other_company, world.outsider)
    assert _acquire(session, make_submission(session, other_team, other_phase)) is None


def test_expiry_returns_a_dead_workers_devices(session, world):
    _declare(session, spec="nvidia-a100:1")
    dead, waiting = make_submission(session, world.team, world.phase), make_submission(session, world.team, world.phase)
    lease = _acquire(session, dead, ttl=30)
    assert _acquire(session, waiting) is None
    assert leases.heartbeat(session, lease.id, 30) is True
    assert leases.expire_stale(session) == 0  # still heart-beaten
    assert leases.expire_stale(session, now=utcnow() + timedelta(seconds=120)) == 1
    assert leases.heartbeat(session, lease.id, 30) is False  # the worker learns it lost the devices
    session.refresh(lease)
    assert lease.end_reason == "expired"
    assert _acquire(session, waiting).device_ids == lease.device_ids


def test_cpu_run_gets_an_empty_lease(session, world):
    sub = make_submission(session, world.team, world.phase)
    lease = _acquire(session, sub, count=0)
    assert lease is not None and lease.device_ids == []


# ---------------------------------------------------------------- concurrency
def _race(engine, subs, count_for, hold):
    """Each submission in its own thread and session; records every moment two runs share a device."""
    barrier = threading.Barrier(len(subs))
    guard, held, doubled, served, errors = threading.Lock(), set(), [], [], []

    def run(sub):
        try:
            with Session(engine, expire_on_commit=False) as s:
                barrier.wait()
                for _ in range(2000 if hold else 1):
                    lease = leases.acquire(s, submission_id=sub.id, attempt=sub.attempt,
                                           challenge_id=sub.challenge_id, accel_class=A100, count=count_for(sub),
                                           node="n1", ttl_s=60)
                    if lease is not None:
                        break
                    time.sleep(0.002)
                if lease is None:
                    return
                with guard:
                    if held & set(lease.device_ids):
                        doubled.append(lease.device_ids)
                    held.update(lease.device_ids)
                    served.append(lease)
                if hold:
                    time.sleep(0.001)
                    with guard:
                        held.difference_update(lease.device_ids)
                    leases.release(s, lease.id)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=run, args=(sub,)) for sub in subs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return served, doubled, errors


@pytest.mark.slow
def test_hundred_concurrent_attempts_never_share_a_device(session, engine, world):
    _declare(session)
    subs = [make_submission(session, world.team, world.phase) for _ in range(100)]
    served, doubled, errors = _race(engine, subs, lambda s: 1, hold=False)
    assert errors == []
    assert doubled == []
    assert len(served) == 4
    assert len({d for lease in served for d in lease.device_ids}) == 4
    assert len(session.exec(select(Lease)).all()) == 4


@pytest.mark.slow
def test_hundred_concurrent_runs_take_turns_without_sharing(session, engine, world):
    _declare(session)
    subs = [make_submission(session, world.team, world.phase) for _ in range(100)]
    served, doubled, errors = _race(engine, subs, lambda s: 1 + s.id % 2, hold=True)
    assert errors == []
    assert doubled == []
    assert len(served) == 100
    assert session.exec(select(Device).where(Device.lease_id != None)).all() == []  # noqa: E711


@pytest.mark.slow
def test_concurrent_retries_of_one_attempt_get_one_lease(session, engine, world):
    _declare(session)
    sub = make_submission(session, world.team, world.phase)
    served, doubled, errors = _race(engine, [sub] * 20, lambda s: 1, hold=False)
    assert errors == []
    assert len({lease.id for lease in served}) == 1
    assert len(session.exec(select(Lease)).all()) == 1
