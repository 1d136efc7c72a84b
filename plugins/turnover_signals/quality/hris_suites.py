"""Great Expectations suites for HRIS files, and the SQL each one validates.

The suite runs on a check table built from the staged file in one pass, with parsed columns
(`hire_date_parsed`, ...) and, for each value that does not parse, the offending text in
`<column>_unparseable` — so a report shows which values failed, not only how many.
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


def create_check_table(
    conn: psycopg.Connection, staged: StagedFile, feed: Feed, header: MappedHeader, date_format: str
) -> StagedFile:
    """Materialise what the suite validates, in one pass over the staged file: the present
    canonical columns plus parsed helpers (`<col>_parsed`, and `<col>_unparseable` holding the
    offending text). Dates repeat a lot, so each distinct date text is parsed once and joined.
    """
    pattern, _template, (year, month, day) = date_format_parts(date_format)
    checks = StagedFile(staged.schema, f"{staged.table}__checks", staged.rows_copied)
    source = sql.Identifier("source_row")
    ctes: list[sql.Composable] = []
    joins: list[sql.Composable] = []
    # Only what the suite reads: required columns (their presence is an expectation) and the
    # columns expectations look at; the other text columns would double the table for nothing.
    wanted = set(feed.required_columns) | {"employee_id", "work_email", "change_type", "termination_type"}
    selects: list[sql.Composable] = [
        sql.SQL("{}.{}").format(source, sql.Identifier(c)) for c in header.canonical_present if c in wanted
    ]
    for column in feed.date_columns:
        if column not in header.canonical_present:
            continue
        lookup = sql.Identifier(f"{column}_lookup")
        ctes.append(
            sql.SQL(
                "{lookup} as (select raw_value, core.parse_date_text(raw_value, {p}, {y}, {m}, {d}) as parsed"
                " from (select distinct {c} as raw_value from {staged} where {c} is not null) as distinct_values)"
            ).format(lookup=lookup, p=sql.Literal(pattern), y=year, m=month, d=day,
                     c=sql.Identifier(column), staged=staged.qualified)
        )  # fmt: skip
        joins.append(
            sql.SQL("left join {lookup} on {src}.{c} = {lookup}.raw_value").format(
                lookup=lookup, src=source, c=sql.Identifier(column)
            )
        )
        selects.append(sql.SQL("{}.parsed as {}").format(lookup, sql.Identifier(f"{column}_parsed")))
        selects.append(
            sql.SQL("case when {lookup}.parsed is null then {src}.{c} end as {alias}").format(
                lookup=lookup, src=source, c=sql.Identifier(column), alias=sql.Identifier(f"{column}_unparseable")
            )
        )
    for column in NUMERIC_COLUMNS[feed.name]:
        if column not in header.canonical_present:
            continue
        parsed = sql.SQL("core.parse_numeric_text({}.{})").format(source, sql.Identifier(column))
        selects.append(sql.SQL("{} as {}").format(parsed, sql.Identifier(f"{column}_parsed")))
        selects.append(
            sql.SQL("case when {parsed} is null then {src}.{c} end as {alias}").format(
                parsed=parsed, src=source, c=sql.Identifier(column), alias=sql.Identifier(f"{column}_unparseable")
            )
        )
    if feed.name == "employees" and "termination_type" in header.canonical_present:
        selects.append(sql.SQL("lower(btrim({}.termination_type)) as termination_type_key").format(source))
    query = sql.SQL("create unlogged table {checks} as {with_clause} select {selects} from {staged} as {src} {joins}").format(
        checks=checks.qualified,
        with_clause=sql.SQL("with ") + sql.SQL(", ").join(ctes) if ctes else sql.SQL(""),
        selects=sql.SQL(", ").join(selects),
        staged=staged.qualified,
        src=source,
        joins=sql.SQL(" ").join(joins),
    )
    with conn.transaction():
        conn.execute(sql.SQL("drop table if exists {}").format(checks.qualified))
        conn.execute(query)
    return checks


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
            e.append(described(gxe.ExpectColumnValuesToBeUnique(column="employee_id"), "employee_id is unique"))
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
