"""Point-in-time features and labels: `mart.employee_features`, `mart.turnover_label`, `mart.training_set`.

A feature row for reference date D is a pure function of the facts known by D's cut-off (the end of
D in UTC + `features.as_of_grace_hours`) and valid at D, whenever it is built: HR intervals and pay
changes by the knowledge time of the file that first showed them (`core.hris_file_knowledge`, the
history as known before a correction in `core.employee_history_revision`), learning activity by the
LRS's stored time and voids by the voiding statement's (`mart.learner_daily_activity`). So a backfill
equals what day-by-day production built, and later data never changes a built row.

A build holds the features lock for its whole duration, then:

1. refreshes the daily learning aggregate (`features.daily_activity`);
2. plans its dates (`features.dates`): the requested ones not built yet whose inputs are complete
   through their cut-off; the others are deferred and built by a later run;
3. stages the rows of those dates, gates them with Great Expectations, and publishes them, their
   audit rows and the refreshed labels (`features.labels`) in one transaction.

An "as known now" restatement, for analysis, is built only on request into
`mart.employee_features_restated` and never touches the as-of rows.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.features.columns import (  # noqa: F401 - re-exported for the model and the tests
    FEATURE_COLUMNS,
    HR_COLUMNS,
    LMS_COLUMNS,
    NON_FEATURE_COLUMNS,
    PUBLISH_COLUMNS,
    feature_columns,
    staged_columns,
)
from turnover_signals.features.daily_activity import refresh_learner_daily_activity
from turnover_signals.features.dates import as_of_grace, check_knowledge_rules, plan_dates
from turnover_signals.features.gate import gate_staged_rows
from turnover_signals.features.labels import refresh_labels
from turnover_signals.identity.resolve import StepTimer
from turnover_signals.lms.activity import activity_high_water
from turnover_signals.quality.gate import RunIdentity, record_validation
from turnover_signals.sqlfiles import insert_from_select, read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)

FEATURES_LOCK_ID = 7_100_600
AS_OF_TABLE = "employee_features"
RESTATED_TABLE = "employee_features_restated"


@contextmanager
def features_lock(conn: psycopg.Connection) -> Iterator[None]:
    """Hold the features lock for a whole build: a backfill with several active runs, or a manual run beside
    the scheduled one, waits for the build before it instead of interleaving with it."""
    conn.execute("select pg_advisory_lock(%s)", (FEATURES_LOCK_ID,))
    try:
        yield
    finally:
        conn.execute("select pg_advisory_unlock(%s)", (FEATURES_LOCK_ID,))


# -- staging ----------------------------------------------------------------------------------------


def _create_temp_from(conn: psycopg.Connection, name: str, layer: str, params: Mapping[str, Any]) -> None:
    conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(name)))
    conn.execute(
        sql.SQL("create temp table {} as {}").format(sql.Identifier(name), sql.SQL(read_sql(layer, name))),
        params,
    )
    conn.execute(sql.SQL("analyze {}").format(sql.Identifier(name)))  # no autovacuum on temp tables


def create_staging_table(conn: psycopg.Connection, staging: sql.Identifier) -> None:
    """The (committed, empty) table `staging` a build's rows go to: the columns published, with their types
    (so the gate sees values as they will be stored), then what the gate compares per reference date."""
    columns = sql.SQL(", ").join(map(sql.Identifier, staged_columns(conn)))
    conn.execute(sql.SQL("drop table if exists {}").format(staging))
    conn.execute(
        sql.SQL(
            "create table {} as select {}, null::bigint as date_feature_rows, null::bigint as "
            "date_active_headcount from mart.employee_features with no data"
        ).format(staging, columns)
    )


def stage_feature_rows(
    conn: psycopg.Connection,
    staging: sql.Identifier,
    config: Mapping[str, Any],
    dates: Sequence[date],
    timer: StepTimer,
    known_now_at: datetime | None = None,
) -> tuple[int, int]:
    """The feature rows of `dates` into the staging table `staging`, each date as known at its cut-off (or,
    given `known_now_at`, as known then). Returns the rows staged and the active HR headcount summed over
    the dates (what the rows must equal)."""
    params = {
        "reference_dates": list(dates),
        "as_of_grace": as_of_grace(config),
        "known_now_at": known_now_at,
        "as_known_now": known_now_at is not None,
        "feature_set_version": int(config["features"]["feature_set_version"]),
    }
    with timer.step("hr_as_known"):
        _create_temp_from(conn, "feature_reference_dates", "staging", params)
        # materialized and indexed: the HR features read it by date and employee several times over
        _create_temp_from(conn, "hr_history_as_known", "staging", params)
        conn.execute("create index on hr_history_as_known (employee_id, reference_date)")
        _create_temp_from(conn, "feature_targets", "staging", params)
    with timer.step("lms_windows"):
        _create_temp_from(conn, "employee_lms_window_features", "staging", params)
    with timer.step("hr_features"):
        _create_temp_from(conn, "employee_hr_features", "staging", params)
        _create_temp_from(conn, "feature_active_headcount", "staging", params)
    with timer.step("stage_rows"), conn.transaction():
        columns = [sql.Identifier(c) for c in staged_columns(conn)]
        conn.execute(
            sql.SQL(
                """
                insert into {} ({}, date_feature_rows, date_active_headcount)
                with built as ({})
                select {}, count(*) over (partition by built.reference_date), coalesce(headcount.headcount, 0)
                from built left join feature_active_headcount as headcount using (reference_date)
                """
            ).format(
                staging,
                sql.SQL(", ").join(columns),
                sql.SQL(read_sql("mart", "employee_features")),
                sql.SQL(", ").join(sql.SQL("built.{}").format(c) for c in columns),
            ),
            params,
        )
        staged = conn.execute(sql.SQL("select count(*) from {}").format(staging)).fetchone()[0]
        headcount = conn.execute(
            "select coalesce(sum(headcount), 0)::bigint from feature_active_headcount"
        ).fetchone()[0]
    return staged, headcount


# -- publishing -------------------------------------------------------------------------------------


def publish_rows(
    conn: psycopg.Connection,
    staging: sql.Identifier,
    table: str,
    dates: Sequence[date],
    version: int,
    build_id: str,
) -> list[tuple]:
    """Insert the staged rows into `mart.<table>` (replacing those dates in the restated table, whose rows
    include/sql/mart/employee_features_restated.sql writes); returns per-date (date, rows, headcount,
    cut-off)."""
    target = sql.Identifier("mart", table)
    listed = sql.SQL(", ").join(map(sql.Identifier, staged_columns(conn)))
    if table == RESTATED_TABLE:
        conn.execute(
            sql.SQL("delete from {} where feature_set_version = %s and reference_date = any(%s)").format(
                target
            ),
            (version, list(dates)),
        )
        conn.execute(
            sql.SQL("create temp view staged_feature_rows as select {} from {}").format(listed, staging)
        )
        insert_from_select(conn, target, read_sql("mart", RESTATED_TABLE), {"build_id": build_id})
        conn.execute("drop view staged_feature_rows")
    else:
        conn.execute(
            sql.SQL("insert into {} ({}, built_at, build_id) select {}, now(), %s from {}").format(
                target, listed, listed, staging
            ),
            (build_id,),
        )
    return conn.execute(
        sql.SQL(
            "select reference_date, count(*), max(date_active_headcount), max(cutoff_at) from {}"
            " group by reference_date order by reference_date"
        ).format(staging)
    ).fetchall()


def insert_audit_rows(
    conn: psycopg.Connection,
    build_id: str,
    kind: str,
    version: int,
    run: RunIdentity,
    marks: Mapping[str, Any],
    counts: Sequence[tuple],
    validation_id: str | None,
) -> None:
    """One `audit.feature_build` row per reference date published."""
    statement = read_sql("audit", "feature_build")
    for reference_date, rows, headcount, cutoff in counts:
        conn.execute(
            statement,
            {
                "build_id": build_id,
                "reference_date": reference_date,
                "feature_set_version": version,
                "build_kind": kind,
                "feature_rows": rows,
                "active_headcount": headcount,
                "lms_cutoff_date": cutoff.astimezone(UTC).date(),
                "cutoff_at": cutoff,
                "lms_stored_high_water": marks["lms_stored_high_water"],
                "hris_known_at_high_water": marks["hris_known_at_high_water"],
                "validation_id": validation_id,
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "task_id": run.task_id,
                "try_number": run.try_number,
            },
        )


def high_water_marks(conn: psycopg.Connection) -> dict[str, Any]:
    """What the warehouse held when the build ran (for the audit; no row depends on it). The LMS mark is read
    above the last build's, so only the activity published since is scanned."""
    last_stored, known = conn.execute(
        "select (select max(lms_stored_high_water) from audit.feature_build), "
        "(select max(known_at) from core.employee_history)"
    ).fetchone()
    stored = activity_high_water(conn, "stored_at", last_stored)
    return {"lms_stored_high_water": stored, "hris_known_at_high_water": known}


