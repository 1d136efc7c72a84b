"""The sliced xAPI backfill: the real sample LRS, real PostgreSQL, real GX gate, slices run as separate
calls."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
import pytest

from tests.integration.test_lms_publish_faults import (
    Attempt,
    hold_chunk_audit_row,
    publisher_waiting_on,
    staging_tables,
    terminate,
)
from tests.integration.test_lms_statements import T0, data_tables, rows, statement
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError, SourceUnavailableError
from turnover_signals.lms.backfill import (
    backfill_id_for,
    extract_slice,
    plan_backfill,
    plan_slices,
    publish_slices,
    slice_batch_id,
)
from turnover_signals.lms.statements import extract_statements
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration
FIVE_SECONDS = timedelta(seconds=5)
START = T0 + FIVE_SECONDS  # statement n is stored at T0 + n minutes + 5 s: slices of 5 minutes end on one
RUN = RunIdentity("lms_statement_backfill", "manual__1", "extract_statement_slice")


def stored(n):
    return T0 + timedelta(minutes=n) + FIVE_SECONDS


@pytest.fixture
def config():
    return load_config(
        {
            "lms": {
                "statements_page_limit": 3,
                "publish_chunk_statements": 4,  # slices of several chunks
                "max_reject_rate": 0.4,
                "initial_since": START.isoformat(),
                "initial_backoff_seconds": 0.01,
                "request_timeout_seconds": 2,
            }
        },
        use_variable=False,
    )


def history():
    """20 statements, one on each slice boundary; a reject; a void in the last slice of a target in the
    first."""
    statements = [statement(n, minutes=n) for n in range(1, 21)]
    statements[7] = statement(8, minutes=8, result={"score": {"scaled": 1.5}})
    void = statement(99, verb="voided", minutes=19, stored_delay=FIVE_SECONDS + timedelta(seconds=30))
    void["object"] = {"objectType": "StatementRef", "id": str(uuid.UUID(int=2))}
    return [*statements, void]


def serve(lms_server_factory, monkeypatch, statements):
    server = lms_server_factory(statements=statements)
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    return server


def backfill_slices(config):
    return plan_backfill(
        config, {"from_stored": START.isoformat(), "to_stored": stored(20).isoformat(), "slice_hours": 5 / 60}
    )


def test_slices_cover_the_range_with_no_gap_and_no_overlap():
    end = START + timedelta(hours=10, minutes=7)
    for slices in (plan_slices(START, end, slice_count=7), plan_slices(START, end, slice_hours=3)):
        assert slices[0]["since"] == START.isoformat() and slices[-1]["until"] == end.isoformat()
        assert all(a["until"] == b["since"] for a, b in zip(slices, slices[1:], strict=False))
        assert [s["number"] for s in slices] == list(range(1, len(slices) + 1))
    assert len(plan_slices(START, end, slice_hours=3)) == 4  # 3 + 3 + 3 + 1 h 7 min
    with pytest.raises(BadInputError, match="Next step"):
        plan_backfill({}, {"from_stored": stored(5).isoformat(), "to_stored": START.isoformat()})


def test_a_backfill_in_slices_equals_one_extraction(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    serve(lms_server_factory, monkeypatch, history())
    slices = backfill_slices(config)
    assert len(slices) == 4 and slices[0]["until"] == stored(5).isoformat()  # statement 5 ends slice 1
    for item in reversed(slices):  # slices extract in any order (parallel workers); they publish in order
        extract_slice(config, RUN, item, warehouse_dsn)
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(0,)]  # gated, not published
    summary = publish_slices(config, RUN, slices, warehouse_dsn)
    assert summary["published"] == 4
    assert rows(
        warehouse_dsn, "select count(*) from information_schema.tables where table_schema = 'staging'"
    ) == [(0,)]

    single = make_warehouse()
    extract_statements(config, RunIdentity("lms_api_ingest", "r1", "extract_lms_statements"), single)
    backfilled, extracted = data_tables(warehouse_dsn), data_tables(single)
    assert backfilled == extracted
    assert len(backfilled["raw"]) == 20 and len(backfilled["rejected"]) == 1 and len(backfilled["voids"]) == 1
    # contiguous with where extraction starts: the watermark follows the slices to the end of the range
    assert backfilled["watermark"] == [("xapi:lms_api", stored(20))]


def test_a_slice_failing_its_gate_publishes_nothing_and_later_slices_do_not_publish(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    statements = [statement(n, minutes=n) for n in range(1, 21)]
    for n in (6, 7, 8):  # 3 of slice 2's 5 statements: over the 40 % threshold
        statements[n - 1] = statement(n, minutes=n, result={"score": {"scaled": 2}})
    serve(lms_server_factory, monkeypatch, statements)
    slices = backfill_slices(config)
    for item in slices:
        if item["number"] == 2:
            with pytest.raises(BadInputError, match=r"slice 2 .*3 of 5 statements rejected.*Next step"):
                extract_slice(config, RUN, item, warehouse_dsn)
        else:
            extract_slice(config, RUN, item, warehouse_dsn)
    with pytest.raises(BadInputError, match=r"slice 2 of 4.*slices 1..1 are published, 2..4 are not"):
        publish_slices(config, RUN, slices, warehouse_dsn)
    assert rows(warehouse_dsn, "select statement_id from raw.lms_statement order by 1") == [
        (str(uuid.UUID(int=n)),) for n in range(1, 6)
    ]
    assert rows(warehouse_dsn, "select count(*) from core.lms_activity") == [(5,)]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement_rejected") == [(3,)]  # reasons kept
    assert rows(warehouse_dsn, "select watermark from audit.extract_watermark") == [(stored(5),)]
    assert rows(warehouse_dsn, "select slice_number, status from audit.lms_backfill_slice order by 1") == [
        (1, "published"),
        (2, "rejected"),
        (3, "staged"),
        (4, "staged"),
    ]

    config["lms"]["max_reject_rate"] = 0.7  # the vendor's answer: acceptable; clear slice 2, then the publish
    extract_slice(config, RUN, slices[1], warehouse_dsn)
    assert publish_slices(config, RUN, slices, warehouse_dsn)["published"] == 4
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(17,)]
    assert rows(warehouse_dsn, "select watermark from audit.extract_watermark") == [(stored(20),)]


def test_voided_statements_recovered_by_id_that_fail_their_gate_fail_the_publish_and_are_not_published(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    statements = history()
    # the void's target, which the LRS lists nowhere and serves by voidedStatementId, is out of range
    statements[1] = statement(2, minutes=2, result={"score": {"scaled": 2}})
    serve(lms_server_factory, monkeypatch, statements)
    slices = backfill_slices(config)
    for item in slices:
        extract_slice(config, RUN, item, warehouse_dsn)
    with pytest.raises(
        BadInputError, match=r"voided statement.*1 of 1 statements rejected.*slices are published"
    ):
        publish_slices(config, RUN, slices, warehouse_dsn)
    assert rows(
        warehouse_dsn, "select count(*) from audit.lms_backfill_slice where status = 'published'"
    ) == [(4,)]
    assert rows(
        warehouse_dsn,
        "select count(*) from raw.lms_statement where statement_id = %s",
        (str(uuid.UUID(int=2)),),
    ) == [(0,)]
    assert rows(
        warehouse_dsn,
        "select reason from raw.lms_statement_rejected where statement_id = %s",
        (str(uuid.UUID(int=2)),),
    ) == [("result.score.scaled outside [-1, 1]",)]
    with pytest.raises(BadInputError, match="voided statement"):  # a rerun: the same answer, no duplicate
        publish_slices(config, RUN, slices, warehouse_dsn)
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement_rejected") == [(2,)]


def test_a_slice_extracted_again_that_fails_is_not_extracted_for_the_publish_until_it_succeeds(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = serve(lms_server_factory, monkeypatch, history())
    slices = backfill_slices(config)
    for item in slices:
        extract_slice(config, RUN, item, warehouse_dsn)
    # slice 2's task is cleared and runs again while the LRS fails: its first attempt's tables are dropped
    server.inject_fault("status", path_prefix="/xapi/statements", count=100, status=503)
    with pytest.raises(SourceUnavailableError):
        extract_slice(config, RUN, slices[1], warehouse_dsn)
    server.clear_faults()
    with pytest.raises(BadInputError, match=r"slice 2 of 4: the slice was not extracted .*2..4 are not"):
        publish_slices(config, RUN, slices, warehouse_dsn)
    assert rows(warehouse_dsn, "select slice_number, status from audit.lms_backfill_slice order by 1") == [
        (1, "published"),
        (3, "staged"),
        (4, "staged"),
    ]
    extract_slice(config, RUN, slices[1], warehouse_dsn)
    assert publish_slices(config, RUN, slices, warehouse_dsn)["published"] == 4
    # the loader login (least privilege) may do the same (migration 0048)
    assert rows(
        warehouse_dsn, "select has_table_privilege('turnover_loader', 'audit.lms_backfill_slice', 'delete')"
    ) == [(True,)]


def test_clearing_and_rerunning_any_task_leaves_the_same_tables(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    serve(lms_server_factory, monkeypatch, history())
    slices = backfill_slices(config)
    extract_slice(config, RUN, slices[0], warehouse_dsn)
    extract_slice(config, RUN, slices[0], warehouse_dsn)  # cleared before the publish: replaced, not doubled
    for item in slices[1:]:
        extract_slice(config, RUN, item, warehouse_dsn)
    publish_slices(config, RUN, slices, warehouse_dsn)
    first = data_tables(warehouse_dsn)
    batches = rows(
        warehouse_dsn, "select batch_id, status, statements_new from audit.lms_extract_batch order by 1"
    )

    assert (
        plan_backfill(
            config,
            {"from_stored": START.isoformat(), "to_stored": stored(20).isoformat(), "slice_hours": 5 / 60},
        )
        == slices
    )
    for item in slices:  # every slice cleared after the publish: published slices are not fetched again
        assert extract_slice(config, RUN, item, warehouse_dsn)["status"] == "published"
    publish_slices(config, RUN, slices, warehouse_dsn)
    assert data_tables(warehouse_dsn) == first
    assert (
        rows(warehouse_dsn, "select batch_id, status, statements_new from audit.lms_extract_batch order by 1")
        == batches
    )

    clean = make_warehouse()  # the same backfill run once, without any clearing
    for item in slices:
        extract_slice(config, RUN, item, clean)
    publish_slices(config, RUN, slices, clean)
    assert data_tables(clean) == first


def test_the_backfill_never_moves_the_watermark_back_nor_past_a_gap(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    serve(lms_server_factory, monkeypatch, [statement(n, minutes=n) for n in range(1, 21)])
    with psycopg.connect(warehouse_dsn) as conn:
        conn.execute(
            "insert into audit.extract_watermark values ('xapi:lms_api', %s, 'hourly', now())", (stored(12),)
        )
    behind = plan_backfill(
        config, {"from_stored": START.isoformat(), "to_stored": stored(10).isoformat(), "slice_count": 2}
    )
    after_gap = plan_backfill(
        config, {"from_stored": stored(15).isoformat(), "to_stored": stored(20).isoformat(), "slice_count": 1}
    )
    for run_id, slices in (("old", behind), ("gap", after_gap)):
        run = RunIdentity("lms_statement_backfill", run_id, "t")
        for item in slices:
            extract_slice(config, run, item, warehouse_dsn)
        publish_slices(config, run, slices, warehouse_dsn)
        assert rows(warehouse_dsn, "select watermark from audit.extract_watermark") == [(stored(12),)]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(15,)]


def test_on_an_lrs_filtering_on_timestamp_a_backfill_loads_but_never_moves_the_watermark(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = lms_server_factory(statements=history(), deviations=("since_on_timestamp",))
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    slices = plan_backfill(
        config,
        {"from_stored": T0.isoformat(), "to_stored": stored(20).isoformat(), "slice_count": 2},
    )
    for item in slices:
        extract_slice(config, RUN, item, warehouse_dsn)
    publish_slices(config, RUN, slices, warehouse_dsn)
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(20,)]  # the reject stays out
    # a slice's end says nothing of what was stored before it on such an LRS: the hourly look-back decides
    assert rows(warehouse_dsn, "select count(*) from audit.extract_watermark") == [(0,)]
    assert rows(warehouse_dsn, "select strategy from audit.lrs_conformance") == [("timestamp_lookback",)]


def single_extraction(make_warehouse, config):
    """The tables one extraction of the whole history leaves in a fresh warehouse."""
    dsn = make_warehouse()
    extract_statements(config, RunIdentity("lms_api_ingest", "r1", "extract_lms_statements"), dsn)
    return data_tables(dsn)


def test_an_hourly_run_between_a_backfills_staging_and_its_publish_keeps_the_staged_slices(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    serve(lms_server_factory, monkeypatch, history())
    slices = backfill_slices(config)
    for item in slices:
        extract_slice(config, RUN, item, warehouse_dsn)
    staged = staging_tables(warehouse_dsn)
    assert len(staged) == 4  # one chunk each
    # the hourly extraction's start-of-run clean-up: these tables wait for publish_statement_slices
    hourly = extract_statements(
        config, RunIdentity("lms_api_ingest", "r1", "extract_lms_statements"), warehouse_dsn
    )
    assert hourly["orphan_staging_tables_dropped"] == 0
    assert staging_tables(warehouse_dsn) == staged
    assert publish_slices(config, RUN, slices, warehouse_dsn)["published"] == 4
    assert staging_tables(warehouse_dsn) == []


def test_a_second_attempt_of_a_slice_is_refused_while_the_first_holds_it_and_drops_nothing(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    serve(lms_server_factory, monkeypatch, history())
    config["lms"]["extraction_lock_wait_seconds"] = 0.5
    slices = backfill_slices(config)
    # The first attempt stages and gates slice 1, then waits to record it (an uncommitted row holds its key).
    blocker = psycopg.connect(warehouse_dsn)
    blocker.execute(
        "insert into audit.lms_backfill_slice (backfill_id, slice_number, source, since_at, until_at, status)"
        " values (%s, 1, 'test', %s, %s, 'rejected')",
        (backfill_id_for(RUN), START, stored(5)),
    )
    first = Attempt(lambda: extract_slice(config, RUN, slices[0], warehouse_dsn))
    first.start()
    publisher_waiting_on(warehouse_dsn, blocker)
    batch = slice_batch_id(backfill_id_for(RUN), 1)
    first_tables = staging_tables(warehouse_dsn, batch)
    assert first_tables == [f"lms_batch_{batch}_1__checks"]

    second = Attempt(lambda: extract_slice(config, RUN, slices[0], warehouse_dsn))
    second.start()
    second.outcome(timeout=30)
    assert isinstance(second.error, SourceUnavailableError)
    assert str(second.error).startswith(
        f"xAPI backfill slice 1 (batch {batch}): another attempt with the same run identity is extracting it"
    )
    assert "let that attempt finish, then clear this slice's task" in str(second.error)
    assert staging_tables(warehouse_dsn, batch) == first_tables

    blocker.rollback()
    blocker.close()
    assert first.outcome()["status"] == "staged" and first.error is None
    for item in slices[1:]:
        extract_slice(config, RUN, item, warehouse_dsn)
    assert publish_slices(config, RUN, slices, warehouse_dsn)["published"] == 4
    assert data_tables(warehouse_dsn) == single_extraction(make_warehouse, config)


def test_losing_the_warehouse_while_publishing_a_slice_names_it_publishes_nothing_of_it_and_a_rerun_converges(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    serve(lms_server_factory, monkeypatch, history())
    slices = backfill_slices(config)
    for item in slices:
        extract_slice(config, RUN, item, warehouse_dsn)
    batch = slice_batch_id(backfill_id_for(RUN), 2)
    # Slice 2's publishing transaction writes everything, then waits at its first audit row: its session
    # ends there, as in a server restart.
    blocker = hold_chunk_audit_row(warehouse_dsn, batch)
    publish = Attempt(lambda: publish_slices(config, RUN, slices, warehouse_dsn))
    publish.start()
    terminate(warehouse_dsn, publisher_waiting_on(warehouse_dsn, blocker))
    blocker.rollback()
    blocker.close()
    publish.outcome()

    assert isinstance(publish.error, SourceUnavailableError)
    message = str(publish.error)
    assert message.startswith(
        f"xAPI backfill slice 2 of 4 (batch {batch}): lost the warehouse connection mid-transaction "
        "(terminating connection due to administrator command). Next step: clear publish_statement_slices"
    )
    assert "nothing of slice 2 was (its transaction rolled back, its staging tables are kept)" in message
    # slice 1's statements (1..5, but the LRS lists no voided statement 2)
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(4,)]
    assert rows(warehouse_dsn, "select slice_number, status from audit.lms_backfill_slice order by 1") == [
        (1, "published"),
        (2, "staged"),
        (3, "staged"),
        (4, "staged"),
    ]
    assert staging_tables(warehouse_dsn, batch)

    assert publish_slices(config, RUN, slices, warehouse_dsn)["published"] == 4
    assert staging_tables(warehouse_dsn) == []
    assert data_tables(warehouse_dsn) == single_extraction(make_warehouse, config)
