"""Point-in-time features and labels: `mart.employee_features`, `mart.turnover_label`, `mart.training_set`.

A build has three steps, each its own transaction:

1. Refresh `mart.learner_daily_activity`, the per-actor, per-day, per-stored-day aggregate of
   learning activity, for what was stored since its watermark (a few days of overlap, because an
   LRS may expose a statement stored a little earlier than the last one seen) and for the voids no
   refresh had seen yet (`mart.feature_void_seen` numbers the refreshes that saw each void). The
   newest stored time it saw is the build's exact LMS cut-off.
2. Build the feature rows of the reference dates not built yet (or restated) into a staging
   table, from the daily aggregate (the cut-off day itself read up to the exact cut-off) joined to
   identities valid on each activity day and HR as of the date, and validate it with Great
   Expectations. Rows built earlier that count a void their build had not seen are recomputed (the
   learning columns, with their original cut-off) into the same staging table, marked
   `is_void_recompute`, so one validation run covers both.
3. Publish: insert the new rows, apply the recomputed ones, flag rows of other feature set versions
   the voids reached (their SQL is gone: they cannot be recomputed), write the build audit, and
   refresh the labels that may have changed: those of the dates just built, of employees whose
   employment outcome changed (`mart.turnover_label_outcome` keeps the one the labels were computed
   from) and of dates whose horizon may have closed since the last refresh; all of them on the first
   build, a full daily rebuild, or when the horizons change.

"As known at": a reference date's row is built once, from everything stored by then (its
`lms_cutoff_at`); later data changes it only through an explicit restatement, or through a void.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.errors import BadInputError
from turnover_signals.identity.resolve import StepTimer
from turnover_signals.quality.gate import RunIdentity, record_validation, run_suite
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import sqlalchemy_url, warehouse_connection

log = logging.getLogger(__name__)

FEATURES_LOCK_ID = 7_100_600
DAILY_STORED_WATERMARK = "features:learner_daily_activity:stored"
# the columns of mart.learner_daily_activity; learner_daily_activity.sql adds stored_through
DAILY_COLUMNS = ("learner_identifier", "activity_date", "stored_date", "events", "enrolments", "completions",
                 "score_sum", "score_count", "learning_seconds", "course_ids", "enrolled_course_ids",
                 "completed_course_ids")  # fmt: skip

RATE_COLUMNS = ("completion_rate_30d", "completion_rate_90d", "completion_rate_180d",
                "mean_score_30d", "mean_score_90d", "mean_score_180d")  # fmt: skip
# Counts and durations; a negative time since an event means an event dated after the reference
# date leaked in.
NON_NEGATIVE_COLUMNS = (
    "enrolments_30d", "enrolments_90d", "enrolments_180d", "completions_30d", "completions_90d",
    "completions_180d", "learning_minutes_30d", "learning_minutes_90d", "learning_minutes_180d",
    "distinct_courses_30d", "distinct_courses_90d", "distinct_courses_180d", "mandatory_courses_overdue",
    "days_since_last_activity", "skill_tag_breadth_180d", "difficulty_weighted_completions_180d",
    "tenure_days", "time_in_role_days", "days_since_last_promotion", "manager_changes_12m",
    "manager_tenure_days", "months_since_last_raise", "team_size", "team_leavers_90d",
)  # fmt: skip


# -- reference dates ------------------------------------------------------------------------------


def month_ends_before(reference_date: date, count: int) -> list[date]:
    """The last `count` month-ends strictly before the month of `reference_date`, oldest first."""
    ends = []
    month_start = reference_date.replace(day=1)
    for _ in range(count):
        month_end = month_start - timedelta(days=1)
        ends.append(month_end)
        month_start = month_end.replace(day=1)
    return sorted(ends)


def built_dates(conn: psycopg.Connection, version: int) -> set[date]:
    # a loose index scan: one index probe per built date instead of reading every feature row
    rows = conn.execute(
        """
        with recursive built as (
            select min(reference_date) as reference_date from mart.employee_features where feature_set_version = %(v)s
            union all
            select (select min(features.reference_date) from mart.employee_features as features
                    where features.feature_set_version = %(v)s and features.reference_date > built.reference_date)
            from built where built.reference_date is not null
        )
        select reference_date from built where reference_date is not null
        """,
        {"v": version},
    ).fetchall()
    return {row[0] for row in rows}


def dates_to_build(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    reference_dates: Iterable[date],
    restate: bool,
) -> list[date]:
    """The requested dates not built yet for this version (all of them on a restatement)."""
    version = int(config["features"]["feature_set_version"])
    existing = built_dates(conn, version)
    wanted = set(reference_dates)
    if not existing and wanted:
        # The first build of a version also backfills month-ends, so training data exists at once.
        wanted |= set(month_ends_before(max(wanted), int(config["features"]["initial_backfill_month_ends"])))
    # Before the first HR snapshot nobody is known to be active: such dates would stay empty.
    first_snapshot = conn.execute("select min(valid_from) from core.employee_history").fetchone()[0]
    wanted = {d for d in wanted if first_snapshot is not None and d >= first_snapshot}
    return sorted(wanted if restate else wanted - existing)


# -- step 1: the daily aggregate ------------------------------------------------------------------


def _watermark(conn: psycopg.Connection, source: str) -> Any:
    row = conn.execute("select watermark from audit.extract_watermark where source = %s", (source,)).fetchone()
    return row[0] if row else None


def _set_watermark(conn: psycopg.Connection, source: str, value: Any, build_id: str) -> None:
    if value is None:
        return
    conn.execute(
        """
        insert into audit.extract_watermark (source, watermark, batch_id, updated_at) values (%s, %s, %s, now())
        on conflict (source) do update set watermark = excluded.watermark, batch_id = excluded.batch_id,
            updated_at = excluded.updated_at
        where audit.extract_watermark.watermark is distinct from excluded.watermark
        """,
        (source, value, build_id),
    )


def _create_refresh_groups(conn: psycopg.Connection) -> None:
    conn.execute("create temp table if not exists learner_daily_refresh (learner_identifier text, activity_date date)")


def see_new_voids(conn: psycopg.Connection) -> tuple[int, int]:
    """Number the voids no refresh has seen yet with the next refresh sequence; return the sequence
    before and after (after: every void seen so far is numbered within it, the mark a row built from
    this refresh carries).

    Refreshes take turns under the features lock, so a void committed by the LMS loader at any
    moment is seen by exactly one refresh, and a row built from an earlier refresh is recomputed for it.
    """
    sequence = "select coalesce(max(seen_in_refresh), 0) from mart.feature_void_seen"
    before = conn.execute(sequence).fetchone()[0]
    conn.execute(
        """
        insert into mart.feature_void_seen (voided_statement_id, seen_in_refresh, seen_at)
        select void.voided_statement_id, %s, now()
        from audit.lms_void_applied as void
        where not exists (
            select from mart.feature_void_seen as seen where seen.voided_statement_id = void.voided_statement_id)
        """,
        (before + 1,),
    )
    return before, conn.execute(sequence).fetchone()[0]


def aggregate_activity(conn: psycopg.Connection, scope: str, target: sql.Composable, lms_cutoffs: Sequence[Any] = (),
                       learner_identifiers: Sequence[str] | None = None) -> int:  # fmt: skip
    """Run include/sql/mart/learner_daily_activity.sql for `scope` into `target` (an `insert into ...`
    or `create temp table ... as`): DAILY_COLUMNS, then stored_through for the scope 'cutoff_day'."""
    _create_refresh_groups(conn)
    columns = (*DAILY_COLUMNS, "stored_through") if scope == "cutoff_day" else DAILY_COLUMNS
    return conn.execute(
        sql.SQL("{} select {} from ({}) as built").format(
            target, sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(read_sql("mart", "learner_daily_activity"))
        ),
        {"scope": scope, "lms_cutoffs": list(lms_cutoffs), "learner_identifiers": learner_identifiers},
    ).rowcount


def refresh_learner_daily_activity(
    conn: psycopg.Connection, overlap: timedelta, build_id: str, full: bool = False
) -> dict[str, Any]:
    """Bring the daily aggregate up to date; returns counts, the exact LMS cut-off it reflects (the newest
    stored time) and the void sequence it reflects."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (FEATURES_LOCK_ID,))
        stored_high = conn.execute("select max(stored_at) from core.lms_activity").fetchone()[0]
        voids_seen_before, voids_seen_through = see_new_voids(conn)
        stored_mark = None if full else _watermark(conn, DAILY_STORED_WATERMARK)
        _create_refresh_groups(conn)
        conn.execute("truncate learner_daily_refresh")
        is_full = stored_mark is None
        if not is_full:
            conn.execute(
                """
                insert into learner_daily_refresh
                select distinct learner_identifier, (occurred_at at time zone 'UTC')::date
                from core.lms_activity where stored_at > %s
                union
                -- the voids this refresh saw first
                select activity.learner_identifier, (activity.occurred_at at time zone 'UTC')::date
                from mart.feature_void_seen as seen
                inner join core.lms_activity as activity on activity.statement_id = seen.voided_statement_id
                where seen.applied_at is null and seen.seen_in_refresh > %s  -- (the pending index)
                """,
                (stored_mark - overlap, voids_seen_before),
            )
            conn.execute("analyze learner_daily_refresh")  # temp tables get no autovacuum: plan with real counts
            conn.execute(
                """
                delete from mart.learner_daily_activity as daily using learner_daily_refresh as refresh_group
                where daily.learner_identifier = refresh_group.learner_identifier
                  and daily.activity_date = refresh_group.activity_date
                """
            )
        else:
            conn.execute("delete from mart.learner_daily_activity")
        rows = aggregate_activity(conn, "full" if is_full else "refresh",
                                  sql.SQL("insert into mart.learner_daily_activity ({})").format(
                                      sql.SQL(", ").join(map(sql.Identifier, DAILY_COLUMNS))))  # fmt: skip
        _set_watermark(conn, DAILY_STORED_WATERMARK, stored_high, build_id)
    return {"daily_mode": "full" if is_full else "incremental", "daily_rows_written": rows,
            "lms_cutoff_at": stored_high, "voids_seen_through": voids_seen_through}  # fmt: skip


