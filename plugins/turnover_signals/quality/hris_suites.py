"""Great Expectations suites for HRIS files, and the SQL each one validates.

The suite runs on a check view over the staged file, with parsed columns (`hire_date_parsed`,
...) and, for each value that does not parse, the offending text in `<column>_unparseable` — so
a report shows which values failed, not only how many. Nothing is copied row by row: what is
expensive per row is computed once per distinct value into two small tables the view joins —
the date texts that do not parse, and the employee ids that occur more than once — so GX's
statements are parallel scans of the staged file.
"""

from __future__ import annotations

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

SUITE_VERSION = "1"
EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
NUMERIC_COLUMNS = {"employees": ("base_salary",), "compensation": ("previous_base_salary", "new_base_salary")}
NON_NEGATIVE_COLUMNS = {"employees": ("base_salary",), "compensation": ("new_base_salary", "previous_base_salary")}


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
    conn: psycopg.Connection, staged: StagedFile, feed: Feed, header: MappedHeader, date_format: str
) -> StagedFile:
    """Create the view the suite validates (and the small tables it joins); returns the view.

    The view has the present canonical columns the suite reads, `<date>_parsed` and
    `<date>_unparseable` for each date column, `<number>_parsed` / `<number>_unparseable`,
    `termination_type_key`, and, for employees, `employee_id_duplicate` (the id when it occurs
    more than once in the file, else null).
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
                "select {nulls_before}raw_value{nulls_after} from (select distinct {c} as raw_value from {staged}"
                " where {c} is not null offset 0) as distinct_values"
                " where core.parse_date_text(raw_value, {p}, {y}, {m}, {d}) is null"
            ).format(
                nulls_before=sql.SQL("null, " * i), nulls_after=sql.SQL(", null" * (len(date_columns) - i - 1)),
                c=sql.Identifier(column), staged=staged.qualified, p=sql.Literal(pattern), y=year, m=month, d=day,
            )  # fmt: skip
            for i, column in enumerate(date_columns)
        ]
        statements.append(
            sql.SQL("create unlogged table {table} ({columns})").format(
                table=unparseable.qualified,
                columns=sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c)) for c in date_columns),
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
            sql.SQL("case when {alias}.{c} is null then to_date(btrim({src}.{c}), {template}) end as {name}").format(
                alias=alias, c=sql.Identifier(column), src=source, template=sql.Literal(template),
                name=sql.Identifier(f"{column}_parsed"),
            )  # fmt: skip
        )
        selects.append(
            sql.SQL("{alias}.{c} as {name}").format(
                alias=alias, c=sql.Identifier(column), name=sql.Identifier(f"{column}_unparseable")
            )
        )
    for column in NUMERIC_COLUMNS[feed.name]:
        if column not in present:
            continue
        parsed = sql.SQL("core.parse_numeric_text({}.{})").format(source, sql.Identifier(column))
        selects.append(sql.SQL("{} as {}").format(parsed, sql.Identifier(f"{column}_parsed")))
        selects.append(
            sql.SQL("case when {parsed} is null then {src}.{c} end as {alias}").format(
                parsed=parsed, src=source, c=sql.Identifier(column), alias=sql.Identifier(f"{column}_unparseable")
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
            sql.SQL("left join {table} as duplicate_ids on duplicate_ids.employee_id = {src}.employee_id").format(
                table=duplicates.qualified, src=source
            )
        )
        selects.append(sql.SQL("duplicate_ids.employee_id as employee_id_duplicate"))
    statements.append(
        sql.SQL("create view {view} as select {selects} from {staged} as {src} {joins}").format(
            view=view.qualified, selects=sql.SQL(", ").join(selects), staged=staged.qualified, src=source,
            joins=sql.SQL(" ").join(joins),
        )  # fmt: skip
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
        for suffix in ("unparseable", "duplicates"):
            conn.execute(sql.SQL("drop table if exists {}").format(_scratch(staged, suffix).qualified))


def hris_file_suite(feed: Feed, header: MappedHeader, checks: FileChecks, date_format: str) -> SuiteDefinition:
    """The expectations for one HRIS file; columns the file lacks get no column expectations
    (the missing-column expectation already fails)."""
    present = set(header.canonical_present)
    e: list[Any] = [
        described(
            gxe.ExpectTableColumnsToMatchSet(column_set=list(feed.required_columns), exact_match=False),
            "required columns are present",
        )
    ]
    if feed.name == "employees":
        e.append(described(gxe.ExpectTableRowCountToBeBetween(min_value=1), "the snapshot has at least one row"))
    if checks.control_rows is not None:
        e.append(
            described(
                gxe.ExpectTableRowCountToEqual(value={"$PARAMETER": "control_rows"}),
                "row count equals the control file",
            )
        )
    if feed.name == "employees" and checks.previous_good_rows is not None:
        e.append(
            described(
                gxe.ExpectTableRowCountToBeBetween(
                    min_value={"$PARAMETER": "volume_min_rows"}, max_value={"$PARAMETER": "volume_max_rows"}
                ),
                f"volume guard: row count within {checks.volume_min_ratio:g}x..{checks.volume_max_ratio:g}x "
                f"of the last good snapshot ({checks.previous_good_rows} rows)",
            )
        )
    if "employee_id" in present:
        e.append(described(gxe.ExpectColumnValuesToNotBeNull(column="employee_id"), "employee_id is never empty"))
        if feed.name == "employees":
            # GX's own uniqueness check joins every row to a count per id; the check view carries
            # the ids that occur more than once (one hash aggregate), and GX decides on that.
            e.append(
                described(gxe.ExpectColumnValuesToBeNull(column="employee_id_duplicate"), "employee_id is unique")
            )
    for column in feed.date_columns:
        if column not in present:
            continue
        if column in feed.required_columns and column != "termination_date":
            e.append(described(gxe.ExpectColumnValuesToNotBeNull(column=column), f"{column} is never empty"))
        e.append(
            described(
                gxe.ExpectColumnValuesToBeNull(column=f"{column}_unparseable"),
                f"{column} parses as a date in format {date_format}",
            )
        )
    for column in NUMERIC_COLUMNS[feed.name]:
        if column not in present:
            continue
        e.append(
            described(gxe.ExpectColumnValuesToBeNull(column=f"{column}_unparseable"), f"{column} is a number")
        )
        if column in NON_NEGATIVE_COLUMNS[feed.name]:
            e.append(
                described(
                    gxe.ExpectColumnValuesToBeBetween(column=f"{column}_parsed", min_value=0),
                    f"{column} is not negative",
                )
            )
    if feed.name == "employees":
        if {"hire_date", "termination_date"} <= present:
            e.append(
                described(
                    gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                        column_A="termination_date_parsed",
                        column_B="hire_date_parsed",
                        or_equal=True,
                        ignore_row_if="either_value_is_missing",
                    ),
                    "hire_date is on or before termination_date",
                )
            )
        if "termination_type" in present:
            e.append(
                described(
                    gxe.ExpectColumnValuesToBeInSet(
                        column="termination_type_key", value_set=list(checks.allowed_termination_types)
                    ),
                    "termination_type is one of the configured types",
                )
            )
        if "work_email" in present:
            e.append(
                described(
                    gxe.ExpectColumnValuesToMatchRegex(column="work_email", regex=EMAIL_SHAPE),
                    "work_email looks like an email address",
                )
            )
    if feed.name == "compensation" and {"employee_id", "effective_date", "change_type"} <= present:
        e.append(
            described(
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["employee_id", "effective_date", "change_type"]),
                "one line per employee, effective date and change type",
            )
        )
        e.append(described(gxe.ExpectColumnValuesToNotBeNull(column="change_type"), "change_type is never empty"))
    return SuiteDefinition(name=f"hris_{feed.name}_file", version=SUITE_VERSION, expectations=e)


def allowed_termination_types(mapping: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(sorted(k.strip().lower() for k in mapping))
