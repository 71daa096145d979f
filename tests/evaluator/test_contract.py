"""The run contract travels as JSON, refuses what it does not know, and matches its published schema."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from evaluator import contract
from evaluator.contract import (Billing, ContractError, ImageRef, InputRef, Keys, Limits, RunResult, RunSpec, Timing,
                                run_settled)
from hub.models import utcnow

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "a" * 64


def make_spec(**over: object) -> RunSpec:
    fields: dict[str, object] = dict(
        owner="submission:12", image=ImageRef(config_digest=DIGEST),
        limits=Limits(time_s=60, memory_mb=512, cpus=1.0),
        inputs=(InputRef(version="b" * 64),),
        keys=Keys(fairness_group="challenge:3", billing=Billing(org_id=5, team_id=7, challenge_id=3)))
    fields.update(over)
    return RunSpec(**fields)  # type: ignore[arg-type]


def test_a_spec_and_a_result_survive_the_trip_as_json() -> None:
    spec = make_spec(attempt=2, run_id=40)
    assert RunSpec.from_json(spec.to_json()) == spec
    now = utcnow()
    result = RunResult(run_id=40, owner="submission:12", attempt=2, node="node-a", outcome="ok", exit_code=0,
                       timing=Timing(container_started_at=now, container_finished_at=now + timedelta(seconds=3)),
                       log="done\n")
    again = RunResult.from_json(result.to_json())
    assert again == result and again.timing.runtime_s == 3.0
    assert json.loads(spec.to_json())["v"] == 1


@pytest.mark.parametrize("mutate, why", [
    (lambda d: d.update(v=2), "a version this side does not know"),
    (lambda d: d.update(surprise=1), "an unknown field"),
    (lambda d: d["image"].update(config_digest="sha256:short"), "an image not pinned by digest"),
    (lambda d: d.update(owner="submission:1; rm -rf /"), "an owner that is not a plain reference"),
    (lambda d: d["limits"].update(time_s=0), "a limit out of range"),
    (lambda d: d["accel"].update(klass="../../etc"), "an accelerator class that is not a name"),
])
def test_a_node_refuses_a_spec_it_cannot_trust(mutate, why) -> None:
    data = json.loads(make_spec().to_json())
    mutate(data)
    with pytest.raises(ContractError):
        RunSpec.from_json(json.dumps(data))


def test_documents_are_frozen() -> None:
    spec = make_spec()
    with pytest.raises(ValidationError):
        spec.attempt = 3  # type: ignore[misc]


def test_the_published_schema_is_the_code_s() -> None:
    published = json.loads((ROOT / "docs" / "run-contract.schema.json").read_text())
    assert published == json.loads(json.dumps(contract.schema())), \
        "docs/run-contract.schema.json is stale: regenerate it from evaluator.contract.schema()"


def test_run_settled_reaches_every_receiver_and_others_ignore_a_foreign_owner() -> None:
    got = []

    def receiver(sender: object, **kwargs: object) -> None:
        got.append(kwargs["owner"])

    run_settled.connect(receiver)
    try:
        # An owner no other receiver knows: challenges' receiver (connected once the tables load) ignores it.
        run_settled.send(None, run_id=1, owner="probe:1", attempt=1, result=None, outcome="ok", scored=False)
    finally:
        run_settled.disconnect(receiver)
    assert got == ["probe:1"]