# -- step 2: build and gate ---------------------------------------------------------------------------


def _create_temp_from(conn: psycopg.Connection, name: str, layer: str, params: Mapping[str, Any]) -> None:
    conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(name)))
    conn.execute(
        sql.SQL("create temp table {} as {}").format(sql.Identifier(name), sql.SQL(read_sql(layer, name))), params
    )
    conn.execute(sql.SQL("analyze {}").format(sql.Identifier(name)))  # no autovacuum on temp tables


def stage_lms_windows(conn: psycopg.Connection, learner_identifiers: Sequence[str] | None = None) -> None:
    """Temp table `employee_lms_window_features` for the targets in temp table `feature_targets`, each
    counting what was stored through its exact `lms_cutoff_at` (`learner_identifiers`: their actors, if few)."""
    cutoffs = [row[0] for row in conn.execute(
        "select distinct lms_cutoff_at from feature_targets where lms_cutoff_at is not null")]  # fmt: skip
    conn.execute("drop table if exists lms_cutoff_day_activity")
    aggregate_activity(conn, "cutoff_day", sql.SQL("create temp table lms_cutoff_day_activity as"), cutoffs,
                       learner_identifiers)  # fmt: skip
    conn.execute("analyze lms_cutoff_day_activity")
    _create_temp_from(conn, "employee_lms_window_features", "staging", {})


