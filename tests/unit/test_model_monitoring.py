"""Model monitoring on hand-made numbers: PSI, calibration error, performance, thresholds, the alert."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest

from turnover_signals.model.monitoring import (
    PSI_EMPTY_SHARE,
    alert_message,
    bin_shares,
    drift_status,
    expected_calibration_error,
    performance_status,
    performance_with_intervals,
    population_stability_index,
    psi_from_shares,
    top_features,
)
from turnover_signals.quality.gate import RunIdentity

SETTINGS = {
    "psi_alert": 0.25,
    "max_drop": {"roc_auc": 0.05, "pr_auc": 0.02, "top_decile_precision": 0.05},
    "max_calibration_error": 0.05,
}
# (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5)
HALVES_TO_QUARTERS = 0.25 * math.log(2) + 0.25 * math.log(1.5)


def test_psi_of_identical_distributions_is_zero():
    values = np.random.default_rng(3).normal(size=1000)
    assert population_stability_index(values, values) == 0.0
    assert psi_from_shares([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_psi_of_a_shifted_distribution_has_the_known_value():
    assert psi_from_shares([0.5, 0.5], [0.25, 0.75]) == pytest.approx(HALVES_TO_QUARTERS)
    assert HALVES_TO_QUARTERS == pytest.approx(0.2747, abs=1e-4)
    # a 0/1 feature: a bin per value
    expected, actual = [0] * 50 + [1] * 50, [0] * 25 + [1] * 75
    assert population_stability_index(expected, actual) == pytest.approx(HALVES_TO_QUARTERS)


def test_psi_bins_numbers_at_the_quantiles_of_the_training_window():
    expected, actual = np.arange(100.0), np.arange(50.0, 100.0)  # the upper half only
    e, a = bin_shares(expected, actual, bins=10)
    assert sorted(e) == [0.1] * 10
    assert sorted(a) == [0.0] * 5 + [0.2] * 5
    # five bins hold twice their share, five are empty (counted as PSI_EMPTY_SHARE)
    known = 5 * 0.1 * math.log(2) + 5 * (PSI_EMPTY_SHARE - 0.1) * math.log(PSI_EMPTY_SHARE / 0.1)
    assert population_stability_index(expected, actual) == pytest.approx(known)
    assert known == pytest.approx(3.7970, abs=1e-4)


def test_a_category_the_training_window_never_had_is_a_bin_of_its_own():
    expected, actual = ["Sales"] * 50 + ["Legal"] * 50, ["Sales"] * 50 + ["Oslo office"] * 50
    e, a = bin_shares(expected, actual)
    assert list(e) == [0.5, 0.0, 0.5] and list(a) == [0.0, 0.5, 0.5]  # Legal, Oslo office, Sales
    assert population_stability_index(expected, actual) == pytest.approx(
        2 * (0.5 - PSI_EMPTY_SHARE) * math.log(0.5 / PSI_EMPTY_SHARE)
    )


def test_missing_values_are_a_bin_of_their_own():
    expected = [1.0] * 50 + [2.0] * 50
    actual = [1.0] * 25 + [np.nan] * 25 + [2.0] * 50
    e, a = bin_shares(expected, actual)
    assert list(e) == [0.0, 0.5, 0.5] and list(a) == [0.25, 0.25, 0.5]  # (missing), 1.0, 2.0


def test_psi_of_nothing_is_not_a_number():
    assert math.isnan(population_stability_index([], [1.0, 2.0]))


def test_calibration_error_of_calibrated_scores_is_zero():
    # every decile of 10 rows predicts 0.2 and holds 2 exits
    labels = [1 if i % 5 == 0 else 0 for i in range(100)]
    assert expected_calibration_error([0.2] * 100, labels) == pytest.approx(0.0)


def test_calibration_error_of_a_miscalibrated_example():
    # half the rows predicted 0.1, half 0.9, and half of each group leaves: every decile is off by 0.4
    scores = [0.1] * 50 + [0.9] * 50
    labels = [i % 2 for i in range(100)]
    assert expected_calibration_error(scores, labels) == pytest.approx(0.4)


def test_calibration_error_counts_a_row_as_often_as_its_weight():
    scores, labels = [0.1, 0.9], [0, 0]
    assert expected_calibration_error(scores, labels, bins=2) == pytest.approx(0.5)
    assert expected_calibration_error(scores, labels, bins=2, weights=[3, 1]) == pytest.approx(0.3)


# 20 employees scored 0.95, 0.90, ..., 0.00; the 1st, 4th and 5th highest left.
HAND_SCORES = np.round(np.arange(0.95, -0.001, -0.05), 2)
HAND_LABELS = np.array([1, 0, 0, 1, 1] + [0] * 15, dtype=float)


def test_matured_labels_give_the_hand_computed_performance():
    figures = performance_with_intervals(HAND_SCORES, HAND_LABELS, np.arange(20), iterations=200, level=0.95)
    # each exit outranks the stayers below it: (17 + 15 + 15) of 3 x 17 pairs
    assert figures["roc_auc"]["value"] == pytest.approx(47 / 51)
    # precision at each exit's rank: 1/1, 2/4, 3/5
    assert figures["pr_auc"]["value"] == pytest.approx((1 + 2 / 4 + 3 / 5) / 3)
    # the top decile is the 2 highest scores, one of whom left
    assert figures["top_decile_precision"]["value"] == pytest.approx(0.5)
    assert figures["calibration_error"]["value"] == pytest.approx(
        expected_calibration_error(HAND_SCORES, HAND_LABELS)
    )
    for value in figures.values():
        assert value["ci_low"] <= value["value"] <= value["ci_high"]
        assert value["ci_low"] < value["ci_high"]


def test_a_psi_at_or_above_the_alert_threshold_is_an_alert():
    assert drift_status(0.2499, SETTINGS) == (0.25, "ok")
    assert drift_status(0.25, SETTINGS) == (0.25, "alert")


def test_performance_alerts_only_when_the_whole_interval_is_below_the_threshold():
    validation = {"roc_auc": {"value": 0.70, "ci_low": 0.65, "ci_high": 0.75}}
    below = {"value": 0.55, "ci_low": 0.50, "ci_high": 0.6499}
    straddling = {"value": 0.55, "ci_low": 0.45, "ci_high": 0.66}
    assert performance_status("roc_auc", below, validation, SETTINGS) == (pytest.approx(0.65), "alert")
    assert performance_status("roc_auc", straddling, validation, SETTINGS) == (pytest.approx(0.65), "ok")
    # no registered value to compare with: no threshold
    assert performance_status("pr_auc", below, validation, SETTINGS) == (None, "ok")


def test_calibration_alerts_only_when_the_whole_interval_is_above_the_threshold():
    above = {"value": 0.12, "ci_low": 0.051, "ci_high": 0.2}
    straddling = {"value": 0.12, "ci_low": 0.04, "ci_high": 0.2}
    assert performance_status("calibration_error", above, {}, SETTINGS) == (0.05, "alert")
    assert performance_status("calibration_error", straddling, {}, SETTINGS) == (0.05, "ok")


def test_top_features_are_the_registered_most_important_ones():
    importance = {"tenure_days": 0.01, "engagement_trend": 0.05, "location": 0.0, "gone": 0.9}
    features = ["tenure_days", "engagement_trend", "location", "job_level"]
    assert top_features({"feature_importance": importance}, features, 5, []) == [
        "engagement_trend",
        "tenure_days",
    ]
    assert top_features({"feature_importance": importance}, features, 1, []) == ["engagement_trend"]


def test_without_registered_importances_the_scores_most_named_features_come_first():
    shown = [["job_level", "location"], ["job_level"], []]
    features = ["tenure_days", "location", "job_level"]
    assert top_features({}, features, 2, shown) == ["job_level", "location"]
    assert top_features({}, features, 5, []) == features


def test_a_drift_alert_names_the_feature_the_next_step_and_the_runbook():
    row = {
        "reference_date": date(2026, 10, 31),
        "metric": "psi:tenure_days",
        "value": 3.8,
        "lower": None,
        "upper": None,
        "threshold": 0.25,
        "status": "alert",
    }
    message = alert_message(RunIdentity("turnover_model", "scheduled__2026-11-02"), "tm-abc-hr-lms", [row])
    assert message.startswith(
        "TURNOVER-SIGNALS ALERT turnover_model run scheduled__2026-11-02: model tm-abc-hr-lms"
    )
    assert "psi:tenure_days 3.800 at 2026-10-31 (at or above 0.25)" in message
    assert "Next step:" in message and "retrain (trigger turnover_model)" in message
    assert 'python -m turnover_signals.model.registry rollback --reason "..."' in message
    assert "docs/runbook/model.md#runbook-turnover_model" in message


def test_a_performance_alert_says_to_roll_back_or_retrain():
    row = {
        "reference_date": date(2026, 6, 30),
        "metric": "roc_auc",
        "value": 0.52,
        "lower": 0.45,
        "upper": 0.6,
        "threshold": 0.65,
        "status": "alert",
    }
    message = alert_message(RunIdentity(), "tm-abc-hr-lms", [row])
    assert "roc_auc 0.520 [0.450, 0.600] at 2026-06-30 (beyond 0.650)" in message
    assert "roll back to the previous champion" in message and "retrain" in message
    assert "inputs have moved" not in message
