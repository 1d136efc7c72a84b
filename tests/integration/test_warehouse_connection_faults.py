"""A warehouse session that ends under a task (what a server restart does to it: a real
pg_terminate_backend) is reported like a refused connection: named, transient, with a next step."""

from __future__ import annotations

import psycopg
import pytest

from tests.integration.test_lms_publish_faults import terminate
from turnover_signals.errors import SourceUnavailableError
from turnover_signals.warehouse import warehouse_connection

pytestmark = pytest.mark.integration


def test_a_session_ended_mid_transaction_is_an_unavailable_warehouse_and_its_transaction_rolled_back(
    warehouse_dsn,
):
    with pytest.raises(SourceUnavailableError) as raised:
        with warehouse_connection(dsn=warehouse_dsn) as conn, conn.transaction():
            conn.execute("create table public.half_done (n integer)")
            terminate(warehouse_dsn, conn.info.backend_pid)
            conn.execute("insert into public.half_done values (1)")
    message = str(raised.value)
    assert message.startswith("warehouse ") and "(TURNOVER_WAREHOUSE_URL or --dsn): " in message
    assert (
        ": lost the warehouse connection mid-transaction (terminating connection due to administrator "
        "command). Next step: rerun the task once the server is back" in message
    )
    assert "runbook-warehouse-unavailable" in message
    assert isinstance(raised.value.__cause__, psycopg.errors.AdminShutdown)
    with psycopg.connect(warehouse_dsn) as check:
        assert check.execute("select to_regclass('public.half_done')").fetchone() == (None,)


def test_an_error_of_the_sql_itself_is_not_taken_for_a_lost_warehouse(warehouse_dsn):
    with psycopg.connect(warehouse_dsn) as holder:
        holder.execute("create table public.busy (n integer)")
        holder.commit()
        holder.execute("lock table public.busy in access exclusive mode")
        # a lock timeout is an OperationalError too, on a session that is still there
        with pytest.raises(psycopg.errors.LockNotAvailable):
            with warehouse_connection(dsn=warehouse_dsn) as conn:
                conn.execute("set lock_timeout = '100ms'")
                conn.execute("select * from public.busy")
