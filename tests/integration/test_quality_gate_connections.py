import great_expectations.expectations as gxe
import psycopg
import pytest

from turnover_signals.quality.gate import SuiteDefinition, run_suite
from turnover_signals.warehouse import sqlalchemy_url

pytestmark = pytest.mark.integration


def _connections(dsn):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "select count(*) from pg_stat_activity where datname = current_database() and pid <> "
            "pg_backend_pid()"
        ).fetchone()[0]


def test_validation_runs_leave_no_connections_behind(warehouse_dsn):
    """dag.test and long-lived workers validate many batches in one process."""
    suite = SuiteDefinition("probe", "1", [gxe.ExpectColumnValuesToNotBeNull(column="n")])
    before = _connections(warehouse_dsn)
    for _ in range(5):
        outcome = run_suite(sqlalchemy_url(dsn=warehouse_dsn), suite, "probe", "probe", "select 1 as n")
        assert outcome.success
    assert _connections(warehouse_dsn) == before
