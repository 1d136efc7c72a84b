"""The whole `hris_sftp_ingest` DAG through `dag.test()`: real sshd, PostgreSQL and GX."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.databases import DatabaseCopies, as_airflow_warehouse
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


def deliver_four_files(directory: Path) -> None:
    """Three good files and a bad one (a duplicated employee), two dates a batch in date order."""
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


def _hris_dag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR / "hris_sftp_ingest.py")).get_dag("hris_sftp_ingest")


def task_states(run) -> dict[str, str]:
    """task_id (with `[map_index]` for mapped ones) -> state."""
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.state
        for ti in run.get_task_instances()
    }


@pytest.fixture(scope="module")
def four_file_delivery_runs(airflow_metadata_db, migrated_template_db, tmp_path_factory):
    """Three runs of the DAG on one warehouse, run once for the tests below, which assert on what each left:
    the first run (2026-01-20) on four delivered files, the next day's run with nothing pending, and the first
    date run again (what `dag.test()` does for the same logical date: clear every task and run it)."""
    base = tmp_path_factory.mktemp("hris_dag_runs")
    directory = base / "sftp-root" / "outbound" / "hris"
    directory.mkdir(parents=True)
    deliver_four_files(directory)
    variable = {
        "hris": {
            "landing_dir": str(base / "landing"),
            "wait_for_files_minutes": 0,
            "files_per_task": 2,
            "stable_listing_seconds": 0.2,
        }
    }
    with (
        DatabaseCopies() as databases,
        pytest.MonkeyPatch.context() as environment,
        SftpSampleServer(base / "sftp-root") as server,
    ):
        warehouse = as_airflow_warehouse(databases.copy(migrated_template_db), environment)
        for key, value in server.airflow_connection_env().items():
            environment.setenv(key, value)
        environment.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps(variable))
        dag = _hris_dag()

        first = dag.test(logical_date=datetime(2026, 1, 20, 6, tzinfo=UTC))
        first_states = task_states(first)
        failed = [
            (ti.task_id, ti.map_index, ti.try_number)
            for ti in first.get_task_instances()
            if ti.state == "failed"
        ]
        manifest = query(
            warehouse,
            "select file_name, status, dag_id, task_id, map_index from audit.file_manifest order by 1",
        )
        closed_as_absent = query(
            warehouse, "select count(*) from core.employee_history where closed_by = 'absent_from_snapshot'"
        )
        tables_after_first_run = table_snapshot(warehouse)

        nothing_pending = dag.test(logical_date=datetime(2026, 1, 21, 6, tzinfo=UTC))
        nothing_pending_states = task_states(nothing_pending)
        tables_after_nothing_pending = table_snapshot(warehouse)

        dag.test(logical_date=datetime(2026, 1, 20, 6, tzinfo=UTC))
        tables_after_rerun = table_snapshot(warehouse)

    return SimpleNamespace(
        first_state=first.state,
        first_states=first_states,
        failed=failed,
        manifest=manifest,
        closed_as_absent=closed_as_absent,
        tables_after_first_run=tables_after_first_run,
        nothing_pending_states=nothing_pending_states,
        tables_after_nothing_pending=tables_after_nothing_pending,
        tables_after_rerun=tables_after_rerun,
    )


def test_the_good_files_are_published_to_the_employee_history(four_file_delivery_runs):
    states = four_file_delivery_runs.first_states
    assert states["migrate_warehouse"] == "success"
    assert states["wait_for_hris_files"] == "success"
    assert states["build_employee_history"] == "success", states  # despite the quarantined file
    # employee 7 is in the 2026-01-05 snapshot and not in the 2026-01-12 one
    assert four_file_delivery_runs.closed_as_absent == [(1,)]


def test_a_bad_file_fails_its_batch_while_its_batch_mate_still_loads(four_file_delivery_runs):
    states = four_file_delivery_runs.first_states
    # two batches of two files in date order; the second holds the bad file
    assert [states["ingest_hris_files[0]"], states["ingest_hris_files[1]"]] == ["success", "failed"], states


def test_the_manifest_records_each_files_status_and_the_batch_that_took_it(four_file_delivery_runs):
    assert four_file_delivery_runs.manifest == [
        ("compensation_20260112.csv", "loaded", "hris_sftp_ingest", "ingest_hris_files", 0),
        ("employees_20260105.csv", "loaded", "hris_sftp_ingest", "ingest_hris_files", 0),
        ("employees_20260112.csv", "loaded", "hris_sftp_ingest", "ingest_hris_files", 1),
        ("employees_20260119.csv", "quarantined", "hris_sftp_ingest", "ingest_hris_files", 1),
    ]


def test_a_quarantined_file_fails_the_run_and_withholds_the_ingest_report(four_file_delivery_runs):
    assert four_file_delivery_runs.first_states["report_ingested_files"] == "upstream_failed"
    assert four_file_delivery_runs.first_state == "failed"  # a quarantined file must alert


def test_a_newest_snapshot_7_days_old_fails_the_freshness_guard(four_file_delivery_runs):
    # the newest good snapshot (2026-01-12) is 7 days old on 2026-01-20
    assert four_file_delivery_runs.first_states["check_hris_freshness"] == "failed"


def test_bad_input_and_stale_data_are_not_retried(four_file_delivery_runs):
    failed = four_file_delivery_runs.failed
    assert [try_number for _task_id, _map_index, try_number in failed] == [1, 1], failed


def test_a_run_with_nothing_pending_skips_the_sensor_and_changes_no_table(four_file_delivery_runs):
    runs = four_file_delivery_runs
    assert runs.nothing_pending_states["wait_for_hris_files"] == "skipped"
    assert runs.tables_after_nothing_pending == runs.tables_after_first_run


def test_running_a_date_again_leaves_identical_tables(four_file_delivery_runs):
    runs = four_file_delivery_runs
    assert runs.tables_after_rerun == runs.tables_after_first_run


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