def create_staging_table(conn: psycopg.Connection, staging: sql.Identifier) -> None:
    """The (committed, empty) table `staging` a build's rows and its void recomputes go to: the columns
    published to mart.employee_features, with their types (so the gate sees values as they will be
    stored), then what the gate compares per reference date and which rows are void recomputes."""
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in feature_columns(conn) if c not in PUBLISH_COLUMNS)
    conn.execute(sql.SQL("drop table if exists {}").format(staging))
    conn.execute(
        sql.SQL(
            "create table {} as select {}, null::bigint as date_feature_rows, null::bigint as date_active_headcount,"
            " null::boolean as is_void_recompute from mart.employee_features with no data"
        ).format(staging, columns)
    )
    conn.execute(sql.SQL("alter table {} alter column is_void_recompute set not null").format(staging))


def stage_lms_windows_carrying_forward(conn: psycopg.Connection, version: int, overlap: timedelta) -> int:
    """Temp table `employee_lms_window_features` for the targets in temp table `feature_targets`: the
    learning columns of the day before carried forward where nothing they count can have changed
    (include/sql/staging/lms_window_carried_forward.sql), the others computed; returns how many were
    carried. A daily run computes about half its employees instead of all of them."""
    # In steps, each analyzed, with the bounds as values: planned in one statement, the rows that may be
    # carried were estimated at one and the check against the changed actors ran once per row (130 s).
    _create_temp_from(conn, "lms_window_carry_base", "staging", {"feature_set_version": version})
    earliest_cutoff, lowest_mark = conn.execute(
        "select min(lms_cutoff_at), min(lms_voids_seen_through) from lms_window_carry_base").fetchone()  # fmt: skip
    if earliest_cutoff is None:
        stage_lms_windows(conn)
        return 0
    _create_temp_from(conn, "lms_window_carried_forward", "staging",
                      {"changed_since": earliest_cutoff - overlap, "voids_seen_after": lowest_mark})  # fmt: skip
    carried = conn.execute("select count(*) from lms_window_carried_forward").fetchone()[0]
    if not carried:
        stage_lms_windows(conn)
        return 0
    conn.execute("drop table if exists feature_targets_all")
    conn.execute("alter table feature_targets rename to feature_targets_all")
    try:
        conn.execute(
            """
            create temp table feature_targets as
            select * from feature_targets_all as targets
            where not exists (
                select from lms_window_carried_forward as carried
                where carried.employee_key = targets.employee_key and carried.reference_date = targets.reference_date)
            """
        )
        conn.execute("analyze feature_targets")
        stage_lms_windows(conn)
        columns = sql.SQL(", ").join(map(sql.Identifier, ("employee_key", "reference_date", *LMS_COLUMNS)))
        conn.execute(sql.SQL("insert into employee_lms_window_features ({}) select {} from lms_window_carried_forward"
                             ).format(columns, columns))  # fmt: skip
    finally:
        conn.execute("drop table if exists feature_targets")
        conn.execute("alter table feature_targets_all rename to feature_targets")
    return carried


def build_feature_rows(conn: psycopg.Connection, staging: sql.Identifier, version: int, dates: Sequence[date],
                       voids_seen_through: int, timer: StepTimer,
                       carry_forward_overlap: timedelta | None = None) -> tuple[int, int, int]:  # fmt: skip
    """Features for the rows of temp table `feature_targets` into the staging table `staging`; given the
    refresh overlap `carry_forward_overlap`, learning columns of the day before are carried forward where
    they can be (None: every row is computed). Returns the rows staged, the active HR headcount summed over `dates` (what the rows
    must equal) and the rows whose learning columns were carried forward."""
    with timer.step("lms_windows"):
        _create_temp_from(conn, "feature_lms_inputs", "staging", {})
        carried = 0
        if carry_forward_overlap is not None:
            carried = stage_lms_windows_carrying_forward(conn, version, carry_forward_overlap)
        else:
            stage_lms_windows(conn)
    with timer.step("hr_features"):
        _create_temp_from(conn, "employee_hr_features", "staging", {})
    with timer.step("stage_rows"), conn.transaction():
        conn.execute("drop table if exists active_headcount")
        conn.execute(
            """
            create temp table active_headcount as
            -- counted from HR directly, not through the keys, so the gate checks the join; every date
            -- built, so a date whose active employees got no row at all is seen too
            select reference_dates.reference_date, count(distinct history.employee_id) as headcount
            from unnest(%s::date[]) as reference_dates (reference_date)
            inner join core.employee_history as history
                on reference_dates.reference_date >= history.valid_from
                and (history.valid_to is null or reference_dates.reference_date < history.valid_to)
            where (history.hire_date is null or history.hire_date <= reference_dates.reference_date)
              and (history.termination_date is null or history.termination_date > reference_dates.reference_date)
            group by reference_dates.reference_date
            """,
            (list(dates),),
        )
        columns = [sql.Identifier(c) for c in feature_columns(conn) if c not in PUBLISH_COLUMNS]
        conn.execute(
            sql.SQL(
                """
                insert into {} ({}, date_feature_rows, date_active_headcount, is_void_recompute)
                with built as ({})
                select {}, count(*) over (partition by built.reference_date),
                       coalesce(active_headcount.headcount, 0), false
                from built left join active_headcount using (reference_date)
                """
            ).format(staging, sql.SQL(", ").join(columns), sql.SQL(read_sql("mart", "employee_features")),
                     sql.SQL(", ").join(sql.SQL("built.{}").format(c) for c in columns)),
            {"feature_set_version": version, "lms_voids_seen_through": voids_seen_through},
        )
        staged = conn.execute(sql.SQL("select count(*) from {}").format(staging)).fetchone()[0]
        headcount = conn.execute("select coalesce(sum(headcount), 0)::bigint from active_headcount").fetchone()[0]
    return staged, headcount, carried


