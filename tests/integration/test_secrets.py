"""Secrets only ever come from Airflow connections: a run of the DAGs with fresh, random
credentials leaves none of them in the repository, the logs, XCom or the reports it produced."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import psycopg.sql
import pytest

from tests import postgres_service
from tests.databases import as_airflow_warehouse
from tests.integration.hris_helpers import csv_bytes, employee_row, write_feed_file
from tests.integration.test_lms_statements import statement
from tests.integration.test_lms_users_and_catalog import user
from turnover_demo.sample_servers.sftp_server import SftpSampleServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO_ROOT / "dags"
# What a committed secret looks like, whatever its value.
SECRET_SHAPES = {
    "private key block": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY( BLOCK)?-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "password in a URL": re.compile(
        r"[a-z+]+://[^\s:/@${}'\"]+:[^\s@${}'\"<>]{8,}@"
    ),  # 8+: not a placeholder
}


def repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return [REPO_ROOT / name for name in listed if name and (REPO_ROOT / name).is_file()]


def files_holding(paths: list[Path], needles: dict[str, str]) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        found += [f"{name} in {path}" for name, needle in needles.items() if needle.encode() in data]
    return found


def test_the_repository_holds_no_private_key_token_or_password():
    found = []
    for path in repository_files():
        text = path.read_text(errors="replace")
        found += [
            f"{shape} in {path.relative_to(REPO_ROOT)}"
            for shape, pattern in SECRET_SHAPES.items()
            if pattern.search(text)
        ]
    assert found == []


@pytest.fixture
def random_secrets(tmp_path, monkeypatch, lms_server_factory, warehouse_dsn):
    """Sample servers and a warehouse login with credentials made up for this run, handed over only as
    connections."""
    root = tmp_path / "sftp-root"
    directory = root / "outbound" / "hris"
    directory.mkdir(parents=True)
    write_feed_file(directory, "employees_20260105.csv", csv_bytes([employee_row(n) for n in range(1, 6)]))
    lms_password, scim_token, pseudonym_key = (secrets.token_urlsafe(24) for _ in range(3))
    lms = lms_server_factory(
        statements=[statement(n, minutes=n) for n in range(1, 8)],
        users=[user(n) for n in range(1, 3)],
        xapi_credentials=("lrs-user", lms_password),
        scim_token=scim_token,
    )
    with SftpSampleServer(root, state_dir=tmp_path / "sftp-state") as sftp:
        env = {**sftp.airflow_connection_env(), **lms.airflow_connections_env()}
        env["AIRFLOW_CONN_ANALYTICS_PSEUDONYM"] = json.dumps(
            {"conn_type": "generic", "password": pseudonym_key}
        )
        env["AIRFLOW_VAR_TURNOVER_SIGNALS"] = json.dumps(
            {"hris": {"landing_dir": str(tmp_path / "landing"), "wait_for_files_minutes": 0}}
        )
        # The warehouse too: a login of its own with a random password (trust auth here does not check
        # it, but every URL the bundle builds, e.g. for Great Expectations, carries it).
        warehouse_login, warehouse_password = f"ts_secret_{secrets.token_hex(4)}", secrets.token_urlsafe(24)
        with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
            conn.execute(
                psycopg.sql.SQL("create role {} login superuser password {}").format(
                    psycopg.sql.Identifier(warehouse_login), psycopg.sql.Literal(warehouse_password)
                )
            )
        database = warehouse_dsn.rsplit("/", 1)[1]
        secret_login_dsn = postgres_service.dsn_for(
            database, user=warehouse_login, password=warehouse_password
        )
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        as_airflow_warehouse(secret_login_dsn, monkeypatch)  # the owner and every stage log in with it
        private_key_body = "".join(sftp.client_private_key_pem.strip().splitlines()[1:-1])
        yield {
            "warehouse password": warehouse_password,
            "lms password": lms_password,
            "scim token": scim_token,
            "pseudonym key": pseudonym_key,
            "sftp private key": private_key_body[20:80],
        }
        with psycopg.connect(warehouse_dsn, autocommit=True) as conn:  # roles are cluster-wide: clean up
            role = psycopg.sql.Identifier(warehouse_login)
            conn.execute(psycopg.sql.SQL("reassign owned by {} to current_user").format(role))
            conn.execute(psycopg.sql.SQL("drop owned by {}").format(role))
            conn.execute(psycopg.sql.SQL("drop role {}").format(role))


def test_a_dag_run_leaves_no_secret_in_logs_xcom_or_reports(
    airflow_metadata_db, warehouse_dsn, random_secrets, tmp_path, capfd
):
    from airflow.dag_processing.dagbag import DagBag

    log_file = tmp_path / "run.log"
    handler = logging.FileHandler(log_file)
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        # Each on a date its data is fresh for (the freshness checks fail stale data).
        for dag_id, moment in (
            ("hris_sftp_ingest", datetime(2026, 1, 6, 6, tzinfo=UTC)),
            ("lms_api_ingest", datetime(2026, 3, 3, 10, 10, tzinfo=UTC)),
            ("warehouse_retention", datetime(2026, 3, 3, 5, tzinfo=UTC)),
        ):
            dag = DagBag(dag_folder=str(DAGS_DIR / f"{dag_id}.py")).get_dag(dag_id)
            run = dag.test(logical_date=moment)
            assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    captured = capfd.readouterr()
    (tmp_path / "captured.txt").write_text(captured.out + captured.err)

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = [json.dumps(row.value, default=str) for row in session.query(XComModel).all()]
    assert any(
        "pseudonym" in value or "key_fingerprint" in value for value in xcoms
    )  # the runs did push XCom
    (tmp_path / "xcom.json").write_text("\n".join(xcoms))

    airflow_home = Path(os.environ["AIRFLOW_HOME"])
    produced = [
        p
        for p in [*airflow_home.rglob("*"), *tmp_path.rglob("*")]
        if p.is_file() and "sftp-state" not in p.parts and "sftp-root" not in p.parts
    ]
    assert (tmp_path / "landing").exists() and log_file.stat().st_size > 0
    assert files_holding(produced + repository_files(), random_secrets) == []
