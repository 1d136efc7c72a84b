"""The HRIS fast gate (one row of counts) agrees with the row-level suite on good and bad files."""

from __future__ import annotations

import psycopg
import pytest

from tests.integration.hris_helpers import compensation_bytes, csv_bytes, employee_row
from turnover_signals.config import load_config
from turnover_signals.hris.contract import FEEDS, map_header
from turnover_signals.hris.job_levels import job_level_mapping
from turnover_signals.load.csv_stage import ByteStream, drop_staged, header_from_bytes, stage_csv_stream
from turnover_signals.quality import hris_suites as suites
from turnover_signals.quality.gate import run_suite
from turnover_signals.warehouse import sqlalchemy_url

pytestmark = pytest.mark.integration
TYPES = ("involuntary", "other", "voluntary")
JOB_LEVELS = job_level_mapping(load_config(use_variable=False))
VENDOR_JOB_LEVELS = ("L3", "P4", "IC4", "M2", "Senior")


def good_rows():
    return [employee_row(n) for n in range(1, 6)]


def with_row(n: int, **changes: str):
    rows = good_rows()
    rows[n - 1] = employee_row(n, **changes)
    return rows


CASES = {
    "good": (csv_bytes(good_rows()), None, True),
    "duplicate_employee_id": (csv_bytes([*good_rows(), employee_row(2)]), None, False),
    "empty_employee_id": (csv_bytes(with_row(3, employee_id="")), None, False),
    "unparseable_date": (csv_bytes(with_row(2, hire_date="2026-02-31")), None, False),
    "empty_hire_date": (csv_bytes(with_row(2, hire_date="")), None, False),
    "hire_after_termination": (
        csv_bytes(with_row(1, termination_date="2019-01-01", termination_type="Voluntary")),
        None,
        False,
    ),
    "hire_on_termination_day": (
        csv_bytes(with_row(1, termination_date="2020-01-06", termination_type=" voluntary ")),
        None,
        True,
    ),
    "unknown_termination_type": (csv_bytes(with_row(1, termination_type="Quit?")), None, False),
    "bad_email": (csv_bytes(with_row(4, work_email="not an@email.example")), None, False),
    "negative_salary": (csv_bytes(with_row(1, base_salary="-0.01")), None, False),
    "minus_zero_salary": (csv_bytes(with_row(1, base_salary="-0.00")), None, True),
    "non_numeric_salary": (csv_bytes(with_row(1, base_salary="50k")), None, False),
    "unparseable_termination_date": (
        csv_bytes(with_row(1, termination_date="2026-13-01", termination_type="Voluntary")),
        None,
        False,
    ),
    "non_numeric_fte": (csv_bytes(with_row(1, fte="full time")), None, False),
    "non_integer_performance_rating": (csv_bytes(with_row(1, performance_rating="3.5")), None, False),
    "vendor_job_levels": (
        csv_bytes([employee_row(n, job_level=level) for n, level in enumerate(VENDOR_JOB_LEVELS, 1)]),
        None,
        True,
    ),
    "unmapped_job_level": (csv_bytes(with_row(2, job_level="Wizard")), None, False),
    "control_rows_wrong": (csv_bytes(good_rows()), 6, False),
    "control_rows_right": (csv_bytes(good_rows()), 5, True),
    "header_only": (csv_bytes([]), None, False),
    "missing_required_column": (
        csv_bytes(good_rows(), [c for c in FEEDS["employees"].columns if c != "hire_date"]),
        None,
        False,
    ),
}
COMPENSATION = {
    "employee_id": "E000001",
    "effective_date": "2026-01-01",
    "change_type": "merit",
    "previous_base_salary": "50000.00",
    "new_base_salary": "51000.00",
    "currency": "GBP",
}
COMPENSATION_CASES = {
    "good": (compensation_bytes([COMPENSATION, COMPENSATION | {"employee_id": "E000002"}]), True),
    "repeated_line": (
        compensation_bytes([COMPENSATION, COMPENSATION | {"new_base_salary": "52000.00"}]),
        False,
    ),
    "empty_change_type": (compensation_bytes([COMPENSATION | {"change_type": ""}]), False),
    "negative_previous_salary": (compensation_bytes([COMPENSATION | {"previous_base_salary": "-1"}]), False),
}


