"""
### turnover_features

**Purpose:** build point-in-time features and labels a turnover model can trust:
`mart.employee_features` (one row per employee_key per reference date per feature set version, each a
pure function of what was known at its date's cut-off, the end of the date + `features.as_of_grace_hours`),
`mart.turnover_label` (voluntary exit within the horizon; involuntary exits censored) and the view
`mart.training_set`.

**Inputs:** `core.employee_identity` (asset), `core.lms_activity`, `core.employee_history`,
`core.compensation_event`, `core.course_catalog`.

**Flow:** migrate → refresh the daily learning aggregate → plan the reference dates (params:
`reference_dates`, ISO dates; default the day before the run and every date since the newest built one;
the first build of a version also backfills month-ends and the days since the newest): a date whose
inputs are not complete through its cut-off (its employees file, the LMS extraction) is deferred, logged
and built by a later run →
stage → Great Expectations gate → one transaction publishes the rows, writes `audit.feature_build` and
refreshes the labels → print the training set's shape and label balance; beside it, also when the build
failed, record the integration KPIs of the day before the run in `mart.integration_kpi` (docs/reference/
kpis.md), alerting on each that turned red.

**Warehouse logins:** `warehouse_transformer` for every task, `warehouse_postgres` (the owner) only to
migrate.

**Schedule:** daily at 07:30 UTC and whenever identities are rebuilt. **Owner:** people-analytics data
engineering. **Runbook:** docs/runbook/features.md#runbook-turnover_features — a built date never changes;
`restate: true` builds an "as known now" variant into `mart.employee_features_restated`. Every task is safe to
clear and rerun.
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
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from turnover_signals.airflow_tasks import DEFAULT_ARGS, migrate_warehouse_task
from turnover_signals.assets import EMPLOYEE_FEATURES, EMPLOYEE_IDENTITY
from turnover_signals.notify import notify_failure
from turnover_signals.slo import deadline_for


@dag(
    dag_id="turnover_features",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("30 7 * * *", timezone="UTC"), assets=EMPLOYEE_IDENTITY
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),  # the deadline: a hung run fails and alerts (runbook-deadlines)
    deadline=deadline_for("turnover_features"),  # the SLO: on-call hears of late data before anyone asks
    default_args=DEFAULT_ARGS,
    on_failure_callback=notify_failure,  # a run can fail with no failed task: a timeout (runbook-deadlines)
    params={
        "reference_dates": Param(
            [], type="array", description="ISO dates to build; default: the day before the run"
        ),
        "restate": Param(
            False,
            type="boolean",
            description="build the dates as known now into mart.employee_features_restated",
        ),
        "full_daily_rebuild": Param(
            False, type="boolean", description="recompute the daily learning aggregate"
        ),
    },
    tags=["turnover-signals", "features"],
    doc_md=__doc__,
)
def turnover_features():
    migrate_warehouse = migrate_warehouse_task()

    @task(outlets=[EMPLOYEE_FEATURES])
    def build_features(params: dict | None = None) -> dict:
        from airflow.sdk import get_current_context

        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.features.build import build_features as build
        from turnover_signals.features.build import deferral_note, reference_dates_for_run
        from turnover_signals.run_note import note_on_this_run

        params = params or {}
        requested = params.get("reference_dates") or ()
        dates = reference_dates_for_run(get_current_context(), requested)
        summary = run_for_stage(
            "transformer",
            build,
            reference_dates=dates,
            restate=bool(params.get("restate")),
            full_daily_rebuild=bool(params.get("full_daily_rebuild")),
            catch_up=not requested,
        )
        deferred = deferral_note(summary)
        note_on_this_run([deferred] if deferred else [])  # people see a deferral on the run itself
        return summary

    @task
    def report_training_set() -> list:
        from turnover_signals.airflow_tasks import load_stage_config, log_lines
        from turnover_signals.features.build import training_set_summary

        return log_lines(training_set_summary(load_stage_config("transformer")))

    @task(trigger_rule="all_done")  # a failed build is one of the things the KPIs measure
    def record_integration_kpis() -> dict:
        from airflow.sdk import get_current_context

        from turnover_signals.airflow_tasks import data_time, run_for_stage
        from turnover_signals.kpi.build import kpi_date_of_run
        from turnover_signals.kpi.build import record_integration_kpis as record

        kpi_date = kpi_date_of_run(data_time(get_current_context()))
        return run_for_stage("transformer", record, kpi_date=kpi_date)

    migrate_warehouse() >> build_features() >> [report_training_set(), record_integration_kpis()]


turnover_features()
