"""Small helpers shared by the DAG files: default arguments, the run identity of a task, the
warehouse connection of each stage (least privilege), and the common shape of a task body."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from turnover_signals.config import ConfigError
from turnover_signals.deploy.warehouse_logins import stage
from turnover_signals.errors import BadInputError, FreshnessError, SourceRefusedError
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


# Failures a retry cannot heal: the input is quarantined (and fails the same way until corrected), the data
# is stale (it does not get fresher in five minutes), a source refused us (a host key that is not the pinned
# one, rejected credentials) or a connection's settings or the configuration cannot work as written.
FAILURES_WITHOUT_RETRY = (BadInputError, FreshnessError, SourceRefusedError, ConfigError)


@contextmanager
def fails_without_retry() -> Iterator[None]:
    """Turn a failure a retry cannot heal (`FAILURES_WITHOUT_RETRY`) into one that Airflow does not retry.

    Every task that opens a source (SFTP, xAPI, SCIM) or reads its stage's configuration goes through here
    (`run_for_stage`, or this directly): a retry would only wait out the retry delays before the same error
    alerts. Transient faults (`SourceUnavailableError`: a server down, a dropped transfer) still retry as
    configured.
    """
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except FAILURES_WITHOUT_RETRY as exc:
        raise AirflowFailException(str(exc)) from exc


# The earlier name, which the warehouse_retention DAG uses.
bad_input_fails_without_retry = fails_without_retry


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
    Least privilege fails closed: a stage whose connection Airflow does not define raises `ConfigError`
    naming it, unless `security.allow_owner_fallback` is true (an install with one login on purpose),
    when the stage uses the owner's connection, with a WARNING naming it.
    """
    connections = config["connections"]
    owner_conn_id = connections["warehouse"]
    key = stage(stage_name).config_key
    conn_id = connections.get(key) or key
    if stage_name == "owner" or conn_id == owner_conn_id:
        return dict(config)
    if connection_exists(conn_id):
        return {**config, "connections": {**connections, "warehouse": conn_id}}
    if not owner_fallback_allowed(config):
        raise ConfigError(
            subject=f"warehouse connection {conn_id} (stage {stage_name})",
            problem=(
                f"is not defined in Airflow; the owner's {owner_conn_id} is not used in its place, since it "
                "has more privileges than this stage needs (security.allow_owner_fallback is false)"
            ),
            next_step=(
                f"create a login in the stage's group role {stage(stage_name).group_role} and the Airflow "
                f"connection {conn_id} for it (docs/security.md#least-privilege); on an install that runs "
                "every stage as one login on purpose, set security.allow_owner_fallback: true in "
                "include/turnover_signals.yaml instead"
            ),
            runbook_section="stage-connection",
        )
    log.warning(
        "warehouse connection %s (stage %s) is not defined: this task uses the owner's %s, with more "
        "privileges than it needs (security.allow_owner_fallback). Next step: create %s as a login in "
        "the stage's group role (docs/security.md#least-privilege)",
        conn_id,
        stage_name,
        owner_conn_id,
        conn_id,
    )
    return dict(config)


def owner_fallback_allowed(config: Mapping[str, Any]) -> bool:
    """`security.allow_owner_fallback`, which must be a real boolean: a typo must not open the fallback."""
    allowed = (config.get("security") or {}).get("allow_owner_fallback", False)
    if not isinstance(allowed, bool):
        raise ConfigError(
            subject="security.allow_owner_fallback",
            problem=f"must be true or false, not {allowed!r}",
            next_step="fix it in include/turnover_signals.yaml or in the Variable",
            runbook_section="stage-connection",
        )
    return allowed


def load_stage_config(stage_name: str) -> dict[str, Any]:
    """The effective configuration (file + Variable) for a task of `stage_name`; see `config_for_stage`. An
    unusable configuration or a missing stage connection fails the task without retries."""
    from turnover_signals.config import load_config

    with fails_without_retry():
        return config_for_stage(load_config(), stage_name)


def run_for_stage(
    stage_name: str, func: Callable[..., T], *args: Any, with_run: bool = True, **kwargs: Any
) -> T:
    """The body of most tasks: `func(config, run, *args, **kwargs)` with the configuration of `stage_name`
    and the running task's identity (left out when `with_run` is false); a failure a retry cannot heal (a bad
    input, a refused source, malformed settings, a missing stage connection) fails without retries.
    """
    with fails_without_retry():
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
