"""The built-in scorer: the metric registry (challenges.scoring.metrics) over the predictions CSV, in this process."""
from __future__ import annotations

from challenges.scoring.base import (ChallengeTerms, MetricSpec, ScoreContext, Scored, ScoreRefused, Scorer,
                                     ScoringUnavailable, metric_keys, register)
from challenges.scoring.files import OutputError, TruthError, score_file
from challenges.scoring.metrics import REGISTRY


class BuiltinScorer(Scorer):
    kind = "builtin"

    def metrics(self, challenge: ChallengeTerms, split: str) -> list[MetricSpec]:
        return [MetricSpec(key, split, REGISTRY[key].direction, REGISTRY[key].precision)  # type: ignore[arg-type]
                for key in metric_keys(challenge) if key in REGISTRY]

    def score(self, ctx: ScoreContext) -> Scored:
        c = ctx.challenge
        try:
            values = score_file(ctx.predictions, ctx.truth_path, c.id_column, c.prediction_column, metric_keys(c))
        except OutputError as err:
            raise ScoreRefused(err.outcome, err.detail) from err
        except TruthError as err:
            raise ScoringUnavailable(f"the organiser's truth file cannot be used: {err.detail}") from err
        return Scored({ctx.split: values})


register(BuiltinScorer())
