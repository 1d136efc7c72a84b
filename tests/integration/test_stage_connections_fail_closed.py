"""Least privilege fails closed in a real run and on the Data quality page (issue 22, point 4): without its
stage connection a task fails at once, without retries, and never connects as the owner; the page refuses to
read as the owner."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import psycopg
import pytest

from tests.integration.test_source_refusals_fail_fast import assert_failed_without_retry, logged, run_dag
from turnover_signals.config import ConfigError

pytestmark = [pytest.mark.integration]


@pytest.mark.slow
def test_a_task_without_its_stage_connection_fails_without_retry(
    airflow_metadata_db, warehouse_dsn, hris_sftp_connection, tmp_path, monkeypatch, capfd
):
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_LOADER")
    monkeypatch.setenv(
        "AIRFLOW_VAR_TURNOVER_SIGNALS",
        json.dumps({"hris": {"landing_dir": str(tmp_path / "landing"), "wait_for_files_minutes": 0}}),
    )

    tis, _ = run_dag("hris_sftp_ingest", datetime(2026, 3, 2, 6, tzinfo=UTC), {"wait_for_hris_files"})

    assert_failed_without_retry(tis["wait_for_hris_files"])
    assert "warehouse connection warehouse_loader (stage loader): is not defined in Airflow" in logged(capfd)
    with psycopg.connect(warehouse_dsn) as conn:  # nothing was recorded as the owner either
        assert conn.execute("select count(*) from audit.file_manifest").fetchone() == (0,)


def test_the_data_quality_page_refuses_to_read_as_the_owner(warehouse_dsn, monkeypatch):
    from turnover_signals.quality.report_app import fetch_validations

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into audit.validation_result (validation_id, suite_name, suite_version, data_asset, "
            "batch_identifier, success, evaluated_expectations, failed_expectation_count, statistics, "
            "failed_expectations, results, validated_at) values ('v1', 'course_catalog', '1', 'catalog', "
            "'sha', true, 1, 0, '{}', '[]', '[]', now())"
        )
    assert [row["suite_name"] for row in fetch_validations({})] == ["course_catalog"]  # its own login
    monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE_QUALITY_READER")  # the owner's warehouse_postgres still works

    with pytest.raises(
        ConfigError, match="warehouse connection warehouse_quality_reader \\(stage quality_reader\\)"
    ):
        fetch_validations({})