# -- the build --------------------------------------------------------------------------------------


def build_features(
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
    reference_dates: Iterable[date] = (),
    restate: bool = False,
    full_daily_rebuild: bool = False,
    catch_up: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build the as-of features of `reference_dates` not built yet whose inputs are complete (with `catch_up`,
    also every date since the newest built one), gate, publish, refresh the labels. With `restate`, build
    the "as known now" variant of the dates into `mart.employee_features_restated` instead."""
    check_knowledge_rules(config)
    run = run or RunIdentity()
    now = now or datetime.now(UTC)
    version = int(config["features"]["feature_set_version"])
    build_id = uuid.uuid4().hex[:16]
    staging_name = f"employee_features_{build_id}"
    staging = sql.Identifier("staging", staging_name)
    timer = StepTimer()
    table = RESTATED_TABLE if restate else AS_OF_TABLE
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, features_lock(conn):
        # The CTE-heavy queries are estimated far above their real cost, so JIT compiling them took
        # longer than a daily run's queries themselves.
        conn.execute("set jit = off")
        with timer.step("daily_refresh"):
            daily = refresh_learner_daily_activity(conn, config, full_daily_rebuild)
        with timer.step("select_dates"):
            plan = plan_dates(conn, config, sorted(set(reference_dates)), now, catch_up, restate)
            marks = high_water_marks(conn)
        for line in plan.deferral_lines():
            log.warning("%s; a later run builds it once its inputs are complete", line)
        dates = plan.to_build
        staged = 0
        try:
            outcome = None
            if dates:
                create_staging_table(conn, staging)
                staged, headcount = stage_feature_rows(
                    conn, staging, config, dates, timer, known_now_at=now if restate else None
                )
                what = f"reference dates {dates[0]}..{dates[-1]} ({staged} rows, v{version}" + (
                    ", as known now)" if restate else ")"
                )
                with timer.step("gate"):
                    outcome = gate_staged_rows(conn, config, run, dsn, staging_name, what, headcount)
            with conn.transaction():
                with timer.step("publish"):
                    if outcome is not None:
                        record_validation(conn, outcome, run)
                        counts = publish_rows(conn, staging, table, dates, version, build_id)
                        insert_audit_rows(
                            conn,
                            build_id,
                            "restatement" if restate else "as_of",
                            version,
                            run,
                            marks,
                            counts,
                            outcome.validation_id,
                        )
                labels = {}
                if not restate:
                    with timer.step("labels"):
                        labels = refresh_labels(conn, config, dates, build_id, full=full_daily_rebuild)
        finally:
            conn.execute(sql.SQL("drop table if exists {}").format(staging))
    summary = {
        "build_id": build_id,
        "feature_set_version": version,
        "table": f"mart.{table}",
        "reference_dates_built": [d.isoformat() for d in dates],
        "reference_dates_deferred": {d.isoformat(): reasons for d, reasons in sorted(plan.deferred.items())},
        "rows_built": staged,
        **daily,
        **labels,
        "seconds": timer.seconds,
    }
    log.info("features built: %s", summary)
    return summary


def deferral_note(summary: Mapping[str, Any]) -> str | None:
    """A line for the DAG run's log and note when dates were deferred (None when none were)."""
    deferred = summary.get("reference_dates_deferred") or {}
    if not deferred:
        return None
    return "deferred (inputs not complete through the cut-off): " + "; ".join(
        f"{d}: {', '.join(reasons)}" for d, reasons in deferred.items()
    )


def reference_dates_for_run(context: Mapping[str, Any], requested: Sequence[str] = ()) -> list[date]:
    """The dates a run builds: the ones requested (ISO strings), else the last full day before the run.

    Asset-triggered runs have no logical date, so the run's `run_after` stands in for it.
    """
    if requested:
        return sorted({date.fromisoformat(str(d)) for d in requested})
    moment = context.get("logical_date") or context["dag_run"].run_after
    return [moment.date() - timedelta(days=1)]


# -- checking a build -------------------------------------------------------------------------------


def rebuild_matches(
    config: Mapping[str, Any], reference_dates: Sequence[date], dsn: str | None = None
) -> dict[str, Any]:
    """Rebuild `reference_dates` into a scratch table and compare every column but the build's id and time
    with the published rows: a row is a pure function of its cut-off, so they must be equal."""
    version = int(config["features"]["feature_set_version"])
    staging = sql.Identifier("staging", f"employee_features_check_{uuid.uuid4().hex[:12]}")
    dates = sorted(set(reference_dates))
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, features_lock(conn):
        conn.execute("set jit = off")
        try:
            create_staging_table(conn, staging)
            stage_feature_rows(conn, staging, config, dates, StepTimer())
            columns = sql.SQL(", ").join(map(sql.Identifier, staged_columns(conn)))
            published = sql.SQL(
                "select {} from mart.employee_features where feature_set_version = %(v)s"
                " and reference_date = any(%(dates)s)"
            ).format(columns)
            rebuilt = sql.SQL("select {} from {}").format(columns, staging)
            only_published, only_rebuilt, rows = conn.execute(
                sql.SQL(
                    "select (select count(*) from ({p} except all {r}) as a), (select count(*) from ({r} "
                    "except all {p}) as b), (select count(*) from ({p}) as c)"
                ).format(p=published, r=rebuilt),
                {"v": version, "dates": dates},
            ).fetchone()
        finally:
            conn.execute(sql.SQL("drop table if exists {}").format(staging))
    return {
        "reference_dates": [d.isoformat() for d in dates],
        "rows": rows,
        "rows_differing": only_published + only_rebuilt,
        "matched": only_published == 0 and only_rebuilt == 0,
    }


# -- the training set -------------------------------------------------------------------------------


def training_set_summary(config: Mapping[str, Any], dsn: str | None = None) -> list[str]:
    """Shape, label balance and a few feature distributions of `mart.training_set`, as readable lines."""
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        return training_set_lines(conn, int(config["features"]["feature_set_version"]))


def training_set_lines(conn: psycopg.Connection, version: int) -> list[str]:
    """The lines of `training_set_summary` from an open connection."""
    rows, dates, employees, positives = conn.execute(
        "select count(*), count(distinct reference_date), count(distinct employee_key), count(*) filter "
        "(where label) from mart.training_set where feature_set_version = %s",
        (version,),
    ).fetchone()
    statuses = conn.execute(
        "select label_status, count(*) from mart.turnover_label group by 1 order by 1"
    ).fetchall()
    columns = len([c for c in feature_columns(conn) if c not in NON_FEATURE_COLUMNS])
    lines = [
        f"training set (feature set v{version}): {rows} rows x {columns} features, {dates} reference dates, "
        f"{employees} employees; positives {positives} ({positives / rows:.1%})"
        if rows
        else "training set: empty (no reference date has a label yet)",
        "labels by status: " + ", ".join(f"{status} {count}" for status, count in statuses),
    ]
    for feature in (
        "completions_90d",
        "learning_minutes_90d",
        "engagement_trend",
        "days_since_last_activity",
        "tenure_days",
    ):
        stats = conn.execute(
            sql.SQL(
                "select label, round(avg({0})::numeric, 2), percentile_cont(0.5) within group (order by {0})"
                " from mart.training_set where feature_set_version = %s group by label order by label"
            ).format(sql.Identifier(feature)),
            (version,),
        ).fetchall()
        lines.append(
            f"  {feature}: "
            + "; ".join(
                f"{'leavers' if label else 'stayers'} mean {mean} median {median}"
                for label, mean, median in stats
            )
        )
    return lines
