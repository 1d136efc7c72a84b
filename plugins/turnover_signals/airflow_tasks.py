"""Small helpers shared by the DAG files: default arguments and the run identity of a task."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from turnover_signals.errors import BadInputError, FreshnessError
from turnover_signals.notify import notify_failure
from turnover_signals.quality.gate import RunIdentity

OWNER = "people-analytics-data-eng"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": OWNER,
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    # Logs an alert line by default; `alerts.notifier` in the config routes it to any Airflow notifier.
    "on_failure_callback": notify_failure,
}


@contextmanager
def bad_input_fails_without_retry() -> Iterator[None]:
    """Turn a `BadInputError` (or a `FreshnessError`) into a failure that Airflow does not retry.

    The input is quarantined and will fail the same way again until it is corrected, so a
    retry only delays the alert (stale data does not get fresher in five minutes either);
    transient faults (servers down) still retry as configured.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except (BadInputError, FreshnessError) as exc:
        raise AirflowFailException(str(exc)) from exc


def current_run_identity() -> RunIdentity:
    """The dag / run / task / map index / try of the running task instance."""
    from airflow.sdk import get_current_context

    return RunIdentity.from_context(get_current_context())


def data_time(context: Any) -> Any:
    """The moment a run is about: its logical date, or `run_after` for asset-triggered runs (which have none)."""
    return context.get("logical_date") or context["dag_run"].run_after


def migrate_warehouse_task() -> Any:
    """The first task of every DAG: apply the warehouse migrations not applied yet (a no-op otherwise).

    Migrations run under an advisory lock, so DAGs starting together wait for each other.
    """
    from airflow.sdk import task

    @task(task_id="migrate_warehouse")
    def migrate_warehouse() -> int:
        from turnover_signals.warehouse import migrate, warehouse_connection

        with warehouse_connection() as conn:
            return len(migrate(conn))

    return migrate_warehouse
