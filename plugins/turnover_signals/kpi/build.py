"""Write a day's rows of `mart.integration_kpi` and alert on the KPIs that turned red.

    python -m turnover_signals.kpi.build [--date YYYY-MM-DD] [--dsn postgresql://...]   # one day, by hand

A day is measured as of its end (UTC) from what the pipeline recorded by then (include/sql/mart/
integration_kpi.sql), in one transaction: the day's rows are upserted, and a KPI no longer measured that day
(a suite that did not run after all) is removed. Rerunning a day changes nothing unless what was recorded
about it changed; only rows that changed and are red raise the alert, so a rerun does not page twice.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row

from turnover_signals.kpi.definitions import kpi_of, sql_targets
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

if TYPE_CHECKING:
    from turnover_signals.run_note import AirflowApi

log = logging.getLogger(__name__)


def day_start(kpi_date: date) -> datetime:
    return datetime.combine(kpi_date, time(), tzinfo=UTC)


def measured_as_of(kpi_date: date, now: datetime | None = None) -> datetime:
    """The moment the KPIs of `kpi_date` describe: its end (UTC), or `now` while the day is not over (a
    measurement of today so far, which later ones replace)."""
    return min(day_start(kpi_date) + timedelta(days=1), now or datetime.now(UTC))


def kpi_date_of_run(data_time: datetime) -> date:
    """The day a run measures: the day before its data time (the last whole day, as the feature build)."""
    return data_time.astimezone(UTC).date() - timedelta(days=1)


def write_kpis(
    conn: psycopg.Connection, config: Mapping[str, Any], kpi_date: date, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Upsert the KPIs of `kpi_date` and drop the day's rows no longer measured, in one transaction; every
    measured row, with `is_changed` (new, or its value, target, status or source changed)."""
    from turnover_signals.features.columns import FEATURE_COLUMNS

    params = {
        "kpi_date": kpi_date,
        "as_of": measured_as_of(kpi_date, now),
        "day_start": day_start(kpi_date),
        "hris_feeds": sorted((config.get("hris") or {}).get("file_patterns") or {}),
        "feature_set_version": int(config["features"]["feature_set_version"]),
        "feature_columns": list(FEATURE_COLUMNS),
        "targets": json.dumps(sql_targets(config, list(FEATURE_COLUMNS))),
    }
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(read_sql("mart", "integration_kpi"), params)
        rows = cur.fetchall()
        cur.execute(
            "delete from mart.integration_kpi where kpi_date = %s and not (kpi = any(%s))",
            (kpi_date, [row["kpi"] for row in rows]),
        )
    return sorted(rows, key=lambda row: row["kpi"])


def red_kpi_lines(kpi_date: date, rows: list[dict[str, Any]]) -> list[str]:
    """One line per red KPI that changed: its value against its target, the next step and its runbook entry
    (the alert renders the link with `alerts.runbook_url`)."""
    lines = []
    for row in rows:
        if row["status"] != "alert" or not row["is_changed"]:
            continue
        kpi = kpi_of(row["kpi"])
        comparison = "above its maximum" if kpi.at_most else "below its minimum"
        lines.append(
            f"{row['kpi']} on {kpi_date} is {_number(row['kpi_value'])} {kpi.unit}, {comparison} "
            f"{_number(row['target_value'])}. Next step: {kpi.next_step} (runbook: {kpi.runbook_link()})"
        )
    return lines


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def alert_message(run: RunIdentity, kpi_date: date, lines: list[str]) -> str:
    where = f"{run.dag_id or 'integration_kpi'}.{run.task_id or 'record_integration_kpis'}"
    return (
        f"TURNOVER-SIGNALS ALERT {where} run {run.run_id or '-'}: {len(lines)} KPI(s) red on {kpi_date}: "
        + " | ".join(lines)
    )


def send_alert(config: Mapping[str, Any], message: str) -> None:
    """The standard alert (`alerts.notifier`, else the log line); a broken notifier falls back to the log."""
    from turnover_signals.notify import LogNotifier, configured_notifier

    try:
        configured_notifier(config, message).notify({})
    except Exception:  # noqa: BLE001 - the alert must not be lost with the notifier
        log.exception("the configured notifier failed; the alert was: %s", message)
        LogNotifier(message).notify({})


def record_integration_kpis(
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    kpi_date: date | None = None,
    dsn: str | None = None,
    airflow_api: AirflowApi | None = None,
) -> dict[str, Any]:
    """Write `kpi_date`'s KPIs (default: yesterday, UTC) and alert on those that turned red; a summary. The
    day's DAG run states are first copied from Airflow's REST API (`airflow_api`, else the `airflow_api`
    connection when defined) for the pipeline success rate."""
    from turnover_signals.kpi.dag_runs import record_dag_run_counts

    run = run or RunIdentity()
    kpi_date = kpi_date or kpi_date_of_run(datetime.now(UTC))
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        dag_runs = record_dag_run_counts(conn, kpi_date, api=airflow_api)
        rows = write_kpis(conn, config, kpi_date)
    lines = red_kpi_lines(kpi_date, rows)
    if lines:
        send_alert(config, alert_message(run, kpi_date, lines))
    return {
        "kpi_date": kpi_date.isoformat(),
        "kpis": len(rows),
        "changed": sum(1 for row in rows if row["is_changed"]),
        "red": sorted(row["kpi"] for row in rows if row["status"] == "alert"),
        "no_data": sorted(row["kpi"] for row in rows if row["status"] == "no_data"),
        "alerted": len(lines),
        "dag_run_states": dag_runs,
    }


def latest_kpis(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Each KPI's newest row (empty before the KPI migration or the first build)."""
    if conn.execute("select to_regclass('mart.integration_kpi') is null").fetchone()[0]:
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select distinct on (kpi) kpi_date, kpi, kpi_value, target_value, status, source, computed_at"
            " from mart.integration_kpi order by kpi, kpi_date desc"
        )
        return cur.fetchall()


def main(argv: list[str] | None = None) -> int:
    from turnover_signals.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--date", type=date.fromisoformat, help="the day to measure (default: yesterday, UTC)"
    )
    parser.add_argument(
        "--dsn", help="PostgreSQL URL; default $TURNOVER_WAREHOUSE_URL or the Airflow connection"
    )
    args = parser.parse_args(argv)
    print(json.dumps(record_integration_kpis(load_config(), kpi_date=args.date, dsn=args.dsn), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
