"""The xAPI extraction when its warehouse session dies mid-publish, and when two attempts of one task run at
once: real PostgreSQL sessions terminated with pg_terminate_backend (what a server restart does to them),
real concurrent extractions against the sample LRS."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from tests.integration.test_lms_statements import connect, data_tables, rows, statement
from turnover_signals.config import load_config
from turnover_signals.errors import SourceUnavailableError
from turnover_signals.lms.staging import EXTRACTION_LOCK_SPACE
from turnover_signals.lms.statements import STATEMENT_PUBLISH_LOCK, batch_id_for, extract_statements
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sources.xapi import parse_xapi_timestamp

pytestmark = pytest.mark.integration
STATEMENTS = [statement(n, minutes=n) for n in range(1, 21)]  # pages of 4, chunks of 8: 8 + 8 + 4


@pytest.fixture
def config():
    return load_config(
        {
            "lms": {
                "initial_backoff_seconds": 0.01,
                "max_backoff_seconds": 0.05,
                "statements_page_limit": 4,
                "publish_chunk_statements": 8,
                "request_timeout_seconds": 5,
                "lrs_since_field": "stored",
                "extraction_lock_wait_seconds": 0.5,
            }
        },
        use_variable=False,
    )


def run_identity(run_id: str) -> RunIdentity:
    return RunIdentity("lms_api_ingest", run_id, "extract_lms_statements")


class Attempt(threading.Thread):
    """An extraction in a thread of its own, as a second worker would run it; keeps its result or error."""

    def __init__(self, target: Callable[[], Any]):
        super().__init__(daemon=True)
        self._target_call = target
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self._target_call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            self.error = exc

    def outcome(self, timeout: float = 120) -> Any:
        self.join(timeout)
        assert not self.is_alive(), "the extraction did not end"
        return self.result


def wait_for(dsn: str, query: str, params: Any = None, timeout: float = 60) -> list[tuple]:
    """Poll `query` until it returns rows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(dsn, query, params)
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never true: {query}")


def hold_chunk_audit_row(dsn: str, batch_id: str) -> psycopg.Connection:
    """An open transaction holding an uncommitted audit row of `batch_id`: the chunk's publishing transaction
    waits for it at its last statement, after it has written everything else."""
    blocker = psycopg.connect(dsn)
    blocker.execute(
        "insert into audit.lms_extract_batch (batch_id, source, endpoint, pages, statements_received,"
        " statements_new, statements_already_loaded, statements_rejected, voids_applied, reject_rate, status,"
        " started_at, finished_at) values (%s, 'test', 'test', 0, 0, 0, 0, 0, 0, 0, 'failed', now(), now())",
        (batch_id,),
    )
    return blocker


def publisher_waiting_on(dsn: str, blocker: psycopg.Connection) -> int:
    """The pid of the session whose publishing transaction waits for the blocker's audit row."""
    return wait_for(
        dsn,
        "select pid from pg_stat_activity where %s = any(pg_blocking_pids(pid))",
        (blocker.info.backend_pid,),
    )[0][0]


def wait_for_table(dsn: str, name: str) -> None:
    wait_for(dsn, "select from pg_tables where schemaname = 'staging' and tablename = %s", (name,))


def extraction_session(dsn: str, batch_id: str) -> int:
    """The pid of the session holding extraction `batch_id`'s lock (its main thread's)."""
    return wait_for(
        dsn,
        "select pid from pg_locks where locktype = 'advisory' and objsubid = 2 and classid = %s::oid"
        " and objid = hashtext(%s)::oid and granted",
        (EXTRACTION_LOCK_SPACE, batch_id),
    )[0][0]


def staging_tables(dsn: str, batch_id: str | None = None) -> list[str]:
    pattern = f"lms\\_batch\\_{batch_id}\\_%" if batch_id else "%"
    return [
        name
        for (name,) in rows(
            dsn,
            "select tablename from pg_tables where schemaname = 'staging' and tablename like %s order by 1",
            (pattern,),
        )
    ]


