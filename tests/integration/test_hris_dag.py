"""The whole `hris_sftp_ingest` DAG through `dag.test()`: real sshd, PostgreSQL and GX."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.hris_helpers import (
    compensation_bytes,
    csv_bytes,
    employee_row,
    query,
    table_snapshot,
    write_feed_file,
)
from turnover_demo.sample_servers.sftp_server import SftpSampleServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture
def hris_server(tmp_path, monkeypatch):
    root = tmp_path / "sftp-root"
    directory = root / "outbound" / "hris"
    directory.mkdir(parents=True)
    write_feed_file(directory, "employees_20260105.csv", csv_bytes([employee_row(n) for n in range(1, 8)]))
    write_feed_file(directory, "employees_20260112.csv", csv_bytes([employee_row(n) for n in range(1, 7)]))
    write_feed_file(
        directory,
        "compensation_20260112.csv",
        compensation_bytes(
            [
                {
                    "employee_id": "E000002",
                    "effective_date": "2026-01-09",
                    "change_type": "merit_increase",
                    "previous_base_salary": "50002.00",
                    "new_base_salary": "52000.00",
                    "currency": "GBP",
                }
            ]
        ),
    )
    write_feed_file(directory, "employees_20260119.csv", csv_bytes([employee_row(1), employee_row(1)]))
    with SftpSampleServer(root) as server:
        for key, value in server.airflow_connection_env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv(
            "AIRFLOW_VAR_TURNOVER_SIGNALS",
            json.dumps(
                {
                    "hris": {
                        "landing_dir": str(tmp_path / "landing"),
                        "wait_for_files_minutes": 0,
                        "files_per_task": 2,
                        "stable_listing_seconds": 0.2,
                    }
                }
            ),
        )
        yield server


def _hris_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR / "hris_sftp_ingest.py")).get_dag("hris_sftp_ingest")


def test_dag_run_loads_good_files_quarantines_the_bad_one_and_reruns_are_no_ops(
    airflow_metadata_db, warehouse_dsn, hris_server
):
    dag = _hris_dag()
    run = dag.test(logical_date=datetime(2026, 1, 20, 6, tzinfo=UTC))
    states = {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.state
        for ti in run.get_task_instances()
    }
    assert states["migrate_warehouse"] == "success"
    assert states["wait_for_hris_files"] == "success"
    # two batches of two files in date order; the second holds the bad file, whose batch-mate still loads
    assert [states["ingest_hris_files[0]"], states["ingest_hris_files[1]"]] == ["success", "failed"]
    assert states["build_employee_history"] == "success"  # the good files are published
    assert states["report_ingested_files"] == "upstream_failed"
    # the newest good snapshot (2026-01-12) is 7 days old on 2026-01-20: the freshness guard alerts
    assert states["check_hris_freshness"] == "failed"
    assert run.state == "failed"  # a quarantined file must alert
    failed = [ti for ti in run.get_task_instances() if ti.state == "failed"]
    assert [ti.try_number for ti in failed] == [1, 1]  # bad input and stale data are not retried

    manifest = query(
        warehouse_dsn,
        "select file_name, status, dag_id, task_id, map_index from audit.file_manifest order by 1",
    )
    assert manifest == [
        ("compensation_20260112.csv", "loaded", "hris_sftp_ingest", "ingest_hris_files", 0),
        ("employees_20260105.csv", "loaded", "hris_sftp_ingest", "ingest_hris_files", 0),
        ("employees_20260112.csv", "loaded", "hris_sftp_ingest", "ingest_hris_files", 1),
        ("employees_20260119.csv", "quarantined", "hris_sftp_ingest", "ingest_hris_files", 1),
    ]
    assert query(
        warehouse_dsn, "select count(*) from core.employee_history where closed_by = 'absent_from_snapshot'"
    ) == [(1,)]
    before = table_snapshot(warehouse_dsn)

    # the next run finds nothing pending: the sensor skips and nothing changes
    second = dag.test(logical_date=datetime(2026, 1, 21, 6, tzinfo=UTC))
    assert {ti.task_id: ti.state for ti in second.get_task_instances()}["wait_for_hris_files"] == "skipped"
    assert table_snapshot(warehouse_dsn) == before

    # clearing every task of the first run and running it again (what dag.test does for the
    # same logical date) leaves identical tables too
    dag.test(logical_date=datetime(2026, 1, 20, 6, tzinfo=UTC))
    assert table_snapshot(warehouse_dsn) == before


MISNAMED = ("employees_20260106.csv;rm -rf ~", "..employees_20260107.csv", "employees_20260108.csv\n")


@pytest.fixture
def misnamed_delivery(tmp_path, monkeypatch):
    """One good snapshot and three copies of it under names the pipeline must never take."""
    directory = tmp_path / "sftp-root" / "outbound" / "hris"
    good = csv_bytes([employee_row(n) for n in range(1, 6)])
    write_feed_file(directory, "employees_20260105.csv", good)
    for name in MISNAMED:
        (directory / name).write_bytes(good)
    with SftpSampleServer(tmp_path / "sftp-root") as server:
        for key, value in server.airflow_connection_env().items():
            monkeypatch.setenv(key, value)
        variable = {"hris": {"wait_for_files_minutes": 0, "stable_listing_seconds": 0.2}}
        monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps(variable))
        yield server


def test_names_ignored_by_the_listing_are_counted_in_the_run_summary(
    airflow_metadata_db, warehouse_dsn, misnamed_delivery
):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    run = _hris_dag().test(logical_date=datetime(2026, 1, 6, 6, tzinfo=UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["ingest_hris_files"] == "success" and states["report_ingested_files"] == "success", states
    with create_session() as session:
        [summary] = [
            row.value
            for row in session.query(XComModel).filter_by(
                dag_id="hris_sftp_ingest",
                run_id=run.run_id,
                task_id="report_ingested_files",
                key="return_value",
            )
        ]
    summary = json.loads(summary) if isinstance(summary, str) else summary
    assert summary["by_status"] == {"loaded": 1} and summary["ignored_names"] == 3
    assert (
        "'employees_20260108.csv\\n' (unsafe name: holds a control or unprintable character)"
        in (summary["ignored"])
    )
    assert query(warehouse_dsn, "select file_name from audit.file_manifest") == [("employees_20260105.csv",)]
