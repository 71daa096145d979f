"""The metric registry: key → label, direction and the function that computes it (no Flask, no DB).

Every `compute(y_true, y_pred)` takes two aligned sequences (row i of one belongs to row i of the other),
already parsed according to the metric's `kind`:

- "label": strings (class labels), compared exactly;
- "number": finite floats;
- "probability": truth 0/1, predictions finite floats in [0, 1];
- "ranking": truth = a collection of relevant labels, prediction = a ranked sequence of labels.

The functions are plain Python (no numpy), exact where the arithmetic allows it (counts are kept as
integers and divided once; sums use math.fsum). Each is tested against scikit-learn on the same arrays.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from hub.errors import N_


class MetricError(ValueError):
    """The arrays cannot be scored by this metric; `message` is an English msgid with %(name)s params."""

    def __init__(self, message: str, **params: Any) -> None:
        super().__init__(message % params if params else message)
        self.message = message
        self.params = params


@dataclass(frozen=True)
class Metric:
    key: str
    label_zh: str
    label_en: str
    direction: str                      # "max": higher is better; "min": lower is better
    kind: str                           # "label" | "number" | "probability" | "ranking": how predictions parse
    compute: Callable[[Sequence[Any], Sequence[Any]], float]
    precision: int = 4                  # decimals a board shows

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "max"

    def describe(self) -> str:
        """What the metric computes and what the prediction column must hold (English msgid; translate it)."""
        return DESCRIPTIONS[self.key]


def _check_aligned(y_true: Sequence[Any], y_pred: Sequence[Any]) -> int:
    if len(y_true) != len(y_pred):
        raise MetricError(N_("The truth and the predictions have different lengths (%(truth)d and "
                             "%(predictions)d)."), truth=len(y_true), predictions=len(y_pred))
    if not y_true:
        raise MetricError(N_("There are no rows to score."))
    return len(y_true)


# ---------------------------------------------------------------- classification
def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Share of rows whose predicted label equals the true label."""
    n = _check_aligned(y_true, y_pred)
    return sum(1 for t, p in zip(y_true, y_pred) if t == p) / n


