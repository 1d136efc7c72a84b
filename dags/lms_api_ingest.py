"""
### lms_api_ingest

**Purpose:** land learning activity and the LMS user directory exactly once, incrementally.

**Sources:** the xAPI Learning Record Store behind connection `lms_api` (Statements resource, Basic auth
or OAuth2 client credentials) and the SCIM 2.0 directory behind `lms_directory` (bearer token); the
business-edited course catalog `include/course_catalog.csv`.

**Flow:** migrate → validate and load the course catalog → pull SCIM users (incremental on
`meta.lastModified` when the server can filter) into `raw.lms_user` with history, and page xAPI statements
stored since the watermark minus the overlap into a staging table → Great Expectations gate on the batch
→ one transaction publishes `raw.lms_statement`, the rejects, `core.lms_activity`, voids, the audit row and
the watermark → report courses missing from the catalog → `announce_lms_activity` updates the LMS asset
(which schedules identity and features), except on runs the LRS watcher triggered: there it is skipped,
so a few new statements do not rebuild identity and features; the next hourly run announces them.

**Freshness:** `check_lms_freshness` runs whatever happened upstream and fails (alerting) when no xAPI
batch was published within `slo.lms_max_age_hours` (2 h). A run still going after 90 minutes
(`dagrun_timeout`) fails and alerts (docs/runbook/alerts.md#runbook-deadlines).

**Warehouse logins:** `warehouse_loader` (users, statements, freshness), `warehouse_transformer` (course
catalog, unknown courses), `warehouse_postgres` (the owner) only to migrate; see
docs/security.md#least-privilege.

**Schedule:** within minutes of new statements — the asset watcher `lms_statements_watcher` (triggerer)
polls the LRS every `lms.watch_poll_seconds` for statements stored after the watermark; such a run
re-reads `lms.watch_since_overlap_minutes` before it — and hourly at :10 as the safety net (cron trigger
timetable; the full `lms.since_overlap_days` overlap). Today's activity before the hourly run:
`mart.lms_activity_today_provisional`. **Owner:** people-analytics data engineering.
**Runbook:** docs/runbook/lms.md#runbook-lms_api_ingest — every task is safe to clear and rerun: statements
are keyed by id, user versions by (id, lastModified), and the watermark only moves with the data it covers.
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
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from turnover_signals.airflow_tasks import DEFAULT_ARGS, migrate_warehouse_task
from turnover_signals.assets import LMS_ACTIVITY, LMS_STATEMENTS_STORED
from turnover_signals.notify import notify_failure
from turnover_signals.slo import deadline_for


@dag(
    dag_id="lms_api_ingest",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("10 * * * *", timezone="UTC"), assets=LMS_STATEMENTS_STORED
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    # the deadline: a hung run fails and alerts within the 2 h freshness SLO instead of holding back
    # the next hourly runs (max_active_runs=1); published chunks are kept (runbook-deadlines)
    dagrun_timeout=timedelta(minutes=90),
    deadline=deadline_for("lms_api_ingest"),  # the SLO: on-call hears of late data before anyone asks
    default_args=DEFAULT_ARGS,
    on_failure_callback=notify_failure,  # a run can fail with no failed task: a timeout (runbook-deadlines)
    tags=["turnover-signals", "lms", "ingest"],
    doc_md=__doc__,
)
def lms_api_ingest():
    migrate_warehouse = migrate_warehouse_task()

    @task
    def load_course_catalog() -> dict:
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.lms.catalog import load_course_catalog as load

        return run_for_stage("transformer", load)

    @task
    def extract_lms_users() -> dict:
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.lms.users import extract_users

        return run_for_stage("loader", extract_users)

    @task
    def extract_lms_statements() -> dict:
        from airflow.sdk import get_current_context

        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.lms.watch import extract_statements_for_run

        run_type = get_current_context()["dag_run"].run_type
        return run_for_stage("loader", extract_statements_for_run, run_type=run_type)

    @task(outlets=[LMS_ACTIVITY])
    def announce_lms_activity() -> str:
        """Skipped on watcher-triggered runs: a skipped task emits no asset event."""
        from airflow.sdk import get_current_context

        from turnover_signals.lms.watch import announce_lms_activity as announce

        return announce(get_current_context()["dag_run"].run_type)

    @task
    def report_unknown_courses() -> list:
        from turnover_signals.airflow_tasks import load_stage_config
        from turnover_signals.lms.catalog import report_unknown_courses as report

        return report(load_stage_config("transformer"))

    @task(trigger_rule="all_done")
    def check_lms_freshness() -> dict:
        """Runs whatever happened upstream: a run of failed extractions alerts once the SLO is passed."""
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.quality.freshness import check_lms_freshness as check

        return run_for_stage("loader", check, with_run=False)

    catalog = load_course_catalog()
    migrate_warehouse() >> catalog
    statements = extract_lms_statements()
    catalog >> [extract_lms_users(), statements >> report_unknown_courses()]
    statements >> [announce_lms_activity(), check_lms_freshness()]


lms_api_ingest()
