"""Great Expectations suites for HRIS files, and the SQL each one validates.

The suite runs on a check view over the staged file, with parsed columns (`hire_date_parsed`,
...) and, for each value that does not parse, the offending text in `<column>_unparseable` — so
a report shows which values failed, not only how many. Nothing is copied row by row: what is
expensive per row is computed once per distinct value into two small tables the view joins —
the date texts that do not parse, and the employee ids that occur more than once — so GX's
statements are parallel scans of the staged file.

Every typed column the history reads is checked to parse as it will there: dates, numbers
(`core.parse_numeric_text`), whole numbers (`core.parse_integer_text`) and job levels, which must map
to an ordinal through `hris.job_level_mapping` (`core.map_job_level`; an unmapped level is named in
`job_level_unmapped`). A value the history would turn into a null fails the file instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import great_expectations.expectations as gxe
import psycopg
from psycopg import sql

from turnover_signals.hris.contract import Feed, MappedHeader, date_format_parts
from turnover_signals.load.csv_stage import StagedFile
from turnover_signals.quality.gate import SuiteDefinition, described

SUITE_VERSION = "2"
METRICS_SUITE_VERSION = "2-metrics"
EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
NUMERIC_COLUMNS = {
    "employees": ("base_salary", "fte"),
    "compensation": ("previous_base_salary", "new_base_salary"),
}
INTEGER_COLUMNS = {"employees": ("performance_rating",), "compensation": ()}
COMPENSATION_KEY = ("employee_id", "effective_date", "change_type")
NON_NEGATIVE_COLUMNS = {
    "employees": ("base_salary",),
    "compensation": ("new_base_salary", "previous_base_salary"),
}


@dataclass(frozen=True)
class FileChecks:
    """What the suite needs to know beyond the data: control file and volume band."""

    control_rows: int | None
    previous_good_rows: int | None
    volume_min_ratio: float
    volume_max_ratio: float
    allowed_termination_types: tuple[str, ...]

    def parameters(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.control_rows is not None:
            params["control_rows"] = self.control_rows
        if self.previous_good_rows is not None:
            params["volume_min_rows"] = math.floor(self.previous_good_rows * self.volume_min_ratio)
            params["volume_max_rows"] = math.ceil(self.previous_good_rows * self.volume_max_ratio)
        return params


def _scratch(staged: StagedFile, suffix: str) -> StagedFile:
    return StagedFile(staged.schema, f"{staged.table}__{suffix}", staged.rows_copied)


def create_check_relation(
    conn: psycopg.Connection,
    staged: StagedFile,
    feed: Feed,
    header: MappedHeader,
    date_format: str,
    job_level_mapping: Mapping[str, Any],
) -> StagedFile:
    """Create the view the suite validates (and the small tables it joins); returns the view.

    The view has the present canonical columns the suite reads, `<date>_parsed` and
    `<date>_unparseable` for each date column, `<number>_parsed` / `<number>_unparseable` (whole
    numbers too), `termination_type_key`, and, for employees, `employee_id_duplicate` (the id when it
    occurs more than once in the file, else null) and `job_level_unmapped` (the level when
    `job_level_mapping`, compiled by `turnover_signals.hris.job_levels`, gives it no ordinal).
    """
    pattern, template, (year, month, day) = date_format_parts(date_format)
    view, unparseable, duplicates = (_scratch(staged, n) for n in ("checks", "unparseable", "duplicates"))
    source = sql.Identifier("source_row")
    present = set(header.canonical_present)
    # Only what the suite reads: required columns (their presence is an expectation) and the
    # columns expectations look at.
    wanted = set(feed.required_columns) | {"employee_id", "work_email", "change_type", "termination_type"}
    selects: list[sql.Composable] = [
        sql.SQL("{}.{}").format(source, sql.Identifier(c)) for c in header.canonical_present if c in wanted
    ]
    joins: list[sql.Composable] = []
    statements: list[sql.Composable] = []
    side_tables: list[StagedFile] = []
    date_columns = [c for c in feed.date_columns if c in present]
    if date_columns:
        # One row per distinct text that does not parse, in the column it came from. `offset 0`
        # keeps the parser on the distinct values instead of being pushed down to every row.
        branches = [
            sql.SQL(
                "select {nulls_before}raw_value{nulls_after} from (select distinct {c} as raw_value from "
                "{staged} where {c} is not null offset 0) as distinct_values where "
                "core.parse_date_text(raw_value, {p}, {y}, {m}, {d}) is null"
            ).format(
                nulls_before=sql.SQL("null, " * i),
                nulls_after=sql.SQL(", null" * (len(date_columns) - i - 1)),
                c=sql.Identifier(column),
                staged=staged.qualified,
                p=sql.Literal(pattern),
                y=year,
                m=month,
                d=day,
            )
            for i, column in enumerate(date_columns)
        ]
        statements.append(
            sql.SQL("create unlogged table {table} ({columns})").format(
                table=unparseable.qualified,
                columns=sql.SQL(", ").join(
                    sql.SQL("{} text").format(sql.Identifier(c)) for c in date_columns
                ),
            )
        )
        side_tables.append(unparseable)
        statements.append(
            sql.SQL("insert into {table} {branches}").format(
                table=unparseable.qualified, branches=sql.SQL(" union all ").join(branches)
            )
        )
    for column in date_columns:
        alias = sql.Identifier(f"{column}_unparseable_value")
        joins.append(
            sql.SQL("left join {table} as {alias} on {alias}.{c} = {src}.{c}").format(
                table=unparseable.qualified, alias=alias, src=source, c=sql.Identifier(column)
            )
        )
        # Only texts that parse reach to_date, which reads exactly what the parser accepted.
        selects.append(
            sql.SQL(
                "case when {alias}.{c} is null then to_date(btrim({src}.{c}), {template}) end as {name}"
            ).format(
                alias=alias,
                c=sql.Identifier(column),
                src=source,
                template=sql.Literal(template),
                name=sql.Identifier(f"{column}_parsed"),
            )
        )
        selects.append(
            sql.SQL("{alias}.{c} as {name}").format(
                alias=alias, c=sql.Identifier(column), name=sql.Identifier(f"{column}_unparseable")
            )
        )
    numbers = [(c, "parse_numeric_text") for c in NUMERIC_COLUMNS[feed.name]]
    numbers += [(c, "parse_integer_text") for c in INTEGER_COLUMNS[feed.name]]
    for column, parser in numbers:
        if column not in present:
            continue
        parsed = sql.SQL("core.{}({}.{})").format(sql.Identifier(parser), source, sql.Identifier(column))
        selects.append(sql.SQL("{} as {}").format(parsed, sql.Identifier(f"{column}_parsed")))
        selects.append(
            sql.SQL("case when {parsed} is null then {src}.{c} end as {alias}").format(
                parsed=parsed,
                src=source,
                c=sql.Identifier(column),
                alias=sql.Identifier(f"{column}_unparseable"),
            )
        )
    if feed.name == "employees" and "termination_type" in present:
        selects.append(sql.SQL("lower(btrim({}.termination_type)) as termination_type_key").format(source))
    if feed.name == "employees" and "employee_id" in present:
        statements.append(
            sql.SQL(
                "create unlogged table {table} as select employee_id from {staged}"
                " where employee_id is not null group by employee_id having count(*) > 1"
            ).format(table=duplicates.qualified, staged=staged.qualified)
        )
        side_tables.append(duplicates)
        joins.append(
            sql.SQL(
                "left join {table} as duplicate_ids on duplicate_ids.employee_id = {src}.employee_id"
            ).format(table=duplicates.qualified, src=source)
        )
        selects.append(sql.SQL("duplicate_ids.employee_id as employee_id_duplicate"))
    if feed.name == "employees" and "job_level" in present:
        unmapped = _scratch(staged, "unmapped")
        statements.append(
            sql.SQL(
                "create unlogged table {table} as select raw_value as job_level from (select distinct "
                "job_level as raw_value from {staged} where job_level is not null offset 0) as "
                "distinct_values cross join lateral core.map_job_level(raw_value, {mapping}::jsonb) as "
                "mapped where mapped.ordinal is null"
            ).format(
                table=unmapped.qualified,
                staged=staged.qualified,
                mapping=sql.Literal(json.dumps(job_level_mapping)),
            )
        )
        side_tables.append(unmapped)
        joins.append(
            sql.SQL(
                "left join {table} as unmapped_levels on unmapped_levels.job_level = {src}.job_level"
            ).format(table=unmapped.qualified, src=source)
        )
        selects.append(sql.SQL("unmapped_levels.job_level as job_level_unmapped"))
    statements.append(
        sql.SQL("create view {view} as select {selects} from {staged} as {src} {joins}").format(
            view=view.qualified,
            selects=sql.SQL(", ").join(selects),
            staged=staged.qualified,
            src=source,
            joins=sql.SQL(" ").join(joins),
        )
    )
    drop_check_relation(conn, view)
    with conn.transaction():
        # Hashing a million ids wants more than the default 4 MB; for this transaction only.
        conn.execute("set local work_mem = '256MB'")
        for statement in statements:
            conn.execute(statement)
        for table in side_tables:
            conn.execute(sql.SQL("analyze {}").format(table.qualified))
    return view


def drop_check_relation(conn: psycopg.Connection, view: StagedFile) -> None:
    """Drop the check view and the small tables it joins."""
    staged = StagedFile(view.schema, view.table.removesuffix("__checks"), 0)
    with conn.transaction():
        conn.execute(sql.SQL("drop view if exists {}").format(view.qualified))
        for suffix in ("unparseable", "duplicates", "unmapped"):
            conn.execute(sql.SQL("drop table if exists {}").format(_scratch(staged, suffix).qualified))


# The text core.parse_numeric_text and core.parse_integer_text (ddl 0004) accept, after btrim.
# Matching it here instead of calling the functions avoids a cast per row; a test keeps them equal.
NUMERIC_TEXT = r"^-?[0-9]+(\.[0-9]+)?$"
INTEGER_TEXT = r"^-?[0-9]{1,9}$"


def _per_row_failures(
    feed: Feed, present: set[str], allowed_types: tuple[str, ...]
) -> dict[str, sql.Composable]:
    """Metric name -> condition on one row, for the checks that need only the row itself."""
    failing: dict[str, sql.Composable] = {}
    if "employee_id" in present:
        failing["empty_employee_id_rows"] = sql.SQL("employee_id is null")
    for column in NUMERIC_COLUMNS[feed.name]:
        if column not in present:
            continue
        value = sql.SQL("btrim({})").format(sql.Identifier(column))
        failing[f"non_numeric_{column}_rows"] = sql.SQL("{} !~ {}").format(value, sql.Literal(NUMERIC_TEXT))
        if column in NON_NEGATIVE_COLUMNS[feed.name]:
            # A number is negative when it has a minus sign and a non-zero digit; the cheap prefix
            # test goes first so the patterns run only on the rare signed values.
            failing[f"negative_{column}_rows"] = sql.SQL(
                "{v} like '-%' and {v} ~ {numeric} and {v} ~ '[1-9]'"
            ).format(v=value, numeric=sql.Literal(NUMERIC_TEXT))
    for column in INTEGER_COLUMNS[feed.name]:
        if column in present:
            value = sql.SQL("btrim({})").format(sql.Identifier(column))
            failing[f"non_integer_{column}_rows"] = sql.SQL("{} !~ {}").format(
                value, sql.Literal(INTEGER_TEXT)
            )
    if feed.name == "employees" and "termination_type" in present:
        failing["unknown_termination_type_rows"] = sql.SQL(
            "lower(btrim(termination_type)) <> all({}::text[])"
        ).format(sql.Literal(list(allowed_types)))
    if feed.name == "employees" and "work_email" in present:
        failing["malformed_work_email_rows"] = sql.SQL("work_email !~ {}").format(sql.Literal(EMAIL_SHAPE))
    if feed.name == "compensation" and "change_type" in present:
        failing["empty_change_type_rows"] = sql.SQL("change_type is null")
    return failing


def _repeated_key_rows(feed: Feed, present: set[str], staged: StagedFile) -> list[sql.Composable]:
    """Rows beyond the first for each key value (ids byte-compared: sorting in "C" is cheapest)."""
    if feed.name == "employees" and "employee_id" in present:
        return [
            sql.SQL(
                '(select count(employee_id) - count(distinct employee_id collate "C") from {}) as '
                "repeated_employee_id_rows"
            ).format(staged.qualified)
        ]
    if feed.name == "compensation" and set(COMPENSATION_KEY) <= present:
        key = sql.SQL(", ").join(sql.Identifier(c) for c in COMPENSATION_KEY)
        all_missing = sql.SQL(" and ").join(
            sql.SQL("{} is null").format(sql.Identifier(c)) for c in COMPENSATION_KEY
        )
        return [
            sql.SQL(
                "(select coalesce(sum(lines - 1), 0) from (select count(*) as lines from {staged} where not "
                "({all_missing}) group by {key} having count(*) > 1) as repeated) as "
                "repeated_compensation_key_rows"
            ).format(staged=staged.qualified, all_missing=all_missing, key=key)
        ]
    return []


def metrics_query(
    staged: StagedFile,
    feed: Feed,
    header: MappedHeader,
    date_format: str,
    allowed_types: tuple[str, ...],
    job_level_mapping: Mapping[str, Any],
) -> sql.Composed:
    """One row: for every check of the file, how many rows fail it (0 = holds), and the row count.

    The staged file is scanned once grouped by its date texts and job levels (a few thousand
    groups), counting what each row fails; date texts are parsed and job levels mapped once per
    distinct value from those groups; the key uniqueness needs a second scan.
    """
    pattern, _template, (year, month, day) = date_format_parts(date_format)
    present = set(header.canonical_present)
    dates = [c for c in feed.date_columns if c in present]
    levels = ["job_level"] if feed.name == "employees" and "job_level" in present else []
    grouped = dates + levels
    per_row = _per_row_failures(feed, present, allowed_types)
    ctes = [
        sql.SQL(
            "date_groups as (select {keys}count(*) as row_count{counts} from {staged} group by {group_by})"
        ).format(
            keys=sql.SQL("").join(sql.SQL("{}, ").format(sql.Identifier(c)) for c in grouped),
            counts=sql.SQL("").join(
                sql.SQL(", count(*) filter (where {}) as {}").format(condition, sql.Identifier(name))
                for name, condition in per_row.items()
            ),
            staged=staged.qualified,
            group_by=sql.SQL(", ").join(sql.Identifier(c) for c in grouped) if grouped else sql.SQL("()"),
        )
    ]
    totals = [sql.SQL("coalesce(sum(date_groups.row_count), 0)::bigint as row_count")]
    joins = []
    for column in dates:
        lookup = sql.Identifier(f"{column}_values")
        ctes.append(
            sql.SQL(
                "{lookup} as (select raw_value, core.parse_date_text(raw_value, {p}, {y}, {m}, {d}) as "
                "parsed from (select distinct {c} as raw_value from date_groups where {c} is not null) as "
                "distinct_values)"
            ).format(lookup=lookup, c=sql.Identifier(column), p=sql.Literal(pattern), y=year, m=month, d=day)
        )
        joins.append(
            sql.SQL("left join {lookup} on {lookup}.raw_value = date_groups.{c}").format(
                lookup=lookup, c=sql.Identifier(column)
            )
        )
        failing = {
            f"unparseable_{column}_rows": sql.SQL("{}.raw_value is not null and {}.parsed is null").format(
                lookup, lookup
            )
        }
        if column in feed.required_columns and column != "termination_date":
            failing[f"empty_{column}_rows"] = sql.SQL("date_groups.{} is null").format(sql.Identifier(column))
        totals += [
            sql.SQL("coalesce(sum(date_groups.row_count) filter (where {}), 0)::bigint as {}").format(
                condition, sql.Identifier(name)
            )
            for name, condition in failing.items()
        ]
    if feed.name == "employees" and {"hire_date", "termination_date"} <= present:
        totals.append(
            sql.SQL(
                "coalesce(sum(date_groups.row_count) filter (where termination_date_values.parsed < "
                "hire_date_values.parsed), 0)"
                "::bigint as hire_after_termination_rows"
            )
        )
    if levels:
        ctes.append(
            sql.SQL(
                "job_level_values as (select raw_value, mapped.ordinal from (select distinct job_level as "
                "raw_value from date_groups where job_level is not null) as distinct_values cross join "
                "lateral core.map_job_level(raw_value, {mapping}::jsonb) as mapped)"
            ).format(mapping=sql.Literal(json.dumps(job_level_mapping)))
        )
        joins.append(
            sql.SQL("left join job_level_values on job_level_values.raw_value = date_groups.job_level")
        )
        totals.append(
            sql.SQL(
                "coalesce(sum(date_groups.row_count) filter (where job_level_values.raw_value is not null"
                " and job_level_values.ordinal is null), 0)::bigint as unmapped_job_level_rows"
            )
        )
    totals += [
        sql.SQL("coalesce(sum(date_groups.{name}), 0)::bigint as {name}").format(name=sql.Identifier(name))
        for name in per_row
    ]
    missing = sql.SQL(
        "(select count(*) from unnest({required}::text[]) as required (column_name) where not exists (select"
        " from information_schema.columns as c where c.table_schema = {schema} and c.table_name = {table}"
        " and c.column_name = required.column_name)) as missing_required_columns"
    ).format(
        required=sql.Literal(list(feed.required_columns)),
        schema=sql.Literal(staged.schema),
        table=sql.Literal(staged.table),
    )
    totals += [missing, *_repeated_key_rows(feed, present, staged)]
    return sql.SQL("with {ctes} select {totals} from date_groups {joins}").format(
        ctes=sql.SQL(", ").join(ctes), totals=sql.SQL(", ").join(totals), joins=sql.SQL(" ").join(joins)
    )


def create_metrics_table(
    conn: psycopg.Connection,
    staged: StagedFile,
    feed: Feed,
    header: MappedHeader,
    date_format: str,
    allowed_types: tuple[str, ...],
    job_level_mapping: Mapping[str, Any],
) -> StagedFile:
    """Create the one-row metrics table of the staged file (see metrics_query); returns it."""
    metrics = _scratch(staged, "metrics")
    with conn.transaction():
        # Sorting a million ids for the distinct count wants more than the default 4 MB.
        conn.execute("set local work_mem = '256MB'")
        conn.execute(sql.SQL("drop table if exists {}").format(metrics.qualified))
        conn.execute(
            sql.SQL("create unlogged table {} as {}").format(
                metrics.qualified,
                metrics_query(staged, feed, header, date_format, allowed_types, job_level_mapping),
            )
        )
    return metrics


def drop_metrics_table(conn: psycopg.Connection, metrics: StagedFile) -> None:
    with conn.transaction():
        conn.execute(sql.SQL("drop table if exists {}").format(metrics.qualified))


@dataclass(frozen=True)
class Check:
    """One check of an HRIS file, in plain language, as GX states it on each relation it can run on:
    `on_rows` on the check view (names the failing values), `on_metrics` on the one-row metrics
    table (a count that must be 0, or the row count within bounds)."""

    description: str
    on_rows: Any
    on_metrics: Any


def _none(metric: str) -> Any:
    return gxe.ExpectColumnValuesToBeBetween(column=metric, min_value=0, max_value=0)


def _file_checks(feed: Feed, header: MappedHeader, checks: FileChecks, date_format: str) -> list[Check]:
    """Every check of one HRIS file; columns the file lacks get no column checks (the
    missing-column check already fails)."""
    present = set(header.canonical_present)
    c: list[Check] = [
        Check(
            "required columns are present",
            gxe.ExpectTableColumnsToMatchSet(column_set=list(feed.required_columns), exact_match=False),
            _none("missing_required_columns"),
        )
    ]
    if feed.name == "employees":
        c.append(
            Check(
                "the snapshot has at least one row",
                gxe.ExpectTableRowCountToBeBetween(min_value=1),
                gxe.ExpectColumnValuesToBeBetween(column="row_count", min_value=1),
            )
        )
    if checks.control_rows is not None:
        control = {"$PARAMETER": "control_rows"}
        c.append(
            Check(
                "row count equals the control file",
                gxe.ExpectTableRowCountToEqual(value=control),
                gxe.ExpectColumnValuesToBeBetween(column="row_count", min_value=control, max_value=control),
            )
        )
    if feed.name == "employees" and checks.previous_good_rows is not None:
        band = {
            "min_value": {"$PARAMETER": "volume_min_rows"},
            "max_value": {"$PARAMETER": "volume_max_rows"},
        }
        c.append(
            Check(
                f"volume guard: row count within {checks.volume_min_ratio:g}x..{checks.volume_max_ratio:g}x "
                f"of the last good snapshot ({checks.previous_good_rows} rows)",
                gxe.ExpectTableRowCountToBeBetween(**band),
                gxe.ExpectColumnValuesToBeBetween(column="row_count", **band),
            )
        )
    if "employee_id" in present:
        c.append(
            Check(
                "employee_id is never empty",
                gxe.ExpectColumnValuesToNotBeNull(column="employee_id"),
                _none("empty_employee_id_rows"),
            )
        )
        if feed.name == "employees":
            # GX's own uniqueness check joins every row to a count per id; the check view carries
            # the ids that occur more than once (one hash aggregate), and GX decides on that.
            c.append(
                Check(
                    "employee_id is unique",
                    gxe.ExpectColumnValuesToBeNull(column="employee_id_duplicate"),
                    _none("repeated_employee_id_rows"),
                )
            )
    for column in feed.date_columns:
        if column not in present:
            continue
        if column in feed.required_columns and column != "termination_date":
            c.append(
                Check(
                    f"{column} is never empty",
                    gxe.ExpectColumnValuesToNotBeNull(column=column),
                    _none(f"empty_{column}_rows"),
                )
            )
        c.append(
            Check(
                f"{column} parses as a date in format {date_format}",
                gxe.ExpectColumnValuesToBeNull(column=f"{column}_unparseable"),
                _none(f"unparseable_{column}_rows"),
            )
        )
    for column in NUMERIC_COLUMNS[feed.name]:
        if column not in present:
            continue
        c.append(
            Check(
                f"{column} is a number",
                gxe.ExpectColumnValuesToBeNull(column=f"{column}_unparseable"),
                _none(f"non_numeric_{column}_rows"),
            )
        )
        if column in NON_NEGATIVE_COLUMNS[feed.name]:
            c.append(
                Check(
                    f"{column} is not negative",
                    gxe.ExpectColumnValuesToBeBetween(column=f"{column}_parsed", min_value=0),
                    _none(f"negative_{column}_rows"),
                )
            )
    for column in INTEGER_COLUMNS[feed.name]:
        if column in present:
            c.append(
                Check(
                    f"{column} is a whole number",
                    gxe.ExpectColumnValuesToBeNull(column=f"{column}_unparseable"),
                    _none(f"non_integer_{column}_rows"),
                )
            )
    if feed.name == "employees":
        if {"hire_date", "termination_date"} <= present:
            c.append(
                Check(
                    "hire_date is on or before termination_date",
                    gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                        column_A="termination_date_parsed",
                        column_B="hire_date_parsed",
                        or_equal=True,
                        ignore_row_if="either_value_is_missing",
                    ),
                    _none("hire_after_termination_rows"),
                )
            )
        if "termination_type" in present:
            c.append(
                Check(
                    "termination_type is one of the configured types",
                    gxe.ExpectColumnValuesToBeInSet(
                        column="termination_type_key", value_set=list(checks.allowed_termination_types)
                    ),
                    _none("unknown_termination_type_rows"),
                )
            )
        if "job_level" in present:
            c.append(
                Check(
                    "job_level maps to an ordinal through hris.job_level_mapping",
                    gxe.ExpectColumnValuesToBeNull(column="job_level_unmapped"),
                    _none("unmapped_job_level_rows"),
                )
            )
        if "work_email" in present:
            c.append(
                Check(
                    "work_email looks like an email address",
                    gxe.ExpectColumnValuesToMatchRegex(column="work_email", regex=EMAIL_SHAPE),
                    _none("malformed_work_email_rows"),
                )
            )
    if feed.name == "compensation" and {"employee_id", "effective_date", "change_type"} <= present:
        c.append(
            Check(
                "one line per employee, effective date and change type",
                gxe.ExpectCompoundColumnsToBeUnique(column_list=list(COMPENSATION_KEY)),
                _none("repeated_compensation_key_rows"),
            )
        )
        c.append(
            Check(
                "change_type is never empty",
                gxe.ExpectColumnValuesToNotBeNull(column="change_type"),
                _none("empty_change_type_rows"),
            )
        )
    return c


def _every_check(feed: Feed, checks: FileChecks, date_format: str) -> list[Check]:
    """The checks of a file with every column of the feed, a control file and a previous snapshot:
    the suite's definition, whatever one file brings (its version must not depend on the data)."""
    header = MappedHeader(
        staging_columns=feed.columns,
        canonical_present=feed.columns,
        missing_required=(),
        missing_optional=(),
        extra_columns=(),
        duplicate_columns=(),
    )
    everything = FileChecks(
        control_rows=0,
        previous_good_rows=0,
        volume_min_ratio=checks.volume_min_ratio,
        volume_max_ratio=checks.volume_max_ratio,
        allowed_termination_types=checks.allowed_termination_types,
    )
    return _file_checks(feed, header, everything, date_format)


def _suite(feed: Feed, version: str, expectations: list[Any], definition: list[Any]) -> SuiteDefinition:
    return SuiteDefinition(
        name=f"hris_{feed.name}_file", version=version, expectations=expectations, definition=definition
    )


def hris_file_suite(
    feed: Feed, header: MappedHeader, checks: FileChecks, date_format: str
) -> SuiteDefinition:
    """The row-level expectations for one HRIS file, on the check view (see create_check_relation)."""
    found = _file_checks(feed, header, checks, date_format)
    definition = [c.on_rows for c in _every_check(feed, checks, date_format)]
    return _suite(feed, SUITE_VERSION, [described(c.on_rows, c.description) for c in found], definition)


def hris_metrics_suite(
    feed: Feed, header: MappedHeader, checks: FileChecks, date_format: str
) -> SuiteDefinition:
    """The same checks on the one-row metrics table (see create_metrics_table): the fast gate."""
    found = _file_checks(feed, header, checks, date_format)
    definition = [c.on_metrics for c in _every_check(feed, checks, date_format)]
    return _suite(
        feed, METRICS_SUITE_VERSION, [described(c.on_metrics, c.description) for c in found], definition
    )


def allowed_termination_types(mapping: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(sorted(k.strip().lower() for k in mapping))
