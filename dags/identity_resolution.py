"""
### identity_resolution

**Purpose:** build the canonical identity layer every later join uses: one stable `employee_key`
per person across the HRIS employee id, LMS user ids, SSO GUID, work email and xAPI actors.

**Inputs:** `core.employee_history` (HR asset), `raw.lms_user` and `core.lms_activity` (LMS asset),
steward decisions in `audit.identity_override`.

**Flow:** migrate → skip (the reason in the log and the run's note) while there is no HR history yet
(a first install's HRIS backlog still loading) or when nothing it reads changed since the last good run,
so an hourly LMS run does not rebuild identity and features for nothing → resolve identities in SQL
(incremental: only what changed since the last good run and everything sharing a GUID, an email or a
key with it; the `full_rebuild` param recomputes all) → Great Expectations gate (headcount reconciles, one key
per employee, no identifier owned by two keys at once, active match rate at or above
`identity.min_active_lms_match_rate`) → one transaction publishes `core.employee_identity`,
`core.lms_account_match`, `audit.identity_exception` and the reconciliation row → ranked suggestions for the
accounts the rules leave unmatched (`audit.identity_suggestion`, the steward's queue; never a link until a
steward accepts one) → steward review sample CSV (after the suggestions); the readable reconciliation summary.

**Warehouse logins:** `warehouse_transformer` for every task, `warehouse_postgres` (the owner) only to
migrate.

**Schedule:** whenever the HR or the LMS asset is updated. **Owner:** people-analytics data engineering.
**Runbook:** docs/runbook/identity.md#runbook-identity_resolution — a failed gate publishes nothing (the last
good identity layer stays served); the error names the top reasons for misses. Every task is safe to clear
and rerun: keys are issued deterministically and steward decisions are reapplied on every run.
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
from turnover_signals.assets import EMPLOYEE_IDENTITY, HRIS_EMPLOYEE_HISTORY, LMS_ACTIVITY
from turnover_signals.notify import notify_failure
from turnover_signals.slo import deadline_for


@dag(
    dag_id="identity_resolution",
    schedule=(HRIS_EMPLOYEE_HISTORY | LMS_ACTIVITY),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),  # the deadline: a hung run fails and alerts (runbook-deadlines)
    deadline=deadline_for("identity_resolution"),  # the SLO: on-call hears of late data before anyone asks
    default_args=DEFAULT_ARGS,
    on_failure_callback=notify_failure,  # a run can fail with no failed task: a timeout (runbook-deadlines)
    params={
        "full_rebuild": Param(False, type="boolean", description="re-match everything, not only what changed")
    },
    tags=["turnover-signals", "identity"],
    doc_md=__doc__,
)
def identity_resolution():
    migrate_warehouse = migrate_warehouse_task()

    @task(outlets=[EMPLOYEE_IDENTITY])
    def resolve_identities(params: dict | None = None) -> dict:
        from turnover_signals.airflow_tasks import run_for_stage, skip_unless_ready
        from turnover_signals.identity.resolve import reason_to_skip
        from turnover_signals.identity.resolve import resolve_identities as resolve

        full = bool((params or {}).get("full_rebuild"))
        # not ready, or nothing changed: skipped, so no asset event re-triggers the features
        skip_unless_ready(run_for_stage("transformer", reason_to_skip, with_run=False, full=full))
        return run_for_stage("transformer", resolve, full=full)

    @task
    def suggest_identity_matches() -> dict:
        from turnover_signals.airflow_tasks import current_run_identity, run_for_stage
        from turnover_signals.identity.suggest import suggest_matches

        return run_for_stage("transformer", suggest_matches, with_run=False, run=current_run_identity())

    @task
    def export_identity_review_sample() -> dict:
        from turnover_signals.airflow_tasks import current_run_identity, load_stage_config
        from turnover_signals.identity.review_sample import export_review_sample

        return export_review_sample(load_stage_config("transformer"), current_run_identity())

    @task
    def report_identity_reconciliation() -> list:
        from turnover_signals.airflow_tasks import load_stage_config, log_lines
        from turnover_signals.identity.report import report_reconciliation

        return log_lines(report_reconciliation(load_stage_config("transformer")))

    resolved, suggested = resolve_identities(), suggest_identity_matches()
    migrate_warehouse() >> resolved >> [suggested, report_identity_reconciliation()]
    suggested >> export_identity_review_sample()


identity_resolution()
