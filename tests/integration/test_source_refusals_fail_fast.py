"""A refused source or malformed connection settings fail the task at once, without Airflow's retries
(issue 22, point 10).

Real faults: a sample SFTP server (OpenSSH sshd, or asyncssh) that presents its own host key while the
connection pins another valid `ssh-ed25519` key; a `host_key` that is the server's key data without its key
type; a sample LMS answering 401 to a wrong password and a wrong bearer token. The DAGs run through
`dag.test()` with their real retries (2); a retried task would show as a second try (`run_dag`).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import asyncssh
import pytest

from turnover_signals.errors import SourceRefusedError
from turnover_signals.hris.ingest import hris_source, ingest_files

pytestmark = [pytest.mark.integration]
DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"


def run_dag(dag_id: str, logical_date: datetime, run_only: set[str]):
    """`dag.test()` of `dag_id`, running only the tasks in `run_only` (the others are marked successful);
    returns (task id -> task instance, seconds taken).

    The tasks keep their retries (2); only their retry delay is cut to a second, so that a task Airflow
    retries shows as a second try here instead of keeping the run waiting for minutes.
    """
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS_DIR / f"{dag_id}.py")).get_dag(dag_id)
    for task_id in run_only:
        task = dag.get_task(task_id)
        assert task.retries >= 2
        task.retry_delay, task.max_retry_delay = timedelta(seconds=1), timedelta(seconds=2)
    others = sorted(set(dag.task_ids) - run_only)
    started = time.monotonic()
    run = dag.test(logical_date=logical_date, mark_success_pattern=f"^({'|'.join(others)})$")
    return {ti.task_id: ti for ti in run.get_task_instances()}, time.monotonic() - started


def logged(capfd) -> str:
    """What the run wrote to the terminal (Airflow's task logs go there under `dag.test()`)."""
    out, err = capfd.readouterr()
    return out + err


def assert_failed_without_retry(ti) -> None:
    assert ti.state == "failed", f"{ti.task_id} is {ti.state}, not failed"
    assert ti.try_number == 1, f"{ti.task_id} was tried {ti.try_number} times"


@pytest.fixture
def hris_settings(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_VAR_TURNOVER_SIGNALS",
        json.dumps({"hris": {"landing_dir": str(tmp_path / "landing"), "wait_for_files_minutes": 0}}),
    )


def pin_host_key(monkeypatch, sftp_server, host_key: str) -> None:
    connection = sftp_server.airflow_connection()
    connection["extra"] = {**connection["extra"], "host_key": host_key}
    monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))


def another_valid_ed25519_key() -> str:
    """A well-formed `ssh-ed25519 AAAA...` public key that is not the server's."""
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode("ascii").strip()


def key_data_without_type(sftp_server) -> str:
    """The server's own host key, base64 only (what a copy from the middle of known_hosts gives)."""
    key_type, key_data = sftp_server.host_public_key.split()[:2]
    assert key_type == "ssh-ed25519"
    return key_data


@pytest.mark.slow
def test_a_host_key_that_is_not_the_servers_fails_wait_for_hris_files_without_retry(
    airflow_metadata_db, warehouse_dsn, sftp_server, hris_settings, monkeypatch, capfd
):
    pin_host_key(monkeypatch, sftp_server, another_valid_ed25519_key())

    tis, seconds = run_dag("hris_sftp_ingest", datetime(2026, 3, 2, 6, tzinfo=UTC), {"wait_for_hris_files"})

    assert_failed_without_retry(tis["wait_for_hris_files"])
    assert "the server's host key is not the one pinned" in logged(capfd)
    assert seconds < 120  # the refusal is immediate: no attempts with backoff either


@pytest.mark.slow
def test_a_host_key_without_its_key_type_fails_wait_for_hris_files_without_retry(
    airflow_metadata_db, warehouse_dsn, sftp_server, hris_settings, monkeypatch, capfd
):
    pin_host_key(monkeypatch, sftp_server, key_data_without_type(sftp_server))

    tis, _ = run_dag("hris_sftp_ingest", datetime(2026, 3, 2, 6, tzinfo=UTC), {"wait_for_hris_files"})

    assert_failed_without_retry(tis["wait_for_hris_files"])
    assert "ssh-ed25519 key without its key type" in logged(capfd)


@pytest.mark.parametrize("pinned", ["another server's key", "key data without its type"])
def test_ingest_hris_files_fails_without_retry_at_the_task_boundary(
    warehouse_dsn, sftp_server, hris_sftp_connection, hris_settings, monkeypatch, pinned
):
    """The ingest task opens the server too (its control file, then the stream)."""
    from airflow.sdk.exceptions import AirflowFailException

    from turnover_signals.airflow_tasks import load_stage_config, run_for_stage

    pending = hris_source(load_stage_config("loader")).list_feed_files()  # the right key: a real listing
    assert pending
    if pinned == "another server's key":
        pin_host_key(monkeypatch, sftp_server, another_valid_ed25519_key())
    else:
        pin_host_key(monkeypatch, sftp_server, key_data_without_type(sftp_server))
    started = time.monotonic()
    with pytest.raises(AirflowFailException) as raised:
        run_for_stage("loader", partial(ingest_files, [pending[0].to_dict()]), with_run=False)
    assert isinstance(raised.value.__cause__, SourceRefusedError)
    assert "runbook-sftp-host-key" in str(raised.value)
    assert time.monotonic() - started < 30  # no download attempts with backoff either


@pytest.mark.parametrize(
    ("connection_id", "field", "task_id"),
    [
        ("lms_api", "password", "extract_lms_statements"),
        ("lms_directory", "password", "extract_lms_users"),
    ],
)
@pytest.mark.slow
def test_a_refused_lms_credential_fails_the_extraction_without_retry(
    airflow_metadata_db, warehouse_dsn, lms_server, monkeypatch, capfd, connection_id, field, task_id
):
    for name, value in lms_server.airflow_connections_env().items():
        monkeypatch.setenv(name, value)
    connection = lms_server.airflow_connections()[connection_id]
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{connection_id.upper()}", json.dumps({**connection, field: "not-the-password"})
    )

    tis, _ = run_dag("lms_api_ingest", datetime(2026, 3, 2, 6, 10, tzinfo=UTC), {task_id})

    assert_failed_without_retry(tis[task_id])
    text = logged(capfd)
    assert f"'{connection_id}'" in text and "401" in text
