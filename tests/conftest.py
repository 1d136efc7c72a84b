"""Shared test set-up: a throwaway Airflow home and real PostgreSQL databases.

The databases live on the server tests/postgres_service.py picks once per run: `TURNOVER_TEST_ADMIN_DSN`,
else the password-less postgres superuser at 127.0.0.1:5432, else an embedded PostgreSQL (pgserver) that
lives as long as the run. The pytest header says which.

The environment is fixed here, at import time, because Airflow reads its configuration when
it is first imported by a test module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests import postgres_service
from tests.databases import DatabaseCopies, as_airflow_warehouse, database_name

REPO_ROOT = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="turnover-signals-airflow-"))
# `make test` runs pytest-xdist workers, which inherit the home the controlling process set here:
# each worker takes its own (a SQLite metadata DB is not shared between processes).
_per_process = os.environ.__setitem__ if "PYTEST_XDIST_WORKER" in os.environ else os.environ.setdefault

_per_process("AIRFLOW_HOME", str(_AIRFLOW_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO_ROOT / "plugins"))
_per_process("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
# dag.test() crashes on DAGs with deadline alerts in Airflow 3.3.2 (turnover_signals.slo); the tests of the
# alerts themselves switch them on, and the scheduler-driven test runs with them
os.environ.setdefault("TURNOVER_SIGNALS_DEADLINE_ALERTS", "off")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
_per_process("TURNOVER_DATA_DIR", str(_AIRFLOW_HOME / "data"))

# Which PostgreSQL, and where every test DSN comes from: tests/postgres_service.py.
_POSTGRES_CHOICE = pytest.StashKey[str]()
_EMBEDDED_POSTGRES = pytest.StashKey[postgres_service.EmbeddedPostgres | None]()


def pytest_configure(config: pytest.Config) -> None:
    # Before pytest-xdist starts its workers (at session start), so that they, and every subprocess
    # a test starts, inherit the choice through the environment instead of making their own.
    config.stash[_POSTGRES_CHOICE], config.stash[_EMBEDDED_POSTGRES] = postgres_service.use_available_server()


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[_POSTGRES_CHOICE]


def pytest_unconfigure(config: pytest.Config) -> None:
    embedded = config.stash.get(_EMBEDDED_POSTGRES, None)
    if embedded is not None:
        embedded.stop()


@pytest.fixture(scope="session")
def migrated_template_db() -> str:
    """A database migrated once per session, used as the template for per-test databases."""
    import psycopg

    from turnover_signals.warehouse import migrate, warehouse_connection

    with DatabaseCopies(prefix="ts_template") as databases:
        dsn = databases.empty()
        # Migrations create the group roles, which are cluster-wide: two test processes (pytest-xdist
        # workers) must not create them at once. A lock in the admin database, which all of them share.
        with psycopg.connect(postgres_service.admin_dsn(), autocommit=True) as lock:
            lock.execute("select pg_advisory_lock(hashtext('turnover-signals tests: migrate a template'))")
            with warehouse_connection(dsn=dsn) as conn:
                migrate(conn)
        yield database_name(dsn)


@pytest.fixture
def database_copy():
    """`copy(template)`: a new database holding what the database `template` holds, its DSN; every copy is
    dropped after the test."""
    with DatabaseCopies() as databases:
        yield databases.copy


@pytest.fixture
def empty_database_dsn() -> str:
    """A fresh, empty database on the real PostgreSQL, dropped after the test."""
    with DatabaseCopies() as databases:
        yield databases.empty()


@pytest.fixture
def warehouse_dsn(migrated_template_db: str, database_copy, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, fully migrated warehouse database, also exposed as the Airflow connection."""
    return as_airflow_warehouse(database_copy(migrated_template_db), monkeypatch)


@pytest.fixture
def make_warehouse(migrated_template_db: str, database_copy):
    """Makes more fresh, fully migrated warehouse databases (for comparing two warehouses); dropped after the
    test."""
    return lambda: database_copy(migrated_template_db)


@pytest.fixture(scope="session")
def airflow_metadata_db() -> None:
    """Migrate the throwaway SQLite metadata DB that `dag.test()` needs."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )


# The modules that start an Airflow stack or build whole synthetic enterprises (two to four minutes each),
# longest first. `make test` runs the suite on three pytest-xdist workers, one module at a time per worker
# (--dist loadfile), handing out modules in collection order: listed first, these start early on different
# workers instead of one after the other at the end.
HEAVIEST_MODULES = (
    "tests/integration/test_lms_watcher.py",
    "tests/integration/test_scheduler_e2e.py",
    "tests/integration/test_turnover_model.py",
    "tests/integration/test_identity_enterprise.py",
    "tests/integration/test_point_in_time_replay.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        module = item.nodeid.split("::", 1)[0]
        return HEAVIEST_MODULES.index(module) if module in HEAVIEST_MODULES else len(HEAVIEST_MODULES)

    items.sort(key=rank)  # stable: every other test keeps its order
