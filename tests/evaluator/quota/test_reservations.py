import pytest

from evaluator.quota import reservations
from evaluator.quota.inventory import node_inventory, register_node
from hub.errors import DomainError
from tests.evaluator.quota.conftest import at, make_challenge


def _four_devices(session):
    register_node(session, "n1", node_inventory({"NVIDIA_SMI": "", "ACCELERATORS": "nvidia-a100:4",
                                                 "HUB_NODE_NAME": "n1"}))


def test_reservation_within_the_inventory_is_kept(session, world):
    _four_devices(session)
    r = reservations.reserve(session, challenge_id=world.challenge.id, accel_class="nvidia-a100", count=2,
                             starts_at=at(0), ends_at=at(30), actor_id=world.operator.id)
    assert r.id is not None
    assert reservations.active_for(session, world.challenge.id, "nvidia-a100", at(1)).count == 2


def test_overcommit_is_refused_with_the_reason(session, world):
    _four_devices(session)
    other, _ = make_challenge(session, world.city)
    reservations.reserve(session, challenge_id=other.id, accel_class="nvidia-a100", count=3, starts_at=at(0),
                         ends_at=at(30), actor_id=world.operator.id)
    with pytest.raises(DomainError) as err:
        reservations.reserve(session, challenge_id=world.challenge.id, accel_class="nvidia-a100", count=2,
                             starts_at=at(10), ends_at=at(40), actor_id=world.operator.id)
    assert err.value.params["total"] == 4
    assert err.value.params["reserved"] == 3
    assert err.value.params["by"] == other.slug
    assert err.value.params["free"] == 1
    assert "4 exist, 3 are already reserved" in str(err.value)
    # Nothing was written, and a period that does not overlap is fine.
    assert len(reservations.listing(session)) == 1
    reservations.reserve(session, challenge_id=world.challenge.id, accel_class="nvidia-a100", count=2,
                         starts_at=at(31), ends_at=at(40), actor_id=world.operator.id)


def test_peak_counts_only_reservations_that_overlap_each_other(session, world):
    _four_devices(session)
    a, _ = make_challenge(session, world.city)
    b, _ = make_challenge(session, world.city)
    # a and b never overlap each other, so at most 2 are reserved at any moment of the new period.
    reservations.reserve(session, challenge_id=a.id, accel_class="nvidia-a100", count=2, starts_at=at(0),
                         ends_at=at(10), actor_id=None)
    reservations.reserve(session, challenge_id=b.id, accel_class="nvidia-a100", count=2, starts_at=at(10),
                         ends_at=at(20), actor_id=None)
    reservations.reserve(session, challenge_id=world.challenge.id, accel_class="nvidia-a100", count=2,
                         starts_at=at(0), ends_at=at(20), actor_id=None)


@pytest.mark.parametrize("count,start,end,field", [(0, 0, 1, "count"), (1, 5, 1, "ends_at")])
def test_bad_input_is_refused(session, world, count, start, end, field):
    _four_devices(session)
    with pytest.raises(DomainError) as err:
        reservations.reserve(session, challenge_id=world.challenge.id, accel_class="nvidia-a100", count=count,
                             starts_at=at(start), ends_at=at(end), actor_id=None)
    assert err.value.field == field


def test_unknown_class_has_no_capacity(session, world):
    _four_devices(session)
    with pytest.raises(DomainError, match="0 exist"):
        reservations.reserve(session, challenge_id=world.challenge.id, accel_class="nvidia-h100", count=1,
                             starts_at=at(0), ends_at=at(1), actor_id=None)
