"""
### lms_statement_backfill

**Purpose:** load a range of xAPI statements (by the LRS's `stored` time) in parallel slices, each gated on
its own and published in order, for a first install or a range the hourly `lms_api_ingest` never covered.

**Source:** the xAPI Learning Record Store behind connection `lms_api` (Statements resource, `since` /
`until` on the stored time).

**Flow:** migrate → plan the slices (params `from_stored`, `to_stored`, and `slice_count` or `slice_hours`):
contiguous `(since, until]` ranges, so no statement falls between two or in two → one mapped task per slice
pages through its range, checks every statement into its own checks tables and gates each chunk with Great
Expectations → one task publishes the gated slices in slice order, each in one transaction
(`raw.lms_statement`, the rejects, `core.lms_activity`, voids, audit rows, the watermark) and stops at the
first slice that failed its gate. Slices hand over through `audit.lms_backfill_slice`. Logic:
`turnover_signals.lms.backfill`.

**Watermark:** a published slice moves the hourly watermark only when the watermark already reaches the
slice's start, and then to the slice's end (capped by the LRS's Consistent-Through), never backwards: an old
range behind the watermark leaves it alone, and a range after a gap never advances it past statements not
loaded. On an LRS the conformance probe found filtering `since` on `timestamp`, slices are ranges of
timestamps and a backfill never moves the watermark (the hourly look-back and sweep own it).
Publishing takes the same lock as the hourly run, so both can run at once.

**Warehouse logins:** `warehouse_loader` for the slices and the publish, `warehouse_postgres` (the owner) only
to migrate. **Schedule:** none (manual trigger). **Owner:** people-analytics data engineering.
**Runbook:** docs/runbook/lms.md#runbook-lms-statement-backfill — clear a failed slice's task once its cause
is fixed, then clear `publish_statement_slices`; every task is safe to clear and rerun (published slices are
not extracted again, statements are keyed by id).
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

from airflow.sdk import Param, dag, task

from turnover_signals.airflow_tasks import DEFAULT_ARGS, migrate_warehouse_task
from turnover_signals.assets import LMS_ACTIVITY
from turnover_signals.notify import notify_failure
from turnover_signals.slo import deadline_for


@dag(
    dag_id="lms_statement_backfill",
    schedule=None,  # manual: a backfill is asked for, with its range
    start_date=datetime(2026, 1, 1),
    catchup=False,
    dagrun_timeout=timedelta(hours=12),  # a hung backfill fails and alerts (runbook-deadlines)
    deadline=deadline_for("lms_statement_backfill"),  # the SLO: on-call hears of a backfill stuck for hours
    default_args=DEFAULT_ARGS,
    on_failure_callback=notify_failure,
    params={
        "from_stored": Param(
            "1970-01-01T00:00:00Z",
            type="string",
            description="load statements stored after this ISO 8601 time (exclusive)",
        ),
        "to_stored": Param(
            "1970-01-02T00:00:00Z",
            type="string",
            description="... up to this ISO 8601 time (inclusive)",
        ),
        "slice_count": Param(4, type="integer", minimum=1, description="equal slices of the range"),
        "slice_hours": Param(
            None, type=["null", "number"], description="instead of slice_count: slices of this many hours"
        ),
    },
    tags=["turnover-signals", "lms", "ingest", "backfill"],
    doc_md=__doc__,
)
def lms_statement_backfill():
    migrate_warehouse = migrate_warehouse_task()

    @task
    def plan_statement_slices(params: dict | None = None) -> list:
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.lms.backfill import plan_backfill

        return run_for_stage("loader", plan_backfill, params or {}, with_run=False)

    @task
    def extract_statement_slice(slice_range: dict) -> dict:
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.lms.backfill import extract_slice

        return run_for_stage("loader", extract_slice, slice_range)

    @task(trigger_rule="all_done", outlets=[LMS_ACTIVITY])
    def publish_statement_slices(slices: list) -> dict:
        """Runs after every slice, failed ones too: the slices before the first failure are published."""
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.lms.backfill import publish_slices

        return run_for_stage("loader", publish_slices, slices)

    slices = plan_statement_slices()
    migrate_warehouse() >> slices
    extract_statement_slice.expand(slice_range=slices) >> publish_statement_slices(slices)


lms_statement_backfill()