def macro_f1(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    """Unweighted mean of per-label F1 over the union of labels in truth and predictions.

    Matches sklearn's f1_score(average="macro", zero_division=0): a label that is only ever predicted
    (never true) has F1 = 0 and still counts in the mean.
    """
    _check_aligned(y_true, y_pred)
    tp: Counter[Any] = Counter()
    true_count = Counter(y_true)
    pred_count = Counter(y_pred)
    for t, p in zip(y_true, y_pred):
        if t == p:
            tp[t] += 1
    labels = set(true_count) | set(pred_count)
    # F1 = 2tp / (2tp + fp + fn) = 2tp / (|true| + |pred|); the denominator is > 0 for every label in the union.
    return math.fsum(2 * tp[label] / (true_count[label] + pred_count[label]) for label in labels) / len(labels)


# ---------------------------------------------------------------- regression
def rmse(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Root mean squared error."""
    n = _check_aligned(y_true, y_pred)
    return math.sqrt(math.fsum((t - p) * (t - p) for t, p in zip(y_true, y_pred)) / n)


def mae(y_true: Sequence[float], y_pred: Sequence[float]) -> float:
    """Mean absolute error."""
    n = _check_aligned(y_true, y_pred)
    return math.fsum(abs(t - p) for t, p in zip(y_true, y_pred)) / n


# ---------------------------------------------------------------- ranking of scores
def auc(y_true: Sequence[Any], y_score: Sequence[float]) -> float:
    """ROC AUC for a binary truth (0/1) and scores, as sklearn.metrics.roc_auc_score computes it.

    Uses the Mann–Whitney form: AUC = (R₊ − n₊(n₊+1)/2) / (n₊·n₋), where R₊ is the sum of the positives'
    ranks and tied scores share their average rank (a tie between a positive and a negative counts ½,
    which is what the trapezoidal ROC area gives). Kept in integers (twice the ranks) until one division.
    """
    n = _check_aligned(y_true, y_score)
    positive = []
    for t in y_true:
        if t == 1:
            positive.append(True)
        elif t == 0:
            positive.append(False)
        else:
            raise MetricError(N_("AUC needs a truth of 0 and 1 only; found %(value)s."), value=str(t))
    n_pos = sum(positive)
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        raise MetricError(N_("AUC is undefined when the truth has only one class (every row is %(value)d)."),
                          value=1 if n_pos else 0)
    order = sorted(range(n), key=y_score.__getitem__)
    twice_rank_sum = 0          # sum over positives of 2 × (average 1-based rank)
    i = 0
    while i < n:
        j = i
        score = y_score[order[i]]
        pos_in_group = 0
        while j < n and y_score[order[j]] == score:
            pos_in_group += positive[order[j]]
            j += 1
        # positions i+1 … j share the average rank (i+1+j)/2
        twice_rank_sum += pos_in_group * (i + 1 + j)
        i = j
    twice_u = twice_rank_sum - n_pos * (n_pos + 1)
    return twice_u / (2 * n_pos * n_neg)


def average_precision(relevance: Sequence[Any], scores: Sequence[float]) -> float:
    """Average precision of one query from binary relevance (0/1) and scores, like sklearn's
    average_precision_score: AP = Σₙ (Rₙ − Rₙ₋₁)·Pₙ over the distinct score thresholds, high to low,
    so tied scores enter together. A query without any relevant item scores 0.

    This is the sklearn-compatible, score-based form; the registry's "map" uses ranked label lists
    (see `average_precision_at_k`). The two agree when a ranking lists every candidate once.
    """
    _check_aligned(relevance, scores)
    n_rel = sum(1 for r in relevance if r)
    if n_rel == 0:
        return 0.0
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    total = 0.0
    tp = seen = 0
    i = 0
    while i < len(order):
        score = scores[order[i]]
        group_tp = 0
        while i < len(order) and scores[order[i]] == score:
            group_tp += 1 if relevance[order[i]] else 0
            seen += 1
            i += 1
        if group_tp:
            tp += group_tp
            total += group_tp * tp / seen
    return total / n_rel


def average_precision_at_k(relevant: Collection[Any], ranked: Sequence[Any], k: int | None = None) -> float:
    """AP@k of one query, as Kaggle defines it (ml_metrics.apk).

    AP@k = (1 / min(|relevant|, k)) · Σ_{i ≤ k, item i relevant and not listed before} precision@i.
    A label repeated in the ranking keeps its place but scores only once; an empty `relevant` gives 0.
    k=None means no cut-off (the whole ranking, denominator |relevant|).
    """
    wanted = set(relevant)
    if not wanted:
        return 0.0
    if k is not None:
        ranked = ranked[:k]
    hits = 0
    total = 0.0
    listed: set[Any] = set()
    for i, item in enumerate(ranked, start=1):
        if item in wanted and item not in listed:
            hits += 1
            total += hits / i
        listed.add(item)
    return total / (len(wanted) if k is None else min(len(wanted), k))


def mean_average_precision(y_true: Sequence[Collection[Any]], y_pred: Sequence[Sequence[Any]],
                           k: int | None = None) -> float:
    """MAP (MAP@k when k is given): the mean over rows of `average_precision_at_k`.

    Each truth row is the set of relevant labels, each prediction row the labels ranked best first.
    """
    n = _check_aligned(y_true, y_pred)
    return math.fsum(average_precision_at_k(t, p, k) for t, p in zip(y_true, y_pred)) / n


def map_at_k(k: int) -> Callable[[Sequence[Collection[Any]], Sequence[Sequence[Any]]], float]:
    """A compute function for MAP@k (for a challenge that cuts rankings at k)."""
    if k < 1:
        raise ValueError("k must be at least 1")

    def compute(y_true: Sequence[Collection[Any]], y_pred: Sequence[Sequence[Any]]) -> float:
        return mean_average_precision(y_true, y_pred, k)
    return compute


def _map(y_true: Sequence[Collection[Any]], y_pred: Sequence[Sequence[Any]]) -> float:
    return mean_average_precision(y_true, y_pred)


REGISTRY: dict[str, Metric] = {
    "accuracy": Metric("accuracy", "准确率", "Accuracy", "max", "label", accuracy),
    "macro_f1": Metric("macro_f1", "宏平均 F1", "Macro-F1", "max", "label", macro_f1),
    "rmse": Metric("rmse", "均方根误差", "RMSE", "min", "number", rmse),
    "mae": Metric("mae", "平均绝对误差", "MAE", "min", "number", mae),
    "auc": Metric("auc", "AUC", "AUC", "max", "probability", auc),
    "map": Metric("map", "平均精度均值 (mAP)", "Mean average precision", "max", "ranking", _map),
}

DESCRIPTIONS: dict[str, str] = {
    "accuracy": N_("Share of ids whose predicted label equals the true label exactly (higher is better). "
                   "The prediction column holds one class label per id."),
    "macro_f1": N_("Mean of the F1 score of every label that appears in the truth or the predictions, each "
                   "label weighted equally (higher is better). The prediction column holds one class label "
                   "per id."),
    "rmse": N_("Root mean squared error between predicted and true numbers (lower is better). The "
               "prediction column holds one finite number per id."),
    "mae": N_("Mean absolute error between predicted and true numbers (lower is better). The prediction "
              "column holds one finite number per id."),
    "auc": N_("Area under the ROC curve for a 0/1 truth (higher is better); tied scores count one half. The "
              "prediction column holds the probability of class 1, a number from 0 to 1, per id."),
    "map": N_("Mean average precision over ids (higher is better). The truth lists each id's relevant labels "
              "and the prediction column lists labels separated by spaces, best first. For each id, AP is the "
              "sum of the precision at every rank where a relevant label first appears, divided by the number "
              "of relevant labels; repeated labels score once; an id without relevant labels scores 0 "
              "(Kaggle's MAP@k without a cut-off)."),
}


def get(key: str) -> Metric:
    try:
        return REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}") from None
