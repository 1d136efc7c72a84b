"""Train both feature sets on one time-based split, evaluate them side by side, register them.

    HR only      = the HR columns of mart.training_set
    HR + LMS     = every feature column
The same split, the same algorithms, the same bootstrap draws: the difference between the two
is the lift of the learning signals, reported with its paired interval.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from psycopg.rows import dict_row
from threadpoolctl import threadpool_limits

import turnover_signals
from turnover_signals import storage
from turnover_signals.model.card import write_model_card
from turnover_signals.model.dataset import (
    FEATURE_SETS,
    frame_fingerprint,
    load_training_set,
    model_features,
    time_split,
)
from turnover_signals.model.metrics import decile_lift, evaluate_with_intervals
from turnover_signals.model.report import feature_importances, write_report
from turnover_signals.model.train import RANDOM_STATE, fit_feature_set, save_artifact
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)

# What decides a model besides its rows: settings that change the fit, the split or the registered metrics.
# Not the risk bands, contributions per employee, threads, folders or the promotion margin: they act later.
MODEL_DETERMINANTS = (
    "promotion_metric",
    "horizon_days",
    "test_reference_dates",
    "calibration_reference_dates",
    "algorithms",
    "bootstrap_iterations",
    "confidence_level",
)


def training_key(
    lineage: Mapping[str, Any],
    features: Mapping[str, list[str]],
    model_config: Mapping[str, Any],
    feature_set_version: int,
    windows: Mapping[str, Any],
) -> str:
    """The content address of a training run: a hash of everything that determines its models.

    The rows the models saw (their fingerprint, build ids left out: a rebuild of the same rows is the same
    data), the feature set version and columns, the split windows, the settings in MODEL_DETERMINANTS, the
    random seed, and the versions of this package and of the libraries that fit and serialise the models.
    Training the same inputs again gives the same key, so the same model versions.
    """
    determinants = {
        "training_rows_sha256": lineage["rows_fingerprint_sha256"],
        "feature_set_version": feature_set_version,
        "features": {fs: sorted(columns) for fs, columns in features.items()},
        "windows": windows,
        "model": {key: model_config[key] for key in MODEL_DETERMINANTS},
        "random_state": RANDOM_STATE,
        "packages": {
            "turnover_signals": turnover_signals.__version__,
            "scikit-learn": sklearn.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "joblib": joblib.__version__,
        },
    }
    canonical = json.dumps(determinants, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def registered_run(conn, versions: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The registry rows of these versions that exist, by feature set."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "select * from audit.model_registry where model_version = any(%s)", (list(versions.values()),)
        ).fetchall()
    return {row["feature_set"]: row for row in rows}


def already_trained(existing: Mapping[str, Mapping[str, Any]], key: str, metric: str) -> dict[str, Any]:
    """What train_and_register returns for a run whose models are registered already: read, not retrained."""
    models = {
        fs: {
            name: value
            for name, value in row["metrics"].items()
            if isinstance(value, dict) and "value" in value
        }
        for fs, row in existing.items()
    }
    return {
        "training_run_id": key,
        "versions": {fs: row["model_version"] for fs, row in existing.items()},
        "metric": metric,
        "report_path": next(iter(existing.values()))["report_path"],
        "card_path": next(iter(existing.values()))["card_path"],
        "evaluation": {"models": models, "lift": {"hr_lms": existing["hr_lms"]["lift_over_hr_only"] or {}}},
        "algorithms": {fs: row["algorithm"] for fs, row in existing.items()},
        "reused": True,
    }


def lineage_of(conn, frame, version: int) -> dict[str, Any]:
    build_ids = sorted(frame["build_id"].unique().tolist())
    high_water = conn.execute(
        "select max(lms_stored_high_water), max(hris_known_at_high_water), max(built_at)"
        " from audit.feature_build where build_id = any(%s) and feature_set_version = %s",
        (build_ids, version),
    ).fetchone()
    return {
        "source": "mart.training_set",
        "feature_build_ids": build_ids,
        "lms_stored_high_water": str(high_water[0]) if high_water[0] else None,
        "hris_known_at_high_water": str(high_water[1]) if high_water[1] else None,
        "features_built_through": str(high_water[2]) if high_water[2] else None,
        "rows_fingerprint_sha256": frame_fingerprint(frame.drop(columns=["build_id", "hr_known_through"])),
    }


def train_and_register(
    config: Mapping[str, Any], run: RunIdentity | None = None, dsn: str | None = None
) -> dict:
    """Train HR-only and HR + LMS models, evaluate both on the test window, write artifacts, report, registry
    rows."""
    with threadpool_limits(limits=int(config["model"]["threads"])):
        return _train_and_register(config, run or RunIdentity(), dsn)


def _train_and_register(config: Mapping[str, Any], run: RunIdentity, dsn: str | None) -> dict:
    model_config = config["model"]
    version = int(config["features"]["feature_set_version"])
    horizon = int(model_config["horizon_days"])
    metric = model_config["promotion_metric"]
    trained_at = datetime.now(UTC)
    # Artifacts and the report go to storage (scoring, promotion and the Data quality page may run on
    # other hosts); resolved first, so a deployment without a shared store fails before training.
    report_dir = storage.location(config, model_config["report_dir"])
    artifact_dir = storage.location(config, model_config["artifact_dir"])
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        features = model_features(conn)
        frame = load_training_set(conn, version, horizon, features["hr_lms"])
        split = time_split(frame, config)
        lineage = lineage_of(conn, split.used_rows(frame), version)
        windows = {part: [str(day) for day in split.window(part)] for part in ("fit", "calibration", "test")}
        run_key = training_key(lineage, features, model_config, version, windows)
        versions = {fs: f"tm-{run_key}-{fs.replace('_', '-')}" for fs in FEATURE_SETS}
        existing = registered_run(conn, versions)
    if len(existing) == len(versions):
        # Same rows, settings and code as a registered run: its models are these versions, already
        # reviewed and possibly champion. Retraining would only rewrite what must not change.
        log.info(
            "training set and settings unchanged since %s: nothing to train", ", ".join(versions.values())
        )
        return already_trained(existing, run_key, metric)
    fit, calibration, test = (split.rows(frame, part) for part in ("fit", "calibration", "test"))
    log.info(
        "time-based split: fit %s..%s (%d rows), calibration %s..%s (%d), test %s..%s (%d, %d exits), %d "
        "date(s) purged before the calibration and test windows, %d left out with their horizon still open "
        "(%s)",
        *split.window("fit"),
        len(fit),
        *split.window("calibration"),
        len(calibration),
        *split.window("test"),
        len(test),
        int(test["label"].sum()),
        len(split.purged_dates),
        len(split.open_dates),
        ", ".join(map(str, split.open_dates)),
    )
    models = {
        fs: fit_feature_set(fs, features[fs], fit, calibration, model_config["algorithms"], metric)
        for fs in FEATURE_SETS
    }
    labels = test["label"].to_numpy()
    predictions = {fs: m.predict(test) for fs, m in models.items()}
    evaluation = evaluate_with_intervals(
        predictions,
        labels,
        test["employee_key"].to_numpy(),
        int(model_config["bootstrap_iterations"]),
        float(model_config["confidence_level"]),
    )
    report_target = report_dir / f"turnover_model_report__{run_key}.html"
    # computed once: plotted in the report, registered for monitoring (the champion's top features)
    importances = feature_importances(models, test)
    report_path = write_report(
        report_target, models, predictions, test, evaluation, split, versions, metric, importances
    )
    card_path = write_model_card(
        report_dir / f"turnover_model_card__{run_key}.html",
        run_key=run_key,
        versions=versions,
        models=models,
        predictions=predictions,
        test=test,
        evaluation=evaluation,
        split=split,
        metric=metric,
        config=config,
    )
    rows = []
    for fs, model in models.items():
        artifact, sha256 = save_artifact(model, artifact_dir / f"{versions[fs]}.joblib")
        rows.append(
            {
                "model_version": versions[fs],
                "training_run_id": run_key,
                "feature_set": fs,
                "feature_set_version": version,
                "algorithm": model.algorithm,
                "horizon_days": horizon,
                "features": model.features,
                "train_from_date": split.fit_dates[0],
                "train_to_date": split.fit_dates[-1],
                "calibration_from_date": split.calibration_dates[0],
                "calibration_to_date": split.calibration_dates[-1],
                "test_from_date": split.test_dates[0],
                "test_to_date": split.test_dates[-1],
                "train_rows": len(fit),
                "calibration_rows": len(calibration),
                "test_rows": len(test),
                "test_positives": int(labels.sum()),
                "metrics": json.dumps(
                    {
                        **evaluation["models"][fs],
                        "selection_on_calibration": model.selection,
                        "decile_lift": decile_lift(predictions[fs], labels),
                        "feature_importance": importances[fs],
                    }
                ),
                "lift_over_hr_only": json.dumps(evaluation["lift"].get(fs)) if fs != "hr_only" else None,
                "artifact_path": artifact,
                "artifact_sha256": sha256,
                "report_path": report_path,
                "card_path": card_path,
                "lineage": json.dumps(lineage),
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "task_id": run.task_id,
                "try_number": run.try_number,
                "trained_at": trained_at,
            }
        )
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, conn.transaction():
        for row in rows:
            conn.execute(read_sql("audit", "model_registry"), row)
    lift = evaluation["lift"]["hr_lms"][metric]
    log.info(
        "registered %s; lift of LMS signals on %s: %+.4f [%+.4f, %+.4f]; report %s",
        ", ".join(versions.values()),
        metric,
        lift["value"],
        lift["ci_low"],
        lift["ci_high"],
        report_path,
    )
    return {
        "training_run_id": run_key,
        "versions": versions,
        "metric": metric,
        "report_path": report_path,
        "card_path": card_path,
        "evaluation": evaluation,
        "algorithms": {fs: m.algorithm for fs, m in models.items()},
    }
