"""The model's metrics, split, bands and promotion rule: fast, pure, checked against scikit-learn."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from turnover_signals.errors import BadInputError
from turnover_signals.model.dataset import settled_reference_dates, time_split
from turnover_signals.model.metrics import (
    SortedScores,
    employee_bootstrap_weights,
    evaluate_with_intervals,
    weighted_metrics,
)
from turnover_signals.model.registry import is_real_improvement
from turnover_signals.model.score import risk_bands

CONFIG = {"model": {"horizon_days": 90, "test_reference_dates": 6, "calibration_reference_dates": 3}}


def sample(n=3000, seed=1):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.05
    scores = np.round(np.clip(0.05 + 0.1 * labels + rng.normal(0, 0.05, n), 0, 1), 2)  # rounding makes ties
    return scores, labels


def test_point_metrics_match_scikit_learn_with_ties():
    scores, labels = sample()
    metrics = weighted_metrics(SortedScores.of(scores, labels))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(labels, scores))
    assert metrics["brier"] == pytest.approx(brier_score_loss(labels, scores))


def test_integer_weights_equal_repeating_rows():
    scores, labels = sample(500)
    weights = np.random.default_rng(3).integers(0, 3, len(scores))
    repeated = np.repeat(np.arange(len(scores)), weights)
    weighted = weighted_metrics(SortedScores.of(scores, labels), weights)
    assert weighted["roc_auc"] == pytest.approx(roc_auc_score(labels[repeated], scores[repeated]))
    assert weighted["pr_auc"] == pytest.approx(average_precision_score(labels[repeated], scores[repeated]))


def test_top_decile_precision_and_recall():
    labels = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0] * 10)  # 20 positives in 100 rows
    scores = np.linspace(1, 0, 100)  # the first 10 rows score highest: 2 positives among them
    metrics = weighted_metrics(SortedScores.of(scores, labels))
    assert metrics["top_decile_precision"] == pytest.approx(0.2)
    assert metrics["top_decile_recall"] == pytest.approx(2 / 20)


def test_bootstrap_draws_whole_employees():
    groups = np.array([7, 7, 7, 9, 9, 11])
    weights = employee_bootstrap_weights(groups, 50, seed=0)
    assert weights.shape == (50, 6)
    assert (weights[:, 0] == weights[:, 2]).all() and (weights[:, 3] == weights[:, 4]).all()
    assert (weights.sum(axis=1) > 0).all()


def test_intervals_contain_the_point_and_an_identical_model_has_zero_lift():
    scores, labels = sample()
    groups = np.arange(len(scores)) // 3
    result = evaluate_with_intervals({"hr_only": scores, "hr_lms": scores.copy()}, labels, groups, 200)
    for metric, value in result["models"]["hr_lms"].items():
        assert value["ci_low"] <= value["value"] <= value["ci_high"], metric
    assert result["lift"]["hr_lms"]["pr_auc"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def month_end(year: int, month: int) -> date:
    return date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)


MONTH_ENDS = [month_end(2025, m) for m in range(1, 13)] + [month_end(2026, m) for m in range(1, 13)]


def labelled_frame(dates, known_through=date(2027, 3, 31), employees=20, rate=0.1):
    """`employees` rows per date, every one settled as of `known_through`, a share `rate` positive."""
    rows = [
        {
            "employee_key": e,
            "reference_date": d,
            "label": e < employees * rate,
            "hr_known_through": known_through,
        }
        for d in dates
        for e in range(employees)
    ]
    return pd.DataFrame(rows)


def test_time_split_purges_the_horizon_before_the_test_and_the_calibration_windows():
    split = time_split(labelled_frame(MONTH_ENDS[1:]), CONFIG)  # 2025-02-28 .. 2026-12-31
    assert split.test_dates == MONTH_ENDS[-6:] and split.open_dates == []
    assert all(
        d + timedelta(days=90) < split.test_dates[0] for d in split.fit_dates + split.calibration_dates
    )
    assert split.calibration_dates == [date(2026, 2, 28), date(2026, 3, 31), date(2026, 4, 30)]
    # 2025-10-31 + 90 days < 2026-02-28 ends the fit dates; 2026-04-30 + 90 days < 2026-07-31 the calibration
    assert split.fit_dates[-1] == date(2025, 10, 31)
    assert all(d + timedelta(days=90) < split.calibration_dates[0] for d in split.fit_dates)
    assert split.purged_dates == [
        date(2025, 11, 30),
        date(2025, 12, 31),
        date(2026, 1, 31),
        date(2026, 5, 31),
        date(2026, 6, 30),
    ]


def test_dates_whose_horizon_is_open_stay_out_of_every_window():
    # HR is known through 2026-10-31: dates after 2026-08-02 have an open 90-day horizon. Their leavers
    # are already labelled positive, their stayers not yet, so their labelled rows are all exits.
    known = date(2026, 10, 31)
    settled = [d for d in MONTH_ENDS if d + timedelta(days=90) <= known]
    frame = pd.concat(
        [
            labelled_frame(settled, known_through=known),
            pd.DataFrame(
                [
                    {"employee_key": e, "reference_date": d, "label": True, "hr_known_through": known}
                    for d in (date(2026, 8, 31), date(2026, 9, 30))
                    for e in range(3)
                ]
            ),
        ],
        ignore_index=True,
    )
    split = time_split(frame, CONFIG)
    assert split.open_dates == [date(2026, 8, 31), date(2026, 9, 30)]
    used = split.fit_dates + split.calibration_dates + split.test_dates
    assert not set(split.open_dates) & set(used)
    assert split.test_dates[-1] == date(2026, 7, 31)
    assert all(d + timedelta(days=90) <= known for d in used)
    test_rows = split.rows(frame, "test")
    assert test_rows["label"].mean() == pytest.approx(0.1)  # the base rate, not inflated by open dates
    assert set(split.used_rows(frame)["reference_date"]) == set(used)


def test_a_date_with_one_label_computed_before_its_horizon_closed_is_not_settled():
    known = date(2026, 10, 31)
    frame = labelled_frame(MONTH_ENDS[:19], known_through=known)  # 2025-01-31 .. 2026-07-31, all settled
    frame.loc[frame["reference_date"] == date(2026, 7, 31), "hr_known_through"] = date(2026, 7, 31)
    frame.loc[frame["reference_date"] == date(2026, 6, 30), "hr_known_through"] = None
    settled, still_open = settled_reference_dates(frame, 90)
    assert still_open == [date(2026, 6, 30), date(2026, 7, 31)]
    assert settled == MONTH_ENDS[:17]


def test_time_split_refuses_too_few_settled_dates():
    with pytest.raises(BadInputError, match="runbook-turnover_model"):
        time_split(labelled_frame([date(2026, 1, 31), date(2026, 2, 28)]), CONFIG)
    # enough labelled dates, but the last ones are still open: not enough to split
    frame = labelled_frame(MONTH_ENDS[:10], known_through=date(2025, 6, 30))
    with pytest.raises(BadInputError, match="still open"):
        time_split(frame, CONFIG)


def test_risk_bands_by_rank():
    ranks, bands = risk_bands(np.linspace(0, 1, 20), {"high": 0.1, "elevated": 0.2})
    assert ranks[-1] == 1 and bands.count("high") == 2 and bands.count("elevated") == 4
    assert bands[-1] == "high" and bands[0] == "low"


def test_promotion_needs_a_real_improvement_a_tie_or_noise_keeps_the_champion():
    assert not is_real_improvement({"value": 0.0, "ci_low": 0.0, "ci_high": 0.0}, margin=0.0)  # a tie
    assert not is_real_improvement({"value": 0.01, "ci_low": -0.004, "ci_high": 0.03}, margin=0.0)  # noise
    assert is_real_improvement({"value": 0.02, "ci_low": 0.004, "ci_high": 0.03}, margin=0.0)
    assert not is_real_improvement({"value": 0.02, "ci_low": 0.004, "ci_high": 0.03}, margin=0.005)
    # registered values only (no interval): the point improvement must clear the margin
    assert is_real_improvement({"value": 0.001}, margin=0.0) and not is_real_improvement({"value": 0.0}, 0.0)


def test_lower_is_better_metrics_are_maximized_negated():
    from turnover_signals.model.metrics import higher_is_better

    brier = {"lr": 0.05, "gbm": 0.03}
    assert max(brier, key=lambda a: higher_is_better("brier", brier[a])) == "gbm"
    auc = {"lr": 0.61, "gbm": 0.66}
    assert max(auc, key=lambda a: higher_is_better("pr_auc", auc[a])) == "gbm"
