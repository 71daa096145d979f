"""Scorers sit behind one interface and a registry: built-in metrics and the organiser's image are two kinds."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from challenges import scoring
from challenges.scoring import (SCORERS, MetricSpec, ScoreContext, Scored, ScoreRefused, Scorer, ScoringUnavailable,
                                register, scorer_for)


@dataclass
class Terms:
    metric: str = "accuracy"
    extra_metrics: list[str] = field(default_factory=lambda: ["macro_f1", "accuracy"])
    id_column: str = "id"
    prediction_column: str = "label"
    output_file: str = "predictions.csv"
    scoring_image: str | None = None
    time_limit_s: int = 60
    memory_mb: int = 256
    cpus: float = 1.0


def _ctx(tmp_path: Path, terms: Terms, pred: str | None, truth: str = "id,label\n1,a\n2,b\n") -> ScoreContext:
    out = tmp_path / "output"
    out.mkdir(parents=True)
    if pred is not None:
        (out / "predictions.csv").write_text(pred)
    (tmp_path / "truth.csv").write_text(truth)
    return ScoreContext(challenge=terms, split="public", output_dir=out, truth_path=tmp_path / "truth.csv",
                        workdir=tmp_path / "work")


def test_the_builtin_scorer_gives_named_metrics_per_split_with_direction_and_precision(tmp_path: Path) -> None:
    terms = Terms()
    scorer = scorer_for(terms)
    assert scorer.kind == "builtin"
    assert scorer.metrics(terms, "public") == [MetricSpec("accuracy", "public", "max", 4),
                                               MetricSpec("macro_f1", "public", "max", 4)]
    scored = scorer.score(_ctx(tmp_path, terms, "id,label\n1,a\n2,a\n"))
    assert scored == Scored({"public": {"accuracy": 0.5, "macro_f1": pytest.approx(1 / 3)}})


def test_a_bad_output_is_the_team_s_and_a_bad_truth_the_platform_s(tmp_path: Path) -> None:
    with pytest.raises(ScoreRefused) as refused:
        scorer_for(Terms()).score(_ctx(tmp_path / "a", Terms(), None))
    assert refused.value.outcome == "missing_output"
    with pytest.raises(ScoringUnavailable):
        scorer_for(Terms()).score(_ctx(tmp_path / "b", Terms(), "id,label\n1,a\n", truth="nope\n"))


def test_a_challenge_with_a_scoring_image_is_scored_by_it_through_the_engine_it_is_given(tmp_path: Path) -> None:
    terms = Terms(scoring_image="sha256:" + "c" * 64)
    assert scorer_for(terms).kind == "image"
    ctx = _ctx(tmp_path, terms, "id,label\n1,a\n")
    with pytest.raises(ScoringUnavailable, match="no engine"):
        scorer_for(terms).score(ctx)   # without an engine at hand it never pretends to score


def test_a_third_kind_is_one_class_and_one_register_call(tmp_path: Path) -> None:
    class RowCount(Scorer):
        kind = "rowcount"

        def metrics(self, challenge, split):  # type: ignore[no-untyped-def]
            return [MetricSpec("rows", split, "max", 0)]

        def score(self, ctx: ScoreContext) -> Scored:
            return Scored({ctx.split: {"rows": float(len(ctx.predictions.read_text().splitlines()) - 1)}})

    register(RowCount())
    try:
        assert SCORERS["rowcount"].score(_ctx(tmp_path, Terms(), "id,label\n1,a\n2,b\n")).of("public") == {"rows": 2.0}
    finally:
        SCORERS.pop("rowcount")
    assert set(SCORERS) == {"builtin", "image"} and scoring.builtin and scoring.image
