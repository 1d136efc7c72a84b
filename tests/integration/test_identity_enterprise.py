"""Identity resolution on the default demo enterprise, loaded through the real HRIS and LMS loaders.

Scored against the generator's ground truth (`ground_truth/lms_accounts.csv`): precision and
recall of (LMS account, HRIS employee) links. Also the whole `identity_resolution` DAG through
`dag.test()`, cleared and rerun.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest

from tests.databases import DatabaseCopies, as_airflow_warehouse, database_name
from tests.integration.enterprise import generate, load_enterprise
from tests.integration.test_identity_resolution import identity_tables
from turnover_signals.config import load_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
MIN_PRECISION = 0.999
MIN_RECALL = 0.98


@pytest.fixture(scope="session")
def enterprise(migrated_template_db, tmp_path_factory):
    """A warehouse holding the default demo enterprise (HRIS files, SCIM users, xAPI statements)."""
    data_dir = generate(tmp_path_factory.mktemp("enterprise") / "data")
    with DatabaseCopies(prefix="ts_enterprise") as databases:
        dsn = databases.copy(migrated_template_db)
        load_enterprise(dsn, data_dir)
        yield database_name(dsn), data_dir


@pytest.fixture
def enterprise_dsn(enterprise, database_copy, monkeypatch):
    """A private copy of the loaded enterprise warehouse, also exposed as the Airflow connection."""
    return as_airflow_warehouse(database_copy(enterprise[0]), monkeypatch)


def link_scores(dsn: str, data_dir: Path) -> dict[str, float]:
    with open(data_dir / "ground_truth" / "lms_accounts.csv", encoding="utf-8") as handle:
        truth = {
            (row["lms_user_id"], row["employee_id"]) for row in csv.DictReader(handle) if row["employee_id"]
        }
    with psycopg.connect(dsn) as conn:
        predicted = set(
            conn.execute(
                "select lms_user_id, hris_employee_id from core.lms_account_match where employee_key is not "
                "null"
            ).fetchall()
        )
    correct = len(truth & predicted)
    return {
        "links_true": len(truth),
        "links_predicted": len(predicted),
        "correct": correct,
        "precision": correct / len(predicted),
        "recall": correct / len(truth),
    }


@pytest.mark.timeout(900)
def test_links_on_the_demo_enterprise_meet_the_precision_and_recall_targets(
    enterprise, enterprise_dsn, tmp_path
):
    from turnover_signals.identity.resolve import resolve_identities

    config = load_config(use_variable=False)
    config["identity"]["review_sample_dir"] = str(tmp_path)
    summary = resolve_identities(config, dsn=enterprise_dsn)
    scores = link_scores(enterprise_dsn, enterprise[1])
    print("identity accuracy on the demo enterprise:", scores, summary)
    assert scores["precision"] >= MIN_PRECISION, scores
    assert scores["recall"] >= MIN_RECALL, scores
    assert summary["hris_headcount"] == summary["canonical_headcount"]


@pytest.mark.timeout(900)
def test_the_dag_resolves_reports_and_a_cleared_rerun_changes_nothing(
    enterprise, enterprise_dsn, airflow_metadata_db, monkeypatch, tmp_path
):
    monkeypatch.setenv(
        "AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"identity": {"review_sample_dir": str(tmp_path)}})
    )
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR / "identity_resolution.py")).get_dag("identity_resolution")
    run = dag.test(logical_date=datetime(2026, 11, 1, 7, 0, tzinfo=UTC))
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    tables = identity_tables(enterprise_dsn)
    assert len(tables["hris_employee_key"]) > 2000
    samples = list(tmp_path.glob("identity_review_sample__*.csv"))
    assert len(samples) == 1
    sample = samples[0].read_text(encoding="utf-8")

    # a rerun with nothing changed is skipped; one that recomputes everything changes nothing either
    rerun = dag.test(logical_date=datetime(2026, 11, 1, 7, 0, tzinfo=UTC))
    assert {ti.task_id: ti.state for ti in rerun.get_task_instances()}["resolve_identities"] == "skipped"
    dag.test(logical_date=datetime(2026, 11, 1, 7, 0, tzinfo=UTC), run_conf={"full_rebuild": True})
    assert identity_tables(enterprise_dsn) == tables
    assert samples[0].read_text(encoding="utf-8") == sample


def mart_tables(dsn: str) -> dict[str, list[str]]:
    with psycopg.connect(dsn) as conn:
        return {
            table: sorted(map(repr, conn.execute(f"select * from mart.{table}").fetchall()))  # noqa: S608
            for table in ("employee_features", "turnover_label", "learner_daily_activity")
        }


@pytest.mark.timeout(900)
def test_the_features_dag_builds_a_training_set_and_a_cleared_rerun_changes_nothing(
    enterprise, enterprise_dsn, airflow_metadata_db, monkeypatch, tmp_path
):
    from turnover_signals.identity.resolve import resolve_identities

    config = load_config(use_variable=False)
    config["identity"]["review_sample_dir"] = str(tmp_path)
    resolve_identities(config, dsn=enterprise_dsn)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR / "turnover_features.py")).get_dag("turnover_features")
    run = dag.test(logical_date=datetime(2026, 11, 1, 7, 30, tzinfo=UTC))
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    with psycopg.connect(enterprise_dsn) as conn:
        dates, rows = conn.execute(
            "select count(distinct reference_date), count(*) from mart.employee_features"
        ).fetchone()
        positives, negatives = conn.execute(
            "select count(*) filter (where label), count(*) filter (where not label) from mart.training_set"
        ).fetchone()
    # the month-ends since the first HR snapshot, then every day after the newest one through 2026-10-31
    assert dates == 23 + 31 and rows > 45_000
    assert positives > 500 and negatives > 20 * positives
    tables = mart_tables(enterprise_dsn)

    # Lineage: a feature row traces back to its build, the identity run, HRIS files and LMS batches,
    # each with a passed validation and its Data Docs page.
    from turnover_signals.quality.lineage import trace_feature_row

    with psycopg.connect(enterprise_dsn) as conn:
        employee_key = conn.execute(
            "select employee_key from mart.employee_features where reference_date = '2026-06-30'"
            " and completions_180d > 2 order by employee_key limit 1"
        ).fetchone()[0]
    sources = trace_feature_row(config, employee_key, date(2026, 6, 30), dsn=enterprise_dsn)
    kinds = {row["source_kind"] for row in sources}
    assert kinds == {"feature_build", "identity_run", "hris_file", "lms_batch"}
    assert any(row["source_name"].startswith("employees_") for row in sources)
    assert all(row["validation_success"] and row["data_docs_path"] for row in sources), sources

    dag.test(logical_date=datetime(2026, 11, 1, 7, 30, tzinfo=UTC))  # clear every task and rerun
    assert mart_tables(enterprise_dsn) == tables
