"""The metric registry: hand-computed cases and scikit-learn's values on the same arrays."""
from __future__ import annotations

import math
import random

import pytest
from sklearn import metrics as skm

from challenges.scoring import metrics
from challenges.scoring.metrics import (REGISTRY, MetricError, accuracy, auc, average_precision, average_precision_at_k,
                               macro_f1, mae, map_at_k, mean_average_precision, rmse)

SEEDS = range(12)


def test_the_registry_offers_the_six_metrics_with_direction_kind_and_description() -> None:
    assert set(REGISTRY) == {"accuracy", "macro_f1", "rmse", "mae", "auc", "map"}
    for key, metric in REGISTRY.items():
        assert metric.key == key
        assert metric.direction in ("max", "min")
        assert metric.kind in ("label", "number", "probability", "ranking")
        assert metric.label_zh and metric.label_en
        assert len(metric.describe()) > 40
    assert not REGISTRY["rmse"].higher_is_better and REGISTRY["auc"].higher_is_better
    assert metrics.get("mae") is REGISTRY["mae"]
    with pytest.raises(KeyError, match="unknown metric 'bleu'"):
        metrics.get("bleu")


# ---------------------------------------------------------------- hand-computed
def test_accuracy_counts_exact_matches() -> None:
    assert accuracy(["a", "b", "c", "a"], ["a", "c", "c", "b"]) == 0.5
    assert accuracy(["1"], ["1.0"]) == 0.0      # labels are compared as written


def test_macro_f1_averages_over_the_union_of_labels() -> None:
    # a: tp 1, 2 true, 1 predicted → 2/3; b: tp 1, 2 true, 2 predicted → 1/2; c: only predicted → 0
    assert macro_f1(["a", "a", "b", "b"], ["a", "b", "b", "c"]) == pytest.approx(7 / 18)
    assert macro_f1(["x", "y"], ["x", "y"]) == 1.0


def test_rmse_and_mae_by_hand() -> None:
    assert rmse([1.0, 2.0, 3.0], [1.0, 2.0, 5.0]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1.0, 2.0, 3.0], [2.0, 2.0, 0.0]) == pytest.approx(4 / 3)
    assert rmse([5.0], [5.0]) == 0.0


def test_auc_by_hand_with_ties_counting_one_half() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    # positive pairs won: (.5>.2) (.5=.5 → ½) (.9>.2) (.9>.5) → 3.5 of 4
    assert auc([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9]) == 0.875
    assert auc([1, 0], [0.9, 0.1]) == 1.0 and auc([1, 0], [0.1, 0.9]) == 0.0


def test_auc_refuses_a_truth_with_one_class() -> None:
    with pytest.raises(MetricError, match="only one class") as caught:
        auc([1, 1, 1], [0.2, 0.3, 0.9])
    assert caught.value.message.startswith("AUC is undefined")
    assert caught.value.params == {"value": 1}
    with pytest.raises(MetricError, match="0 and 1 only"):
        auc([0, 2], [0.1, 0.2])


def test_map_follows_kaggles_apk_definition() -> None:
    # the known values of Kaggle's ml_metrics tests
    assert average_precision_at_k(range(1, 6), [6, 4, 7, 1, 2], 2) == pytest.approx(0.25)
    assert average_precision_at_k(range(1, 6), [1, 1, 1, 1, 1], 5) == pytest.approx(0.2)
    assert average_precision_at_k(range(1, 100), range(1, 100), 100) == 1.0
    assert mean_average_precision([[1, 3, 4], [1, 2, 4], [1, 3]],
                                  [list(range(1, 6))] * 3, 3) == pytest.approx(0.685185185185185)
    assert map_at_k(3)([[1, 3, 4], [1, 2, 4], [1, 3]], [list(range(1, 6))] * 3) == pytest.approx(0.685185185185185)
    # no cut-off: relevant {a, c}; a at rank 1 (P=1), c at rank 3 (P=2/3) → (1 + 2/3) / 2
    assert REGISTRY["map"].compute([{"a", "c"}], [["a", "b", "c"]]) == pytest.approx(5 / 6)
    # a relevant label never listed counts as a miss; an id without relevant labels scores 0
    assert REGISTRY["map"].compute([{"a", "z"}, set()], [["a"], ["a"]]) == pytest.approx(0.25)


def test_metrics_refuse_misaligned_or_empty_arrays() -> None:
    for metric in REGISTRY.values():
        with pytest.raises(MetricError, match="different lengths"):
            metric.compute([1, 0], [1])
        with pytest.raises(MetricError, match="no rows"):
            metric.compute([], [])


# ---------------------------------------------------------------- against scikit-learn
def _labels(rng: random.Random, n: int, alphabet: str) -> list[str]:
    return [rng.choice(alphabet) for _ in range(n)]


@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_and_macro_f1_equal_sklearns(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 300)
    # truth and predictions draw from overlapping, different label sets: some labels only one side has
    y_true = _labels(rng, n, "abcd")
    y_pred = _labels(rng, n, "bcdef")
    assert accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert macro_f1(y_true, y_pred) == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0))


@pytest.mark.parametrize("seed", SEEDS)
def test_rmse_and_mae_equal_sklearns(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 500)
    y_true = [rng.gauss(100, 30) for _ in range(n)]
    y_pred = [t + rng.gauss(0, 5) for t in y_true]
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt(skm.mean_squared_error(y_true, y_pred)))
    assert mae(y_true, y_pred) == pytest.approx(skm.mean_absolute_error(y_true, y_pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_auc_equals_sklearns_including_ties(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(2, 2000)
    y_true = [rng.randint(0, 1) for _ in range(n)]
    y_true[0], y_true[1] = 0, 1
    # one decimal: many tied scores, across and within the classes
    y_score = [round(min(1.0, max(0.0, 0.3 * t + rng.random() * 0.7)), 1) for t in y_true]
    assert auc(y_true, y_score) == pytest.approx(skm.roc_auc_score(y_true, y_score), abs=1e-12)
    unique = [rng.random() for _ in range(n)]
    assert auc(y_true, unique) == pytest.approx(skm.roc_auc_score(y_true, unique), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_score_based_average_precision_equals_sklearns_including_ties(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 400)
    relevance = [rng.randint(0, 1) for _ in range(n)]
    relevance[0] = 1
    scores = [round(rng.random(), 1) for _ in range(n)]
    assert average_precision(relevance, scores) == pytest.approx(
        skm.average_precision_score(relevance, scores), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_map_of_full_rankings_equals_the_mean_of_sklearns_average_precision(seed: int) -> None:
    """With every candidate ranked once, the registry's MAP is sklearn's binary-relevance AP averaged over ids."""
    rng = random.Random(seed)
    candidates = [f"L{i}" for i in range(10)]
    truths, rankings, reference = [], [], []
    for _ in range(rng.randint(1, 60)):
        relevant = set(rng.sample(candidates, rng.randint(1, 6)))
        ranking = rng.sample(candidates, len(candidates))
        truths.append(relevant)
        rankings.append(ranking)
        relevance = [1 if c in relevant else 0 for c in ranking]
        scores = [len(ranking) - i for i in range(len(ranking))]     # best first
        reference.append(skm.average_precision_score(relevance, scores))
        assert average_precision(relevance, scores) == pytest.approx(reference[-1])
    assert REGISTRY["map"].compute(truths, rankings) == pytest.approx(sum(reference) / len(reference))