def features_suite(config: Mapping[str, Any]):
    """The Great Expectations suite on a build's staging table: the rows of its reference dates (every
    row of each date) and the rows recomputed after voids (`is_void_recompute`), in one run.

    Run with the parameter `expected_rows`: the active HR headcount summed over the dates built plus
    the rows recomputed. Per-date counts and null bands describe the dates built only: a recompute
    changes no row count (its per-date columns are null, which the pair check skips), and a handful
    of recomputed rows is no population to hold to a null band.
    """
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column, ComparisonCondition, Operator

    from turnover_signals.quality.gate import SuiteDefinition, described

    built_rows = ComparisonCondition(column=Column("is_void_recompute"), operator=Operator.EQUAL, parameter=False)
    nulls = config["features"].get("max_null_fraction") or {}
    expectations = [
        described(gxe.ExpectCompoundColumnsToBeUnique(
            column_list=["employee_key", "reference_date", "feature_set_version"]),
            "one row per employee_key, reference_date and feature set version"),
        described(gxe.ExpectColumnPairValuesToBeEqual(column_A="date_feature_rows", column_B="date_active_headcount"),
                  "the rows of each reference date equal the active HR headcount on that date"),
        described(gxe.ExpectTableRowCountToEqual(value={"$PARAMETER": "expected_rows"}),
                  "every active employee of every reference date has a row (rows = the active HR headcount summed "
                  "over the dates built, so a date without any row is caught too, plus the rows recomputed after "
                  "voids)"),
    ]  # fmt: skip
    for column in RATE_COLUMNS:
        expectations.append(described(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=1),
                                       f"{column} is a rate in 0..1"))  # fmt: skip
    for column in NON_NEGATIVE_COLUMNS:
        expectations.append(described(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0),
                                       f"{column} is not negative"))  # fmt: skip
    for column in FEATURE_COLUMNS:
        fraction = float(nulls.get(column, 0))
        if fraction <= 0:
            expectations.append(described(gxe.ExpectColumnValuesToNotBeNull(column=column),
                f"{column} is never null (every feature without a band in features.max_null_fraction)"))  # fmt: skip
        elif fraction < 1:
            expectations.append(described(
                gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=round(1 - fraction, 6), row_condition=built_rows),
                f"{column} is null in at most {fraction:.0%} of rows (of the dates built)"))  # fmt: skip
    return SuiteDefinition(name="employee_features", version="3", expectations=expectations)


def gate_staged_rows(conn: psycopg.Connection, config: Mapping[str, Any], run: RunIdentity, dsn: str | None,
                     suite: Any, staging_name: str, what: str, parameters: Mapping[str, Any] | None = None) -> Any:  # fmt: skip
    """Validate staged feature rows; a failure is recorded and raised, and nothing is published."""
    outcome = run_suite(
        sqlalchemy_url(config["connections"]["warehouse"], dsn), suite, data_asset="employee_features",
        batch_identifier=what, parameters=parameters, pii_columns=config["quality"]["pii_columns"],
        table=("staging", staging_name), data_docs_dir=config["quality"]["data_docs_dir"],
    )  # fmt: skip
    if not outcome.success:
        with conn.transaction():
            record_validation(conn, outcome, run)
        raise BadInputError(
            f"feature build: {what}",
            f"the feature gate failed ({outcome.failure_summary()}); nothing was published",
            "check the upstream data the failed expectations point at (HR headcount, identity, "
            "learning activity), fix it or adjust features.max_null_fraction, then clear build_features",
            "turnover_features",
        )
    return outcome


# -- step 3: publish ------------------------------------------------------------------------------


def feature_columns(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        """
        select column_name from information_schema.columns
        where table_schema = 'mart' and table_name = 'employee_features' order by ordinal_position
        """
    ).fetchall()
    return [row[0] for row in rows]


NON_FEATURE_COLUMNS = frozenset({
    "employee_key", "reference_date", "feature_set_version", "hris_employee_id", "lms_cutoff_date", "lms_cutoff_at",
    "built_at", "build_id", "lms_recomputed_at", "lms_recomputed_reason", "lms_voids_seen_through",
    "voided_statement_after_build_at", "lms_inputs_md5",
})  # fmt: skip
# set when a row is published or changed, never staged
PUBLISH_COLUMNS = ("built_at", "build_id", "lms_recomputed_at", "lms_recomputed_reason",
                   "voided_statement_after_build_at")  # fmt: skip