def terminate(dsn: str, *pids: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as admin:
        for pid in pids:
            assert admin.execute("select pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def clean_run(make_warehouse, config) -> dict[str, list]:
    """The tables one uninterrupted extraction leaves in a fresh warehouse."""
    dsn = make_warehouse()
    extract_statements(config, run_identity("clean"), dsn)
    return data_tables(dsn)


def test_losing_the_warehouse_mid_publish_names_the_batch_publishes_nothing_of_it_and_a_rerun_converges(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    connect(lms_server_factory(statements=STATEMENTS), monkeypatch)
    run = run_identity("r1")
    batch = batch_id_for(run)
    blocker = hold_chunk_audit_row(warehouse_dsn, f"{batch}-2")
    attempt = Attempt(lambda: extract_statements(config, run, warehouse_dsn))
    attempt.start()
    # Chunk 2's transaction has written its statements, activity, watermark and validation row, and waits
    # at its audit row: its session ends there, as in a server restart.
    terminate(warehouse_dsn, publisher_waiting_on(warehouse_dsn, blocker))
    blocker.rollback()
    blocker.close()
    attempt.outcome()

    assert isinstance(attempt.error, SourceUnavailableError)
    message = str(attempt.error)
    assert message.startswith(f"xAPI batch {batch}-2 from ")
    assert (
        "(chunk 2): lost the warehouse connection mid-transaction (terminating connection due to " in message
    )
    assert "Next step: rerun the task once the warehouse is back" in message
    assert (
        "nothing was published from the interrupted chunk 2 (rolled back whole), 1 earlier chunk(s)"
        in message
    )
    assert "runbook-lms-publish-interrupted" in message
    # chunk 1 only: nothing of chunk 2 anywhere, the watermark at chunk 1's end
    assert rows(warehouse_dsn, "select batch_id, count(*) from raw.lms_statement group by 1") == [(batch, 8)]
    assert rows(warehouse_dsn, "select count(*) from core.lms_activity") == [(8,)]
    assert rows(warehouse_dsn, "select batch_id, status from audit.lms_extract_batch") == [
        (batch, "published")
    ]
    assert rows(warehouse_dsn, "select count(*) from audit.validation_result") == [(1,)]
    assert rows(warehouse_dsn, "select watermark from audit.extract_watermark") == [
        (max(parse_xapi_timestamp(s["stored"]) for s in STATEMENTS[:8]),)
    ]

    rerun = extract_statements(config, run, warehouse_dsn)
    assert rerun["status"] == "published"
    assert data_tables(warehouse_dsn) == clean_run(make_warehouse, config)
    assert staging_tables(warehouse_dsn) == []


def test_losing_the_warehouse_during_a_chunks_commit_says_its_outcome_is_unknown_and_a_rerun_converges(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    connect(lms_server_factory(statements=STATEMENTS), monkeypatch)
    run = run_identity("r1")
    batch = batch_id_for(run)
    # A deferred trigger makes chunk 2's COMMIT itself take a while: its session ends during the commit.
    with psycopg.connect(warehouse_dsn, autocommit=True) as admin:
        admin.execute(
            "create function public.wait_at_commit() returns trigger language plpgsql as $$ begin"
            " if new.batch_id like '%-2' then perform pg_sleep(60); end if; return null; end $$"
        )
        admin.execute(
            "create constraint trigger wait_at_commit after insert on audit.lms_extract_batch"
            " deferrable initially deferred for each row execute function public.wait_at_commit()"
        )
    attempt = Attempt(lambda: extract_statements(config, run, warehouse_dsn))
    attempt.start()
    committing = wait_for(
        warehouse_dsn, "select pid from pg_stat_activity where wait_event = 'PgSleep' and query = 'COMMIT'"
    )[0][0]
    terminate(warehouse_dsn, committing)
    attempt.outcome()

    assert isinstance(attempt.error, SourceUnavailableError)
    message = str(attempt.error)
    assert message.startswith(f"xAPI batch {batch}-2 from ")
    assert "the session ended during the commit of chunk 2: it may or may not be published" in message
    with psycopg.connect(warehouse_dsn, autocommit=True) as admin:
        admin.execute("drop trigger wait_at_commit on audit.lms_extract_batch")
    extract_statements(config, run, warehouse_dsn)
    assert data_tables(warehouse_dsn) == clean_run(make_warehouse, config)


def test_losing_the_extractions_own_session_names_the_batch_and_keeps_what_its_publisher_published(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    connect(lms_server_factory(statements=STATEMENTS), monkeypatch)
    run = run_identity("r1")
    batch = batch_id_for(run)
    blocker = hold_chunk_audit_row(warehouse_dsn, f"{batch}-2")
    attempt = Attempt(lambda: extract_statements(config, run, warehouse_dsn))
    attempt.start()
    publisher_waiting_on(warehouse_dsn, blocker)
    wait_for_table(warehouse_dsn, f"lms_batch_{batch}_3__checks")  # every page fetched and staged
    terminate(warehouse_dsn, extraction_session(warehouse_dsn, batch))  # the fetching thread's session
    blocker.rollback()
    blocker.close()
    attempt.outcome()

    assert isinstance(attempt.error, SourceUnavailableError)
    message = str(attempt.error)
    assert message.startswith(f"xAPI batch {batch}: lost the warehouse connection mid-transaction (")
    assert "Next step: rerun the task once the warehouse is back" in message
    # the publisher's own session published the chunks handed to it
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(20,)]
    assert extract_statements(config, run, warehouse_dsn)["new"] == 0
    assert data_tables(warehouse_dsn) == clean_run(make_warehouse, config)


def test_an_interrupted_runs_staging_tables_are_dropped_and_counted_by_the_next_run_but_not_a_live_runs(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    connect(lms_server_factory(statements=STATEMENTS), monkeypatch)
    config["lms"]["extraction_lock_wait_seconds"] = 60
    interrupted, live, rerun = (run_identity(run_id) for run_id in ("interrupted", "live", "rerun"))
    interrupted_batch, live_batch, rerun_batch = map(batch_id_for, (interrupted, live, rerun))

    # 1. The run to interrupt publishes chunk 1, then waits inside chunk 2's publishing transaction.
    interrupted_blocker = hold_chunk_audit_row(warehouse_dsn, f"{interrupted_batch}-2")
    first = Attempt(lambda: extract_statements(config, interrupted, warehouse_dsn))
    first.start()
    first_publisher = publisher_waiting_on(warehouse_dsn, interrupted_blocker)
    wait_for_table(warehouse_dsn, f"lms_batch_{interrupted_batch}_3__checks")  # staged, waiting its turn
    # 2. A second extraction starts meanwhile (its start-of-run clean-up must leave the first's tables) and
    #    waits for the publishing lock; it is held at its own chunk 2 later.
    live_blocker = hold_chunk_audit_row(warehouse_dsn, f"{live_batch}-2")
    second = Attempt(lambda: extract_statements(config, live, warehouse_dsn))
    second.start()
    wait_for_table(warehouse_dsn, f"lms_batch_{live_batch}_1__checks")
    assert staging_tables(warehouse_dsn, interrupted_batch)  # a live extraction's tables are kept
    # 3. Both sessions of the first run end, as in a restart: it can drop nothing.
    terminate(warehouse_dsn, first_publisher, extraction_session(warehouse_dsn, interrupted_batch))
    interrupted_blocker.rollback()
    interrupted_blocker.close()
    first.outcome()
    assert isinstance(first.error, SourceUnavailableError)
    assert "lost the warehouse connection mid-transaction" in str(first.error)
    orphans = staging_tables(warehouse_dsn, interrupted_batch)
    assert len(orphans) == 2  # chunk 2 (its publish interrupted) and chunk 3 (staged, never published)
    # 4. The second run now publishes its chunk 1 and waits inside its chunk 2: it is live, with tables.
    publisher_waiting_on(warehouse_dsn, live_blocker)
    wait_for_table(warehouse_dsn, f"lms_batch_{live_batch}_3__checks")
    live_tables = staging_tables(warehouse_dsn, live_batch)
    assert live_tables == [f"lms_batch_{live_batch}_{n}__checks" for n in (2, 3)]

    # 5. The rerun drops the interrupted run's tables at its start, and not the live run's.
    third = Attempt(lambda: extract_statements(config, rerun, warehouse_dsn))
    third.start()
    wait_for_table(warehouse_dsn, f"lms_batch_{rerun_batch}_1__checks")  # past its start-of-run clean-up
    assert staging_tables(warehouse_dsn, interrupted_batch) == []
    assert staging_tables(warehouse_dsn, live_batch) == live_tables
    live_blocker.rollback()
    live_blocker.close()
    assert second.outcome()["status"] == "published" and second.error is None
    summary = third.outcome()
    assert third.error is None
    assert summary["orphan_staging_tables_dropped"] == 2
    assert rows(
        warehouse_dsn,
        "select batch_id, orphan_tables_dropped from audit.lms_extract_batch where run_id = 'rerun'"
        " order by 1",
    ) == [(rerun_batch, 2), (f"{rerun_batch}-2", 0), (f"{rerun_batch}-3", 0)]
    assert staging_tables(warehouse_dsn) == []
    assert data_tables(warehouse_dsn) == clean_run(make_warehouse, config)


def hold_publishing(dsn: str) -> psycopg.Connection:
    """A session holding the statement publishing lock: every extraction stages its first chunk and waits."""
    holder = psycopg.connect(dsn, autocommit=True)
    holder.execute("select pg_advisory_lock(hashtext(%s))", (STATEMENT_PUBLISH_LOCK,))
    return holder


def waiting_for_publishing(dsn: str) -> None:
    wait_for(
        dsn,
        "select from pg_stat_activity where datname = current_database() and wait_event = 'advisory'"
        " and pid <> pg_backend_pid()",
    )


def test_a_second_attempt_with_the_same_run_identity_is_refused_and_drops_nothing_of_the_first(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    connect(lms_server_factory(statements=STATEMENTS), monkeypatch)
    run = run_identity("r1")
    batch = batch_id_for(run)
    holder = hold_publishing(warehouse_dsn)
    first = Attempt(lambda: extract_statements(config, run, warehouse_dsn))
    first.start()
    waiting_for_publishing(warehouse_dsn)
    first_tables = staging_tables(warehouse_dsn, batch)
    first_session = extraction_session(warehouse_dsn, batch)

    second = Attempt(lambda: extract_statements(config, run, warehouse_dsn))
    second.start()
    second.outcome(timeout=30)
    assert isinstance(second.error, SourceUnavailableError)
    message = str(second.error)
    assert message.startswith(
        f"xAPI batch {batch}: another attempt with the same run identity is extracting it: backend pid "
        f"{first_session}"
    )
    assert "this attempt touched nothing. Next step: let that attempt finish, then clear the task" in message
    assert "runbook-lms-extraction-busy" in message
    assert staging_tables(warehouse_dsn, batch) == first_tables

    holder.close()
    assert first.outcome()["status"] == "published" and first.error is None
    assert data_tables(warehouse_dsn) == clean_run(make_warehouse, config)
    assert staging_tables(warehouse_dsn) == []


def test_a_second_attempt_with_the_same_run_identity_waits_for_the_first_and_both_converge(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    connect(lms_server_factory(statements=STATEMENTS), monkeypatch)
    config["lms"]["extraction_lock_wait_seconds"] = 60
    run = run_identity("r1")
    holder = hold_publishing(warehouse_dsn)
    first = Attempt(lambda: extract_statements(config, run, warehouse_dsn))
    first.start()
    waiting_for_publishing(warehouse_dsn)
    second = Attempt(lambda: extract_statements(config, run, warehouse_dsn))
    second.start()
    time.sleep(1.5)  # the second attempt is waiting for the first's lock, not staging beside it
    assert second.is_alive()
    holder.close()
    first_summary, second_summary = first.outcome(), second.outcome()
    assert first.error is None and second.error is None
    assert (first_summary["new"], second_summary["new"]) == (20, 0)
    assert data_tables(warehouse_dsn) == clean_run(make_warehouse, config)
    assert staging_tables(warehouse_dsn) == []
