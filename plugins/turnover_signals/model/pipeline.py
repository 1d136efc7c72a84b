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
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from threadpoolctl import threadpool_limits

from turnover_signals import storage
from turnover_signals.model.dataset import (
    FEATURE_SETS,
    frame_fingerprint,
    load_training_set,
    model_features,
    time_split,
)
from turnover_signals.model.metrics import decile_lift, evaluate_with_intervals
from turnover_signals.model.report import write_report
from turnover_signals.model.train import fit_feature_set, save_artifact
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)

REGISTER_SQL = """
insert into audit.model_registry (
    model_version, training_run_id, feature_set, feature_set_version, algorithm, horizon_days, features,
    train_from_date, train_to_date, calibration_from_date, calibration_to_date, test_from_date, test_to_date,
    train_rows, calibration_rows, test_rows, test_positives, metrics, lift_over_hr_only, artifact_path,
    artifact_sha256, report_path, lineage, status, dag_id, run_id, task_id, try_number, trained_at
) values (
    %(model_version)s, %(training_run_id)s, %(feature_set)s, %(feature_set_version)s, %(algorithm)s,
    %(horizon_days)s, %(features)s, %(train_from_date)s, %(train_to_date)s, %(calibration_from_date)s,
    %(calibration_to_date)s, %(test_from_date)s, %(test_to_date)s, %(train_rows)s, %(calibration_rows)s,
    %(test_rows)s, %(test_positives)s, %(metrics)s, %(lift_over_hr_only)s, %(artifact_path)s,
    %(artifact_sha256)s, %(report_path)s, %(lineage)s, 'registered', %(dag_id)s, %(run_id)s, %(task_id)s,
    %(try_number)s, %(trained_at)s
)
on conflict (model_version) do update set
    algorithm = excluded.algorithm, metrics = excluded.metrics, lift_over_hr_only = excluded.lift_over_hr_only,
    artifact_sha256 = excluded.artifact_sha256, report_path = excluded.report_path, lineage = excluded.lineage,
    try_number = excluded.try_number, trained_at = excluded.trained_at
"""


def training_run_id(run: RunIdentity) -> str:
    """Stable for one Airflow run, so clearing the task re-registers the same versions."""
    source = f"{run.dag_id}|{run.run_id}" if run.run_id else uuid.uuid4().hex
    return hashlib.sha256(source.encode()).hexdigest()[:10]


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
    """Train HR-only and HR + LMS models, evaluate both on the test window, write artifacts, report, registry rows."""
    with threadpool_limits(limits=int(config["model"]["threads"])):
        return _train_and_register(config, run or RunIdentity(), dsn)


def _train_and_register(config: Mapping[str, Any], run: RunIdentity, dsn: str | None) -> dict:
    model_config = config["model"]
    version = int(config["features"]["feature_set_version"])
    horizon = int(model_config["horizon_days"])
    metric = model_config["promotion_metric"]
    run_key = training_run_id(run)
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
    fit, calibration, test = (split.rows(frame, part) for part in ("fit", "calibration", "test"))
    log.info(
        "time-based split: fit %s..%s (%d rows), calibration %s..%s (%d), test %s..%s (%d, %d exits), "
        "%d date(s) purged before the calibration and test windows, %d left out with their horizon still open (%s)",
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
    # The run key alone names a run (not today's date), so a run cleared on a later day re-registers
    # the same versions.
    versions = {fs: f"tm-{run_key}-{fs.replace('_', '-')}" for fs in FEATURE_SETS}
    report_target = report_dir / f"turnover_model_report__{run_key}.html"
    report_path = write_report(report_target, models, predictions, test, evaluation, split, versions, metric)
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
                    }
                ),
                "lift_over_hr_only": json.dumps(evaluation["lift"].get(fs)) if fs != "hr_only" else None,
                "artifact_path": artifact,
                "artifact_sha256": sha256,
                "report_path": report_path,
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
            conn.execute(REGISTER_SQL, row)
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
        "evaluation": evaluation,
        "algorithms": {fs: m.algorithm for fs, m in models.items()},
    }
