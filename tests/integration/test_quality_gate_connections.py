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


def test_a_gate_whose_queries_fail_raises_a_retryable_error_and_judges_nothing(warehouse_dsn, tmp_path):
    """GX reports an expectation whose query raised as failed: a warehouse fault must not read as bad data."""
    from turnover_signals.airflow_tasks import FAILURES_WITHOUT_RETRY
    from turnover_signals.errors import GateNotEvaluatedError

    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute("create table gate_rows (n int, email text)")
        conn.execute("insert into gate_rows values (1, 'jane.doe@northwind.example'), (2, null)")
        # a query of the gate that fails on the warehouse's side, as a timeout or a lost session would
        conn.execute("create view gate_failing as select n, email, 10 / (n - 2) as ratio from gate_rows")
    suite = SuiteDefinition(
        "probe",
        "1",
        [
            gxe.ExpectColumnValuesToNotBeNull(column="n"),
            gxe.ExpectColumnValuesToBeBetween(column="ratio", min_value=-100, max_value=100),
        ],
    )
    with pytest.raises(GateNotEvaluatedError) as raised:
        run_suite(
            sqlalchemy_url(dsn=warehouse_dsn),
            suite,
            "gate_failing",
            "batch-7",
            table=("public", "gate_failing"),
            data_docs_dir=tmp_path,
        )
    message = str(raised.value)
    assert "validation probe of gate_failing (batch-7): 1 of 2 expectations could not be evaluated" in message
    assert "expect_column_values_to_be_between" in message and "DivisionByZero" in message
    assert "northwind" not in message and "select" not in message.lower()  # no query, no values
    assert not isinstance(raised.value, FAILURES_WITHOUT_RETRY)  # Airflow retries it
    assert not any(tmp_path.rglob("*.html"))  # no verdict, so no page for auditors
