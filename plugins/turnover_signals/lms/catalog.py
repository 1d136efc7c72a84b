"""The business-editable course catalog (`include/course_catalog.csv`) into `core.course_catalog`.

The CSV is staged, gated by Great Expectations and only then swapped in, in one transaction;
an unchanged file (same sha256) is a no-op. Every version loaded is kept in
`core.course_catalog_version` with when it was known, so features read the catalog as it was at
their reference date's cut-off. Courses seen in learning activity but missing from
the catalog are reported (log, task result and `audit.unknown_course`).
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import great_expectations.expectations as gxe
from psycopg import sql

from turnover_signals.errors import BadInputError
from turnover_signals.paths import INCLUDE_DIR
from turnover_signals.quality.gate import (
    RunIdentity,
    SuiteDefinition,
    data_docs_location,
    described,
    record_validation,
    run_suite,
)
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import sqlalchemy_url, warehouse_connection

log = logging.getLogger(__name__)

CATALOG_COLUMNS = ("course_id", "title", "difficulty", "is_mandatory", "due_within_days", "skill_tags")


def catalog_path(config: Mapping[str, Any]) -> Path:
    path = Path(config["lms"]["course_catalog_file"])
    return path if path.is_absolute() else INCLUDE_DIR / path


def catalog_suite() -> SuiteDefinition:

    return SuiteDefinition(
        name="course_catalog",
        version="1",
        expectations=[
            described(
                gxe.ExpectTableColumnsToMatchSet(column_set=list(CATALOG_COLUMNS), exact_match=False),
                "the catalog has every column",
            ),
            described(gxe.ExpectColumnValuesToNotBeNull(column="course_id"), "every course has an id"),
            described(gxe.ExpectColumnValuesToBeUnique(column="course_id"), "course ids are unique"),
            described(gxe.ExpectColumnValuesToNotBeNull(column="title"), "every course has a title"),
            described(
                gxe.ExpectColumnValuesToBeInSet(column="difficulty", value_set=["1", "2", "3", "4", "5"]),
                "difficulty is 1 to 5",
            ),
            described(
                gxe.ExpectColumnValuesToBeInSet(column="is_mandatory", value_set=["true", "false"]),
                "is_mandatory is true or false",
            ),
            described(
                gxe.ExpectColumnValuesToMatchRegex(column="due_within_days", regex=r"^[0-9]{1,4}$"),
                "due_within_days is a whole number of days",
            ),
            described(gxe.ExpectColumnValuesToNotBeNull(column="skill_tags"), "every course has skill tags"),
        ],
    )


def load_course_catalog(
    config: Mapping[str, Any], run: RunIdentity | None = None, dsn: str | None = None
) -> dict:
    """Validate the catalog file and replace `core.course_catalog` with it when it changed."""
    run = run or RunIdentity()
    path = catalog_path(config)
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        current = conn.execute("select distinct catalog_sha256 from core.course_catalog").fetchall()
        if current == [(sha256,)]:
            return {"catalog_sha256": sha256, "courses": None, "changed": False}
        with open(path, encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), [])
        staging = sql.Identifier("staging", f"course_catalog_{sha256[:16]}")
        with conn.transaction():
            conn.execute(sql.SQL("drop table if exists {}").format(staging))
            conn.execute(
                sql.SQL("create unlogged table {} ({})").format(
                    staging,
                    sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c.strip())) for c in header),
                )
            )
            with (
                conn.cursor() as cur,
                cur.copy(
                    sql.SQL("copy {} from stdin with (format csv, header true)").format(staging)
                ) as copy,
            ):
                copy.write(data.removeprefix(b"\xef\xbb\xbf"))
        try:
            outcome = run_suite(
                sqlalchemy_url(config["connections"]["warehouse"], dsn),
                catalog_suite(),
                data_asset="course_catalog",
                batch_identifier=f"{path.name}@{sha256}",
                table=("staging", f"course_catalog_{sha256[:16]}"),
                pii_columns=(),
                data_docs_dir=data_docs_location(config),
            )
            with conn.transaction():
                record_validation(conn, outcome, run)
                if outcome.success:
                    conn.execute("delete from core.course_catalog")
                    retire_catalog_version(conn)
                    courses = conn.execute(
                        sql.SQL(read_sql("core", "course_catalog")).format(staging=staging),
                        {"catalog_sha256": sha256},
                    ).rowcount
                    keep_catalog_version(conn)
        finally:
            with conn.transaction():
                conn.execute(sql.SQL("drop table if exists {}").format(staging))
    if not outcome.success:
        raise BadInputError(
            f"course catalog {path.name}",
            f"validation failed: {outcome.failure_summary()}",
            "fix the CSV (see docs/concepts/lms.md, Course catalog); the previous catalog stays in use",
            "course-catalog",
        )
    log.info("course catalog %s loaded: %d course(s)", path.name, courses)
    return {"catalog_sha256": sha256, "courses": courses, "changed": True}


def retire_catalog_version(conn: Any) -> None:
    """The current catalog version stops being what is known now (features of dates whose cut-off came
    before keep reading it)."""
    conn.execute("update core.course_catalog_version set known_until = now() where known_until is null")


def keep_catalog_version(conn: Any) -> None:
    """Keep the catalog just loaded as a version known from now on; the very first one counts for every
    earlier date too (nothing older is known)."""
    conn.execute(read_sql("core", "course_catalog_version"))


def report_unknown_courses(config: Mapping[str, Any], dsn: str | None = None) -> list[dict[str, Any]]:
    """Courses in `core.lms_activity` that the catalog lacks, most used first; kept in
    `audit.unknown_course`."""
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, conn.transaction():
        conn.execute(
            "delete from audit.unknown_course where course_id in (select course_id from core.course_catalog)"
        )
        rows = conn.execute(read_sql("audit", "unknown_course")).fetchall()
    unknown = [{"course_id": c, "statements": n} for c, n in sorted(rows, key=lambda r: (-r[1], r[0]))]
    if unknown:
        log.warning(
            "%d course id(s) in learning activity are missing from the catalog (top: %s); add them to %s",
            len(unknown),
            ", ".join(u["course_id"] for u in unknown[:5]),
            config["lms"]["course_catalog_file"],
        )
    return unknown
