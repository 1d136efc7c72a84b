"""
### hris_sftp_ingest

**Purpose:** turn the HR system's daily exports into trustworthy, point-in-time employee history.

**Source:** SFTP connection `hris_sftp` (pinned host key), directory from its `remote_dir` extra or the
`hris.remote_dir` setting: `employees_YYYYMMDD.csv` full snapshots and `compensation_YYYYMMDD.csv`
pay changes, each with an optional `.ctl` control file.

**Flow:** wait (up to `hris.wait_for_files_minutes`, default 6 h, then skip) for files not yet in
`audit.file_manifest` and complete (with their control file, or the same size and mtime in two listings
`hris.stable_listing_seconds` apart; entries ignored for their names are WARNINGs, counted in the summary of
`report_ingested_files`, runbook-hris-files-not-taken) → one mapped task per batch of up to
`hris.files_per_task` files, in date order; for each file: download with the host key verified, sha256,
Great Expectations gate on the staged file, then publish in one transaction or quarantine → rebuild
`core.employee_history` (SCD2) and `core.compensation_event` → update the HR asset, which triggers the
identity and feature DAGs. A quarantined file fails the run (without retries: it fails the same way until
corrected) while the good files still load.

**Freshness:** `check_hris_freshness` runs whatever happened upstream and fails (alerting) when the latest
loaded snapshot is older than `slo.hris_max_age_hours` (24 h) at the run's data time. A run still going after
20 h (`dagrun_timeout`) fails and alerts (docs/runbook/alerts.md#runbook-deadlines).

**Warehouse logins:** `warehouse_loader` (sensor, ingest, freshness), `warehouse_transformer` (history),
`warehouse_postgres` (the owner) only to migrate; see docs/security.md#least-privilege.

**Schedule:** daily at 06:00 UTC (cron trigger timetable); a run processes every pending file in date order.

**Owner:** people-analytics data engineering. **Runbook:** docs/runbook/hris.md#runbook-hris_sftp_ingest —
every task is safe to clear and rerun; a rerun for a recorded file changes nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Import the package of this bundle version (docs/deploy/existing-airflow.md#git-dag-bundle): a task rerun on
# an older version of a versioned bundle runs that version's package and SQL, not whatever copy the worker has
# installed.
if (_bundle_plugins := str(Path(__file__).resolve().parents[1] / "plugins")) not in sys.path:
    sys.path.insert(0, _bundle_plugins)

from datetime import datetime, timedelta

from airflow.sdk import PokeReturnValue, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from turnover_signals.airflow_tasks import DEFAULT_ARGS, migrate_warehouse_task
from turnover_signals.assets import HRIS_EMPLOYEE_HISTORY
from turnover_signals.notify import notify_failure
from turnover_signals.slo import deadline_for


@dag(
    dag_id="hris_sftp_ingest",
    schedule=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # the deadline: a hung run fails and alerts before the next day's run is due (max_active_runs=1);
    # above the file wait (hris.wait_for_files_minutes, 6 h) plus the ingest (runbook-deadlines)
    dagrun_timeout=timedelta(hours=20),
    deadline=deadline_for("hris_sftp_ingest"),  # the SLO: on-call hears of late data before anyone asks
    default_args=DEFAULT_ARGS,
    on_failure_callback=notify_failure,  # a run can fail with no failed task: a timeout (runbook-deadlines)
    tags=["turnover-signals", "hris", "ingest"],
    doc_md=__doc__,
)
def hris_sftp_ingest():
    migrate_warehouse = migrate_warehouse_task()

    @task.sensor(poke_interval=600, timeout=24 * 3600, mode="reschedule")
    def wait_for_hris_files(dag_run=None, ti=None) -> PokeReturnValue:
        from turnover_signals.airflow_tasks import fails_without_retry, load_stage_config
        from turnover_signals.hris.ingest import batch_pending_files, wait_for_pending_files
        from turnover_signals.run_note import note_on_this_run

        # a refused host key or malformed connection settings fail at once (runbook-sftp-host-key)
        with fails_without_retry():
            config = load_stage_config("loader")
            pending, survey = wait_for_pending_files(config, dag_run.start_date, note=note_on_this_run)
        ti.xcom_push(key="listing", value=survey.summary())  # files not taken, names ignored: for the summary
        batches = batch_pending_files(pending, config["hris"]["files_per_task"])
        return PokeReturnValue(is_done=bool(pending), xcom_value=batches)

    # one batch at a time, in date order: a correction must load after the file it corrects
    @task(max_active_tis_per_dagrun=1, retry_delay=timedelta(minutes=2))
    def ingest_hris_files(remote_files: list) -> list:
        from functools import partial

        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.hris.ingest import ingest_files

        return run_for_stage("loader", partial(ingest_files, remote_files))

    @task(trigger_rule="all_done", outlets=[HRIS_EMPLOYEE_HISTORY])
    def build_employee_history(ingested: list[dict]) -> dict:
        from turnover_signals.airflow_tasks import load_stage_config
        from turnover_signals.hris.history import build_employee_history as rebuild

        return rebuild(load_stage_config("transformer"))

    @task
    def report_ingested_files(ingested: list[dict], ti=None) -> dict:
        """A leaf that only succeeds when every file loaded: a quarantined file fails the run. Also counts
        what the listing did not take: files still being written, entries ignored for their names."""
        from turnover_signals.hris.ingest import summarize_ingest

        listing = ti.xcom_pull(task_ids="wait_for_hris_files", key="listing")
        return summarize_ingest(list(ingested), listing)

    @task(trigger_rule="all_done")
    def check_hris_freshness() -> dict:
        """Runs whatever happened upstream: stale HR data alerts even when no file arrived."""
        from airflow.sdk import get_current_context

        from turnover_signals.airflow_tasks import data_time, run_for_stage
        from turnover_signals.quality.freshness import check_hris_freshness as check

        return run_for_stage("loader", check, data_time(get_current_context()), with_run=False)

    pending = wait_for_hris_files()
    migrate_warehouse() >> pending
    ingested = ingest_hris_files.expand(remote_files=pending)
    build_employee_history(ingested) >> check_hris_freshness()
    report_ingested_files(ingested)


hris_sftp_ingest()
