"""`make test` without a password-less PostgreSQL at 127.0.0.1:5432: the suite's own fixtures run on an
embedded PostgreSQL (the pgserver wheel) instead of failing.

The test runs a small pytest session of its own, in a subprocess, with tests/conftest.py as its only
plugin (the real hooks and fixtures) and the default server made unreachable: that session must pick
the embedded server, create, migrate and drop its databases there, and leave no server behind.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import postgres_service

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]

INNER_TESTS = """
import psycopg

from tests import postgres_service


def test_the_warehouse_fixture_migrates_a_database_on_the_embedded_server(warehouse_dsn):
    with psycopg.connect(warehouse_dsn) as conn:
        port = conn.execute("select inet_server_port()").fetchone()[0]
        manifest = conn.execute("select to_regclass('audit.file_manifest')::text").fetchone()[0]
    assert port == postgres_service.server_address()[1] != 5432
    assert manifest == "audit.file_manifest"


def test_the_fixtures_dropped_their_databases():
    with psycopg.connect(postgres_service.admin_dsn()) as conn:
        left = conn.execute("select datname from pg_database where datname like 'ts_test_%'").fetchall()
    assert left == []
"""


def unreachable_dsn() -> str:
    """A superuser DSN on a loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


@pytest.mark.slow
def test_without_a_password_less_default_server_the_suite_runs_on_an_embedded_one(tmp_path: Path) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    (tmp_path / "refuse_default_postgres.py").write_text(
        f"from tests import postgres_service\n\npostgres_service.DEFAULT_ADMIN_DSN = {unreachable_dsn()!r}\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key != postgres_service.ADMIN_DSN_ENV and not key.startswith("PYTEST_")
    }
    # Not TMPDIR=tmp_path: as root the server runs as another user, which must traverse its directory's
    # parents, and pytest keeps its own temporary root private.
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(REPO_ROOT), str(REPO_ROOT / "plugins")])

    inner = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "refuse_default_postgres", "-p", "tests.conftest"]
        + [
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--rootdir",
            str(tmp_path),
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert inner.returncode == 0, inner.stdout + inner.stderr
    assert "2 passed" in inner.stdout
    header = re.search(
        r"^PostgreSQL: embedded \(pgserver\) at (\S+), in (\S+), .*refused", inner.stdout, re.M
    )
    assert header, inner.stdout
    embedded_dsn, embedded_dir = header.groups()
    assert not Path(embedded_dir).exists()
    assert postgres_service.admin_connection_problem(embedded_dsn, timeout_seconds=1) is not None