LMS_COLUMNS = [
    "enrolments_30d", "enrolments_90d", "enrolments_180d", "completions_30d", "completions_90d", "completions_180d",
    "completion_rate_30d", "completion_rate_90d", "completion_rate_180d", "mean_score_30d", "mean_score_90d",
    "mean_score_180d", "learning_minutes_30d", "learning_minutes_90d", "learning_minutes_180d",
    "distinct_courses_30d", "distinct_courses_90d", "distinct_courses_180d", "mandatory_courses_overdue",
    "days_since_last_activity", "engagement_trend", "skill_tag_breadth_180d", "difficulty_weighted_completions_180d",
]  # fmt: skip
HR_COLUMNS = [
    "tenure_days", "job_level", "department", "location", "time_in_role_days", "days_since_last_promotion",
    "manager_changes_12m", "manager_tenure_days", "last_pay_change_pct", "months_since_last_raise", "is_pay_frozen",
    "performance_rating", "team_size", "team_leavers_90d",
]  # fmt: skip
FEATURE_COLUMNS = (*LMS_COLUMNS, *HR_COLUMNS)  # a test keeps it equal to the table's feature columns

# A feature row counts a statement its build's cut-off covers. A row built before lms_cutoff_at was
# recorded counted its whole cut-off day.
ROW_CUTOFF_SQL = ("coalesce(features.lms_cutoff_at,"
                  " (features.lms_cutoff_date + 1)::timestamp at time zone 'UTC' - interval '1 microsecond')")  # fmt: skip


def find_void_reach(conn: psycopg.Connection, version: int, voids_seen_through: int,
                    rebuilt_dates: Sequence[date] = ()) -> int:  # fmt: skip
    """Feature rows that may count a voided statement: built from a refresh before the one that saw the
    void (and not recomputed since), with a cut-off after the statement was stored, within a year of it.

    Voids pending (no build has applied them yet), seen by this build's refresh or earlier, are
    looked at. All of them go to temp table `void_reached_rows`, those of `version` (to recompute)
    to temp table `feature_targets` too, but for the `rebuilt_dates` a restatement is replacing (its
    new rows already leave the voided statements out); returns how many go to `feature_targets`.
    """
    conn.execute("drop table if exists void_reached_rows, feature_targets")
    conn.execute(
        sql.SQL(
            """
            create temp table void_reached_rows as
            with pending as (
                select distinct activity.learner_identifier,
                       (activity.occurred_at at time zone 'UTC')::date as activity_date,
                       activity.stored_at, seen.seen_in_refresh
                from mart.feature_void_seen as seen
                inner join core.lms_activity as activity on activity.statement_id = seen.voided_statement_id
                where seen.applied_at is null and seen.seen_in_refresh <= %(seen_through)s
            )
            select distinct features.employee_key, features.reference_date, features.feature_set_version,
                   features.hris_employee_id, {cutoff} as lms_cutoff_at, features.lms_cutoff_date
            from pending
            inner join core.employee_identity as identity_row
                on identity_row.identifier_type = 'xapi_actor'
                and identity_row.identifier_value = pending.learner_identifier
                and identity_row.valid_from <= pending.activity_date
                and (identity_row.valid_to is null or pending.activity_date < identity_row.valid_to)
            inner join mart.employee_features as features
                on features.employee_key = identity_row.employee_key
                and features.reference_date >= pending.activity_date
                and features.reference_date < pending.activity_date + 365
                and features.lms_voids_seen_through < pending.seen_in_refresh
                and {cutoff} >= pending.stored_at
            """
        ).format(cutoff=sql.SQL(ROW_CUTOFF_SQL)),
        {"seen_through": voids_seen_through},
    )
    conn.execute("create temp table feature_targets as select employee_key, reference_date, hris_employee_id,"
                 " lms_cutoff_at, lms_cutoff_date from void_reached_rows where feature_set_version = %s"
                 " and reference_date <> all(%s::date[])", (version, list(rebuilt_dates)))  # fmt: skip
    conn.execute("analyze feature_targets")
    return conn.execute("select count(*) from feature_targets").fetchone()[0]


def stage_void_recompute(conn: psycopg.Connection, staging: sql.Identifier, version: int,
                         voids_seen_through: int) -> int:  # fmt: skip
    """The rows of `feature_targets` with their learning columns recomputed, into the staging table
    `staging` marked `is_void_recompute`; returns how many."""
    learners = conn.execute(
        "select array_agg(distinct identifier_value) from core.employee_identity where identifier_type = 'xapi_actor'"
        " and employee_key in (select employee_key from feature_targets)").fetchone()[0]  # fmt: skip
    stage_lms_windows(conn, learners or [])
    columns = [column for column in feature_columns(conn) if column not in PUBLISH_COLUMNS]
    values = [
        sql.SQL("%(seen_through)s::bigint") if column == "lms_voids_seen_through"
        else sql.SQL("recomputed.{0}" if column in LMS_COLUMNS else "features.{0}").format(sql.Identifier(column))
        for column in columns
    ]  # fmt: skip
    return conn.execute(
        sql.SQL(
            """
            insert into {} ({}, is_void_recompute)
            select {}, true
            from mart.employee_features as features
            inner join employee_lms_window_features as recomputed
                on features.employee_key = recomputed.employee_key and features.reference_date = recomputed.reference_date
            where features.feature_set_version = %(version)s
            """
        ).format(staging, sql.SQL(", ").join(map(sql.Identifier, columns)), sql.SQL(", ").join(values)),
        {"seen_through": voids_seen_through, "version": version},
    ).rowcount


def _insert_audit_rows(
    conn: psycopg.Connection, build_id: str, kind: str, version: int, run: RunIdentity, marks: Mapping[str, Any],
    counts: Sequence[tuple], validation_id: str | None,
) -> None:  # fmt: skip
    for reference_date, rows, headcount, cutoff in counts:
        conn.execute(
            """
            insert into audit.feature_build (build_id, reference_date, feature_set_version, build_kind, feature_rows,
                active_headcount, lms_cutoff_date, lms_stored_high_water, hris_known_at_high_water, validation_id,
                dag_id, run_id, task_id, try_number, built_at)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
            """,
            (build_id, reference_date, version, kind, rows, headcount, cutoff, marks["lms_stored_high_water"],
             marks["hris_known_at_high_water"], validation_id, run.dag_id, run.run_id, run.task_id, run.try_number),
        )  # fmt: skip


