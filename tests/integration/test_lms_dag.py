"""The whole `lms_api_ingest` DAG through `dag.test()` against the sample LMS and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.integration.test_lms_statements import statement
from tests.integration.test_lms_users_and_catalog import user

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


def data_tables(dsn):
    queries = {
        "statements": "select statement_id, statement, is_voided from raw.lms_statement order by 1",
        "activity": "select * from core.lms_activity order by 1",
        "rejected": "select payload_sha256, reason from raw.lms_statement_rejected order by 1, 2",
        "users": "select lms_user_id, last_modified_at, valid_to from raw.lms_user order by 1, 2",
        "catalog": "select * from core.course_catalog order by 1",
        "unknown": "select course_id, statements from audit.unknown_course order by 1",
        "watermarks": "select source, watermark from audit.extract_watermark order by 1",
    }
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(q).fetchall() for name, q in queries.items()}


def test_dag_loads_statements_users_and_catalog_and_a_rerun_changes_nothing(
    airflow_metadata_db, warehouse_dsn, lms_server_factory, monkeypatch
):
    bad = statement(90, minutes=90, result={"score": {"scaled": 1.5}})
    server = lms_server_factory(
        statements=[*[statement(n, minutes=n) for n in range(1, 30)], bad],
        users=[user(n) for n in range(1, 4)],
    )
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"lms": {"statements_page_limit": 7}}))
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR / "lms_api_ingest.py")).get_dag("lms_api_ingest")
    run = dag.test(logical_date=datetime(2026, 3, 3, 10, 10, tzinfo=UTC))
    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    tables = data_tables(warehouse_dsn)
    assert len(tables["statements"]) == 29 and len(tables["activity"]) == 29
    assert [reason for _sha, reason in tables["rejected"]] == ["result.score.scaled outside [-1, 1]"]
    assert len(tables["users"]) == 3 and len(tables["catalog"]) > 30
    assert tables["unknown"] == [("C-0", 9), ("C-1", 10), ("C-2", 10)]

    dag.test(logical_date=datetime(2026, 3, 3, 10, 10, tzinfo=UTC))  # clear every task and rerun
    assert data_tables(warehouse_dsn) == tables
