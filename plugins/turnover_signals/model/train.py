"""Fitting one feature set: candidate algorithms, selection and calibration on later dates.

Each candidate (logistic regression, gradient boosting) is fitted on the fit dates; the one
with the better score on the calibration dates (the promotion metric) is kept and its
probabilities are calibrated on those same later dates (Platt scaling on a frozen model), so
the published probabilities mean what they say. Nothing here ever sees the test dates.

Calibration maps scores to probabilities and never reorders them: a Platt fit whose slope would
turn the model's ranking around (a model that, on the calibration dates, looked no better than
chance or worse) is held at the boundary instead, a flat probability at the calibration dates'
exit rate that keeps the model's own order. Unconstrained, such a fit silently published the
reversed model, chosen on a few dozen leavers (see `monotone_calibration`).
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from turnover_signals import storage
from turnover_signals.errors import BadInputError
from turnover_signals.model.dataset import CATEGORICAL_FEATURES, RUNBOOK_SECTION, as_numeric_frame
from turnover_signals.model.metrics import SortedScores, higher_is_better, weighted_metrics

RANDOM_STATE = 20261101

log = logging.getLogger(__name__)


def preprocessor(features: Sequence[str]) -> ColumnTransformer:
    numeric = [f for f in features if f not in CATEGORICAL_FEATURES]
    categorical = [f for f in features if f in CATEGORICAL_FEATURES]
    return ColumnTransformer(
        [
            # Missing LMS values mean "no activity", which is itself a signal: keep an indicator.
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
                numeric,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore", min_frequency=20), categorical),
        ]
    )


def candidate(algorithm: str, features: Sequence[str]) -> Pipeline:
    if algorithm == "logistic_regression":
        estimator = LogisticRegression(C=0.1, max_iter=2000)
    elif algorithm == "gradient_boosting":
        estimator = HistGradientBoostingClassifier(
            learning_rate=0.08,
            max_iter=100,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=False,
            random_state=RANDOM_STATE,
        )
    else:
        raise BadInputError(
            "model.algorithms",
            f"unknown algorithm {algorithm!r}",
            "use logistic_regression and/or gradient_boosting",
            RUNBOOK_SECTION,
        )
    return Pipeline([("prepare", preprocessor(features)), ("classify", estimator)])


@dataclass
class FittedModel:
    """A calibrated model of one feature set and what chose it."""

    feature_set: str
    features: list[str]
    algorithm: str
    estimator: CalibratedClassifierCV
    selection: dict[str, float]  # the promotion metric of each candidate on the calibration dates
    baseline_values: dict[str, float | str]  # a typical value per feature, for contributions

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(as_numeric_frame(frame, self.features))[:, 1]


def fit_feature_set(
    feature_set: str,
    features: list[str],
    fit: pd.DataFrame,
    calibration: pd.DataFrame,
    algorithms: Sequence[str],
    metric: str,
) -> FittedModel:
    """Fit each algorithm on `fit`, keep the best on `calibration`, calibrate it there."""
    for part, rows in (("fit", fit), ("calibration", calibration)):
        if rows["label"].nunique() < 2:
            raise BadInputError(
                "mart.training_set",
                f"the {part} dates hold only one label class",
                "build more reference dates or check the labels (mart.turnover_label)",
                RUNBOOK_SECTION,
            )
    x_fit, y_fit = as_numeric_frame(fit, features), fit["label"].to_numpy()
    x_cal, y_cal = as_numeric_frame(calibration, features), calibration["label"].to_numpy()
    fitted, selection = {}, {}
    for algorithm in algorithms:
        pipeline = candidate(algorithm, features).fit(x_fit, y_fit)
        fitted[algorithm] = pipeline
        selection[algorithm] = weighted_metrics(SortedScores.of(pipeline.predict_proba(x_cal)[:, 1], y_cal))[
            metric
        ]
    best = max(selection, key=lambda a: higher_is_better(metric, selection[a]))
    calibrated = monotone_calibration(fitted[best], x_cal, y_cal)
    baseline = {
        f: (x_fit[f].mode().iloc[0] if f in CATEGORICAL_FEATURES else float(np.nanmedian(x_fit[f])))
        for f in features
    }
    return FittedModel(feature_set, features, best, calibrated, selection, baseline)


# sklearn's sigmoid calibrator predicts 1 / (1 + exp(a * score + b)): a < 0 keeps the order of the scores.
MIN_CALIBRATION_SLOPE = 1e-6


def monotone_calibration(model: Pipeline, x_cal: pd.DataFrame, y_cal: np.ndarray) -> CalibratedClassifierCV:
    """Platt scaling of the frozen `model` on the calibration dates, never reversing its ranking.

    An unconstrained sigmoid fit may take a positive `a_` (a decreasing map) when the model ranks
    the calibration dates no better than chance: every score would then be turned around, and
    the published model would be the reverse of the one fitted, on the strength of the
    calibration dates' few leavers. The constrained maximum likelihood fit (slope <= 0) lies on
    the boundary then: a flat probability, the calibration dates' exit rate. The slope is held a
    hair below zero so that the model's own order of the rows still stands (and ties are not
    made where the model has none).
    """
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid").fit(x_cal, y_cal)
    (calibrator,) = calibrated.calibrated_classifiers_[0].calibrators
    if calibrator.a_ > -MIN_CALIBRATION_SLOPE:
        scores = np.asarray(model.decision_function(x_cal), dtype=float)
        positives = float(np.sum(y_cal))
        rate = (positives + 1.0) / (len(y_cal) + 2.0)  # Platt's smoothed target, as the fit uses
        log.warning(
            "calibration slope %.4f would reverse the model's ranking: held at %g (flat at %.4f)",
            -calibrator.a_,
            MIN_CALIBRATION_SLOPE,
            rate,
        )
        calibrator.a_ = -MIN_CALIBRATION_SLOPE
        calibrator.b_ = float(np.log((1.0 - rate) / rate) + MIN_CALIBRATION_SLOPE * np.mean(scores))
    return calibrated


def top_contributions(model: FittedModel, frame: pd.DataFrame, top: int) -> list[list[dict]]:
    """Per row, the features that raise its score most over a typical value (occlusion), largest first.

    Model-agnostic: each feature in turn is set to its training median (or most common
    category) and the drop in score is that feature's contribution for the row.
    """
    x = as_numeric_frame(frame, model.features)
    full = model.estimator.predict_proba(x)[:, 1]
    deltas = np.empty((len(x), len(model.features)))
    for j, feature in enumerate(model.features):
        occluded = x.copy()
        occluded[feature] = model.baseline_values[feature]
        deltas[:, j] = full - model.estimator.predict_proba(occluded)[:, 1]
    result = []
    for i, row in enumerate(deltas):
        best = [j for j in np.argsort(-row)[:top] if row[j] > 0]
        result.append(
            [
                {
                    "feature": model.features[j],
                    "contribution": round(float(row[j]), 5),
                    "value": _plain(x.iloc[i, j]),
                }
                for j in best
            ]
        )
    return result


def _plain(value: object) -> object:
    if isinstance(value, float | np.floating):
        return None if np.isnan(value) else round(float(value), 4)
    return value


def save_artifact(model: FittedModel, target: Any) -> tuple[str, str]:
    """Write the model with joblib to `target` (an `ObjectStoragePath`) once; returns its URL and sha256.

    joblib writes to a local temporary file first; the task that trained the model publishes it. An artifact
    is never overwritten: the same bytes again are accepted (a cleared task), other bytes are refused.
    """
    with tempfile.TemporaryDirectory(prefix="turnover-model-") as scratch:
        local = Path(scratch) / "model.joblib"
        joblib.dump(model, local)
        sha256 = file_sha256(local)
        return storage.publish_once(local, target, "model artifact"), sha256


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_artifact(recorded: str, sha256: str, config: Mapping[str, Any] | None = None) -> FittedModel:
    """Load a registered model from storage (its URL, or the local path rows written before object storage
    hold), refusing an object whose bytes are not the ones registered. Any worker can load it."""
    if config is None:
        from turnover_signals.config import load_config

        config = load_config()
    name = recorded.rstrip("/").rpartition("/")[2]
    try:
        data = storage.read_bytes(config, recorded)
    except FileNotFoundError:
        data = None
    if data is None or hashlib.sha256(data).hexdigest() != sha256:
        raise BadInputError(
            f"model artifact {name}",
            "missing, or its sha256 differs from audit.model_registry",
            "restore the object from backup or retrain (trigger turnover_model)",
            RUNBOOK_SECTION,
        )
    return joblib.load(io.BytesIO(data))  # the bytes are exactly those this bundle wrote (checked above)
