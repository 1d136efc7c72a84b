"""
### turnover_model

**Purpose:** train the pilot voluntary-turnover model on `mart.training_set` twice — HR features
only, and HR + LMS features — on the same time-based split; report ROC AUC, PR AUC, top-decile
precision and recall and the Brier score of both with bootstrap intervals, and the lift of the
learning signals; register both in `audit.model_registry`; promote the better one if it is at
least as good as the champion on `model.promotion_metric`; score the latest reference date into
`mart.turnover_risk_score`; write an HTML report with the plots.

**Inputs:** `mart.training_set`, `mart.employee_features` (asset from `turnover_features`),
`mart.turnover_label` (monitoring).

**Flow:** migrate → skip (reason in the log and the run's note) while the training set has too few
settled reference dates to split in time, as on a new install → train and evaluate both models
(artifacts and report in the object store, under `model.artifact_dir` and `model.report_dir`) → promotion
decision (params: `allow_promotion`, `force_promotion`) →
score employees with the champion → monitor the champion (its performance on the dates whose labels have
matured, the drift of its scores and top features at the latest date, into `mart.model_monitoring`; a
threshold of `model.monitoring` crossed raises the standard alert: retrain or roll back) → log the summary.

**Warehouse logins:** `warehouse_transformer` for every task, `warehouse_postgres` (the owner) only to
migrate.

**Schedule:** monthly, on the 2nd at 09:00 UTC (after the month-end features), and on demand.
**Owner:** people-analytics data engineering. **Runbook:** docs/runbook/model.md#runbook-turnover_model —
rollback: `python -m turnover_signals.model.registry rollback --reason "..."`. Every task is safe
to clear and rerun: a rerun of the same DAG run re-registers the same model versions.
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
from airflow.timetables.trigger import CronTriggerTimetable

from turnover_signals.airflow_tasks import DEFAULT_ARGS, migrate_warehouse_task
from turnover_signals.assets import TURNOVER_RISK_SCORE
from turnover_signals.notify import notify_failure
from turnover_signals.slo import deadline_for


@dag(
    dag_id="turnover_model",
    schedule=CronTriggerTimetable("0 9 2 * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=6),  # the deadline: a hung run fails and alerts (runbook-deadlines)
    deadline=deadline_for("turnover_model"),  # the SLO: on-call hears of late data before anyone asks
    default_args=DEFAULT_ARGS,
    on_failure_callback=notify_failure,  # a run can fail with no failed task: a timeout (runbook-deadlines)
    params={
        "allow_promotion": Param(True, type="boolean", description="false: register and report only"),
        "force_promotion": Param(
            False, type="boolean", description="promote even if worse than the champion"
        ),
    },
    tags=["turnover-signals", "model"],
    doc_md=__doc__,
)
def turnover_model():
    migrate_warehouse = migrate_warehouse_task()

    @task
    def train_models() -> dict:
        from turnover_signals.airflow_tasks import run_for_stage, skip_unless_ready
        from turnover_signals.model.pipeline import train_and_register
        from turnover_signals.model.readiness import reason_to_skip_training

        # a new install has no settled training dates for months: skipped with the reason, not failed
        skip_unless_ready(run_for_stage("transformer", reason_to_skip_training, with_run=False))
        return run_for_stage("transformer", train_and_register)

    @task
    def promote_champion(trained: dict, params: dict | None = None) -> dict:
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.model.registry import promote_challenger

        params = params or {}
        return run_for_stage(
            "transformer",
            promote_challenger,
            trained["training_run_id"],
            with_run=False,
            allow_promotion=bool(params.get("allow_promotion", True)),
            force=bool(params.get("force_promotion")),
        )

    @task(outlets=[TURNOVER_RISK_SCORE])
    def score_employees(decision: dict) -> dict:
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.model.score import score_latest_reference_date

        return run_for_stage("transformer", score_latest_reference_date, with_run=False)

    @task
    def monitor_champion(scored: dict) -> dict:
        from turnover_signals.airflow_tasks import run_for_stage
        from turnover_signals.model.monitoring import monitor_champion

        return run_for_stage("transformer", monitor_champion)

    @task
    def report_model_run(trained: dict, decision: dict, scored: dict) -> list:
        from turnover_signals.airflow_tasks import log_lines
        from turnover_signals.model.summary import model_run_lines

        return log_lines(model_run_lines(trained, decision, scored))

    trained = train_models()
    decision = promote_champion(trained)
    scored = score_employees(decision)
    monitor_champion(scored)
    migrate_warehouse() >> trained
    report_model_run(trained, decision, scored)


turnover_model()
