"""Fitting one feature set on synthetic frames: the probabilities are calibrated on the later dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss

from turnover_signals.model.dataset import as_numeric_frame
from turnover_signals.model.train import candidate, fit_feature_set

FEATURES = ["tenure_days", "performance_rating", "department"]


def synthetic_rows(n: int, base_rate: float, seed: int) -> pd.DataFrame:
    """Exits more likely with short tenure and a low rating; `base_rate` sets how common they are."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 500.0, n)
    rating = rng.integers(1, 6, n).astype(float)
    logit = -0.8 * (tenure - 1000) / 700 - 0.4 * (rating - 3)
    offset = np.log(base_rate / (1 - base_rate))
    label = rng.random(n) < 1 / (1 + np.exp(-(logit + offset)))
    return pd.DataFrame(
        {
            "tenure_days": tenure,
            "performance_rating": rating,
            "department": rng.choice(["sales", "ops", "it"], n),
            "label": label,
        }
    )


def test_probabilities_are_calibrated_on_the_calibration_dates():
    # Exits were three times as common in the fit months as in the later ones (a hiring wave left):
    # the fitted model alone over-predicts; calibration on the later dates brings it back.
    fit, calibration = synthetic_rows(4000, 0.15, 1), synthetic_rows(10000, 0.05, 2)
    test = synthetic_rows(10000, 0.05, 3)
    model = fit_feature_set("hr_only", FEATURES, fit, calibration, ["logistic_regression"], "pr_auc")
    uncalibrated = candidate("logistic_regression", FEATURES).fit(
        as_numeric_frame(fit, FEATURES), fit["label"]
    )
    raw = uncalibrated.predict_proba(as_numeric_frame(test, FEATURES))[:, 1]
    calibrated = model.predict(test)
    observed = test["label"].mean()
    assert raw.mean() > 2 * observed  # the setting really needs calibration
    assert calibrated.mean() == pytest.approx(observed, abs=0.01)
    assert brier_score_loss(test["label"], calibrated) < brier_score_loss(test["label"], raw) - 0.005


def test_the_algorithm_is_chosen_on_the_calibration_dates():
    fit, calibration = synthetic_rows(3000, 0.1, 4), synthetic_rows(2000, 0.1, 5)
    model = fit_feature_set(
        "hr_only", FEATURES, fit, calibration, ["logistic_regression", "gradient_boosting"], "pr_auc"
    )
    assert set(model.selection) == {"logistic_regression", "gradient_boosting"}
    assert model.algorithm == max(model.selection, key=model.selection.get)
