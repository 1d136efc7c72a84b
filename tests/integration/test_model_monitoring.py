"""Monitoring the champion on a hand-made warehouse: performance on a matured date, drift at the latest date.

The champion (logistic regression on tenure and rating) was trained on three month-ends of 2025. It scored
20 employees on 2026-06-30, whose labels have matured, with hand-made scores, and 300 employees on
2026-10-31, whose labels are still open, with its own scores of that date's features.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import psycopg
import pytest

from tests.databases import as_airflow_warehouse
from turnover_signals import storage
from turnover_signals.config import load_config

pytestmark = pytest.mark.integration

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"

FEATURES = ["tenure_days", "performance_rating"]
TRAINING_WINDOW = [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31)]
MATURED = date(2026, 6, 30)
LATEST = date(2026, 10, 31)
VERSION = "tm-monitored-hr-only"
EMPLOYEES = 300
# On MATURED: employees 1..20 scored 0.95, 0.90, ..., 0.00; the 1st, 4th and 5th highest left.
HAND_SCORES = np.round(np.arange(0.95, -0.001, -0.05), 2)
HAND_LABELS = [True, False, False, True, True] + [False] * 15
VALIDATION = {"roc_auc": 0.80, "pr_auc": 0.50, "top_decile_precision": 0.40}


def seeded_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure, rating = rng.integers(30, 4000, n), rng.integers(1, 6, n)
    exit_chance = 1 / (1 + np.exp(2.5 + (tenure - 1500) / 800 + 0.5 * (rating - 3)))
    return pd.DataFrame(
        {"tenure_days": tenure, "performance_rating": rating, "label": rng.random(n) < exit_chance}
    )


def insert_features(conn: psycopg.Connection, day: date, frame: pd.DataFrame) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into mart.employee_features (employee_key, reference_date, feature_set_version,"
            " hris_employee_id, tenure_days, performance_rating, built_at, build_id)"
            " values (%s, %s, 2, %s, %s, %s, now(), 'seeded')",
            [
                (key + 1, day, f"E{key + 1}", int(row.tenure_days), int(row.performance_rating))
                for key, row in frame.iterrows()
            ],
        )


def insert_scores(conn: psycopg.Connection, day: date, scores: np.ndarray) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "insert into mart.turnover_risk_score (employee_key, reference_date, feature_set_version,"
            " model_version, score, risk_rank, risk_band, top_features, scored_at)"
            " values (%s, %s, 2, %s, %s, %s, 'low', '[]', now())",
            [(key + 1, day, VERSION, float(s), key + 1) for key, s in enumerate(scores)],
        )


def register_champion(conn: psycopg.Connection, artifact: str, sha256: str) -> None:
    from turnover_signals.sqlfiles import read_sql

    metrics = {m: {"value": v, "ci_low": v - 0.1, "ci_high": v + 0.1} for m, v in VALIDATION.items()}
    metrics["feature_importance"] = {"tenure_days": 0.03, "performance_rating": 0.01}
    conn.execute(
        read_sql("audit", "model_registry"),
        {
            "model_version": VERSION,
            "training_run_id": "monitored",
            "feature_set": "hr_only",
            "feature_set_version": 2,
            "algorithm": "logistic_regression",
            "horizon_days": 90,
            "features": FEATURES,
            "train_from_date": TRAINING_WINDOW[0],
            "train_to_date": TRAINING_WINDOW[-1],
            "calibration_from_date": date(2025, 4, 30),
            "calibration_to_date": date(2025, 4, 30),
            "test_from_date": date(2025, 9, 30),
            "test_to_date": date(2025, 9, 30),
            "train_rows": 900,
            "calibration_rows": 300,
            "test_rows": 300,
            "test_positives": 20,
            "metrics": json.dumps(metrics),
            "lift_over_hr_only": None,
            "artifact_path": artifact,
            "artifact_sha256": sha256,
            "report_path": None,
            "card_path": None,
            "lineage": "{}",
            "dag_id": None,
            "run_id": None,
            "task_id": None,
            "try_number": None,
            "trained_at": datetime.now(UTC),
        },
    )
    conn.execute("update audit.model_registry set status = 'champion', promoted_at = now()")


@pytest.fixture
def monitored(migrated_template_db, database_copy, monkeypatch, tmp_path):
    """`build(latest_tenure_shift)`: the warehouse of the module docstring, its latest date's tenures shifted
    by that many days; returns its DSN."""
    from turnover_signals.model.train import fit_feature_set, save_artifact

    model = fit_feature_set(
        "hr_only", FEATURES, seeded_rows(3000, 1), seeded_rows(3000, 2), ["logistic_regression"], "pr_auc"
    )
    artifact, sha256 = save_artifact(model, storage.location({}, tmp_path / "champion.joblib"))

    def build(latest_tenure_shift: int = 0) -> str:
        dsn = as_airflow_warehouse(database_copy(migrated_template_db), monkeypatch)
        latest = seeded_rows(EMPLOYEES, 50)
        latest["tenure_days"] += latest_tenure_shift
        with psycopg.connect(dsn) as conn:
            for i, day in enumerate(TRAINING_WINDOW):
                insert_features(conn, day, seeded_rows(EMPLOYEES, 10 + i))
            insert_features(conn, LATEST, latest)
            register_champion(conn, str(artifact), sha256)
            insert_scores(conn, MATURED, HAND_SCORES)
            insert_scores(conn, LATEST, model.predict(latest))
            with conn.cursor() as cur:
                cur.executemany(
                    "insert into mart.turnover_label (employee_key, reference_date, horizon_days,"
                    " hris_employee_id, label, is_censored, label_status, hr_known_through)"
                    " values (%s, %s, 90, %s, %s, false, %s, '2026-10-31')",
                    [
                        (key + 1, MATURED, f"E{key + 1}", label, "positive" if label else "negative")
                        for key, label in enumerate(HAND_LABELS)
                    ],
                )
                # the latest date's horizon is open: no label yet
                cur.executemany(
                    "insert into mart.turnover_label (employee_key, reference_date, horizon_days,"
                    " hris_employee_id, label, is_censored, label_status, hr_known_through)"
                    " values (%s, %s, 90, %s, null, false, 'horizon_open', '2026-10-31')",
                    [(key + 1, LATEST, f"E{key + 1}") for key in range(EMPLOYEES)],
                )
        return dsn

    return SimpleNamespace(build=build, config=load_config(use_variable=False))


def monitor(dsn: str, config) -> dict:
    from turnover_signals.model.monitoring import monitor_champion

    return monitor_champion(config, dsn=dsn)


def monitoring_rows(dsn: str) -> dict[tuple[date, str], tuple]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select reference_date, metric, model_version, value, lower, upper, threshold, status"
            " from mart.model_monitoring order by reference_date, metric"
        ).fetchall()
    return {(r[0], r[1]): r[2:] for r in rows}


def test_matured_labels_give_the_expected_performance_and_open_ones_none(monitored):
    from turnover_signals.model.monitoring import expected_calibration_error

    dsn = monitored.build()
    result = monitor(dsn, monitored.config)
    assert result["matured_dates"] == [str(MATURED)] and result["latest_scored_date"] == str(LATEST)
    rows = monitoring_rows(dsn)
    assert {metric for day, metric in rows if day == MATURED} == {
        "roc_auc",
        "pr_auc",
        "top_decile_precision",
        "calibration_error",
    }
    expected = {
        "roc_auc": 47 / 51,  # each exit outranks the stayers below it: 17 + 15 + 15 of 3 x 17 pairs
        "pr_auc": (1 + 2 / 4 + 3 / 5) / 3,  # precision at each exit's rank: 1/1, 2/4, 3/5
        "top_decile_precision": 0.5,  # the 2 highest scores, one of whom left
        "calibration_error": expected_calibration_error(HAND_SCORES, HAND_LABELS),
    }
    for metric, value in expected.items():
        version, point, lower, upper, _threshold, _status = rows[(MATURED, metric)]
        assert version == VERSION
        assert point == pytest.approx(value), metric
        assert lower <= point <= upper, metric
    # thresholds: the champion's test-window value minus model.monitoring.max_drop
    assert rows[(MATURED, "roc_auc")][4] == pytest.approx(0.80 - 0.05)
    assert rows[(MATURED, "calibration_error")][4] == pytest.approx(0.05)
    assert not any(day == LATEST and not metric.startswith("psi") for day, metric in rows)


def test_without_drift_the_latest_date_is_ok(monitored, caplog):
    dsn = monitored.build()
    with caplog.at_level(logging.INFO):
        result = monitor(dsn, monitored.config)
    rows = monitoring_rows(dsn)
    drift = {metric: row for (day, metric), row in rows.items() if day == LATEST}
    assert set(drift) == {"psi_score", "psi:tenure_days", "psi:performance_rating"}
    for metric, (_version, value, lower, upper, threshold, status) in drift.items():
        assert value < 0.1 and status == "ok", metric
        assert lower is None and upper is None and threshold == 0.25
    assert not any("psi" in alert for alert in result["alerts"])
    assert not [
        r for r in caplog.records if "TURNOVER-SIGNALS ALERT" in r.getMessage() and "psi" in r.getMessage()
    ]


def test_a_drifted_feature_raises_the_alert_with_the_next_step(monitored, caplog):
    dsn = monitored.build(latest_tenure_shift=3000)  # everyone ~8 years longer in post than in training
    with caplog.at_level(logging.INFO):
        result = monitor(dsn, monitored.config)
    rows = monitoring_rows(dsn)
    assert rows[(LATEST, "psi:tenure_days")][1] > 0.25 and rows[(LATEST, "psi:tenure_days")][5] == "alert"
    assert rows[(LATEST, "psi:performance_rating")][5] == "ok"
    assert "psi:tenure_days at 2026-10-31" in result["alerts"]
    (alert,) = [r.getMessage() for r in caplog.records if "TURNOVER-SIGNALS ALERT" in r.getMessage()]
    assert f"model {VERSION}" in alert and "psi:tenure_days" in alert
    assert "retrain (trigger turnover_model)" in alert
    assert 'python -m turnover_signals.model.registry rollback --reason "..."' in alert
    assert "(runbook: docs/runbook/model.md#runbook-turnover_model" in alert


def test_rerunning_leaves_the_same_rows(monitored):
    dsn = monitored.build(latest_tenure_shift=3000)
    monitor(dsn, monitored.config)
    query = "select * from mart.model_monitoring order by model_version, reference_date, metric"
    with psycopg.connect(dsn) as conn:
        first = conn.execute(query).fetchall()
    monitor(dsn, monitored.config)
    with psycopg.connect(dsn) as conn:
        second = conn.execute(query).fetchall()
    assert len(first) == 7 and second == first  # computed_at included: nothing was rewritten
    print("\n".join(map(str, first)))


def test_without_a_champion_nothing_is_written(migrated_template_db, database_copy, monkeypatch):
    dsn = as_airflow_warehouse(database_copy(migrated_template_db), monkeypatch)
    assert monitor(dsn, load_config(use_variable=False)) == {"skipped": "no champion model"}
    assert monitoring_rows(dsn) == {}


def test_the_kpi_page_may_read_it_as_the_quality_reader(warehouse_dsn):
    with psycopg.connect(warehouse_dsn) as conn:
        granted = conn.execute(
            "select has_table_privilege('turnover_quality_reader', 'mart.model_monitoring', 'select'),"
            " has_table_privilege('turnover_quality_reader', 'mart.employee_features', 'select')"
        ).fetchone()
    assert granted == (True, False)


@pytest.fixture
def trained_warehouse(migrated_template_db, database_copy, monkeypatch, tmp_path):
    """Thirteen labelled month-ends of 300 employees (the last one's horizon closed too), the split shortened
    to fit (test 2 dates, calibration 1): a whole training run in seconds."""
    dsn = as_airflow_warehouse(database_copy(migrated_template_db), monkeypatch)
    dates = [(pd.Timestamp("2025-07-31") + pd.offsets.MonthEnd(i)).date() for i in range(13)]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        for i, day in enumerate(dates):
            frame = seeded_rows(EMPLOYEES, 200 + i)
            cur.executemany(
                "insert into mart.employee_features (employee_key, reference_date, feature_set_version,"
                " hris_employee_id, tenure_days, performance_rating, department, location, built_at,"
                " build_id)"
                " values (%s, %s, 2, %s, %s, %s, %s, %s, now(), 'seeded')",
                [
                    (key + 1, day, f"E{key + 1}", int(row.tenure_days), int(row.performance_rating))
                    + ("Sales" if key % 2 else "Operations", "Lyon" if key % 3 else "Oslo")
                    for key, row in frame.iterrows()
                ],
            )
            cur.executemany(
                "insert into mart.turnover_label (employee_key, reference_date, horizon_days,"
                " hris_employee_id, label, is_censored, label_status, hr_known_through)"
                " values (%s, %s, 90, %s, %s, false, %s, '2026-12-31')",
                [
                    (key + 1, day, f"E{key + 1}", bool(label), "positive" if label else "negative")
                    for key, label in enumerate(frame["label"])
                ],
            )
    config = load_config(use_variable=False)
    config["model"] |= {
        "test_reference_dates": 2,
        "calibration_reference_dates": 1,
        "bootstrap_iterations": 100,
        "artifact_dir": str(tmp_path / "artifacts"),
        "report_dir": str(tmp_path / "reports"),
    }
    return SimpleNamespace(dsn=dsn, config=config, latest=dates[-1])


@pytest.mark.timeout(300)
def test_a_trained_champion_is_monitored_on_its_registered_top_features(trained_warehouse):
    from turnover_signals.model.pipeline import train_and_register
    from turnover_signals.model.registry import promote_challenger
    from turnover_signals.model.score import score_latest_reference_date

    dsn, config = trained_warehouse.dsn, trained_warehouse.config
    trained = train_and_register(config, dsn=dsn)
    champion = promote_challenger(config, trained["training_run_id"], dsn=dsn)["champion"]
    score_latest_reference_date(config, dsn=dsn)
    monitor(dsn, config)
    with psycopg.connect(dsn) as conn:
        features, importance = conn.execute(
            "select features, metrics -> 'feature_importance' from audit.model_registry"
            " where model_version = %s",
            (champion,),
        ).fetchone()
    assert set(importance) == set(features)  # recorded at training, one value per feature
    ranked = [f for f, v in sorted(importance.items(), key=lambda item: -item[1]) if v > 0][:5]
    rows = monitoring_rows(dsn)
    latest = trained_warehouse.latest
    assert {metric for day, metric in rows if day == latest} == {
        "roc_auc",
        "pr_auc",
        "top_decile_precision",
        "calibration_error",
        "psi_score",
        *(f"psi:{feature}" for feature in ranked),
    }
    assert {row[0] for row in rows.values()} == {champion}


@pytest.mark.timeout(600)
def test_the_dag_monitors_the_champion_after_scoring(trained_warehouse, airflow_metadata_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    model = {
        k: trained_warehouse.config["model"][k]
        for k in ("test_reference_dates", "calibration_reference_dates")
    }
    model |= {
        k: trained_warehouse.config["model"][k]
        for k in ("bootstrap_iterations", "artifact_dir", "report_dir")
    }
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"model": model}))
    dag = DagBag(dag_folder=str(DAGS_DIR / "turnover_model.py")).get_dag("turnover_model")
    run = dag.test(logical_date=datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["monitor_champion"] == "success", states
    rows = monitoring_rows(trained_warehouse.dsn)
    assert {day for day, _ in rows} == {trained_warehouse.latest}
    assert {"roc_auc", "psi_score"} <= {metric for _, metric in rows}
