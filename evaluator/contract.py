"""The run contract: the only data the platform and an evaluation node exchange (docs/run-contract.md).

A `RunSpec` says what to run and under which limits; a `RunResult` says how it ended. Both are versioned
(`v`), immutable, refuse unknown fields, and travel as JSON (`to_json` / `from_json`), never as pickled objects,
so a node of another version fails loudly instead of guessing. `Keys` are opaque to the evaluator: it compares,
counts and stores them (fairness, reservation pool, billing, whether the team may read the log), and never joins
them to the tables of the package that made the spec.

The evaluator's signals live here too, beside the types they carry, so that `challenges` can connect to them
without importing anything else of the evaluator. Receivers run inside the sender's transaction and must not
commit: the sender commits both rows at once, which is what makes a result apply exactly once.

This module imports only pydantic, blinker and the standard library (tests/test_layers.py checks it).
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, Self

from blinker import Namespace
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

VERSION = 1
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
Outcome = Literal["ok", "timeout", "oom", "nonzero_exit", "image_rejected", "output_too_large", "missing_output",
                  "quota_exceeded", "infra_error", "cancelled"]
RunState = Literal["waiting", "sent", "running", "reported", "delivered", "cancelled", "gave_up"]

__all__ = ["Accel", "Billing", "ContractError", "ImageRef", "InputRef", "Keys", "Limits", "OutputRef", "OutputSpec",
           "RunResult", "RunSpec", "RunStatus", "Timing", "run_settled", "run_state_changed"]


class ContractError(ValueError):
    """A message that is not a valid contract document of a version this side knows."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> Self:
        """The document, or ContractError when `data` is not one of this version."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as err:
            raise ContractError(f"not a {cls.__name__} v{VERSION}: {err.errors()[0].get('msg', err)}") from err


class Limits(_Doc):
    time_s: int = Field(ge=1, le=7 * 24 * 3600)
    memory_mb: int = Field(ge=16, le=4 * 1024 * 1024)
    cpus: float = Field(gt=0, le=1024)
    pids: int = Field(default=256, ge=16, le=65536)
    output_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    log_bytes: int = Field(default=256 * 1024, ge=0)


class Accel(_Doc):
    """The accelerator class and how many devices of it one run holds (`cpu`, 0 for none)."""

    klass: str = Field(default="cpu", pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    count: int = Field(default=0, ge=0, le=64)


class ImageRef(_Doc):
    """An image pinned by digest; `config_digest` is the image ID a node checks after pulling."""

    registry: str = ""                 # "" for an image the node's engine already holds (uploaded archives today)
    repository: str = ""               # "team-7/sub"
    manifest_digest: str = ""
    config_digest: str

    @field_validator("config_digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        if not DIGEST_RE.match(value):
            raise ValueError("not a sha256 digest")
        return value

    @field_validator("manifest_digest")
    @classmethod
    def _manifest(cls, value: str) -> str:
        if value and not DIGEST_RE.match(value):
            raise ValueError("not a sha256 digest")
        return value


class InputRef(_Doc):
    """One read-only input tree: a dataset version, fetched by link (stamped at dispatch) or from a share."""

    name: str = Field(default="input", pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    version: str                       # content hash of the tree (challenges.datasets)
    url: str | None = None
    token: str | None = None


class OutputSpec(_Doc):
    file: str = "predictions.csv"
    id_column: str = "id"
    prediction_column: str = "prediction"


class Billing(_Doc):
    """Who pays for the run's device time and whose quota it draws on."""

    org_id: int | None = None
    team_id: int
    challenge_id: int


class Keys(_Doc):
    """Values the evaluator needs without knowing the package that made the spec."""

    fairness_group: str                # runs are dispatched fairly between groups ("challenge:12")
    reservation_pool: int | None = None
    billing: Billing
    log_visible: bool = True           # whether the team may read this run's log
    labels: dict[str, str] = Field(default_factory=dict)   # display only (/ops, statements)


class RunSpec(_Doc):
    v: Literal[1] = VERSION
    purpose: Literal["evaluate", "check", "score"] = "evaluate"
    owner: str = Field(pattern=r"^[a-z]+:[0-9]+(/[a-z]+)?$")   # "submission:123"
    node_class: Literal["eval", "scoring"] = "eval"
    image: ImageRef
    limits: Limits
    accel: Accel = Accel()
    inputs: tuple[InputRef, ...] = ()
    output: OutputSpec = OutputSpec()
    keys: Keys
    run_id: int | None = None          # stamped by the evaluator at each dispatch, never by the maker
    attempt: int = Field(default=0, ge=0)


class Timing(_Doc):
    queued_at: datetime | None = None
    dispatched_at: datetime | None = None
    started_at: datetime | None = None
    container_started_at: datetime | None = None
    container_finished_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def runtime_s(self) -> float | None:
        """The container's own seconds, from the engine's timestamps."""
        start, end = self.container_started_at, self.container_finished_at
        return max(0.0, (end - start).total_seconds()) if start and end else None


class OutputRef(_Doc):
    """The run's /output as kept by the platform (content-addressed), or by the node until it is sent."""

    digest: str = ""
    bytes: int = Field(default=0, ge=0)
    files: tuple[str, ...] = ()
    truncated: bool = False
    path: str | None = None            # where the node left it on a shared data dir (in-process delivery)


class RunResult(_Doc):
    v: Literal[1] = VERSION
    run_id: int | None = None
    owner: str
    attempt: int = Field(ge=0)
    node: str = ""
    outcome: Outcome
    reason: str = Field(default="", max_length=4000)
    exit_code: int | None = None
    timing: Timing = Timing()
    output: OutputRef | None = None
    log: str = ""


class RunStatus(_Doc):
    """What the evaluator tells the run's owner about a run it has not settled yet (for the submission page)."""

    run_id: int | None = None
    state: RunState
    attempt: int = 0
    node: str = ""
    position: int | None = None        # 1-based place among the waiting runs of its class
    workers: int = 0                   # live nodes that serve its class
    est_wait_s: float | None = None    # until it starts, from recent runtimes; None without a live node


def schema() -> dict[str, Any]:
    """The JSON schema of both documents (docs/run-contract.schema.json is this, written out)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "AI+ Scenario Hub run contract",
            "version": VERSION,
            "RunSpec": RunSpec.model_json_schema(), "RunResult": RunResult.model_json_schema()}


# ---------------------------------------------------------------- signals (sender: the evaluator)
_signals = Namespace()

run_state_changed = _signals.signal("run-state-changed", doc="""A run moved to `state` (waiting, sent, running).
Sent with the session; kwargs: run_id, owner, attempt, state. Receivers write in the sender's transaction.""")

run_settled = _signals.signal("run-settled", doc="""A run ended for good and its result is delivered, once.
Sent with the session inside the transaction that marks the run delivered; kwargs: run_id, owner, attempt, result
(a RunResult) and `applied`, a dict the receiver fills with what it did ({"scored": True, ...}).""")
