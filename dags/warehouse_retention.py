"""
### warehouse_retention

**Purpose:** keep the warehouse within its data-protection promises: apply the configured retention
(raw LMS statements and closed `raw.lms_user` versions older than `retention.raw_days`, LMS rejects
after `retention.quarantined_file_days`, raw partitions of loaded HRIS files past `raw_days` — sealed
first into the `core` baselines the history is rebuilt from — and of superseded ones, landed HRIS
files, and landed quarantined files after `quarantined_file_days`; Data Docs pages, steward review samples
and the unexpected-value samples of validation runs after `data_docs_days`, `review_sample_days` and
`validation_sample_days`), purging or archiving them and recording each purge in `audit.retention_purge`.
Only a landed file under `hris.landing_dir` with the manifest's sha256, or an object inside its folder, is
deleted; anything else is kept and reported (`files_kept`); and install the pseudonymization key of the
`analytics_pseudonym` connection and the smallest group (`analytics.min_group_size`) behind the `analytics`
views.

**Inputs:** `audit.file_manifest`, `raw.*`, the landed files, the `retention` configuration and the
`analytics_pseudonym` connection. **Writes:** `core.hris_sealed_file`, `core.employee_snapshot_baseline`,
`core.compensation_change_baseline` (what sealed files contributed); audit rows are never purged, and
history, identity, features and reports for dates still in retention stay exactly as they are.

**Flow:** migrate → install the pseudonym key (a new key rotates every pseudonym) → apply retention.

**Warehouse login:** `warehouse_postgres`, the owner: only it may reach the pseudonym key's schema, delete
raw rows and drop partitions.

**Schedule:** daily at 05:00 UTC. **Owner:** people-analytics data engineering.
**Runbook:** docs/runbook/retention.md#runbook-warehouse_retention — every task is safe to clear and rerun: a
purge only removes what is past its cutoff (measured from the run's date) and a rerun finds nothing more.
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

from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

from turnover_signals.airflow_tasks import DEFAULT_ARGS, migrate_warehouse_task
from turnover_signals.notify import notify_failure
from turnover_signals.slo import deadline_for


@dag(
    dag_id="warehouse_retention",
    schedule=CronTriggerTimetable("0 5 * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),  # the deadline: a hung run fails and alerts (runbook-deadlines)
    deadline=deadline_for("warehouse_retention"),  # the SLO: on-call hears of late data before anyone asks
    default_args=DEFAULT_ARGS,
    on_failure_callback=notify_failure,  # a run can fail with no failed task: a timeout (runbook-deadlines)
    tags=["turnover-signals", "governance"],
    doc_md=__doc__,
)
def warehouse_retention():
    migrate_warehouse = migrate_warehouse_task()

    @task
    def install_pseudonym_key() -> dict:
        from turnover_signals.airflow_tasks import bad_input_fails_without_retry, current_run_identity
        from turnover_signals.config import load_config
        from turnover_signals.governance.pseudonyms import install_key_from_connection

        config = load_config()
        with bad_input_fails_without_retry():
            return install_key_from_connection(
                config["analytics"]["pseudonym_connection"],
                run=current_run_identity(),
                warehouse_conn_id=config["connections"]["warehouse"],
                min_group_size=config["analytics"]["min_group_size"],
            )

    @task
    def apply_retention(logical_date=None, dag_run=None) -> dict:
        from turnover_signals.airflow_tasks import bad_input_fails_without_retry, current_run_identity
        from turnover_signals.config import load_config
        from turnover_signals.retention.purge import apply_retention as apply
        from turnover_signals.retention.purge import retention_as_of

        with bad_input_fails_without_retry():
            # the run's own date, not the wall clock: clearing an old run purges as of that run
            return apply(load_config(), current_run_identity(), now=retention_as_of(logical_date, dag_run))

    migrate_warehouse() >> install_pseudonym_key() >> apply_retention()


warehouse_retention()
