"""Evaluation metrics with employee-level bootstrap confidence intervals.

Every metric is computed from scores sorted once, with a weight per row: the point estimate
uses weight 1, and a bootstrap resample is just another weight vector (how often each row's
employee was drawn). Resampling employees, not rows, respects that one person appears on
several test reference dates; the same draws serve both models, so the lift's interval is
paired.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

METRICS = ("roc_auc", "pr_auc", "top_decile_precision", "top_decile_recall", "brier")
# Higher is better for all but the Brier score.
LOWER_IS_BETTER = frozenset({"brier"})
TOP_SHARE = 0.10


@dataclass(frozen=True)
class SortedScores:
    """Scores in descending order with their labels and the boundaries of tied groups."""

    order: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    group_ends: np.ndarray

    @classmethod
    def of(cls, scores: np.ndarray, labels: np.ndarray) -> SortedScores:
        scores = np.asarray(scores, dtype=float)
        order = np.argsort(-scores, kind="stable")
        sorted_scores = scores[order]
        # Last index of each run of equal scores: thresholds sit between distinct values.
        group_ends = np.flatnonzero(np.r_[np.diff(sorted_scores) != 0, True])
        return cls(order, sorted_scores, np.asarray(labels, dtype=float)[order], group_ends)


def weighted_metrics(sorted_scores: SortedScores, weights: np.ndarray | None = None) -> dict[str, float]:
    """ROC AUC, PR AUC (average precision), top-decile precision and recall, Brier; rows weighted."""
    s = sorted_scores
    w = np.ones_like(s.scores) if weights is None else np.asarray(weights, dtype=float)[s.order]
    positives_w = w * s.labels
    tp = np.cumsum(positives_w)[s.group_ends]
    fp = np.cumsum(w - positives_w)[s.group_ends]
    total_pos, total_neg = tp[-1], fp[-1]
    if total_pos == 0 or total_neg == 0:
        return dict.fromkeys(METRICS, float("nan"))
    tpr = np.r_[0.0, tp / total_pos]
    fpr = np.r_[0.0, fp / total_neg]
    roc_auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    precision = tp / np.maximum(tp + fp, 1e-12)
    pr_auc = float(np.sum(np.diff(tpr) * precision))  # sklearn's average precision: no interpolation
    cumulative_w = np.cumsum(w)
    in_top = cumulative_w <= TOP_SHARE * cumulative_w[-1] + 1e-9
    top_pos = float(np.sum(positives_w[in_top]))
    top_w = float(np.sum(w[in_top]))
    brier = float(np.sum(w * (s.scores - s.labels) ** 2) / cumulative_w[-1])
    return {
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "top_decile_precision": top_pos / top_w if top_w else float("nan"),
        "top_decile_recall": top_pos / total_pos,
        "brier": brier,
    }


def employee_bootstrap_weights(groups: np.ndarray, iterations: int, seed: int = 0) -> np.ndarray:
    """`iterations` x rows: how many times each row's group (employee) was drawn, with replacement."""
    _, group_index = np.unique(groups, return_inverse=True)
    n_groups = int(group_index.max()) + 1
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=iterations)
    return draws[:, group_index]


def interval(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def evaluate_with_intervals(
    predictions: Mapping[str, np.ndarray],
    labels: np.ndarray,
    groups: np.ndarray,
    iterations: int,
    level: float = 0.95,
    baseline: str = "hr_only",
    seed: int = 0,
) -> dict[str, dict]:
    """Metrics of each model's `predictions` with percentile intervals, and each model's lift over `baseline`.

    Returns {"models": {name: {metric: {"value", "ci_low", "ci_high"}}}, "lift": {name: {metric: ...}}}.
    """
    weights = employee_bootstrap_weights(groups, iterations, seed)
    sorted_by_model = {name: SortedScores.of(scores, labels) for name, scores in predictions.items()}
    points = {name: weighted_metrics(s) for name, s in sorted_by_model.items()}
    draws = {}
    for name, s in sorted_by_model.items():
        resampled = [weighted_metrics(s, w) for w in weights]  # one pass computes all five metrics
        draws[name] = {m: np.array([r[m] for r in resampled]) for m in METRICS}
    models = {
        name: {m: summarise(points[name][m], draws[name][m], level) for m in METRICS}
        for name in sorted_by_model
    }
    lift = {
        name: {
            m: summarise(points[name][m] - points[baseline][m], draws[name][m] - draws[baseline][m], level)
            for m in METRICS
        }
        for name in sorted_by_model
        if name != baseline and baseline in sorted_by_model
    }
    return {"models": models, "lift": lift}


def summarise(value: float, resampled: np.ndarray, level: float) -> dict[str, float]:
    low, high = interval(resampled, level)
    return {"value": float(value), "ci_low": low, "ci_high": high}


def higher_is_better(metric: str, value: float) -> float:
    """The metric as a score to maximize (Brier and other lower-is-better metrics are negated)."""
    return -value if metric in LOWER_IS_BETTER else value


def decile_lift(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[float]:
    """Observed exit rate per score decile (highest first) divided by the overall rate."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    labels = np.asarray(labels, dtype=float)[order]
    base = labels.mean() or float("nan")
    return [float(chunk.mean() / base) for chunk in np.array_split(labels, bins)]
