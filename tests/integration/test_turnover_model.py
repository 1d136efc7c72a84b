"""The turnover model on real loaded enterprises: the lift of LMS signals, its absence without them, the DAG.

Two synthetic enterprises of 1,000 employees x 24 months go through the real loaders, identity
resolution and feature build: one whose generator plants a learning fade before voluntary exits
(signal strength 2, so that half the demo's headcount still shows it), one with the signal at 0.
HR data are the same in both (same seed), so HR-only models are identical and any lift comes
from the LMS features alone. If the pipeline leaked labels into features, the no-signal run would
show a lift too.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from tests.conftest import _admin_execute, _dsn_for
from tests.integration.enterprise import generate, load_enterprise
from turnover_signals.config import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
ENTERPRISE = {"employees": 1000, "months": 24}


def built_enterprise(template: str, out_dir: Path, signal_strength: float) -> str:
    from turnover_signals.features.build import build_features
    from turnover_signals.identity.resolve import resolve_identities

    data_dir = generate(out_dir, signal_strength=signal_strength, **ENTERPRISE)
    name = f"ts_model_{uuid.uuid4().hex[:8]}"
    _admin_execute(f'create database "{name}" template "{template}"')
    config = load_config(use_variable=False)
    config["identity"]["review_sample_dir"] = tempfile.mkdtemp()
    load_enterprise(_dsn_for(name), data_dir, config)
    resolve_identities(config, dsn=_dsn_for(name), full=True)
    build_features(config, dsn=_dsn_for(name), reference_dates=[date(2026, 10, 31)])
    return name


@pytest.fixture(scope="session")
def model_enterprises(migrated_template_db, tmp_path_factory):
    """Warehouses with features built: {"signal": name, "no_signal": name}."""
    names = {}
    try:
        for key, strength in (("signal", 2.0), ("no_signal", 0.0)):
            names[key] = built_enterprise(migrated_template_db, tmp_path_factory.mktemp(key) / "data", strength)
        yield names
    finally:
        for name in names.values():
            _admin_execute(f'drop database if exists "{name}" with (force)')


def copy_of(template: str, monkeypatch) -> str:
    name = f"ts_test_{uuid.uuid4().hex[:10]}"
    _admin_execute(f'create database "{name}" template "{template}"')
    dsn = _dsn_for(name)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_POSTGRES", dsn.replace("postgresql://", "postgres://", 1))
    return dsn


@pytest.fixture
def signal_dsn(model_enterprises, monkeypatch):
    dsn = copy_of(model_enterprises["signal"], monkeypatch)
    yield dsn
    _admin_execute(f'drop database if exists "{dsn.rsplit("/", 1)[1]}" with (force)')


@pytest.fixture
def no_signal_dsn(model_enterprises, monkeypatch):
    dsn = copy_of(model_enterprises["no_signal"], monkeypatch)
    yield dsn
    _admin_execute(f'drop database if exists "{dsn.rsplit("/", 1)[1]}" with (force)')


def train(dsn: str, tmp_path: Path) -> dict:
    from turnover_signals.model.pipeline import train_and_register

    config = load_config(use_variable=False)
    config["model"] |= {"artifact_dir": str(tmp_path / "artifacts"), "report_dir": str(tmp_path / "reports")}
    return train_and_register(config, dsn=dsn)


@pytest.mark.timeout(900)
def test_lms_signals_lift_the_model_when_the_generator_plants_them(signal_dsn, tmp_path):
    result = train(signal_dsn, tmp_path)
    lift = result["evaluation"]["lift"]["hr_lms"]
    print("lift with the planted signal:", {m: lift[m] for m in ("roc_auc", "pr_auc")})
    for metric in ("roc_auc", "pr_auc"):
        assert lift[metric]["ci_low"] > 0, (metric, lift[metric])
    assert lift["roc_auc"]["value"] > 0.05


@pytest.mark.timeout(900)
def test_without_the_planted_signal_lms_features_add_nothing(no_signal_dsn, tmp_path):
    result = train(no_signal_dsn, tmp_path)
    lift = result["evaluation"]["lift"]["hr_lms"]
    print("lift without a signal:", {m: lift[m] for m in ("roc_auc", "pr_auc")})
    for metric in ("roc_auc", "pr_auc"):
        assert lift[metric]["ci_low"] <= 0, (metric, lift[metric])


@pytest.mark.timeout(900)
def test_the_dag_registers_promotes_scores_reports_and_a_rollback_restores(
    signal_dsn, airflow_metadata_db, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag

    from turnover_signals.model.registry import main as registry_cli

    dag = DagBag(dag_folder=str(DAGS_DIR / "turnover_model.py")).get_dag("turnover_model")
    first = dag.test(logical_date=datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    assert first.state == "success", {ti.task_id: ti.state for ti in first.get_task_instances()}
    with psycopg.connect(signal_dsn) as conn:
        registry = conn.execute(
            "select model_version, feature_set, status, artifact_path, artifact_sha256, report_path, metrics"
            " from audit.model_registry order by feature_set").fetchall()  # fmt: skip
        assert {r[1] for r in registry} == {"hr_only", "hr_lms"}
        champion = [r[0] for r in registry if r[2] == "champion"]
        assert len(champion) == 1
        for _version, _fs, _status, artifact, sha256, _report, metrics in registry:
            assert Path(artifact).exists() and len(sha256) == 64
            assert {"roc_auc", "pr_auc", "top_decile_precision", "top_decile_recall", "brier"} <= set(metrics)
        html = Path(registry[0][5]).read_text(encoding="utf-8")
        assert len(re.findall(r"data:image/png;base64,", html)) == 3
        scores = conn.execute(
            "select reference_date, count(*), count(distinct model_version), min(model_version),"
            " count(*) filter (where risk_band = 'high'), bool_and(jsonb_array_length(top_features) <= 3)"
            " from mart.turnover_risk_score group by 1").fetchall()  # fmt: skip
        latest = conn.execute("select max(reference_date), count(*) from mart.employee_features"
                              " where reference_date = (select max(reference_date) from mart.employee_features)"
                              ).fetchone()  # fmt: skip
    assert len(scores) == 1 and scores[0][0] == latest[0] and scores[0][1] == latest[1]
    assert scores[0][3] == champion[0] and scores[0][4] > 0 and scores[0][5]

    # A second month: the same data give an equally good challenger, which is promoted (ties promote).
    second = dag.test(logical_date=datetime(2026, 12, 2, 9, 0, tzinfo=UTC))
    assert second.state == "success"
    with psycopg.connect(signal_dsn) as conn:
        new_champion = conn.execute("select model_version from audit.model_registry where status = 'champion'"
                                    ).fetchone()[0]  # fmt: skip
        decisions = [r[0] for r in conn.execute("select decision from audit.model_promotion order by decision_id")]
    assert new_champion != champion[0] and decisions == ["first_champion", "promoted"]

    monkeypatch.setenv("TURNOVER_WAREHOUSE_URL", signal_dsn)
    registry_cli(["rollback", "--reason", "test: back to the first champion", "--by", "pytest"])
    with psycopg.connect(signal_dsn) as conn:
        restored = conn.execute("select model_version from audit.model_registry where status = 'champion'"
                                ).fetchone()[0]  # fmt: skip
        scored_by = conn.execute("select distinct model_version from mart.turnover_risk_score").fetchall()
    assert restored == champion[0] and scored_by == [(champion[0],)]
