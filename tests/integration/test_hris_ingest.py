"""HRIS over SFTP: real sshd, real PostgreSQL, real Great Expectations gate."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

import asyncssh
import paramiko
import pytest

from tests.integration.hris_helpers import (
    FIXTURES,
    compensation_bytes,
    control_of,
    csv_bytes,
    employee_row,
    query,
    table_snapshot,
    write_feed_file,
)
from turnover_demo.sample_servers.sftp_server import SftpSampleServer
from turnover_signals.config import ConfigError, load_config
from turnover_signals.errors import BadInputError, SourceRefusedError, SourceUnavailableError
from turnover_signals.hris.contract import EMPLOYEE_COLUMNS
from turnover_signals.hris.history import build_employee_history
from turnover_signals.hris.ingest import (
    ingest_file,
    list_pending_files,
    summarize_ingest,
    survey_remote_files,
    wait_for_pending_files,
)
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration
RUN = RunIdentity(dag_id="hris_sftp_ingest", run_id="test-run", task_id="ingest_hris_files", try_number=1)


@pytest.fixture
def config(tmp_path):
    overrides = {
        "hris": {
            "landing_dir": str(tmp_path / "landing"),
            "download_max_backoff_seconds": 0.2,
            # a file without a control file is taken once two listings this far apart agree
            "stable_listing_seconds": 0.2,
        }
    }
    return load_config(overrides, use_variable=False)


def deliver(server: SftpSampleServer, directory: Path, name: str, data: bytes, control=True) -> None:
    write_feed_file(directory, name, data, control)
    server.sync()


def run_pipeline(config, dsn):
    """What one DAG run does: ingest every pending file in date order, then rebuild history."""
    results, errors = [], []
    for remote in list_pending_files(config, dsn):
        try:
            results.append(ingest_file(remote, config, RUN, dsn))
        except BadInputError as exc:
            errors.append(exc)
    build_employee_history(config, dsn)
    return results, errors


def five_employees(**changes):
    rows = [employee_row(n) for n in range(1, 6)]
    for n, overrides in changes.items():
        rows[int(n[1:]) - 1].update(overrides)
    return rows


def test_snapshots_and_compensation_load_into_point_in_time_history(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260112.csv",
        csv_bytes(five_employees(e3={"job_level": "4", "job_role": "Senior Analyst"})[:4]),
    )
    deliver(
        sftp_drop,
        hris_dir,
        "compensation_20260112.csv",
        compensation_bytes(
            [
                {
                    "employee_id": "E000003",
                    "effective_date": "2026-01-10",
                    "change_type": "promotion",
                    "previous_base_salary": "50003.00",
                    "new_base_salary": "56000.00",
                    "currency": "GBP",
                },
            ]
        ),
    )
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == []
    assert [(r["file_name"], r["status"], r["rows_loaded"]) for r in results] == [
        ("employees_20260105.csv", "loaded", 5),
        ("compensation_20260112.csv", "loaded", 1),
        ("employees_20260112.csv", "loaded", 4),
    ]
    manifest = query(
        warehouse_dsn,
        "select file_name, status, size_bytes > 0, length(sha256), rows_loaded, dag_id, try_number from "
        "audit.file_manifest order by 1",
    )
    assert manifest == [
        ("compensation_20260112.csv", "loaded", True, 64, 1, "hris_sftp_ingest", 1),
        ("employees_20260105.csv", "loaded", True, 64, 5, "hris_sftp_ingest", 1),
        ("employees_20260112.csv", "loaded", True, 64, 4, "hris_sftp_ingest", 1),
    ]
    history = query(
        warehouse_dsn,
        "select employee_id, valid_from::text, valid_to::text, closed_by, job_level from "
        "core.employee_history order by 1, 2",
    )
    assert ("E000003", "2026-01-05", "2026-01-12", "attribute_change", 3) in history
    assert ("E000003", "2026-01-12", None, None, 4) in history
    # E000005 vanished from the second full snapshot: closed and flagged, never deleted
    assert ("E000005", "2026-01-05", "2026-01-12", "absent_from_snapshot", 3) in history
    assert ("E000001", "2026-01-05", None, None, 3) in history
    known = query(warehouse_dsn, "select bool_and(known_at is not null) from core.employee_history")
    assert known == [(True,)]
    comp = query(
        warehouse_dsn,
        "select employee_id, change_type, new_base_salary::text, change_pct::text from "
        "core.compensation_event",
    )
    assert comp == [("E000003", "promotion", "56000.00", "11.9933")]
    validations = query(warehouse_dsn, "select suite_name, success from audit.validation_result order by 1")
    assert validations == [
        ("hris_compensation_file", True),
        ("hris_employees_file", True),
        ("hris_employees_file", True),
    ]
    # the landed copy is kept by sha256 for rebuilds and audits
    assert len(list(Path(config["hris"]["landing_dir"]).rglob("*employees_20260105.csv"))) == 1


def test_rerunning_everything_changes_nothing(sftp_drop, hris_dir, config, warehouse_dsn):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    first_pending = list_pending_files(config, warehouse_dsn)
    for remote in first_pending:
        ingest_file(remote, config, RUN, warehouse_dsn)
    build_employee_history(config, warehouse_dsn)
    before = table_snapshot(warehouse_dsn)
    # a cleared task reruns with the same mapped input; the history build reruns too
    for remote in first_pending:
        result = ingest_file(remote, config, RUN, warehouse_dsn)
        assert result["note"] == "already recorded"
    build_employee_history(config, warehouse_dsn)
    assert list_pending_files(config, warehouse_dsn) == []
    assert table_snapshot(warehouse_dsn) == before


def open_ssh_connections() -> set[paramiko.Transport]:
    """SSH connections this process holds open (paramiko runs one transport thread per connection)."""
    return {
        thread
        for thread in threading.enumerate()
        if isinstance(thread, paramiko.Transport) and thread.is_active()
    }


def test_an_ingest_leaves_no_ssh_connection_open(sftp_drop, hris_dir, config, warehouse_dsn):
    # the listing, the control file and the download each connect; a vendor's server may cap sessions
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    deliver(sftp_drop, hris_dir, "employees_20260106.csv", csv_bytes(five_employees()))
    before = open_ssh_connections()  # another test's connection may close meanwhile: only new ones count
    results, errors = run_pipeline(config, warehouse_dsn)
    assert len(results) == 2 and not errors
    assert open_ssh_connections() - before == set()


def test_same_bytes_under_another_name_is_a_recorded_duplicate(sftp_drop, hris_dir, config, warehouse_dsn):
    data = csv_bytes(five_employees())
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", data)
    run_pipeline(config, warehouse_dsn)
    deliver(sftp_drop, hris_dir, "employees_20260106.csv", data)
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == []
    assert [(r["file_name"], r["status"]) for r in results] == [("employees_20260106.csv", "duplicate")]
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(5,)]


def test_a_different_file_for_a_loaded_date_is_a_correction(sftp_drop, hris_dir, config, warehouse_dsn):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    run_pipeline(config, warehouse_dsn)
    first_sha = query(warehouse_dsn, "select sha256 from audit.file_manifest")[0][0]
    for entry in hris_dir.iterdir():
        entry.unlink()
    # the vendor re-exports the same date under another name with one salary fixed
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260105.csv",
        csv_bytes(five_employees(e2={"base_salary": "99000.00"})),
    )
    # Same name and size: only the modification time (whole seconds over SFTP) tells the listing
    # it is a new delivery, and a fast first run can finish within the same second.
    corrected = hris_dir / "employees_20260105.csv"
    later = corrected.stat().st_mtime + 60
    for written in (corrected, hris_dir / "employees_20260105.csv.ctl"):  # the control file written last
        os.utime(written, (later, later))
    sftp_drop.sync()
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [] and results[0]["superseded"] == ["employees_20260105.csv"]
    statuses = dict(query(warehouse_dsn, "select sha256, status from audit.file_manifest"))
    assert statuses[first_sha] == "superseded"
    assert sorted(statuses.values()) == ["loaded", "superseded"]
    salary = query(
        warehouse_dsn, "select base_salary::text from core.employee_history where employee_id = 'E000002'"
    )
    assert salary == [("99000.00",)]


@pytest.mark.parametrize(
    ("fixture_name", "encoding", "expected_names"),
    [
        ("employees_bom.csv", "utf-8", {"José", "Zoë", "Lars"}),
        ("employees_cp1252.csv", "cp1252", {"José", "Zoë", "Lars"}),
    ],
)
def test_bom_and_windows_1252_files_load(
    sftp_drop, hris_dir, config, warehouse_dsn, fixture_name, encoding, expected_names
):
    config["hris"]["encoding"] = encoding
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260105.csv",
        (FIXTURES / fixture_name).read_bytes(),
        control=False,
    )
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [] and results[0]["status"] == "loaded"
    names = {n for (n,) in query(warehouse_dsn, "select first_name from core.employee_history")}
    assert expected_names <= names
    # the BOM never sticks to the first column name
    assert query(warehouse_dsn, "select count(*) from core.employee_history where employee_id like 'E%'") == [
        (5,)
    ]


def test_quoted_commas_quotes_newlines_and_sql_text_are_stored_verbatim(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260105.csv",
        (FIXTURES / "employees_quoted.csv").read_bytes(),
        control=False,
    )
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == []
    rows = dict(query(warehouse_dsn, "select employee_id, job_role from raw.hris_employee_snapshot"))
    assert rows["E000002"] == 'Engineer, Data "Platform"'
    assert rows["E000003"] == "Analyst\r\nFinance, FP&A"
    names = dict(query(warehouse_dsn, "select employee_id, first_name from raw.hris_employee_snapshot"))
    assert names["E000005"] == "Robert'); DROP TABLE raw.hris_employee_snapshot;--"


def test_extra_columns_are_accepted_and_recorded(sftp_drop, hris_dir, config, warehouse_dsn):
    columns = [*csv_bytes([]).decode().strip().split(","), "Badge Colour"]
    rows = [employee_row(n) | {"Badge Colour": "blue"} for n in range(1, 4)]
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(rows, columns))
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [] and results[0]["rows_loaded"] == 3
    assert query(warehouse_dsn, "select extra_columns from audit.file_manifest") == [(["Badge Colour"],)]


def test_vendor_headers_map_onto_canonical_names_by_configuration(sftp_drop, hris_dir, config, warehouse_dsn):
    workday = {
        "Employee_ID": "employee_id",
        "Worker SSO": "sso_guid",
        "Primary Work Email": "work_email",
        "Legal First Name": "first_name",
        "Legal Last Name": "last_name",
        "Hire Date": "hire_date",
        "Termination Date": "termination_date",
        "Termination Category": "termination_type",
        "Worker Status": "employment_status",
        "Compensation Base": "base_salary",
    }
    config["hris"]["column_mapping"]["employees"] = workday
    config["hris"]["date_format"] = "%m/%d/%Y"
    reverse = {v: k for k, v in workday.items()}
    rows = [
        {reverse.get(k, k): v for k, v in employee_row(n, hire_date="01/06/2020").items() if k in reverse}
        for n in range(1, 4)
    ]
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(rows, list(workday)))
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [], errors
    assert query(warehouse_dsn, "select distinct hire_date::text from core.employee_history") == [
        ("2020-01-06",)
    ]


def _assert_quarantined(warehouse_dsn, errors, file_name, *fragments):
    assert len(errors) == 1
    message = str(errors[0])
    assert file_name in message and "Next step" in message and "runbook" in message
    for fragment in fragments:
        assert fragment in message, message
    status, reason = query(
        warehouse_dsn, "select status, reason from audit.file_manifest where file_name = %s", (file_name,)
    )[0]
    assert status == "quarantined" and reason
    assert query(
        warehouse_dsn, "select count(*) from information_schema.tables where table_schema = 'staging'"
    ) == [(0,)]


BAD_FILES = {
    "truncated": (lambda: (FIXTURES / "employees_truncated.csv").read_bytes(), False, "malformed"),
    "empty": (lambda: b"", False, "empty"),
    "missing_required_column": (
        lambda: csv_bytes(
            [employee_row(1)], [c for c in csv_bytes([]).decode().strip().split(",") if c != "hire_date"]
        ),
        True,
        "required columns are present",
    ),
    "renamed_required_column": (
        lambda: csv_bytes([employee_row(1)]).replace(b"employee_id,", b"emp_number,", 1),
        True,
        "required columns",
    ),
    "duplicate_employee_id": (
        lambda: csv_bytes([employee_row(1), employee_row(2), employee_row(2)]),
        True,
        "employee_id is unique",
    ),
    "unparseable_date": (
        lambda: csv_bytes([employee_row(1), employee_row(2, hire_date="2026-02-31")]),
        True,
        "hire_date parses as a date",
    ),
    "hire_after_termination": (
        lambda: csv_bytes(
            [
                employee_row(
                    1,
                    termination_date="2019-01-01",
                    termination_type="Voluntary",
                    employment_status="Terminated",
                )
            ]
        ),
        True,
        "hire_date is on or before termination_date",
    ),
    "unknown_termination_type": (
        lambda: csv_bytes([employee_row(1, termination_date="2026-01-01", termination_type="Quit?")]),
        True,
        "termination_type is one of",
    ),
    "bad_email": (
        lambda: csv_bytes([employee_row(1, work_email="not-an-email")]),
        True,
        "work_email looks like",
    ),
    "negative_salary": (
        lambda: csv_bytes([employee_row(1, base_salary="-5.00")]),
        True,
        "base_salary is not negative",
    ),
    # Each typed column: a value the history could not type fails the gate instead of becoming a null.
    "unparseable_termination_date": (
        lambda: csv_bytes([employee_row(1, termination_date="2026-02-30", termination_type="Voluntary")]),
        True,
        "termination_date parses as a date",
    ),
    "non_numeric_salary": (
        lambda: csv_bytes([employee_row(1, base_salary="50k")]),
        True,
        "base_salary is a number",
    ),
    "non_numeric_fte": (lambda: csv_bytes([employee_row(1, fte="full time")]), True, "fte is a number"),
    "non_integer_performance_rating": (
        lambda: csv_bytes([employee_row(1, performance_rating="3.5")]),
        True,
        "performance_rating is a whole number",
    ),
    "control_rows_wrong": (
        lambda: csv_bytes([employee_row(1), employee_row(2)]),
        {"rows": 3},
        "row count equals the control file",
    ),
    "control_sha_wrong": (
        lambda: csv_bytes([employee_row(1)]),
        {"rows": 1, "sha256": "0" * 64},
        "differs from the control file",
    ),
    # one 50 MB line and no line end anywhere: once a raw `_csv.Error: field larger than field limit`
    "one_50_mb_line_without_a_line_end": (
        lambda: b"employee_id," + b"x" * (50 * 1024 * 1024),
        False,
        "line 1 (the header) has no line end within its first 16 MiB",
    ),
    "invalid_utf8_in_a_data_row": (
        lambda: csv_bytes([employee_row(1), employee_row(2, first_name="Jos\u00e9")], encoding="cp1252"),
        False,
        "line 3 (a data row) is not valid utf-8",
    ),
    "invalid_utf8_in_the_header": (
        lambda: csv_bytes([employee_row(1)], [*EMPLOYEE_COLUMNS, "Pr\u00e9nom"], encoding="cp1252"),
        False,
        "line 1 (the header) is not valid utf-8",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_are_quarantined_and_last_good_data_stays_served(
    sftp_drop, hris_dir, config, warehouse_dsn, case
):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    run_pipeline(config, warehouse_dsn)
    good = table_snapshot(warehouse_dsn)
    make, control, fragment = BAD_FILES[case]
    deliver(sftp_drop, hris_dir, "employees_20260112.csv", make(), control=control)
    _results, errors = run_pipeline(config, warehouse_dsn)
    _assert_quarantined(warehouse_dsn, errors, "employees_20260112.csv", fragment)
    after = table_snapshot(warehouse_dsn)
    for table in ("raw_employees", "employee_history", "compensation_event"):
        assert after[table] == good[table], table
    # rerunning the failed task fails again with the same reason and writes nothing new
    remote = {"name": "employees_20260112.csv"}
    listed = [r for r in list_pending_files(config, warehouse_dsn) if r["name"] == remote["name"]]
    assert listed == []  # a quarantined delivery is not picked up again until it changes
    assert table_snapshot(warehouse_dsn) == after


def test_vendor_job_levels_land_as_ordinals_with_the_vendor_text_kept(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    levels = {"e1": "L3", "e2": "P4", "e3": "IC4", "e4": "M2", "e5": "Senior"}
    rows = [
        *five_employees(**{n: {"job_level": level} for n, level in levels.items()}),
        employee_row(6, job_level="3"),
    ]
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(rows))
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [] and [r["status"] for r in results] == ["loaded"]
    history = query(
        warehouse_dsn,
        "select employee_id, job_level, job_level_raw, job_level_label from core.employee_history order by 1",
    )
    assert history == [
        ("E000001", 3, "L3", "individual contributor"),
        ("E000002", 4, "P4", "individual contributor"),
        ("E000003", 4, "IC4", "individual contributor"),
        ("E000004", 6, "M2", "senior manager"),
        ("E000005", 4, "Senior", "senior"),
        ("E000006", 3, "3", None),
    ]


def test_an_unmapped_job_level_quarantines_the_file_naming_the_value(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260105.csv",
        csv_bytes(five_employees(e2={"job_level": "Wizard"})),
    )
    results, errors = run_pipeline(config, warehouse_dsn)
    assert results == []
    _assert_quarantined(
        warehouse_dsn, errors, "employees_20260105.csv", "job_level maps to an ordinal through", "'Wizard'"
    )
    assert "'Wizard'" in query(warehouse_dsn, "select reason from audit.file_manifest")[0][0]
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(0,)]
    assert query(warehouse_dsn, "select count(*) from core.employee_history") == [(0,)]


def test_a_job_level_the_mapping_no_longer_maps_stops_the_history_build(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260105.csv",
        csv_bytes(five_employees(e3={"job_level": "L3"})),
    )
    run_pipeline(config, warehouse_dsn)
    before = table_snapshot(warehouse_dsn)
    # the file passed the gate; then the L/P/IC rule is taken out of the configuration
    config["hris"]["job_level_mapping"]["patterns"] = [{"pattern": "(\\d+)", "ordinal": "\\1"}]
    with pytest.raises(ConfigError, match="gives no ordinal to job level.s. 'L3'"):
        build_employee_history(config, warehouse_dsn)
    assert table_snapshot(warehouse_dsn) == before


def test_volume_guard_stops_a_snapshot_that_shrank(sftp_drop, hris_dir, config, warehouse_dsn):
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260105.csv",
        csv_bytes([employee_row(n) for n in range(1, 21)]),
    )
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260112.csv",
        csv_bytes([employee_row(n) for n in range(1, 6)]),
    )
    _results, errors = run_pipeline(config, warehouse_dsn)
    _assert_quarantined(warehouse_dsn, errors, "employees_20260112.csv", "volume guard", "20 rows")


def test_the_demo_summary_says_what_was_loaded_and_what_was_quarantined(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    import psycopg

    from turnover_demo.demo import summarize_hris

    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260105.csv",
        csv_bytes([employee_row(n) for n in range(1, 21)]),
    )
    run_pipeline(config, warehouse_dsn)
    with psycopg.connect(warehouse_dsn) as conn:
        assert "  quarantined: none (every delivered file passed its gate)" in summarize_hris(conn)
    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260112.csv",
        csv_bytes([employee_row(n) for n in range(1, 6)]),
    )
    run_pipeline(config, warehouse_dsn)
    with psycopg.connect(warehouse_dsn) as conn:
        lines = summarize_hris(conn)
    assert any(
        line.split()[:3] == ["employees", "loaded", "1"] and "20 rows loaded" in line for line in lines
    )
    assert any(
        line.startswith("  QUARANTINED employees_20260112.csv: ") and "volume guard" in line for line in lines
    )
    assert not any("quarantined: none" in line for line in lines)


def test_rerun_of_a_quarantined_file_fails_again_without_writing(sftp_drop, hris_dir, config, warehouse_dsn):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes([employee_row(1), employee_row(1)]))
    pending = list_pending_files(config, warehouse_dsn)
    with pytest.raises(BadInputError, match="employee_id is unique"):
        ingest_file(pending[0], config, RUN, warehouse_dsn)
    before = table_snapshot(warehouse_dsn)
    with pytest.raises(BadInputError, match="employee_id is unique"):
        ingest_file(pending[0], config, RUN, warehouse_dsn)
    assert table_snapshot(warehouse_dsn) == before


def test_path_traversal_and_unknown_names_are_ignored(sftp_drop, hris_dir, config, warehouse_dsn):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    for name in ("..employees_20260106.csv", ".employees_20260107.csv", "employees_2026010.csv", "notes.txt"):
        (hris_dir / name).write_bytes(b"x")
    sftp_drop.sync()
    names = [f["name"] for f in list_pending_files(config, warehouse_dsn)]
    assert names == ["employees_20260105.csv"]


def test_sftp_server_down_is_retried_then_fails_clearly(sftp_drop, hris_dir, config, warehouse_dsn):
    config["hris"]["download_attempts"] = 2
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    pending = list_pending_files(config, warehouse_dsn)
    sftp_drop.stop()
    try:
        with pytest.raises(
            SourceUnavailableError, match=r"employees_20260105\.csv.*after 2 attempts.*Next step"
        ):
            ingest_file(pending[0], config, RUN, warehouse_dsn)
    finally:
        sftp_drop.start()
    assert query(warehouse_dsn, "select count(*) from audit.file_manifest") == [(0,)]
    # once the server is back the same task succeeds
    assert ingest_file(pending[0], config, RUN, warehouse_dsn)["status"] == "loaded"


def test_connection_dropped_mid_transfer_is_retried(sftp_drop, hris_dir, config, warehouse_dsn, monkeypatch):
    from turnover_signals.sources import sftp_hris

    deliver(
        sftp_drop,
        hris_dir,
        "employees_20260105.csv",
        csv_bytes([employee_row(n) for n in range(1, 2000)]),
    )
    pending = list_pending_files(config, warehouse_dsn)
    real_put, puts, drops = sftp_hris._ChunkChannel.put, {"n": 0}, {"n": 0}

    async def put_then_drop(self, chunk, consumer):
        # the server drops the session once the first blocks were streamed into COPY
        await real_put(self, chunk, consumer)
        puts["n"] += 1
        if puts["n"] == 2 and drops["n"] == 0:
            drops["n"] += 1
            assert sftp_drop.drop_connections() >= 1

    monkeypatch.setattr(sftp_hris._ChunkChannel, "put", put_then_drop)
    monkeypatch.setattr(sftp_hris, "STREAM_CHUNK_BYTES", 32 * 1024)
    result = ingest_file(pending[0], config, RUN, warehouse_dsn)
    assert drops["n"] == 1 and result["status"] == "loaded" and result["rows_loaded"] == 1999
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(1999,)]
    assert query(
        warehouse_dsn, "select count(*) from information_schema.tables where table_schema = 'staging'"
    ) == [(0,)]


def test_streamed_file_whose_sha256_differs_from_the_control_file_loads_nothing(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    # Well-formed but wrong: the file is COPYed under the control file's hash and only then found
    # to differ, so the staging transaction must roll back.
    data = csv_bytes([employee_row(n) for n in range(1, 3000)])
    wrong = "ab" * 32
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", data, control={"rows": 2999, "sha256": wrong})
    _results, errors = run_pipeline(config, warehouse_dsn)
    _assert_quarantined(warehouse_dsn, errors, "employees_20260105.csv", "differs from the control file")
    actual = hashlib.sha256(data).hexdigest()
    assert query(
        warehouse_dsn, "select sha256, control_sha256, size_bytes, rows_loaded from audit.file_manifest"
    ) == [(actual, wrong, len(data), 0)]
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(0,)]
    assert query(
        warehouse_dsn, "select count(*) from pg_class where relname like 'hris_employee_snapshot_%'"
    ) == [(0,)]
    assert list((Path(config["hris"]["landing_dir"])).rglob("*")) == []


def write_control(server: SftpSampleServer, directory: Path, name: str, data: bytes, mtime: float) -> None:
    """Write only the control file of `name` (declaring `data`), modified at `mtime`."""
    control = directory / (name + ".ctl")
    control.write_text(json.dumps(control_of(data)))
    os.utime(control, (mtime, mtime))
    server.sync()


def test_a_file_quarantined_for_its_control_file_loads_once_the_control_file_declares_it(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    name, data = "employees_20260105.csv", csv_bytes(five_employees())
    # the control file of another delivery (caught before the vendor rewrote it, or simply wrong)
    deliver(sftp_drop, hris_dir, name, data, control={"rows": 5, "sha256": "ab" * 32})
    _results, errors = run_pipeline(config, warehouse_dsn)
    _assert_quarantined(warehouse_dsn, errors, name, "differs from the control file")
    assert list_pending_files(config, warehouse_dsn) == []  # the same control file: the quarantine stands

    write_control(sftp_drop, hris_dir, name, data, time.time() + 5)  # the data file itself is untouched
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [] and [r["status"] for r in results] == ["loaded"]
    assert query(warehouse_dsn, "select status from audit.file_manifest") == [("loaded",)]
    assert query(warehouse_dsn, "select released_by, reason from audit.file_release") == [
        ("turnover_signals", "its control file now declares the file's sha256")
    ]
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(5,)]
    assert run_pipeline(config, warehouse_dsn) == ([], [])


def test_a_file_rewritten_after_its_control_file_waits_for_its_new_control_file(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    name = "employees_20260105.csv"
    first, corrected = csv_bytes(five_employees()), csv_bytes(five_employees(e3={"first_name": "Renamed"}))
    deliver(sftp_drop, hris_dir, name, first)
    assert [r["status"] for r in run_pipeline(config, warehouse_dsn)[0]] == ["loaded"]
    # the vendor re-delivers: the data file is rewritten, its control file not yet
    (hris_dir / name).write_bytes(corrected)
    os.utime(hris_dir / (name + ".ctl"), (time.time() - 60, time.time() - 60))
    sftp_drop.sync()
    survey = survey_remote_files(config, warehouse_dsn)
    assert survey.pending == []
    ((waiting_name, why),) = [(w.name, w.reason) for w in survey.waiting]
    assert waiting_name == name and "is older than the file" in why and "a delivery in progress" in why
    assert run_pipeline(config, warehouse_dsn) == ([], [])  # nothing quarantined meanwhile
    assert query(warehouse_dsn, "select count(*) from audit.file_manifest where status = 'quarantined'") == [
        (0,)
    ]
    # past hris.control_file_grace_minutes it is taken, and its control file judges it
    impatient = {**config, "hris": {**config["hris"], "control_file_grace_minutes": 0}}
    assert [remote["name"] for remote in list_pending_files(impatient, warehouse_dsn)] == [name]

    write_control(sftp_drop, hris_dir, name, corrected, time.time() + 5)
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [] and [r["status"] for r in results] == ["loaded"]
    assert query(warehouse_dsn, "select status from audit.file_manifest order by received_at") == [
        ("superseded",),
        ("loaded",),
    ]


def test_file_without_control_file_is_keyed_by_its_streamed_sha256(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    data = csv_bytes(five_employees())
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", data, control=False)
    results, errors = run_pipeline(config, warehouse_dsn)
    sha = hashlib.sha256(data).hexdigest()
    assert errors == [] and results[0]["status"] == "loaded" and results[0]["sha256"] == sha
    assert query(warehouse_dsn, "select distinct source_sha256 from raw.hris_employee_snapshot") == [(sha,)]
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(5,)]
    partition = query(
        warehouse_dsn,
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = 'raw.hris_employee_snapshot'::regclass",
    )
    assert partition == [(f"hris_employee_snapshot_{sha[:16]}",)]
    landed = list(Path(config["hris"]["landing_dir"]).rglob("*.csv"))
    assert len(landed) == 1 and landed[0].read_bytes() == data


def test_a_host_key_that_does_not_match_is_refused(
    sftp_drop, hris_dir, config, warehouse_dsn, monkeypatch, tmp_path
):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    impostor = SftpSampleServer(sftp_drop.root_dir, state_dir=tmp_path / "impostor")
    connection = json.loads(sftp_drop.airflow_connection_json())
    connection["extra"]["host_key"] = impostor.host_public_key
    monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))
    with pytest.raises(SourceRefusedError, match="host key"):
        list_pending_files(config, warehouse_dsn)


def test_a_connection_that_switches_host_key_checking_off_is_warned_about(
    sftp_drop, hris_dir, config, warehouse_dsn, monkeypatch, caplog
):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    connection = json.loads(sftp_drop.airflow_connection_json())
    del connection["extra"]["host_key"]
    connection["extra"]["no_host_key_check"] = True
    monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))
    with caplog.at_level("WARNING", logger="turnover_signals.sources.sftp_hris"):
        assert len(list_pending_files(config, warehouse_dsn)) == 1
    assert any("switches host key checking off (no_host_key_check)" in r.getMessage() for r in caplog.records)


def test_a_connection_that_sets_known_hosts_none_is_warned_about(
    sftp_drop, hris_dir, config, warehouse_dsn, monkeypatch, caplog
):
    connection = json.loads(sftp_drop.airflow_connection_json())
    del connection["extra"]["host_key"]
    connection["extra"]["known_hosts"] = "none"  # the provider's async hook then checks no host key
    monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))
    with caplog.at_level("WARNING", logger="turnover_signals.sources.sftp_hris"):
        with pytest.raises(SourceRefusedError, match="host key"):  # the listing still knows no key for it
            list_pending_files(config, warehouse_dsn)
    assert any("switches host key checking off (known_hosts none)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("host_key", ["impostor", "absent"])
def test_the_streamed_download_verifies_the_host_key_too(
    sftp_drop, hris_dir, config, warehouse_dsn, monkeypatch, tmp_path, host_key
):
    # The listing and the download use different clients (paramiko, asyncssh): each must refuse
    # a server whose key is not the pinned one, and without a pinned key or known_hosts entry.
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()), control=False)
    pending = list_pending_files(config, warehouse_dsn)
    connection = json.loads(sftp_drop.airflow_connection_json())
    if host_key == "impostor":
        impostor = SftpSampleServer(sftp_drop.root_dir, state_dir=tmp_path / "impostor")
        connection["extra"]["host_key"] = impostor.host_public_key
    else:
        del connection["extra"]["host_key"]
        monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts
    monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))
    with pytest.raises(SourceRefusedError, match="host key") as refused:
        ingest_file(pending[0], config, RUN, warehouse_dsn)
    assert isinstance(
        refused.value.__cause__, asyncssh.HostKeyNotVerifiable
    )  # refused at once by the async hook
    assert query(warehouse_dsn, "select count(*) from audit.file_manifest") == [(0,)]


@pytest.mark.parametrize(
    ("ciphers", "negotiated"), [(None, "aes128-gcm@openssh.com"), (["aes256-ctr"], "aes256-ctr")]
)
def test_the_streamed_download_prefers_aes_gcm_unless_the_connection_says_otherwise(
    sftp_drop, hris_dir, config, warehouse_dsn, monkeypatch, ciphers, negotiated
):
    from turnover_signals.sources import sftp_hris

    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()), control=False)
    pending = list_pending_files(config, warehouse_dsn)
    if ciphers:
        connection = json.loads(sftp_drop.airflow_connection_json())
        connection["extra"]["ciphers"] = ciphers
        monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))
    real_connect, seen = asyncssh.connect, []

    async def connect(**options):
        connection = await real_connect(**options)
        seen.append(connection.get_extra_info("send_cipher"))
        return connection

    monkeypatch.setattr(sftp_hris.asyncssh, "connect", connect)
    assert ingest_file(pending[0], config, RUN, warehouse_dsn)["status"] == "loaded"
    assert seen == [negotiated]


def test_encrypted_file_is_decrypted_with_the_key_from_a_connection(
    sftp_drop, hris_dir, config, warehouse_dsn, monkeypatch, tmp_path
):
    gnupg = pytest.importorskip("gnupg")
    if shutil.which("gpg") is None:
        pytest.skip("gpg binary not installed")
    home = tmp_path / "vendor-gnupg"
    home.mkdir(mode=0o700)
    gpg = gnupg.GPG(gnupghome=str(home))
    key = gpg.gen_key(
        gpg.gen_key_input(
            name_email="hris@northwind.example", passphrase="s3cret", key_type="RSA", key_length=2048
        )
    )
    armored_private = gpg.export_keys(key.fingerprint, secret=True, passphrase="s3cret")
    encrypted = gpg.encrypt(csv_bytes(five_employees()), key.fingerprint, always_trust=True, armor=False)
    assert encrypted.ok
    monkeypatch.setenv(
        "AIRFLOW_CONN_HRIS_PGP",
        json.dumps({"conn_type": "generic", "password": armored_private, "extra": {"passphrase": "s3cret"}}),
    )
    deliver(sftp_drop, hris_dir, "employees_20260105.csv.pgp", encrypted.data, control=False)
    results, errors = run_pipeline(config, warehouse_dsn)
    assert errors == [] and results[0]["status"] == "loaded" and results[0]["rows_loaded"] == 5


def test_a_bad_byte_in_a_data_row_names_its_line_and_never_blames_the_header(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    # the header (about 230 bytes) is fine; the first data row holds a Windows-1252 byte
    header = csv_bytes([])
    data = header + csv_bytes([employee_row(1, first_name="Jos\u00e9")], encoding="cp1252")[len(header) :]
    assert data.index(b"\xe9") > len(header)
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", data, control=False)
    _results, errors = run_pipeline(config, warehouse_dsn)
    _assert_quarantined(
        warehouse_dsn, errors, "employees_20260105.csv", "line 2 (a data row) is not valid utf-8"
    )
    [(reason,)] = query(warehouse_dsn, "select reason from audit.file_manifest")
    assert "header" not in reason


def test_a_50_mb_line_is_quarantined_with_its_hash_and_a_rerun_fails_the_same_way(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    data = b"employee_id,work_email," + b"z" * (50 * 1024 * 1024)
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", data, control=False)
    pending = list_pending_files(config, warehouse_dsn)
    with pytest.raises(BadInputError, match=r"employees_20260105\.csv: quarantined: line 1 \(the header\)"):
        ingest_file(pending[0], config, RUN, warehouse_dsn)
    assert query(warehouse_dsn, "select status, sha256, size_bytes, rows_read from audit.file_manifest") == [
        ("quarantined", hashlib.sha256(data).hexdigest(), len(data), 0)
    ]
    with pytest.raises(BadInputError, match="no line end"):  # the cleared task: the recorded reason again
        ingest_file(pending[0], config, RUN, warehouse_dsn)
    assert list_pending_files(config, warehouse_dsn) == []


def _rows(first: int, last: int) -> bytes:
    return csv_bytes([employee_row(n) for n in range(first, last + 1)])[len(csv_bytes([])) :]


def test_a_file_still_being_uploaded_is_not_taken_until_two_listings_agree(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    config["hris"]["stable_listing_seconds"] = 1.0
    path = hris_dir / "employees_20260105.csv"
    path.write_bytes(csv_bytes([]) + _rows(1, 20))  # the vendor's upload has reached a row boundary
    sftp_drop.sync()
    appended = []

    def vendor_keeps_writing(seconds):
        with open(path, "ab") as upload:  # the same file on the server grows between the two listings
            upload.write(_rows(21, 30))
        appended.append(seconds)
        time.sleep(seconds)

    survey = survey_remote_files(config, warehouse_dsn, sleep=vendor_keeps_writing)
    assert appended == [1.0] and survey.pending == []
    [waiting] = survey.waiting
    assert waiting.name == "employees_20260105.csv" and waiting.reason.startswith("still being written: ")
    assert query(warehouse_dsn, "select count(*) from audit.file_manifest") == [(0,)]
    with open(path, "ab") as upload:
        upload.write(_rows(31, 40))  # the upload ends
    sftp_drop.sync()
    pending = list_pending_files(config, warehouse_dsn)
    assert [(f["name"], f["size_bytes"]) for f in pending] == [
        ("employees_20260105.csv", path.stat().st_size)
    ]
    assert ingest_file(pending[0], config, RUN, warehouse_dsn)["rows_loaded"] == 40
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(40,)]


def test_a_feed_that_requires_its_control_file_waits_for_it(sftp_drop, hris_dir, config, warehouse_dsn):
    from airflow.sdk.exceptions import AirflowSkipException

    config["hris"]["require_control_file"] = {"employees": True, "compensation": False}
    config["hris"]["wait_for_files_minutes"] = 0
    data = csv_bytes(five_employees())
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", data, control=False)
    survey = survey_remote_files(config, warehouse_dsn)
    assert survey.pending == []
    assert [w.reason for w in survey.waiting] == [
        "no control file employees_20260105.csv.ctl yet, and hris.require_control_file.employees is true"
    ]
    notes = []
    with pytest.raises(
        AirflowSkipException, match=r"1 HRIS file\(s\) not taken yet: 'employees_20260105\.csv'"
    ):
        wait_for_pending_files(config, None, warehouse_dsn, note=notes.append)
    assert notes == [survey.note_lines()]
    # a compensation file (control file optional) is taken once stable; the employees file once its .ctl lands
    deliver(sftp_drop, hris_dir, "compensation_20260105.csv", compensation_bytes([]), control=False)
    assert [f["name"] for f in list_pending_files(config, warehouse_dsn)] == ["compensation_20260105.csv"]
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", data, control=True)
    names = [f["name"] for f in list_pending_files(config, warehouse_dsn)]
    assert names == ["compensation_20260105.csv", "employees_20260105.csv"]


ODD_NAMES = (
    "employees_20260106.csv;rm -rf ~",
    "..employees_20260107.csv",
    "employees_20260108.csv\n",
    "employees_2026-01-09.csv",
)


@contextlib.contextmanager
def records_of(logger_name: str):
    """The records `logger_name` emits inside the block, caught on the logger itself (Airflow may replace the
    root logger's handlers, and caplog's with them, when it configures logging mid-test)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def test_files_ignored_for_their_names_are_warned_about_escaped_and_counted(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    for name in ODD_NAMES:
        (hris_dir / name).write_bytes(csv_bytes(five_employees()))
    sftp_drop.sync()
    with records_of("turnover_signals.sources.sftp_hris") as records:
        survey = survey_remote_files(config, warehouse_dsn)
    assert [f.name for f in survey.pending] == ["employees_20260105.csv"]  # its .ctl is no ignored name
    [warning] = [r for r in records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert "4 entr(ies) ignored for their names" in message
    assert "'employees_20260108.csv\\n' (unsafe name: holds a control or unprintable character)" in message
    assert "'employees_20260106.csv;rm -rf ~' (unsafe name: holds a shell metacharacter)" in message
    assert "'..employees_20260107.csv' (unsafe name: hidden" in message
    assert "'employees_2026-01-09.csv' (matches no pattern of hris.file_patterns)" in message
    assert "\n" not in message and "runbook-hris-files-not-taken" in message
    results = [ingest_file(f.to_dict(), config, RUN, warehouse_dsn) for f in survey.pending]
    summary = summarize_ingest(results, survey.summary())
    assert summary["by_status"] == {"loaded": 1} and summary["ignored_names"] == 4
    assert (
        "'employees_20260108.csv\\n' (unsafe name: holds a control or unprintable character)"
        in (summary["ignored"])
    )


def test_a_name_that_is_not_utf8_is_reported_instead_of_failing_every_listing(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    # a Windows vendor's Latin-1 name: paramiko's own listing raised UnicodeDecodeError for the directory
    deliver(sftp_drop, hris_dir, "employees_20260105.csv", csv_bytes(five_employees()))
    with open(os.path.join(os.fsencode(hris_dir), b"employ\xe9s_20260106.csv"), "wb") as misnamed:
        misnamed.write(csv_bytes(five_employees()))
    sftp_drop.sync()
    survey = survey_remote_files(config, warehouse_dsn)
    assert [f.name for f in survey.pending] == ["employees_20260105.csv"]
    assert survey.summary()["ignored"] == ["'employ\\udce9s_20260106.csv' (unsafe name: not valid UTF-8)"]
