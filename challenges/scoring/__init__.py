"""Scoring a run's output: the scorer interface and registry (base), the built-in metrics, the organiser's image."""
from __future__ import annotations

from challenges.scoring import builtin, image
from challenges.scoring.base import (SCORERS, MetricSpec, ScoreContext, Scored, ScoreRefused, Scorer, ScorerRun,
                                     ScoringUnavailable, kind_of, metric_keys, register, scorer_for)

__all__ = ["SCORERS", "MetricSpec", "ScoreContext", "ScoreRefused", "Scored", "Scorer", "ScorerRun",
           "ScoringUnavailable", "builtin", "image", "kind_of", "metric_keys", "register", "scorer_for"]