def verdicts(dsn: str, data: bytes, feed_name: str, control_rows: int | None, tmp_path) -> tuple[bool, bool]:
    """(fast gate, row-level suite) verdicts on one staged file."""
    feed = FEEDS[feed_name]
    header = map_header(header_from_bytes(data, "utf-8", "test"), feed, {})
    checks = suites.FileChecks(control_rows, 5 if feed_name == "employees" else None, 0.5, 1.5, TYPES)
    outcomes = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        staged = stage_csv_stream(conn, ByteStream([data]), feed, header, "2026-01-12", "utf-8", "test")
        try:
            for suite, create, drop in (
                (suites.hris_metrics_suite, suites.create_metrics_table, suites.drop_metrics_table),
                (suites.hris_file_suite, suites.create_check_relation, suites.drop_check_relation),
            ):
                metrics_args = (TYPES,) if create is suites.create_metrics_table else ()
                relation = create(conn, staged, feed, header, "%Y-%m-%d", *metrics_args, JOB_LEVELS)
                try:
                    outcome = run_suite(
                        sqlalchemy_url(dsn=dsn),
                        suite(feed, header, checks, "%Y-%m-%d"),
                        data_asset=f"hris_{feed_name}_file",
                        batch_identifier="test",
                        table=(relation.schema, relation.table),
                        parameters=checks.parameters(),
                        data_docs_dir=tmp_path,
                    )
                finally:
                    drop(conn, relation)
                assert all(r["exception"] is None for r in outcome.results), outcome.results
                outcomes.append(outcome.success)
        finally:
            drop_staged(conn, staged)
    return outcomes[0], outcomes[1]


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_gate_agrees_with_the_row_level_suite_on_employee_files(warehouse_dsn, tmp_path, case):
    data, control_rows, expected = CASES[case]
    assert verdicts(warehouse_dsn, data, "employees", control_rows, tmp_path) == (expected, expected)


@pytest.mark.parametrize("case", sorted(COMPENSATION_CASES))
def test_fast_gate_agrees_with_the_row_level_suite_on_compensation_files(warehouse_dsn, tmp_path, case):
    data, expected = COMPENSATION_CASES[case]
    assert verdicts(warehouse_dsn, data, "compensation", None, tmp_path) == (expected, expected)


def test_numeric_pattern_matches_what_parse_numeric_text_accepts(warehouse_dsn):
    samples = ["1", "-1", "1.5", " 2.50 ", "1.", ".5", "1e3", "--1", "1,000", "", "  ", "-", "0.00", "\t1"]
    with psycopg.connect(warehouse_dsn) as conn:
        rows = conn.execute(
            "select value, core.parse_numeric_text(value) is not null, btrim(value) ~ %s"
            " from unnest(%s::text[]) as value",
            (suites.NUMERIC_TEXT, samples),
        ).fetchall()
    assert [(v, a) for v, a, _ in rows] == [(v, b) for v, _, b in rows]


def test_integer_pattern_matches_what_parse_integer_text_accepts(warehouse_dsn):
    samples = ["1", "-1", " 3 ", "03", "3.5", "1e3", "", " ", "-", "+1", "\t2", "123456789", "1234567890"]
    with psycopg.connect(warehouse_dsn) as conn:
        rows = conn.execute(
            "select value, core.parse_integer_text(value) is not null, btrim(value) ~ %s"
            " from unnest(%s::text[]) as value",
            (suites.INTEGER_TEXT, samples),
        ).fetchall()
    assert [(v, a) for v, a, _ in rows] == [(v, b) for v, _, b in rows]