def publish_new_rows(conn: psycopg.Connection, staging: sql.Identifier, dates: Sequence[date], version: int,
                     restate: bool, build_id: str) -> list[tuple]:  # fmt: skip
    """Insert the staged rows (replacing the dates on a restatement); returns per-date counts."""
    if restate:
        conn.execute(
            "delete from mart.employee_features where feature_set_version = %s and reference_date = any(%s)",
            (version, list(dates)),
        )
    columns = [c for c in feature_columns(conn) if c not in PUBLISH_COLUMNS]
    listed = sql.SQL(", ").join(map(sql.Identifier, columns))
    conn.execute(
        sql.SQL(
            "insert into mart.employee_features ({}, built_at, build_id) select {}, now(), %s from {}"
            " where not is_void_recompute"
        ).format(listed, listed, staging),
        (build_id,),
    )
    return conn.execute(
        sql.SQL(
            "select reference_date, count(*), max(date_active_headcount), max(lms_cutoff_date) from {}"
            " where not is_void_recompute group by reference_date order by reference_date"
        ).format(staging)
    ).fetchall()


def apply_void_recompute(conn: psycopg.Connection, staging: sql.Identifier, version: int) -> list[tuple]:
    """Overwrite the learning columns of the rows recomputed in `staging` (validated) with their values."""
    assignments = sql.SQL(", ").join(
        sql.SQL("{0} = recomputed.{0}").format(sql.Identifier(c)) for c in (*LMS_COLUMNS, "lms_voids_seen_through"))
    conn.execute(
        sql.SQL(
            """
            update mart.employee_features as features
            set {}, lms_recomputed_at = now(), lms_recomputed_reason = 'a statement it counted was voided'
            from {} as recomputed
            where recomputed.is_void_recompute
              and features.employee_key = recomputed.employee_key
              and features.reference_date = recomputed.reference_date
              and features.feature_set_version = %s
            """
        ).format(assignments, staging),
        (version,),
    )
    return conn.execute(
        sql.SQL("select reference_date, count(*), 0, max(lms_cutoff_date) from {} where is_void_recompute"
                " group by 1 order by 1").format(staging)
    ).fetchall()


def close_pending_voids(conn: psycopg.Connection, version: int, voids_seen_through: int) -> int:
    """Flag the rows of other feature set versions the pending voids reached (they cannot be recomputed:
    their SQL is gone), and mark those voids applied; returns the rows flagged."""
    flagged = conn.execute(
        """
        update mart.employee_features as features set voided_statement_after_build_at = now()
        from void_reached_rows as reached
        where features.employee_key = reached.employee_key and features.reference_date = reached.reference_date
          and features.feature_set_version = reached.feature_set_version
          and reached.feature_set_version <> %s and features.voided_statement_after_build_at is null
        """,
        (version,),
    ).rowcount
    conn.execute("update mart.feature_void_seen set applied_at = now() where applied_at is null"
                 " and seen_in_refresh <= %s", (voids_seen_through,))  # fmt: skip
    return flagged


