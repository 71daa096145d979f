"""Scorers: what turns a run's output into named metrics, behind one interface and a registry.

A scorer kind is a subclass of `Scorer` with a `kind` name, registered with `register` (as CTFd registers its
challenge types): the built-in metrics (`builtin`) and an organiser's scoring image (`image`) are two kinds; a
third is one module with one `register()` call. `scorer_for(challenge)` picks the challenge's kind.

Scoring needs the hidden truth, which only challenges holds, so scorers live here and never in the evaluator.
This package imports neither Flask nor the database (a scorer reads plain values of the challenge).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class MetricSpec:
    """One named metric a scorer gives for a split: which way is better and how many decimals are shown."""

    key: str
    split: str
    direction: Direction
    precision: int = 4


class ChallengeTerms(Protocol):
    """What a scorer reads of a challenge (challenges.models.Challenge has all of it)."""

    metric: str
    extra_metrics: list[str]
    id_column: str
    prediction_column: str
    output_file: str
    scoring_image: str | None
    time_limit_s: int
    memory_mb: int
    cpus: float


@dataclass(frozen=True)
class ScorerRun:
    """A scoring container the scorer asks the platform to run (the evaluator runs it in its sandbox)."""

    image_id: str
    input_dir: Path
    output_dir: Path
    time_limit_s: float
    memory_mb: int
    cpus: float


@dataclass
class ScoreContext:
    """Everything one scoring needs: the terms, the split, the run's kept output and the truth."""

    challenge: ChallengeTerms
    split: str
    output_dir: Path
    truth_path: Path
    workdir: Path
    # Runs a ScorerRun and returns the sandbox's result (exit_code, timed_out, oom_killed, start_error, log);
    # given by whoever has an engine. Raises ScoringUnavailable when the platform cannot run it.
    run_container: Callable[[ScorerRun], Any] | None = None

    @property
    def predictions(self) -> Path:
        return self.output_dir / self.challenge.output_file


@dataclass(frozen=True)
class Scored:
    """The metrics of one scored output: {split: {metric key: value}}."""

    values: dict[str, dict[str, float]] = field(default_factory=dict)

    def of(self, split: str) -> dict[str, float]:
        return dict(self.values.get(split, {}))


class ScoreRefused(Exception):
    """The team's output cannot be scored (missing_output, bad_output): a final verdict on the team's run."""

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.detail = outcome, detail


class ScoringUnavailable(Exception):
    """The platform's side failed (truth unusable, the scoring image broke): retried, never held against a team."""


class Scorer:
    """Base class of a scorer kind."""

    kind: ClassVar[str] = ""

    def metrics(self, challenge: ChallengeTerms, split: str) -> list[MetricSpec]:
        """The metrics this scorer gives for a split, the challenge's primary metric first."""
        raise NotImplementedError

    def score(self, ctx: ScoreContext) -> Scored:
        """Score the output (raises ScoreRefused or ScoringUnavailable)."""
        raise NotImplementedError


SCORERS: dict[str, Scorer] = {}


def register(scorer: Scorer) -> Scorer:
    """Make a scorer kind available by its `kind` name."""
    if not scorer.kind:
        raise ValueError("a scorer needs a kind name")
    SCORERS[scorer.kind] = scorer
    return scorer


def kind_of(challenge: ChallengeTerms) -> str:
    """A challenge with an organiser's scoring image is scored by it; any other by the built-in metrics."""
    return "image" if challenge.scoring_image else "builtin"


def scorer_for(challenge: ChallengeTerms) -> Scorer:
    return SCORERS[kind_of(challenge)]


def metric_keys(challenge: ChallengeTerms) -> list[str]:
    """The challenge's primary metric, then its extra ones, each once."""
    return [challenge.metric] + [m for m in challenge.extra_metrics if m != challenge.metric]
