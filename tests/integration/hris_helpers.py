"""Helpers for HRIS tests: build employees/compensation files and read warehouse tables."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import psycopg

from turnover_signals.hris.contract import COMPENSATION_COLUMNS, EMPLOYEE_COLUMNS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hris"


def insert_pay_changes(conn: psycopg.Connection, *changes: tuple) -> None:
    """Write pay changes where the features read them, as versions still current: each change is
    (employee_id, effective_date, change_type, previous salary, new salary, currency, change %, source
    sha256, known from)."""
    conn.cursor().executemany(
        """
        insert into core.compensation_event_version (employee_id, effective_date, change_type,
            previous_base_salary, new_base_salary, currency, change_pct, source_sha256, known_from)
        values (%s, %s, %s, %s, %s, %s, %s, %s, %s)
        """,
        changes,
    )


def employee_row(n: int, **overrides: str) -> dict[str, str]:
    row = {
        "employee_id": f"E{n:06d}",
        "sso_guid": f"00000000-0000-4000-8000-{n:012d}",
        "work_email": f"person{n}@northwind.example",
        "first_name": f"First{n}",
        "last_name": f"Last{n}",
        "hire_date": "2020-01-06",
        "termination_date": "",
        "termination_type": "",
        "termination_reason": "",
        "employment_status": "Active",
        "job_role": "Analyst",
        "job_level": "3",
        "department": "Finance",
        "location": "London",
        "manager_id": "E000001" if n != 1 else "",
        "base_salary": f"{50000 + n}.00",
        "currency": "GBP",
        "fte": "1.0",
        "performance_rating": "3",
    }
    row.update(overrides)
    return row


def csv_bytes(rows: list[dict[str, str]], columns=EMPLOYEE_COLUMNS, encoding="utf-8") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return buffer.getvalue().encode(encoding)


def compensation_bytes(rows: list[dict[str, str]]) -> bytes:
    return csv_bytes(rows, COMPENSATION_COLUMNS)


def write_feed_file(directory: Path, name: str, data: bytes, control: bool | dict = True) -> Path:
    """Write a data file and (by default) a correct control file beside it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    if control:
        (directory / (name + ".ctl")).write_text(json.dumps(control_of(data) if control is True else control))
    return path


def control_of(data: bytes) -> dict:
    """The correct control file of a data file: its rows and sha256."""
    rows = max(len(list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))) - 1, 0) if data else 0
    return {"rows": rows, "sha256": hashlib.sha256(data).hexdigest()}


def table_snapshot(dsn: str) -> dict[str, list[tuple]]:
    """Every row of every table the HRIS pipeline writes, sorted, for idempotency comparisons."""
    queries = {
        "manifest": "select * from audit.file_manifest order by file_name, sha256",
        "validation": "select validation_id, suite_name, success, batch_identifier from "
        "audit.validation_result order by 1",
        "raw_employees": "select * from raw.hris_employee_snapshot order by source_sha256, employee_id",
        "raw_compensation": "select * from raw.hris_compensation_change order by 1, 2, 3, 4, 5",
        "employee_history": "select * from core.employee_history order by employee_id, valid_from",
        "compensation_event": "select * from core.compensation_event order by employee_id, effective_date, "
        "change_type",
        "staging_tables": "select table_name from information_schema.tables where table_schema = 'staging' "
        "order by 1",
    }
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(q).fetchall() for name, q in queries.items()}


def query(dsn: str, sql: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()
