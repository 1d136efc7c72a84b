"""Faults of the HRIS fault campaign (issue 22) kept as regression tests: a loading process killed with
SIGKILL mid-COPY, the real sshd killed mid-download, and real bad files (a NUL byte, a 50 MB quoted field).
Real sshd, real PostgreSQL, real child processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.integration.hris_helpers import csv_bytes, employee_row, query, table_snapshot, write_feed_file
from turnover_demo.sample_servers.sftp_server import SftpSampleServer, child_pids
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError, SourceUnavailableError
from turnover_signals.hris.history import build_employee_history
from turnover_signals.hris.ingest import ingest_file, list_pending_files
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration
REPO_ROOT = Path(__file__).resolve().parents[2]
RUN = RunIdentity(dag_id="hris_sftp_ingest", run_id="fault-run", task_id="ingest_hris_files", try_number=1)
BIG_FILE_ROWS = 200_000
GOOD_FILE = "employees_20260105.csv"
BAD_FILE = "employees_20260112.csv"

# What one `ingest_hris_files` task does, in a process of its own that the test can kill.
INGEST_IN_A_CHILD = """
import json, sys
from turnover_signals.config import load_config
from turnover_signals.hris.ingest import ingest_file, list_pending_files
from turnover_signals.quality.gate import RunIdentity

config = load_config(json.loads(sys.argv[1]), use_variable=False)
run = RunIdentity(dag_id="hris_sftp_ingest", run_id="killed-run", task_id="ingest_hris_files", try_number=1)
for remote in list_pending_files(config, sys.argv[2]):
    ingest_file(remote, config, run, sys.argv[2])