def label_parameters(conn: psycopg.Connection, config: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of include/sql/mart/turnover_label.sql: horizons, and how far HR is known."""
    hr_known_through = conn.execute(
        """
        select coalesce(
            (select max(file_date) from audit.file_manifest where feed = 'employees' and status = 'loaded'),
            (select max(valid_from) from core.employee_history))
        """
    ).fetchone()[0]
    return {"horizons": [int(h) for h in config["features"]["label_horizons_days"]], "hr_known_through": hr_known_through}


LABEL_HR_WATERMARK = "features:turnover_label:hr_known_through"

# The employment outcome of each employee, from the latest HR interval: a termination, or vanishing
# from the snapshots (the first snapshot without the worker is the exit date).
EMPLOYMENT_OUTCOME_SQL = """
select distinct on (employee_id)
    employee_id as hris_employee_id,
    coalesce(termination_date, case when closed_by = 'absent_from_snapshot' then valid_to end) as exit_date,
    case
        when termination_date is not null then coalesce(termination_category, 'other')
        when closed_by = 'absent_from_snapshot' then 'vanished_from_snapshot'
    end as exit_category
from core.employee_history
order by employee_id asc, valid_from desc
"""


def refresh_employment_outcomes(conn: psycopg.Connection) -> int:
    """Bring `mart.turnover_label_outcome` up to date; the changed employees go to temp table `outcome_changed`."""
    conn.execute("drop table if exists outcome_now, outcome_changed")
    conn.execute(sql.SQL("create temp table outcome_now as {}").format(sql.SQL(EMPLOYMENT_OUTCOME_SQL)))
    changed = conn.execute(
        """
        create temp table outcome_changed as
        select coalesce(now.hris_employee_id, kept.hris_employee_id) as hris_employee_id
        from outcome_now as now
        full join mart.turnover_label_outcome as kept on now.hris_employee_id = kept.hris_employee_id
        where (now.hris_employee_id, now.exit_date, now.exit_category)
            is distinct from (kept.hris_employee_id, kept.exit_date, kept.exit_category)
        """
    ).rowcount
    conn.execute("delete from mart.turnover_label_outcome where hris_employee_id in"
                 " (select hris_employee_id from outcome_changed)")  # fmt: skip
    conn.execute("insert into mart.turnover_label_outcome select * from outcome_now where hris_employee_id in"
                 " (select hris_employee_id from outcome_changed)")  # fmt: skip
    return changed


def label_scope_is_everything(conn: psycopg.Connection, params: Mapping[str, Any], kept_through: date | None) -> bool:
    """Whether every label must be computed again: none kept, other horizons, or HR known less far than before."""
    if kept_through is None or params["hr_known_through"] is None or params["hr_known_through"] < kept_through:
        return True
    kept_horizons = conn.execute(
        "select array_agg(horizon_days order by horizon_days) from mart.turnover_label"
        " where (employee_key, reference_date) = (select employee_key, reference_date from mart.turnover_label limit 1)"
    ).fetchone()[0]  # every (employee, date) carries every horizon, so one of them tells
    return kept_horizons is not None and kept_horizons != sorted(set(params["horizons"]))


def fill_label_scope(conn: psycopg.Connection, everything: bool, dates: Sequence[date] = (),
                     settling: tuple[date, date] | None = None) -> None:  # fmt: skip
    """Temp table `label_scope`: every feature row, or the rows whose label may have changed.

    A label depends on its row, the employee's outcome and how far HR is known: so the rows of the
    dates built now, of employees whose outcome changed, and of the dates in `settling` (after,
    through]: those whose horizon may have ended between the last label refresh and now.
    """
    conn.execute("drop table if exists label_scope")
    conn.execute("create temp table label_scope (employee_key bigint, reference_date date, hris_employee_id text)")
    if everything:
        conn.execute("insert into label_scope select employee_key, reference_date, hris_employee_id"
                     " from mart.employee_features")  # fmt: skip
        return
    conn.execute(
        """
        insert into label_scope
        select features.employee_key, features.reference_date, features.hris_employee_id
        from mart.employee_features as features
        where
            features.reference_date = any(%(dates)s::date[])
            or (features.reference_date > %(after)s::date and features.reference_date <= %(through)s::date)
        union
        select features.employee_key, features.reference_date, features.hris_employee_id
        from outcome_changed
        inner join core.hris_employee_key as employee_key on outcome_changed.hris_employee_id = employee_key.hris_employee_id
        inner join mart.employee_features as features
            on features.employee_key = employee_key.employee_key
            and features.hris_employee_id = outcome_changed.hris_employee_id
        """,
        {"dates": list(dates), "after": settling[0], "through": settling[1]},
    )
    conn.execute("analyze label_scope")


def refresh_labels(conn: psycopg.Connection, config: Mapping[str, Any], dates: Sequence[date], build_id: str,
                   full: bool = False) -> dict[str, Any]:  # fmt: skip
    """Recompute the labels that may have changed (outcomes become known as time passes), or all of them.

    Labels never feed features. A label keeps the `hr_known_through` it was last computed with: a
    settled one, the one it was decided with.
    """
    params = label_parameters(conn, config)
    kept = _watermark(conn, LABEL_HR_WATERMARK)
    kept_through = None if full or kept is None else kept.date()
    changed_outcomes = refresh_employment_outcomes(conn)
    everything = label_scope_is_everything(conn, params, kept_through)
    band = None
    if not everything:
        # (date, horizon) turns from open to settled when HR becomes known through date + horizon
        band = (kept_through - timedelta(days=max(params["horizons"], default=0)),
                params["hr_known_through"] - timedelta(days=min(params["horizons"], default=0)))  # fmt: skip
    fill_label_scope(conn, everything, dates, band)
    if everything:
        conn.execute("delete from mart.turnover_label")
    else:
        conn.execute("delete from mart.turnover_label where reference_date = any(%s::date[])", (list(dates),))
        conn.execute(
            """
            delete from mart.turnover_label as label
            using (select distinct employee_key, reference_date from label_scope) as scope
            where label.employee_key = scope.employee_key and label.reference_date = scope.reference_date
            """
        )
    written = conn.execute(
        sql.SQL("insert into mart.turnover_label ({cols}) select {cols} from ({select}) as built").format(
            cols=sql.SQL(", ").join(map(sql.Identifier, LABEL_COLUMNS)),
            select=sql.SQL(read_sql("mart", "turnover_label")),
        ),
        params,
    ).rowcount
    if params["hr_known_through"] is not None:
        _set_watermark(conn, LABEL_HR_WATERMARK, params["hr_known_through"], build_id)
    return {"label_mode": "full" if everything else "incremental", "labels_written": written,
            "employees_with_changed_outcome": changed_outcomes}  # fmt: skip


LABEL_COLUMNS = ("employee_key", "reference_date", "horizon_days", "hris_employee_id", "label", "exit_date",
                 "exit_category", "is_censored", "label_status", "hr_known_through")  # fmt: skip


def build_features(
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
    reference_dates: Iterable[date] = (),
    restate: bool = False,
    full_daily_rebuild: bool = False,
) -> dict[str, Any]:
    """Build the features of `reference_dates` not built yet (all of them when `restate`), recompute
    rows a void reached, gate, publish."""
    run = run or RunIdentity()
    version = int(config["features"]["feature_set_version"])
    build_id = uuid.uuid4().hex[:16]
    overlap = timedelta(days=float(config["lms"]["since_overlap_days"]))
    staging_name = f"employee_features_{build_id}"
    staging = sql.Identifier("staging", staging_name)
    timer = StepTimer()
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        # The CTE-heavy queries are estimated far above their real cost, so JIT compiling them took
        # longer than a daily run's queries themselves (1.4 of 3.3 s for the HR features).
        conn.execute("set jit = off")
        with timer.step("daily_refresh"):
            daily = refresh_learner_daily_activity(conn, overlap, build_id, full_daily_rebuild)
        seen_through = daily["voids_seen_through"]
        with timer.step("select_dates"):
            dates = dates_to_build(conn, config, reference_dates, restate)
            marks = {"lms_stored_high_water": daily["lms_cutoff_at"], "hris_known_at_high_water": conn.execute(
                "select max(known_at) from core.employee_history").fetchone()[0]}  # fmt: skip
        try:
            outcome = None
            staged = headcount = carried = 0
            create_staging_table(conn, staging)
            if dates:
                with timer.step("targets"):
                    _create_temp_from(conn, "feature_targets", "staging",
                                      {"reference_dates": dates, "lms_cutoff_at": daily["lms_cutoff_at"]})  # fmt: skip
                # a restatement takes in what arrived late: every row is computed
                carries = config["features"].get("carry_forward_windows", True) and not restate
                staged, headcount, carried = build_feature_rows(conn, staging, version, dates, seen_through, timer,
                                                                overlap if carries else None)  # fmt: skip
            with timer.step("void_targets"):
                recomputed = find_void_reach(conn, version, seen_through, dates)
                if recomputed:
                    stage_void_recompute(conn, staging, version, seen_through)
            if dates or recomputed:
                # One validation run for both: its fixed cost is a good part of a daily run.
                what = ", ".join(
                    ([f"reference dates {dates[0]}..{dates[-1]} ({staged} rows)"] if dates else [])
                    + ([f"void recompute of {recomputed} rows"] if recomputed else []))  # fmt: skip
                with timer.step("gate"):
                    outcome = gate_staged_rows(conn, config, run, dsn, features_suite(config), staging_name,
                                               f"{what} (v{version})", {"expected_rows": headcount + recomputed})  # fmt: skip
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (FEATURES_LOCK_ID,))
                with timer.step("publish"):
                    if outcome is not None:
                        record_validation(conn, outcome, run)
                    if dates:
                        counts = publish_new_rows(conn, staging, dates, version, restate, build_id)
                        _insert_audit_rows(conn, build_id, "restatement" if restate else "first_build", version,
                                           run, marks, counts, outcome.validation_id)  # fmt: skip
                    if recomputed:
                        _insert_audit_rows(conn, build_id, "void_recompute", version, run, marks,
                                           apply_void_recompute(conn, staging, version), outcome.validation_id)  # fmt: skip
                    flagged = close_pending_voids(conn, version, seen_through)
                with timer.step("labels"):
                    labels = refresh_labels(conn, config, dates, build_id, full=full_daily_rebuild)
        finally:
            conn.execute(sql.SQL("drop table if exists {}").format(staging))
    summary = {
        "build_id": build_id, "feature_set_version": version, "reference_dates_built": [d.isoformat() for d in dates],
        "rows_built": staged, "rows_carried_forward": carried, "rows_recomputed_for_voids": recomputed,
        "rows_flagged_in_other_versions": flagged,
        "daily_mode": daily["daily_mode"], "daily_rows_written": daily["daily_rows_written"], **labels,
        "seconds": timer.seconds,
    }  # fmt: skip
    log.info("features built: %s", summary)
    return summary


def reference_dates_for_run(context: Mapping[str, Any], requested: Sequence[str] = ()) -> list[date]:
    """The dates a run builds: the ones requested (ISO strings), else the last full day before the run.

    Asset-triggered runs have no logical date, so the run's `run_after` stands in for it.
    """
    if requested:
        return sorted({date.fromisoformat(str(d)) for d in requested})
    moment = context.get("logical_date") or context["dag_run"].run_after
    return [moment.date() - timedelta(days=1)]


def training_set_summary(config: Mapping[str, Any], dsn: str | None = None) -> list[str]:
    """Shape, label balance and a few feature distributions of `mart.training_set`, as readable lines."""
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        return training_set_lines(conn, int(config["features"]["feature_set_version"]))


def training_set_lines(conn: psycopg.Connection, version: int) -> list[str]:
    """The lines of `training_set_summary` from an open connection."""
    rows, dates, employees, positives = conn.execute(
        "select count(*), count(distinct reference_date), count(distinct employee_key), count(*) filter (where label)"
        " from mart.training_set where feature_set_version = %s", (version,)).fetchone()  # fmt: skip
    statuses = conn.execute(
        "select label_status, count(*) from mart.turnover_label group by 1 order by 1").fetchall()  # fmt: skip
    columns = len([c for c in feature_columns(conn) if c not in NON_FEATURE_COLUMNS])
    lines = [
        f"training set (feature set v{version}): {rows} rows x {columns} features, {dates} reference dates, "
        f"{employees} employees; positives {positives} ({positives / rows:.1%})" if rows else
        "training set: empty (no reference date has a label yet)",
        "labels by status: " + ", ".join(f"{status} {count}" for status, count in statuses),
    ]
    for feature in ("completions_90d", "learning_minutes_90d", "engagement_trend", "days_since_last_activity",
                    "tenure_days"):
        stats = conn.execute(
            sql.SQL(
                "select label, round(avg({0})::numeric, 2), percentile_cont(0.5) within group (order by {0})"
                " from mart.training_set where feature_set_version = %s group by label order by label"
            ).format(sql.Identifier(feature)),
            (version,),
        ).fetchall()
        lines.append(f"  {feature}: " + "; ".join(
            f"{'leavers' if label else 'stayers'} mean {mean} median {median}" for label, mean, median in stats))  # fmt: skip
    return lines
