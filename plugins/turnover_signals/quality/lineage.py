"""Lineage: trace a row of `mart.employee_features` back to the files, batches and validations behind it.

The query is `include/sql/queries/feature_lineage.sql` (documented there and in docs/auditors/index.md); this
helper runs it, and `python -m turnover_signals.quality.lineage EMPLOYEE_KEY REFERENCE_DATE
[--feature-set-version N] [--dsn URL]` prints it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import date
from typing import Any

from psycopg.rows import dict_row

from turnover_signals.config import load_config
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection


def trace_feature_row(
    config: Mapping[str, Any],
    employee_key: int,
    reference_date: date,
    feature_set_version: int | None = None,
    dsn: str | None = None,
) -> list[dict[str, Any]]:
    """One dict per source (feature build, identity run, HRIS file, LMS batch) with its validation."""
    version = feature_set_version or int(config["features"]["feature_set_version"])
    with (
        warehouse_connection(config["connections"]["warehouse"], dsn) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        cur.execute(
            read_sql("queries", "feature_lineage"),
            {"employee_key": employee_key, "reference_date": reference_date, "feature_set_version": version},
        )
        return cur.fetchall()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m turnover_signals.quality.lineage", description=__doc__.splitlines()[0]
    )
    parser.add_argument("employee_key", type=int)
    parser.add_argument("reference_date", type=date.fromisoformat)
    parser.add_argument("--feature-set-version", type=int)
    parser.add_argument("--dsn", help="warehouse URL (default: the warehouse_postgres Airflow connection)")
    args = parser.parse_args(argv)
    rows = trace_feature_row(
        load_config(use_variable=False),
        args.employee_key,
        args.reference_date,
        args.feature_set_version,
        args.dsn,
    )
    if not rows:
        print("no such feature row (or nothing recorded behind it)")
        return 1
    for row in rows:
        verdict = {True: "passed", False: "FAILED", None: "no validation"}[row["validation_success"]]
        print(
            f"{row['source_kind']:<14} {row['source_name']:<40} {row['detail']:<60} {verdict:<13} "
            f"{row['data_docs_path'] or ''}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
