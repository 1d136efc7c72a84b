"""The states of a day's DAG runs, for the pipeline success rate KPI, from Airflow's public REST API.

Tasks have no metadata-DB access, so the KPI task asks the API server, through the optional connection
`airflow_api` (the one the run notes use, docs/reference/connections.md), how the runs of the bundle's DAGs
(tag `turnover-signals`) whose `run_after` falls on the measured day ended, and copies the counts into
`audit.airflow_dag_run_count`. A day's row follows its runs until none is queued or running, then it is
frozen: an on-call engineer clearing a failed run the next week does not rewrite the day's rate, and a rerun
of the KPI task reads the frozen counts without asking the API again.

Without the connection, or when the API cannot be read, nothing is recorded and the KPI falls back to the
outcomes the tasks wrote themselves (include/sql/mart/integration_kpi.sql says which source a row used).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import psycopg

from turnover_signals.kpi.build import day_start
from turnover_signals.run_note import API_ERRORS, NOTE_CONNECTION, AirflowApi
from turnover_signals.sqlfiles import read_sql

log = logging.getLogger(__name__)

BUNDLE_TAG = "turnover-signals"
FINISHED_STATES = {"success", "failed"}


@dataclass(frozen=True)
class DagRunCount:
    dag_id: str
    succeeded: int
    failed: int
    unfinished: int


def count_dag_runs(api: AirflowApi, run_day: date, tag: str = BUNDLE_TAG) -> list[DagRunCount]:
    """How the runs of each DAG tagged `tag` due on `run_day` (UTC) stand, one count per DAG."""
    start = day_start(run_day)
    counts = []
    for dag_id in api.dag_ids_tagged(tag):
        states = Counter(api.dag_run_states(dag_id, start, start + timedelta(days=1)))
        counts.append(
            DagRunCount(
                dag_id=dag_id,
                succeeded=states["success"],
                failed=states["failed"],
                unfinished=sum(n for state, n in states.items() if state not in FINISHED_STATES),
            )
        )
    return counts


def day_is_frozen(conn: psycopg.Connection, run_day: date) -> bool:
    """Whether `run_day` was counted and none of its runs was unfinished then."""
    row = conn.execute(
        "select count(*) > 0 and bool_and(unfinished = 0)"
        " from audit.airflow_dag_run_count where run_day = %s",
        (run_day,),
    ).fetchone()
    return bool(row[0])


def write_dag_run_counts(
    conn: psycopg.Connection, run_day: date, counts: list[DagRunCount], counted_at: datetime
) -> None:
    """Record `counts` for `run_day` in one transaction; rows already frozen stay as they are."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            read_sql("audit", "airflow_dag_run_count"),
            [
                {
                    "run_day": run_day,
                    "dag_id": count.dag_id,
                    "succeeded": count.succeeded,
                    "failed": count.failed,
                    "unfinished": count.unfinished,
                    "counted_at": counted_at,
                }
                for count in counts
            ],
        )


def record_dag_run_counts(
    conn: psycopg.Connection,
    run_day: date,
    api: AirflowApi | None = None,
    conn_id: str = NOTE_CONNECTION,
    now: datetime | None = None,
) -> str:
    """Copy `run_day`'s run states from the API into the warehouse. Returns what happened: ``recorded``,
    ``frozen`` (counted before with every run finished: the API is not asked), ``no connection`` or
    ``failed`` (logged as a WARNING; the KPI then uses the tasks' own outcomes)."""
    from turnover_signals.airflow_tasks import airflow_connection_exists
    from turnover_signals.errors import TurnoverSignalsError

    if day_is_frozen(conn, run_day):
        return "frozen"
    if api is None and not airflow_connection_exists(conn_id):
        log.info(
            "pipeline success rate of %s from the outcomes the tasks recorded: Airflow connection '%s' is "
            "not defined, so the DAG run states are not read (docs/reference/connections.md)",
            run_day,
            conn_id,
        )
        return "no connection"
    try:
        api = api or AirflowApi.from_connection(conn_id)
        counts = count_dag_runs(api, run_day)
    except (*API_ERRORS, TurnoverSignalsError) as exc:
        log.warning(
            "the DAG run states of %s could not be read through Airflow connection '%s': %s. The pipeline "
            "success rate falls back to the outcomes the tasks recorded. Next step: check that the "
            "connection points at the API server and that its user may read DAGs and DAG runs",
            run_day,
            conn_id,
            exc,
        )
        return "failed"
    write_dag_run_counts(conn, run_day, counts, now or datetime.now(UTC))
    log.info(
        "DAG run states of %s recorded for %d DAG(s): %s",
        run_day,
        len(counts),
        ", ".join(f"{c.dag_id} {c.succeeded} ok/{c.failed} failed/{c.unfinished} unfinished" for c in counts),
    )
    return "recorded"
