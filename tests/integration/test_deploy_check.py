"""The post-install check (`python -m turnover_signals.deploy.check`) against the real PostgreSQL, the sample
SFTP and LMS servers, and connections given as AIRFLOW_CONN_* variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from turnover_signals.deploy.check import main
from turnover_signals.deploy.warehouse_logins import create_stage_login

REPO_ROOT = Path(__file__).resolve().parents[2]
PSEUDONYM_KEY = "pseudonym-key-" + "k" * 40
PGP_PASSPHRASE = "pgp-passphrase-" + "p" * 30


def login_url(dsn: str, login: str) -> str:
    """`dsn` (a URL) for another login, as an Airflow URI; no password: the test server trusts local
    logins."""
    scheme, rest = dsn.split("://", 1)
    return f"postgres://{login}@{rest.rpartition('@')[2]}"


@pytest.fixture
def complete_setup(monkeypatch, tmp_path, warehouse_dsn, sftp_server, lms_server_factory) -> dict[str, str]:
    """Every connection the bundle needs, a login per stage, a storage base: conn_id -> its secret."""
    suffix = uuid.uuid4().hex[:8]
    logins = {name: f"ts_check_{name}_{suffix}" for name in ("loader", "transformer", "quality_reader")}
    with psycopg.connect(warehouse_dsn, autocommit=True) as admin:
        for stage_name, login in logins.items():
            create_stage_login(admin, login, stage_name)
            monkeypatch.setenv(
                f"AIRFLOW_CONN_WAREHOUSE_{stage_name.upper()}", login_url(warehouse_dsn, login)
            )
    lms = lms_server_factory()
    for name, value in {**sftp_server.airflow_connection_env(), **lms.airflow_connections_env()}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANALYTICS_PSEUDONYM", json.dumps({"conn_type": "generic", "password": PSEUDONYM_KEY})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_HRIS_PGP",
        json.dumps({"conn_type": "generic", "password": PGP_PASSPHRASE, "extra": {"private_key": "-"}}),
    )
    storage = tmp_path / "storage"
    storage.mkdir()
    monkeypatch.setenv(
        "AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps({"storage": {"base_url": storage.as_uri()}})
    )
    monkeypatch.delenv("TURNOVER_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("TURNOVER_STORAGE_BASE_URL", raising=False)
    login, password = lms.xapi_credentials
    yield {"lms_api": password, "lms_directory": lms.scim_token, "analytics_pseudonym": PSEUDONYM_KEY}
    with psycopg.connect(warehouse_dsn, autocommit=True) as admin:
        for login in logins.values():
            admin.execute(sql.SQL("drop owned by {}").format(sql.Identifier(login)))
            admin.execute(sql.SQL("drop role {}").format(sql.Identifier(login)))


def run_check(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def line_of(output: str, check: str) -> str:
    return next(line for line in output.splitlines() if line.split(":", 1)[0].split(None, 1)[-1] == check)


def test_a_complete_setup_passes_every_check(complete_setup):
    # as a platform engineer runs it: a separate process, --connect, machine-readable
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "plugins")}
    finished = subprocess.run(
        [sys.executable, "-m", "turnover_signals.deploy.check", "--connect", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = json.loads(finished.stdout)
    not_ok = [check for check in report["checks"] if check["status"] != "OK"]
    assert report["ok"] and not not_ok, not_ok
    names = {check["check"] for check in report["checks"]}
    assert {
        "warehouse warehouse_postgres",
        "warehouse stage loader (warehouse_loader)",
        "sftp host key (hris_sftp)",
        "sftp listing (hris_sftp)",
        "storage round trip",
        "lrs (lms_api)",
        "scim directory (lms_directory)",
    } <= names


def test_a_missing_connection_fails_naming_it(complete_setup, monkeypatch, capsys):
    monkeypatch.delenv("AIRFLOW_CONN_LMS_DIRECTORY")

    code, output = run_check(capsys)

    assert code == 1
    assert line_of(output, "connection lms_directory").startswith("FAIL")
    assert "AIRFLOW_CONN_LMS_DIRECTORY" in line_of(output, "connection lms_directory")


@pytest.mark.parametrize(
    "unpinned",
    [{"host_key": None}, {"no_host_key_check": True}],
    ids=["no host key", "host key check switched off"],
)
def test_an_unpinned_sftp_host_key_fails(complete_setup, monkeypatch, capsys, sftp_server, unpinned):
    connection = sftp_server.airflow_connection()
    connection["extra"] = {k: v for k, v in {**connection["extra"], **unpinned}.items() if v is not None}
    monkeypatch.setenv("AIRFLOW_CONN_HRIS_SFTP", json.dumps(connection))

    code, output = run_check(capsys)

    assert code == 1
    assert line_of(output, "sftp host key (hris_sftp)").startswith("FAIL")


def test_a_warehouse_behind_on_migrations_warns(complete_setup, warehouse_dsn, capsys):
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            "delete from audit.schema_migration where version = (select max(version) from "
            "audit.schema_migration)"
        )

    code, output = run_check(capsys)

    assert code == 0, output
    warehouse = line_of(output, "warehouse warehouse_postgres")
    assert warehouse.startswith("WARN") and "behind" in warehouse and "1 pending" in warehouse


def test_no_secret_appears_in_the_output(complete_setup, monkeypatch, capsys):
    # wrong LMS credentials make the clients fail: error paths must not leak what they carry either
    connection = json.loads(os.environ["AIRFLOW_CONN_LMS_API"])
    connection["password"] = "wrong-password-" + uuid.uuid4().hex
    monkeypatch.setenv("AIRFLOW_CONN_LMS_API", json.dumps(connection))
    directory = json.loads(os.environ["AIRFLOW_CONN_LMS_DIRECTORY"])
    directory["password"] = "wrong-token-" + uuid.uuid4().hex
    monkeypatch.setenv("AIRFLOW_CONN_LMS_DIRECTORY", json.dumps(directory))

    code = main(["--connect"])
    text = capsys.readouterr()
    main(["--connect", "--json"])
    as_json = capsys.readouterr()

    assert code == 1 and line_of(text.out, "lrs (lms_api)").startswith("FAIL")
    assert line_of(text.out, "scim directory (lms_directory)").startswith("FAIL")
    printed = text.out + text.err + as_json.out + as_json.err
    for secret in [connection["password"], directory["password"], *complete_setup.values(), PGP_PASSPHRASE]:
        assert secret not in printed