"""


@pytest.fixture
def overrides(tmp_path) -> dict:
    return {
        "hris": {
            "landing_dir": str(tmp_path / "landing"),
            "download_max_backoff_seconds": 0.2,
            "stable_listing_seconds": 0.2,
        }
    }


@pytest.fixture
def config(overrides):
    return load_config(overrides, use_variable=False)


@pytest.fixture(scope="module")
def big_file() -> bytes:
    return csv_bytes([employee_row(n) for n in range(1, BIG_FILE_ROWS + 1)])


def deliver(server: SftpSampleServer, directory: Path, name: str, data: bytes, control=True) -> None:
    write_feed_file(directory, name, data, control)
    server.sync()


def load_everything(config, dsn) -> list[BadInputError]:
    """One DAG run: every pending file in date order, then the history build; the quarantine errors."""
    errors = []
    for remote in list_pending_files(config, dsn):
        try:
            ingest_file(remote, config, RUN, dsn)
        except BadInputError as exc:
            errors.append(exc)
    build_employee_history(config, dsn)
    return errors


def loaded_contents(dsn: str) -> dict[str, list[tuple]]:
    """The published tables and what the manifest says of each file, without when it happened."""
    tables = {
        name: rows
        for name, rows in table_snapshot(dsn).items()
        if name in ("raw_employees", "raw_compensation", "employee_history", "compensation_event")
    }
    tables["manifest"] = query(
        dsn,
        "select file_name, sha256, size_bytes, status, rows_loaded from audit.file_manifest order by 1, 2",
    )
    tables["staging_tables"] = staging_tables(dsn)
    return tables


def staging_tables(dsn: str) -> list[tuple]:
    return query(dsn, "select table_name from information_schema.tables where table_schema = 'staging'")


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def copy_progress(dsn: str) -> list[tuple]:
    """(pid, rows copied so far) of every COPY running in the database of `dsn`."""
    return query(
        dsn,
        "select pid, tuples_processed from pg_stat_progress_copy where datname = current_database()"
        " and tuples_processed > 0",
    )


def backend_gone(dsn: str, pid: int) -> bool:
    return query(dsn, "select count(*) from pg_stat_activity where pid = %s", (pid,)) == [(0,)]


@pytest.mark.slow
def test_a_loader_killed_mid_copy_leaves_nothing_and_its_rerun_equals_a_clean_load(
    sftp_drop, hris_dir, overrides, config, warehouse_dsn, make_warehouse, big_file, tmp_path
):
    deliver(sftp_drop, hris_dir, GOOD_FILE, big_file)
    child_tmp = tmp_path / "child-tmp"
    child_tmp.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-c", INGEST_IN_A_CHILD, json.dumps(overrides), warehouse_dsn],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'plugins'}:{REPO_ROOT}", "TMPDIR": str(child_tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        [(copying_pid, rows_copied)] = wait_for(
            lambda: [row for row in copy_progress(warehouse_dsn) if row[1] >= 20_000],
            timeout=60,
            what="the child's COPY to be under way",
        )
        os.kill(child.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        output = child.communicate(timeout=30)[0].decode(errors="replace")
    assert child.returncode == -signal.SIGKILL, output
    assert rows_copied < BIG_FILE_ROWS, "the COPY had finished before the kill"
    wait_for(lambda: backend_gone(warehouse_dsn, copying_pid), timeout=30, what="the orphaned COPY to end")

    # nothing partial: no rows, no staging table, no manifest row, no landed file
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(0,)]
    assert query(warehouse_dsn, "select count(*) from audit.file_manifest") == [(0,)]
    assert staging_tables(warehouse_dsn) == []
    assert not list(Path(config["hris"]["landing_dir"]).rglob("*.csv"))

    # the rerun takes the file again and converges to what a load never interrupted leaves
    assert [f["name"] for f in list_pending_files(config, warehouse_dsn)] == [GOOD_FILE]
    assert load_everything(config, warehouse_dsn) == []
    clean_dsn = make_warehouse()
    assert load_everything(config, clean_dsn) == []
    rerun = loaded_contents(warehouse_dsn)
    assert rerun["manifest"][0][3:] == ("loaded", BIG_FILE_ROWS)
    assert rerun == loaded_contents(clean_dsn)


def kill_sshd_and_every_session(server: SftpSampleServer) -> None:
    """SIGKILL the real sshd listener and every session process under it, as `kill -9` would."""
    listener = server._process
    assert server.backend == "sshd" and listener is not None
    for pid in [listener.pid, *child_pids(listener.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    listener.wait(timeout=10)


@pytest.mark.slow
def test_sshd_killed_mid_download_is_retried_then_unavailable_naming_the_file_and_a_rerun_converges(
    sftp_server_factory, monkeypatch, config, warehouse_dsn, make_warehouse, big_file
):
    server = sftp_server_factory(files={f"/outbound/hris/{GOOD_FILE}": big_file}, backend="sshd")
    for key, value in server.airflow_connection_env().items():
        monkeypatch.setenv(key, value)
    attempts = config["hris"]["download_attempts"]
    [pending] = list_pending_files(config, warehouse_dsn)
    outcome: dict[str, BaseException] = {}

    def ingest() -> None:
        try:
            ingest_file(pending, config, RUN, warehouse_dsn)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    downloading = threading.Thread(target=ingest, daemon=True)
    downloading.start()
    try:
        wait_for(lambda: copy_progress(warehouse_dsn), timeout=60, what="the download to stream into COPY")
        kill_sshd_and_every_session(server)
        downloading.join(timeout=120)
        assert not downloading.is_alive(), "the download never ended"
    finally:
        server.stop()
        server.start()  # the same port and keys, as after a restart of the service

    error = outcome.get("error")
    assert isinstance(error, SourceUnavailableError), error
    message = str(error)
    assert message.startswith(f"HRIS file {GOOD_FILE}: SFTP download failed after {attempts} attempts (")
    assert "Next step: check that the SFTP server is up" in message and "runbook-sftp-unavailable" in message
    assert query(warehouse_dsn, "select count(*) from audit.file_manifest") == [(0,)]
    assert query(warehouse_dsn, "select count(*) from raw.hris_employee_snapshot") == [(0,)]
    assert staging_tables(warehouse_dsn) == []

    assert load_everything(config, warehouse_dsn) == []
    clean_dsn = make_warehouse()
    assert load_everything(config, clean_dsn) == []
    assert loaded_contents(warehouse_dsn) == loaded_contents(clean_dsn)


def with_row_99(good: bytes, column: str, raw_value: bytes) -> bytes:
    """A good file with one more data row, whose `column` holds the given raw bytes."""
    row = csv_bytes([employee_row(99, **{column: "<value>"})]).splitlines()[1]
    return good + row.replace(b"<value>", raw_value) + b"\r\n"


def huge_quoted_date(megabytes: int) -> bytes:
    return b'"' + b"2020-01-06" * (megabytes * 1024 * 1024 // 10) + b'"'


BAD_FILES = {
    "a_nul_byte_in_a_data_row": (
        lambda good: with_row_99(good, "first_name", b"Nu\x00ll"),
        'line 7 (a data row) is not valid utf-8: invalid byte sequence for encoding "UTF8": 0x00',
    ),
    "a_50_mb_quoted_field": (
        lambda good: with_row_99(good, "hire_date", huge_quoted_date(50)),
        "hire_date parses as a date",
    ),
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("a_nul_byte_in_a_data_row"),
        pytest.param("a_50_mb_quoted_field", marks=pytest.mark.slow),
    ],
)
def test_a_bad_file_is_quarantined_with_its_reason_and_the_last_good_data_stays_served(
    sftp_drop, hris_dir, config, warehouse_dsn, case
):
    good = csv_bytes([employee_row(n) for n in range(1, 6)])
    deliver(sftp_drop, hris_dir, GOOD_FILE, good)
    assert load_everything(config, warehouse_dsn) == []
    served = loaded_contents(warehouse_dsn)
    make, fragment = BAD_FILES[case]
    deliver(sftp_drop, hris_dir, BAD_FILE, make(good), control=False)
    errors = load_everything(config, warehouse_dsn)
    assert [type(error) for error in errors] == [BadInputError]
    message = str(errors[0])
    assert BAD_FILE in message and fragment in message and "Next step" in message, message[:2000]
    [(status, reason)] = query(
        warehouse_dsn, "select status, reason from audit.file_manifest where file_name = %s", (BAD_FILE,)
    )
    assert status == "quarantined" and reason
    after = loaded_contents(warehouse_dsn)
    for table in ("raw_employees", "employee_history", "compensation_event", "staging_tables"):
        assert after[table] == served[table], table


def test_a_quarantine_reason_stays_short_however_long_the_failing_value(
    sftp_drop, hris_dir, config, warehouse_dsn
):
    good = csv_bytes([employee_row(n) for n in range(1, 6)])
    deliver(
        sftp_drop,
        hris_dir,
        GOOD_FILE,
        with_row_99(good, "hire_date", huge_quoted_date(2)),
        control=False,
    )
    [error] = load_everything(config, warehouse_dsn)
    [(reason,)] = query(
        warehouse_dsn, "select reason from audit.file_manifest where file_name = %s", (GOOD_FILE,)
    )
    assert "hire_date parses as a date" in reason
    assert len(reason) < 64 * 1024 and len(str(error)) < 64 * 1024
    [(stored_result,)] = query(
        warehouse_dsn, "select max(length(results::text)) from audit.validation_result"
    )
    assert stored_result < 64 * 1024
