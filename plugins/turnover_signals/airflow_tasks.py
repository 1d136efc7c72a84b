"""Small helpers shared by the DAG files: default arguments, the run identity of a task, the
warehouse connection of each stage (least privilege), and the common shape of a task body."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from turnover_signals.deploy.warehouse_logins import stage
from turnover_signals.errors import BadInputError, FreshnessError
from turnover_signals.notify import notify_failure
from turnover_signals.quality.gate import RunIdentity

log = logging.getLogger(__name__)

T = TypeVar("T")

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
    """The moment a run is about: its logical date, or `run_after` for asset-triggered runs (which have
    none)."""
    return context.get("logical_date") or context["dag_run"].run_after


def migrate_warehouse_task() -> Any:
    """The first task of every DAG: apply the warehouse migrations not applied yet (a no-op otherwise).

    Migrations run under an advisory lock, so DAGs starting together wait for each other.
    """
    from airflow.sdk import task

    @task(task_id="migrate_warehouse")
    def migrate_warehouse() -> int:
        from turnover_signals.config import load_config
        from turnover_signals.warehouse import migrate, warehouse_connection

        # the owner's connection as configured (connections.warehouse), never a stage login
        with warehouse_connection(load_config()["connections"]["warehouse"]) as conn:
            return len(migrate(conn))

    return migrate_warehouse


def airflow_connection_exists(conn_id: str) -> bool:
    """Whether Airflow (environment, secrets backend or metadata DB) defines connection `conn_id`."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        Connection.get(conn_id)
    except AirflowNotFoundException:
        return False
    return True


def config_for_stage(
    config: Mapping[str, Any], stage_name: str, connection_exists: Any = airflow_connection_exists
) -> dict[str, Any]:
    """`config` with `connections.warehouse` set to the stage's own connection
    (docs/security.md#least-privilege).

    Package functions keep reading `connections.warehouse`; a task picks its stage here: `loader`
    (`connections.warehouse_loader`), `transformer`, `quality_reader`, or `owner` (unchanged).
    A deployment that defines only the owner's `warehouse_postgres` keeps working: a stage whose
    connection Airflow does not define falls back to the owner's, with a WARNING naming it.
    """
    connections = config["connections"]
    owner_conn_id = connections["warehouse"]
    key = stage(stage_name).config_key
    conn_id = connections.get(key) or key
    if stage_name == "owner" or conn_id == owner_conn_id:
        return dict(config)
    if not connection_exists(conn_id):
        log.warning(
            "warehouse connection %s (stage %s) is not defined: this task uses the owner's %s, with more "
            "privileges than it needs. Next step: create %s as a login in the stage's group role "
            "(docs/security.md#least-privilege)",
            conn_id,
            stage_name,
            owner_conn_id,
            conn_id,
        )
        return dict(config)
    return {**config, "connections": {**connections, "warehouse": conn_id}}


def load_stage_config(stage_name: str) -> dict[str, Any]:
    """The effective configuration (file + Variable) for a task of `stage_name`; see `config_for_stage`."""
    from turnover_signals.config import load_config

    return config_for_stage(load_config(), stage_name)


def run_for_stage(
    stage_name: str, func: Callable[..., T], *args: Any, with_run: bool = True, **kwargs: Any
) -> T:
    """The body of most tasks: `func(config, run, *args, **kwargs)` with the configuration of `stage_name`
    and the running task's identity (left out when `with_run` is false), a bad input failing without retries.
    """
    with bad_input_fails_without_retry():
        config = load_stage_config(stage_name)
        if with_run:
            return func(config, current_run_identity(), *args, **kwargs)
        return func(config, *args, **kwargs)


def skip_unless_ready(reason: str | None) -> None:
    """Skip the running task (and what only it feeds) when `reason` says why it has nothing to do.

    A skipped task emits no asset event, so DAGs scheduled on its outlets are not triggered for nothing;
    the reason goes to the log and the DAG run's note, a skip pages nobody.
    """
    if reason is None:
        return
    from airflow.sdk.exceptions import AirflowSkipException

    from turnover_signals.run_note import note_on_this_run

    log.info("skipped: %s", reason)
    note_on_this_run([f"skipped: {reason}"])
    raise AirflowSkipException(reason)


def log_lines(lines: list[str]) -> list[str]:
    """Log a report's `lines` as one message in the task log and return them (the task's XCom)."""
    log.info("\n".join(lines))
    return lines
