"""xAPI statements into the warehouse: the real sample LRS, real PostgreSQL, real GX gate."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from tests.databases import plan_nodes
from turnover_signals import storage
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError, SourceUnavailableError
from turnover_signals.lms.statements import (
    LMS_ACTIVITY_COLUMNS,
    ChunkWriter,
    StatementExtraction,
    extract_statements,
)
from turnover_signals.quality.gate import RunIdentity, data_docs_location
from turnover_signals.sources.xapi import parse_xapi_timestamp

pytestmark = pytest.mark.integration
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOME = "https://lms.northwind.example"
VERB = "http://adlnet.gov/expapi/verbs/"


def statement(
    n: int, *, learner="u-1", verb="completed", minutes=0, stored_delay=timedelta(seconds=5), **extra
):
    occurred = T0 + timedelta(minutes=minutes)
    body = {
        "id": str(uuid.UUID(int=n)),
        "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": learner}},
        "verb": {"id": VERB + verb if "://" not in verb else verb, "display": {"en-US": verb}},
        "object": {
            "objectType": "Activity",
            "id": f"{HOME}/courses/C-{n % 3}",
            "definition": {"name": {"en-US": f"Course {n % 3}"}},
        },
        "timestamp": occurred.isoformat().replace("+00:00", "Z"),
        "stored": (occurred + stored_delay).isoformat().replace("+00:00", "Z"),
        "version": "1.0.3",
    }
    body.update(extra)
    return body


@pytest.fixture
def config():
    return load_config(
        {
            "lms": {
                "initial_backoff_seconds": 0.01,
                "max_backoff_seconds": 0.05,
                "max_retry_after_seconds": 1,
                "statements_page_limit": 4,
                "max_reject_rate": 0.5,
                "request_timeout_seconds": 2,
                # declared, so that the requests these tests count and the faults they inject meet the
                # extraction itself; the conformance probe has its own tests (test_lrs_conformance.py)
                "lrs_since_field": "stored",
            }
        },
        use_variable=False,
    )


def connect(server, monkeypatch):
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)


def rows(dsn, query, params=None):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


# The columns the loader writes, not when each row was loaded: a reload converges to the same contents.
ACTIVITY_CONTENTS = sql.SQL("select {} from core.lms_activity order by 1").format(
    sql.SQL(", ").join(map(sql.Identifier, LMS_ACTIVITY_COLUMNS))
)


def data_tables(dsn):
    return {
        "raw": rows(
            dsn,
            "select statement_id, stored_at, occurred_at, statement, is_voided from raw.lms_statement order "
            "by 1",
        ),
        "rejected": rows(
            dsn,
            "select payload_sha256, reason, statement_id, raw from raw.lms_statement_rejected order by 1, 2",
        ),
        "activity": rows(dsn, ACTIVITY_CONTENTS),
        "watermark": rows(dsn, "select source, watermark from audit.extract_watermark"),
        "voids": rows(
            dsn, "select voided_statement_id, voiding_statement_id from audit.lms_void_applied order by 1"
        ),
    }


def test_statements_load_once_normalised_and_reruns_change_nothing(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    statements = [
        statement(
            1, result={"score": {"scaled": 0.8}, "success": True, "completion": True, "duration": "PT1H2M3S"}
        ),
        statement(2, verb="passed", minutes=1, result={"score": {"raw": 30, "min": 0, "max": 40}}),
        statement(
            3,
            verb="registered",
            minutes=2,
            actor={"objectType": "Agent", "mbox": "mailto:Jane.Doe@northwind.example"},
        ),
        statement(4, verb="http://example.com/verbs/bookmarked", minutes=3),
        statement(5, minutes=4, timestamp="2026-03-02T09:04:00"),  # no timezone: read as UTC, flagged
        statement(6, minutes=-4000, stored_delay=timedelta(days=3)),  # stored days after it happened
    ]
    server = lms_server_factory(statements=statements)
    connect(server, monkeypatch)
    run = RunIdentity("lms_api_ingest", "run-1", "extract_lms_statements", None, 1)
    summary = extract_statements(config, run, warehouse_dsn)
    assert (summary["received"], summary["new"], summary["rejected"], summary["status"]) == (
        6,
        6,
        0,
        "published",
    )
    assert summary["pages"] >= 2  # limit 4: paged through `more`
    activity = {
        r[0]: r
        for r in rows(
            warehouse_dsn,
            """
        select statement_id, learner_identifier, event_type, course_id, score_normalized::float,
               duration_seconds, is_timestamp_assumed_utc, occurred_at from core.lms_activity""",
        )
    }
    first = activity[str(uuid.UUID(int=1))]
    assert first[1:7] == (f"account:{HOME}|u-1", "completed", "C-1", 0.8, 3723, False)
    assert activity[str(uuid.UUID(int=2))][4] == 0.75
    assert activity[str(uuid.UUID(int=3))][1:3] == ("mbox:Jane.Doe@northwind.example", "enrolled")
    assert activity[str(uuid.UUID(int=4))][2] == "other"
    assert activity[str(uuid.UUID(int=5))][6] is True
    assert activity[str(uuid.UUID(int=6))][7] == T0 - timedelta(minutes=4000)
    watermark = rows(warehouse_dsn, "select watermark from audit.extract_watermark")[0][0]
    assert watermark == max(datetime.fromisoformat(s["stored"].replace("Z", "+00:00")) for s in statements)

    before = data_tables(warehouse_dsn)
    again = extract_statements(config, run, warehouse_dsn)  # a cleared and rerun task
    assert again["new"] == 0
    assert data_tables(warehouse_dsn) == before
    assert rows(warehouse_dsn, "select count(*) from audit.lms_extract_batch") == [(1,)]


def test_incremental_runs_fetch_only_what_is_new_and_late_statements_still_arrive(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 6)])
    connect(server, monkeypatch)
    extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    # an old experience stored now (late) and a new one
    server.add_statements([statement(50, minutes=-60 * 24 * 10), statement(51, minutes=10)])
    second = extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert second["new"] == 2
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from raw.lms_statement") == [
        (7, 7)
    ]


def test_bad_statements_are_rejected_with_reasons_and_never_dropped(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    two_ids = statement(
        10,
        actor={
            "objectType": "Agent",
            "mbox": "mailto:a@x.example",
            "account": {"homePage": HOME, "name": "u-2"},
        },
    )
    no_id = statement(11, minutes=1, actor={"objectType": "Agent", "name": "nobody"})
    too_high = statement(12, minutes=2, result={"score": {"scaled": 1.5}})
    bad_verb = statement(13, minutes=3)
    bad_verb["verb"] = {"id": "not an iri"}
    good = [statement(n, minutes=10 + n) for n in range(20, 26)]
    server = lms_server_factory(statements=[two_ids, no_id, too_high, bad_verb, *good])
    connect(server, monkeypatch)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (summary["new"], summary["rejected"]) == (6, 4)
    reasons = dict(rows(warehouse_dsn, "select statement_id, reason from raw.lms_statement_rejected"))
    assert reasons[str(uuid.UUID(int=10))] == "actor must have exactly one identifier"
    assert reasons[str(uuid.UUID(int=11))] == "actor must have exactly one identifier"
    assert reasons[str(uuid.UUID(int=12))] == "result.score.scaled outside [-1, 1]"
    assert reasons[str(uuid.UUID(int=13))] == "verb id is not an IRI"
    assert rows(
        warehouse_dsn, "select count(*) from raw.lms_statement_rejected where raw like '%%\"id\"%%'"
    ) == [(4,)]


def test_a_batch_over_the_reject_threshold_publishes_nothing_and_keeps_the_watermark(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    config["lms"]["max_reject_rate"] = 0.1
    bad = [statement(n, minutes=n, result={"score": {"scaled": 2}}) for n in range(1, 4)]
    server = lms_server_factory(statements=[*bad, *[statement(n, minutes=n) for n in range(10, 16)]])
    connect(server, monkeypatch)
    with pytest.raises(BadInputError, match=r"3 of 9 statements rejected.*Next step"):
        extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(0,)]
    assert rows(warehouse_dsn, "select count(*) from audit.extract_watermark") == [(0,)]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement_rejected") == [(3,)]
    assert rows(warehouse_dsn, "select status from audit.lms_extract_batch") == [("failed",)]
    assert rows(warehouse_dsn, "select success from audit.validation_result") == [(False,)]


def test_a_void_arriving_after_its_target_was_loaded_marks_it_voided(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = lms_server_factory(statements=[statement(1), statement(2, minutes=1)])
    connect(server, monkeypatch)
    extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    void = statement(99, verb="voided", minutes=30)
    void["object"] = {"objectType": "StatementRef", "id": str(uuid.UUID(int=1))}
    server.add_statements([void])
    summary = extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert summary["voids_applied"] == 1
    assert rows(warehouse_dsn, "select statement_id, is_voided from core.lms_activity order by 1") == [
        (str(uuid.UUID(int=1)), True),
        (str(uuid.UUID(int=2)), False),
    ]
    assert rows(
        warehouse_dsn, "select voided_statement_id, voiding_statement_id from audit.lms_void_applied"
    ) == [(str(uuid.UUID(int=1)), str(uuid.UUID(int=99)))]


def test_a_statement_voided_before_it_was_ever_received_is_fetched_and_kept_voided(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    # The LRS leaves the voided statement 1 out of every listing: a first install sees only the void.
    void = statement(99, verb="voided", minutes=2, stored_delay=timedelta(days=3))
    void["object"] = {"objectType": "StatementRef", "id": str(uuid.UUID(int=1))}
    server = lms_server_factory(statements=[statement(1), statement(2, minutes=1), void])
    connect(server, monkeypatch)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (summary["received"], summary["voids_applied"]) == (3, 1)
    voided = str(uuid.UUID(int=1))
    assert rows(
        warehouse_dsn, "select statement_id, stored_at, is_voided from core.lms_activity order by 1"
    ) == [
        (voided, T0 + timedelta(seconds=5), True),
        (str(uuid.UUID(int=2)), T0 + timedelta(minutes=1, seconds=5), False),
    ]
    assert rows(warehouse_dsn, "select voided_statement_id, void_stored_at from audit.lms_void_applied") == [
        (voided, T0 + timedelta(minutes=2, days=3))
    ]
    assert any("voidedStatementId" in request.path for request in server.requests)
    # nothing is missing any more: a rerun fetches and changes nothing
    before = data_tables(warehouse_dsn)
    server.clear_requests()
    extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert data_tables(warehouse_dsn) == before
    assert not any("voidedStatementId" in request.path for request in server.requests)


def test_many_statements_voided_before_they_were_received_are_fetched_a_few_at_a_time(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    targets = [statement(n, minutes=n) for n in range(1, 41)]
    voids = []
    for n, target in enumerate(targets, start=100):
        void = statement(n, verb="voided", minutes=60 + n)
        void["object"] = {"objectType": "StatementRef", "id": target["id"]}
        voids.append(void)
    server = lms_server_factory(statements=targets + voids)
    connect(server, monkeypatch)
    config["lms"]["void_fetch_concurrency"] = 4
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert summary["voids_applied"] == 40
    assert rows(warehouse_dsn, "select count(*) from core.lms_activity where is_voided") == [(40,)]
    assert sum("voidedStatementId" in request.path for request in server.requests) == 40


def test_an_lrs_refusing_voided_statement_queries_is_asked_once_and_the_voids_are_kept(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    from turnover_signals.lms.statements import StatementExtraction
    from turnover_signals.sources.xapi import XapiClient

    server = lms_server_factory(statements=[statement(1)])
    connect(server, monkeypatch)
    config["lms"]["void_fetch_concurrency"] = 1
    extraction = StatementExtraction(config, RunIdentity("d", "r1", "t"), warehouse_dsn, XapiClient())
    server.inject_fault("status", path_prefix="/xapi/statements", count=50, status=400)
    server.clear_requests()
    assert extraction.fetch_voided_statements([str(uuid.UUID(int=n)) for n in range(10)]) == []
    assert len(server.requests) == 1  # refused once: not asked nine more times


def test_an_lrs_without_the_voided_statement_keeps_the_void_and_nothing_else(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    void = statement(99, verb="voided", minutes=2)
    void["object"] = {"objectType": "StatementRef", "id": str(uuid.UUID(int=7))}  # the LRS never had it
    server = lms_server_factory(statements=[statement(1), void])
    connect(server, monkeypatch)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert summary["voids_applied"] == 0
    assert rows(warehouse_dsn, "select statement_id from raw.lms_statement order by 1") == [
        (str(uuid.UUID(int=1)),),
        (str(uuid.UUID(int=99)),),
    ]


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("status", {"status": 500}),
        ("status", {"status": 429, "retry_after": 0}),
        ("reset", {"after_bytes": 40}),
        ("malformed_json", {}),
        ("repeat_page", {}),
    ],
)
def test_server_faults_still_load_every_statement_exactly_once(
    lms_server_factory, monkeypatch, warehouse_dsn, config, kind, params
):
    statements = [statement(n, minutes=n) for n in range(1, 11)]
    server = lms_server_factory(statements=statements)
    connect(server, monkeypatch)
    server.inject_fault(kind, count=1, **params)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert summary["new"] == 10
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from raw.lms_statement") == [
        (10, 10)
    ]
    before = data_tables(warehouse_dsn)
    extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert data_tables(warehouse_dsn) == before


def test_a_more_loop_fails_clearly_and_publishes_nothing(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 11)])
    connect(server, monkeypatch)
    server.inject_fault("more_loop", count=50)
    with pytest.raises(SourceUnavailableError, match="Next step"):
        extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(0,)]
    assert rows(warehouse_dsn, "select count(*) from audit.extract_watermark") == [(0,)]


def test_the_watermark_belongs_to_the_connection_not_the_servers_address(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    config["lms"]["since_overlap_days"] = 0
    first_server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 6)])
    connect(first_server, monkeypatch)
    extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    # the same LRS now answers on another port, with one more statement stored since
    moved = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 7)])
    connect(moved, monkeypatch)
    second = extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert (second["received"], second["new"]) == (1, 1)
    assert rows(warehouse_dsn, "select source from audit.extract_watermark") == [("xapi:lms_api",)]


def chunked(config, statements_per_chunk):
    config["lms"]["publish_chunk_statements"] = statements_per_chunk
    return config


def test_chunks_publish_as_they_go_and_converge_to_the_same_tables_as_one_batch(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    bad = statement(60, minutes=20, result={"score": {"scaled": 1.5}})
    statements = [*[statement(n, minutes=n) for n in range(1, 30)], bad]
    server = lms_server_factory(statements=statements)
    connect(server, monkeypatch)
    summary = extract_statements(chunked(config, 8), RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert summary["chunks"] == 4  # pages of 4, chunks of 8: 30 statements
    assert (summary["received"], summary["new"], summary["rejected"]) == (30, 29, 1)
    assert rows(warehouse_dsn, "select status, count(*) from audit.lms_extract_batch group by 1") == [
        ("published", 4)
    ]
    chunked_tables = data_tables(warehouse_dsn)

    extract_statements(
        chunked(config, 8), RunIdentity("d", "r1", "t"), warehouse_dsn
    )  # rerun: nothing changes
    assert data_tables(warehouse_dsn) == chunked_tables

    with psycopg.connect(warehouse_dsn) as conn:
        conn.execute(
            "truncate raw.lms_statement, raw.lms_statement_rejected, core.lms_activity,"
            " audit.extract_watermark, audit.lms_void_applied"
        )
    one_batch = extract_statements(chunked(config, 10_000), RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert one_batch["chunks"] == 1
    assert data_tables(warehouse_dsn) == chunked_tables


def test_fetching_runs_at_most_one_chunk_ahead_of_publishing(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    """A chunk is staged only once the chunk two before it is published: fetching further ahead would take
    CPU from the publishing thread (the loader's critical path) and staging space from the warehouse."""
    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 25)])
    connect(server, monkeypatch)
    events = []
    new_chunk, publish_checked = StatementExtraction.new_chunk, StatementExtraction.publish_checked

    def note_staged(self, number):
        events.append(("staged", number))
        return new_chunk(self, number)

    def publish_slowly(self, conn, checked, stats):
        time.sleep(0.3)  # publishing is the slow step, as in a large extraction
        publish_checked(self, conn, checked, stats)
        events.append(("published", checked.chunk.number))

    monkeypatch.setattr(StatementExtraction, "new_chunk", note_staged)
    monkeypatch.setattr(StatementExtraction, "publish_checked", publish_slowly)
    summary = extract_statements(chunked(config, 4), RunIdentity("d", "r1", "t"), warehouse_dsn)

    assert (summary["chunks"], summary["new"]) == (6, 24)  # pages of 4: a chunk a page
    for number in range(3, 7):
        assert events.index(("published", number - 2)) < events.index(("staged", number)), events
    # and no further behind than that: the next chunk is staged while one is published
    assert events.index(("staged", 2)) < events.index(("published", 1)), events


def statements_rejecting(count, rejected):
    """Statements 1..count a minute apart; those numbered in `rejected` have a scaled score out of range."""
    return [
        statement(n, minutes=n, result={"score": {"scaled": 1.5}})
        if n in rejected
        else statement(n, minutes=n)
        for n in range(1, count + 1)
    ]


def serve_repeating_a_page(lms_server_factory, monkeypatch, statements, chunk_number, pages):
    """Serve `statements`; the LRS serves again the page it served last, once chunk `chunk_number` holds
    `pages` pages."""
    server = lms_server_factory(statements=statements)
    connect(server, monkeypatch)
    write = ChunkWriter.write

    def write_then_repeat(self, page):
        write(self, page)
        if (self.chunk.number, self.chunk.pages) == (chunk_number, pages):
            server.inject_fault("repeat_page", path_prefix="/xapi/statements")

    monkeypatch.setattr(ChunkWriter, "write", write_then_repeat)
    return server


def note_gates(monkeypatch):
    """(chunk number, passed) of every gate in order, and per chunk an event set once it is gated."""
    gate_chunk = StatementExtraction.gate_chunk
    gates, gated = [], defaultdict(threading.Event)

    def gate_and_note(self, chunk, counts, stats):
        outcome = gate_chunk(self, chunk, counts, stats)
        gates.append((chunk.number, outcome.success))
        gated[chunk.number].set()
        return outcome

    monkeypatch.setattr(StatementExtraction, "gate_chunk", gate_and_note)
    return gates, gated


def hold_the_first_chunks_publishing(monkeypatch, until, timeout):
    """Chunk 1 publishes once `until` is set (or after `timeout` seconds): whether it was set, noted."""
    publish = StatementExtraction._publish
    waited = []

    def publish_after(self, conn, chunk, stats, counts):
        if chunk.number == 1:
            waited.append(until.wait(timeout=timeout))
        return publish(self, conn, chunk, stats, counts)

    monkeypatch.setattr(StatementExtraction, "_publish", publish_after)
    return waited


def test_a_chunk_is_gated_while_the_one_before_it_is_published_and_counts_as_if_gated_after_it(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    # Pages of 4, chunks of 4. The LRS serves the first page twice (a repeated page): the second chunk is the
    # first one again, its reject included, which the first chunk accepts when it is published.
    statements = statements_rejecting(12, rejected={2})
    serve_repeating_a_page(lms_server_factory, monkeypatch, statements, chunk_number=1, pages=1)
    gates, gated = note_gates(monkeypatch)
    # The gate of chunk 2 runs on its own connection while chunk 1 waits in its publishing transaction; one
    # publisher thread doing both in turn never gets there.
    waited = hold_the_first_chunks_publishing(monkeypatch, until=gated[2], timeout=20)
    summary = extract_statements(chunked(config, 4), RunIdentity("d", "r1", "t"), warehouse_dsn)

    assert waited == [True]
    assert sorted(number for number, _ in gates) == [1, 2, 2, 3, 4]  # chunk 2 gated again, on what is left
    assert (summary["chunks"], summary["received"], summary["new"]) == (4, 16, 11)
    # The second chunk's copy of the reject was counted by its gate before the first chunk accepted it; it is
    # dropped before the second chunk is published, as if gated after the first: one reject, accepted once.
    assert (summary["rejected"], summary["rejects_accepted_before"]) == (1, 1)
    batches = rows(
        warehouse_dsn,
        "select statements_received, statements_new, statements_already_loaded, statements_rejected, status"
        " from audit.lms_extract_batch",
    )
    assert sorted(batches) == sorted(
        [
            (4, 3, 0, 1, "published"),
            (4, 0, 3, 0, "published"),
            (4, 4, 0, 0, "published"),
            (4, 4, 0, 0, "published"),
        ]
    )
    first_batch = rows(
        warehouse_dsn, "select batch_id from audit.lms_extract_batch where statements_rejected = 1"
    )
    assert rows(warehouse_dsn, "select count(*), min(accepted_in_batch) from raw.lms_statement_rejected") == [
        (1, first_batch[0][0])
    ]
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from raw.lms_statement") == [
        (11, 11)
    ]


def test_after_a_chunk_fails_its_gate_no_later_chunk_is_gated(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    # Chunk 2 of 4 fails its gate. Its failure is raised once chunk 1 is published; chunk 3, staged meanwhile,
    # would otherwise be gated for nothing, leaving a Data Docs page for a batch never published.
    connect(lms_server_factory(statements=statements_rejecting(16, rejected={5, 6, 7})), monkeypatch)
    gates, gated = note_gates(monkeypatch)
    hold_the_first_chunks_publishing(monkeypatch, until=gated[3], timeout=3)
    with pytest.raises(BadInputError, match=r"\(chunk 2, "):
        extract_statements(chunked(config, 4), RunIdentity("d", "r1", "t"), warehouse_dsn)

    assert gates == [(1, True), (2, False)]
    assert rows(warehouse_dsn, "select status from audit.lms_extract_batch order by batch_id") == [
        ("published",),
        ("failed",),
    ]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(4,)]


def data_docs_pages(config):
    """The URLs of the Data Docs pages in storage (shared by the tests of one worker)."""
    return {
        storage.object_url(path)
        for path, _, _ in storage.objects_under(data_docs_location(config))
        if path.name.endswith(".html")
    }


def test_a_chunk_failing_its_gate_only_by_rejects_the_chunk_before_accepted_is_gated_again_and_publishes(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    # Chunks of 8, pages of 4, 9 statements; the LRS serves page 2 (two rejects) twice. Chunk 1 (pages 1, 2):
    # 2 of 8 rejected, passes at 30 %. Chunk 2 (page 2 again, page 3), gated before chunk 1 is published:
    # 2 of 5, fails. One at a time it would have been gated after chunk 1 accepted those two, and passed.
    config["lms"]["max_reject_rate"] = 0.3
    statements = statements_rejecting(9, rejected={5, 6})
    serve_repeating_a_page(lms_server_factory, monkeypatch, statements, chunk_number=1, pages=2)
    gates, gated = note_gates(monkeypatch)
    waited = hold_the_first_chunks_publishing(monkeypatch, until=gated[2], timeout=20)
    pages_before = data_docs_pages(config)
    summary = extract_statements(chunked(config, 8), RunIdentity("d", "r1", "t"), warehouse_dsn)

    assert waited == [True]
    assert gates == [(1, True), (2, False), (2, True)]
    assert (summary["new"], summary["rejected"], summary["rejects_accepted_before"]) == (7, 2, 2)
    assert rows(warehouse_dsn, "select status, count(*) from audit.lms_extract_batch group by 1") == [
        ("published", 2)
    ]
    # the validation recorded for chunk 2 is its second gate's
    assert rows(warehouse_dsn, "select success, count(*) from audit.validation_result group by 1") == [
        (True, 2)
    ]
    # and the run left the Data Docs pages of the validations recorded: the first gate's of chunk 2 is gone
    recorded = {path for (path,) in rows(warehouse_dsn, "select data_docs_path from audit.validation_result")}
    assert data_docs_pages(config) - pages_before == recorded


def test_a_gate_that_loses_its_session_while_the_chunk_before_publishes_says_that_chunk_is_published(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 13)])
    connect(server, monkeypatch)
    second_check_failed = threading.Event()
    finish_checks = StatementExtraction._finish_checks

    def lose_the_session_at_chunk_2(self, conn, chunk):
        if chunk.number == 2:
            with psycopg.connect(warehouse_dsn, autocommit=True) as admin:
                admin.execute("select pg_terminate_backend(%s)", (conn.info.backend_pid,))
            try:
                return finish_checks(self, conn, chunk)
            finally:
                second_check_failed.set()
        return finish_checks(self, conn, chunk)

    monkeypatch.setattr(StatementExtraction, "_finish_checks", lose_the_session_at_chunk_2)
    waited = hold_the_first_chunks_publishing(monkeypatch, until=second_check_failed, timeout=20)
    with pytest.raises(SourceUnavailableError) as raised:
        extract_statements(chunked(config, 4), RunIdentity("d", "r1", "t"), warehouse_dsn)

    # Said once chunk 1 is published, though its session was lost before: what the message says is published
    # is what is.
    assert waited == [True]
    message = str(raised.value)
    assert "(chunk 2)" in message and "nothing was published from the interrupted chunk 2" in message
    assert "1 earlier chunk(s) of this run are" in message
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(4,)]
    assert rows(warehouse_dsn, "select count(*) from audit.lms_extract_batch") == [(1,)]


def test_voids_reach_statements_published_by_earlier_chunks(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 21)])
    connect(server, monkeypatch)
    extract_statements(chunked(config, 8), RunIdentity("d", "r1", "t"), warehouse_dsn)
    voids = []
    for n, target in ((98, 2), (99, 19)):  # targets in the first and the last chunk
        void = statement(n, verb="voided", minutes=30 + n)
        void["object"] = {"objectType": "StatementRef", "id": str(uuid.UUID(int=target))}
        voids.append(void)
    server.add_statements(voids)
    summary = extract_statements(chunked(config, 8), RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert summary["voids_applied"] == 2
    assert rows(warehouse_dsn, "select statement_id from core.lms_activity where is_voided order by 1") == [
        (str(uuid.UUID(int=2)),),
        (str(uuid.UUID(int=19)),),
    ]


def test_a_chunk_over_the_reject_threshold_keeps_earlier_chunks_and_their_watermark(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    config["lms"]["max_reject_rate"] = 0.1
    good = [statement(n, minutes=n) for n in range(1, 9)]  # chunk 1: two pages of 4
    bad = [statement(n, minutes=n, result={"score": {"scaled": 2}}) for n in range(10, 14)]  # chunk 2
    later = [statement(n, minutes=n) for n in range(20, 28)]  # chunk 3: never published
    server = lms_server_factory(statements=[*good, *bad, *later])
    connect(server, monkeypatch)
    with pytest.raises(BadInputError, match=r"chunk 2.*4 of 8 statements rejected.*1 earlier chunk"):
        extract_statements(chunked(config, 8), RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(8,)]
    assert rows(warehouse_dsn, "select count(*) from core.lms_activity") == [(8,)]
    chunk_one_end = max(datetime.fromisoformat(s["stored"].replace("Z", "+00:00")) for s in good)
    assert rows(warehouse_dsn, "select watermark from audit.extract_watermark") == [(chunk_one_end,)]
    assert rows(
        warehouse_dsn, "select status, statements_rejected from audit.lms_extract_batch order by batch_id"
    ) == [
        ("published", 0),
        ("failed", 4),
    ]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement_rejected") == [(4,)]
    assert rows(
        warehouse_dsn, "select count(*) from information_schema.tables where table_schema = 'staging'"
    ) == [(0,)]

    config["lms"]["max_reject_rate"] = 0.6  # the vendor's answer: these are acceptable
    rerun = extract_statements(chunked(config, 8), RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert rerun["status"] == "published"
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(16,)]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement_rejected") == [(4,)]
    last_stored = max(datetime.fromisoformat(s["stored"].replace("Z", "+00:00")) for s in later)
    assert rows(warehouse_dsn, "select watermark from audit.extract_watermark") == [(last_stored,)]


def test_a_cleared_run_recovers_the_voided_statements_of_chunks_its_failed_attempt_published(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    config["lms"]["max_reject_rate"] = 0.1
    # no overlap, as when the failed attempt published more than lms.since_overlap_days: the cleared task
    # stages only the chunk that failed, under the first chunk's batch id
    config["lms"]["since_overlap_days"] = 0
    void = statement(99, verb="voided", minutes=20)  # in chunk 3; its target the LRS lists nowhere
    void["object"] = {"objectType": "StatementRef", "id": str(uuid.UUID(int=50))}
    published = [statement(n, minutes=n) for n in range(1, 25) if n != 20]  # chunks 1-3, the void among them
    bad = [statement(n, minutes=n, result={"score": {"scaled": 2}}) for n in range(30, 34)]  # half of chunk 4
    later = [statement(n, minutes=n) for n in range(40, 44)]
    server = lms_server_factory(statements=[statement(50), *published, void, *bad, *later])
    connect(server, monkeypatch)
    with pytest.raises(BadInputError, match="chunk 4"):
        extract_statements(chunked(config, 8), RunIdentity("d", "r1", "t"), warehouse_dsn)
    target = str(uuid.UUID(int=50))
    assert rows(
        warehouse_dsn, "select count(*) from raw.lms_statement where statement_id = %s", (target,)
    ) == [(0,)]
    config["lms"]["max_reject_rate"] = 0.6  # the vendor's answer: acceptable; the task is cleared
    rerun = extract_statements(chunked(config, 8), RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert rerun["status"] == "published"
    assert rows(
        warehouse_dsn, "select is_voided from core.lms_activity where statement_id = %s", (target,)
    ) == [(True,)]


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-02T09:04:00Z",
        "2026-03-02T09:04:00.123456789+01:30",
        "2026-03-02 09:04:00-05",
        "2026-03-02T09:04+0200",
        "2026-03-02T09:04:00",
        "2026-03-02",
        "2024-02-29T00:00:00Z",
        "2026-02-29T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-03-02T24:00:00Z",
        "2026-03-02T09:61:00Z",
        "yesterday",
        "0000-01-01T00:00:00Z",  # no year 0: null, not an error that fails the whole chunk
        "0000-01-01",
        "",
        "  2026-03-02T09:04:00z  ",
    ],
)
def test_sql_timestamp_parsing_agrees_with_the_client(warehouse_dsn, text):
    from turnover_signals.sources.xapi import TimezoneMissingError, XapiTimestampError

    try:
        expected_zoned = expected_loose = parse_xapi_timestamp(text)
    except TimezoneMissingError:
        expected_zoned, expected_loose = None, datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    except XapiTimestampError:
        expected_zoned = expected_loose = None
    assert rows(
        warehouse_dsn,
        "select core.parse_xapi_timestamp_text(%(t)s, true), core.parse_xapi_timestamp_text(%(t)s, false)",
        {"t": text},
    ) == [(expected_zoned, expected_loose)]


@pytest.mark.parametrize(
    "deviations",
    [
        ("no_version_headers",),
        ("empty_final_page",),
        ("more_absent_at_end",),
        ("reversed_pages",),
        ("no_version_headers", "empty_final_page", "more_absent_at_end", "reversed_pages"),
    ],
    ids=lambda deviations: "+".join(deviations),
)
def test_an_lrs_bending_the_standard_loses_no_statement_and_loads_none_twice(
    lms_server_factory, monkeypatch, warehouse_dsn, config, deviations
):
    statements = [statement(n, minutes=n) for n in range(1, 151)]
    server = lms_server_factory(statements=statements, max_page_size=50, deviations=deviations)
    connect(server, monkeypatch)
    config["lms"]["statements_page_limit"] = 100  # above the server's cap of 50, as with Ralph's 100
    config["lms"]["lrs_since_field"] = "probe"  # the probe reads the bent LRS too
    first = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (first["received"], first["new"]) == (150, 150)
    # three full pages; an LRS that links a page after the last full one answers a fourth, empty one
    assert first["pages"] == (4 if "empty_final_page" in deviations else 3)
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from core.lms_activity") == [
        (150, 150)
    ]
    newest = max(parse_xapi_timestamp(s["stored"]) for s in statements)
    assert rows(warehouse_dsn, "select max(stored_at) from raw.lms_statement") == [(newest,)]
    before = data_tables(warehouse_dsn)
    again = extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert again["new"] == 0 and data_tables(warehouse_dsn) == before


# -- statements that must not stop an extraction (issue 22: points 11, 17 and 12) ---------------------


def display_stored(body):
    """`body` with stored and timestamp as the sample LRS writes them: it then serves the text as written."""
    for key in ("stored", "timestamp"):
        moment = parse_xapi_timestamp(body[key])
        body[key] = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return body


def lrs_with_lines(lms_server_factory, tmp_path, statements, lines):
    """A sample LRS serving `statements` and the statement texts `lines` exactly as written."""
    from turnover_demo.sample_servers.sample_data import write_lms_data

    data_dir = write_lms_data(tmp_path / "lms-data", statements, [])
    with open(data_dir / "lms" / "statements.jsonl", "ab") as handle:
        for line in lines:
            handle.write(line + b"\n")
    return lms_server_factory(data_dir=data_dir)


def rejected_row(dsn, statement_id):
    return rows(
        dsn,
        "select reason, payload_sha256, payload_bytes, is_raw_truncated, octet_length(raw), raw"
        " from raw.lms_statement_rejected where statement_id = %s",
        (statement_id,),
    )


@pytest.mark.parametrize("since_field", ["stored", "probe"])  # the conformance probe reads the page too
def test_a_statement_nested_10000_levels_deep_is_rejected_and_every_other_one_loads(
    lms_server_factory, monkeypatch, warehouse_dsn, config, tmp_path, since_field
):
    config["lms"]["lrs_since_field"] = since_field
    deep = display_stored(statement(4, minutes=4, result={"extensions": {"x": "DEEP"}}))
    deep_line = (
        json.dumps(deep, separators=(",", ":")).replace('"DEEP"', "[" * 10_000 + "]" * 10_000).encode()
    )
    others = [statement(n, minutes=n) for n in (1, 2, 3, 5, 6, 7, 8, 9)]
    server = lrs_with_lines(lms_server_factory, tmp_path, others, [deep_line])
    connect(server, monkeypatch)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (summary["received"], summary["new"], summary["rejected"]) == (9, 8, 1)
    ((reason, digest, size, is_truncated, kept, raw),) = rejected_row(warehouse_dsn, deep["id"])
    assert reason == "statement nests deeper than lms.max_statement_depth"
    assert (digest, size, is_truncated) == (hashlib.sha256(deep_line).hexdigest(), len(deep_line), True)
    assert kept == 4096 and deep_line.startswith(raw.encode())
    assert rows(warehouse_dsn, "select statements_rejected from audit.lms_extract_batch") == [(1,)]
    newest = max(parse_xapi_timestamp(s["stored"]) for s in others)
    assert rows(warehouse_dsn, "select watermark from audit.extract_watermark") == [(newest,)]

    server.add_statements([statement(20, minutes=30)])  # the next run: the deep statement is read again
    again = extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert again["new"] == 1
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(9,)]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement_rejected") == [(1,)]


def test_a_10_mb_statement_is_rejected_and_kept_as_an_excerpt_with_its_size_and_sha256(
    lms_server_factory, monkeypatch, warehouse_dsn, config, tmp_path
):
    big = display_stored(statement(4, minutes=4, result={"response": "x" * 10_000_000}))
    big_line = json.dumps(big, separators=(",", ":")).encode()
    server = lrs_with_lines(
        lms_server_factory, tmp_path, [statement(n, minutes=n) for n in (1, 2, 3, 5, 6)], [big_line]
    )
    connect(server, monkeypatch)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (summary["new"], summary["rejected"]) == (5, 1)
    ((reason, digest, size, is_truncated, kept, _),) = rejected_row(warehouse_dsn, big["id"])
    assert reason == "statement is larger than lms.max_statement_bytes"
    assert (digest, size, is_truncated, kept) == (
        hashlib.sha256(big_line).hexdigest(),
        len(big_line),
        True,
        4096,
    )
    assert rows(
        warehouse_dsn, "select max(octet_length(statement::text)) < 1048576 from raw.lms_statement"
    ) == [(True,)]


def test_a_chunk_whose_staging_table_cannot_be_created_fails_with_that_error_and_drops_the_others(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    config["lms"]["publish_chunk_statements"] = 4
    connect(lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 11)]), monkeypatch)
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        # the warehouse refuses the second chunk's table, as a full disk or a statement timeout would
        conn.execute(
            "create function refuse_second_chunk() returns event_trigger language plpgsql as $$ begin "
            "if exists (select from pg_event_trigger_ddl_commands() "
            "where object_identity like '%\\_2\\_\\_checks') "
            "then raise exception 'injected: no room for the second chunk'; end if; end $$"
        )
        conn.execute(
            "create event trigger refuse_second_chunk on ddl_command_end when tag in ('CREATE TABLE AS') "
            "execute function refuse_second_chunk()"
        )
    try:
        with pytest.raises(psycopg.errors.RaiseException, match="no room for the second chunk"):
            extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    finally:
        with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
            conn.execute("drop event trigger refuse_second_chunk")
    # the first chunk was complete and is published; nothing is left in staging
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(4,)]
    assert rows(warehouse_dsn, "select count(*) from pg_tables where schemaname = 'staging'") == [(0,)]
    assert extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)["new"] == 6


def test_a_statement_postgresql_cannot_store_is_rejected_and_every_other_one_loads(
    lms_server_factory, monkeypatch, warehouse_dsn, config, tmp_path
):
    # JSON allows "\u0000"; jsonb refuses it, which once failed the COPY of the chunk, and every later run's
    nul = display_stored(statement(4, minutes=4, result={"response": "a\u0000b"}))
    nul_line = json.dumps(nul, separators=(",", ":")).encode()
    others = [statement(n, minutes=n) for n in (1, 2, 3, 5, 6)]
    connect(lrs_with_lines(lms_server_factory, tmp_path, others, [nul_line]), monkeypatch)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (summary["new"], summary["rejected"]) == (5, 1)
    ((reason, digest, size, is_truncated, _, raw),) = rejected_row(warehouse_dsn, nul["id"])
    assert reason == "statement holds JSON that PostgreSQL cannot store"
    assert (digest, size, is_truncated) == (hashlib.sha256(nul_line).hexdigest(), len(nul_line), False)
    assert raw == nul_line.decode()  # the excerpt is the whole statement, as text
    assert rows(warehouse_dsn, "select count(*) from core.lms_activity") == [(5,)]


def test_a_statement_stored_in_the_future_is_rejected_and_the_watermark_stays_by_our_clock(
    lms_server_factory, monkeypatch, warehouse_dsn, config, caplog
):
    normal = [statement(n, minutes=n) for n in range(1, 6)]
    future = statement(6, minutes=6)
    future["stored"] = "2099-01-01T00:00:00Z"  # the LRS's clock, not the experience's
    connect(lms_server_factory(statements=[*normal, future]), monkeypatch)
    summary = extract_statements(config, RunIdentity("lms_api_ingest", "r1", "t"), warehouse_dsn)
    assert (summary["new"], summary["rejected"]) == (5, 1)
    assert rows(warehouse_dsn, "select reason from raw.lms_statement_rejected") == [
        ("stored is in the future beyond the tolerance",)
    ]
    ((watermark,),) = rows(warehouse_dsn, "select watermark from audit.extract_watermark")
    assert watermark == max(parse_xapi_timestamp(s["stored"]) for s in normal)
    assert watermark <= datetime.now(UTC) + timedelta(
        minutes=config["lms"]["future_timestamp_tolerance_minutes"]
    )
    ((warning,),) = rows(warehouse_dsn, "select clock_warning from audit.lms_extract_batch")
    assert summary["clock_warning"] == warning
    assert "the LRS's clock is ahead of ours" in warning and "stored as late as 2099-01-01" in warning
    assert "X-Experience-API-Consistent-Through 2099-01-01" in warning  # the sample LRS's header follows it
    alerts = [r.getMessage() for r in caplog.records if "TURNOVER-SIGNALS ALERT" in r.getMessage()]
    assert len(alerts) == 1 and "Next step" in alerts[0] and "runbook-lms-clock-skew" in alerts[0]

    # The LRS, its clock fixed, stores the next statement; the next run still asks from our watermark.
    later = statement(7, minutes=60 * 24)
    connect(lms_server_factory(statements=[*normal, future, later]), monkeypatch)
    extract_statements(config, RunIdentity("lms_api_ingest", "r2", "t"), warehouse_dsn)
    assert rows(warehouse_dsn, "select 1 from raw.lms_statement where statement_id = %s", (later["id"],)) == [
        (1,)
    ]


def test_a_reject_a_published_batch_accepted_is_not_gated_again_when_the_lrs_returns_it(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    # A statement stored in the future stays after the watermark: every extraction reads it again. Once the
    # look-back no longer reaches the statements published with it, a quiet hour's batch is that reject and
    # little else; gated again, it would fail every such batch (issue 22 point 12's follow-up).
    config["lms"]["max_reject_rate"] = 0.2
    normal = [statement(n, minutes=n) for n in range(1, 6)]
    future = statement(6, minutes=6)
    future["stored"] = "2099-01-01T00:00:00Z"
    ten_days_later = statement(7, minutes=60 * 24 * 10)
    connect(lms_server_factory(statements=[*normal, future, ten_days_later]), monkeypatch)
    first = extract_statements(config, RunIdentity("lms_api_ingest", "r1", "t"), warehouse_dsn)
    assert (first["new"], first["rejected"], first["rejects_accepted_before"]) == (6, 1, 0)

    eleven_days_later = statement(8, minutes=60 * 24 * 11)
    connect(lms_server_factory(statements=[*normal, future, ten_days_later, eleven_days_later]), monkeypatch)
    second = extract_statements(config, RunIdentity("lms_api_ingest", "r2", "t"), warehouse_dsn)
    # read: the two recent statements and the future one; gated: the two statements
    assert (second["new"], second["rejected"], second["rejects_accepted_before"]) == (1, 0, 1)
    assert rows(warehouse_dsn, "select count(*), min(accepted_in_batch) from raw.lms_statement_rejected") == [
        (1, first["batch_id"])
    ]


def test_the_rejects_of_a_batch_that_failed_its_gate_are_gated_again_on_its_rerun(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    config["lms"]["max_reject_rate"] = 0.2
    good = statement(1, minutes=1)
    bad = [statement(n, minutes=n) for n in range(2, 5)]
    for item in bad:
        item["stored"] = "2099-01-01T00:00:00Z"
    connect(lms_server_factory(statements=[good, *bad]), monkeypatch)
    run = RunIdentity("lms_api_ingest", "r1", "t")
    for _attempt in range(2):
        with pytest.raises(BadInputError, match="statements rejected"):
            extract_statements(config, run, warehouse_dsn)
    assert rows(
        warehouse_dsn,
        "select count(*) filter (where accepted_in_batch is not null) from raw.lms_statement_rejected",
    ) == [(0,)]
    assert rows(warehouse_dsn, "select count(*) from raw.lms_statement") == [(0,)]


def published_statement_scans(conn, statement):
    """How the plan of `statement` reads raw.lms_statement: the types of the nodes that scan it."""
    return {
        n["Node Type"]
        for n in plan_nodes(conn, statement)
        if n.get("Relation Name") == "lms_statement" and n["Node Type"] != "ModifyTable"
    }


def test_a_chunk_meets_the_published_statements_through_their_index_not_a_read_of_the_whole_table(
    warehouse_dsn,
):
    from turnover_signals.lms.statements import probing_published_statements_by_index
    from turnover_signals.sqlfiles import read_sql

    with psycopg.connect(warehouse_dsn) as conn, conn.transaction(force_rollback=True):
        # raw.lms_statement as it grows: many rows published, statistics not yet gathered (autovacuum lags)
        conn.execute(
            "insert into raw.lms_statement (statement_id, stored_at, statement, source, batch_id, loaded_at)"
            " select gen_random_uuid()::text, now(), '{}'::jsonb, 'lrs', 'earlier', now()"
            " from generate_series(1, 20000)"
        )
        conn.execute(
            "create temp table chunk_checks as select gen_random_uuid()::text as statement_id,"
            " now() as stored_at, now() as occurred_at, '{}'::jsonb as statement, null::text as reject_reason"
            " from generate_series(1, 1000)"
        )
        conn.execute("analyze chunk_checks")
        publish = sql.SQL(read_sql("raw", "lms_statement")).format(checks=sql.Identifier("chunk_checks"))
        text = publish.as_string(conn).replace("%(source)s", "'lrs'").replace("%(batch)s", "'b'")
        publish = sql.SQL(text.replace("%(probe_published)s", "true"))
        # the planner's own choice: a hash join over a read of every published statement, per chunk
        assert "Seq Scan" in published_statement_scans(conn, publish)
        with probing_published_statements_by_index(conn):
            assert published_statement_scans(conn, publish) <= {"Index Only Scan", "Index Scan"}
        assert "Seq Scan" in published_statement_scans(conn, publish), "only inside the block"
        # a chunk expected to be all new: the planner drops the probe, only the primary key meets each id
        unprobed = sql.SQL(text.replace("%(probe_published)s", "false"))
        assert published_statement_scans(conn, unprobed) == set()


def probe_flags(monkeypatch):
    """Whether each insert of a chunk's new statements probed the published ids (`probe_published`), in
    the order the loader ran them."""
    flags = []
    execute = psycopg.Connection.execute

    def recording(self, query, params=None, **kwargs):
        if isinstance(params, dict) and "probe_published" in params:
            flags.append(params["probe_published"])
        return execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", recording)
    return flags


def late_scans(monkeypatch):
    """The chunks' checks tables `count_late` scanned for statements stored at or before the watermark."""
    scanned = []
    execute = psycopg.Connection.execute

    def recording(self, query, params=None, **kwargs):
        text = query.as_string(self) if isinstance(query, sql.Composable) else str(query)
        if text.startswith("select count(*) from") and "<= %(watermark)s" in text:
            scanned.append(text.split()[3])
        return execute(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", recording)
    return scanned


def test_chunks_stored_after_the_watermark_are_inserted_without_probing_and_a_rerun_probes(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 9)])
    connect(server, monkeypatch)
    flags = probe_flags(monkeypatch)
    scanned = late_scans(monkeypatch)
    first = extract_statements(chunked(config, 4), RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (first["chunks"], first["new"]) == (2, 8)
    assert flags == [False] * 4  # raw and core of each chunk
    published = data_tables(warehouse_dsn)
    flags.clear()
    server.add_statements([statement(9, minutes=9)])
    again = extract_statements(chunked(config, 4), RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert again["new"] == 1
    # raw and core of each chunk: the two re-fetched (stored at or before the watermark) probed, the one
    # holding only the new statement not
    assert flags == [True, True, True, True, False, False]
    # and only those two are scanned for late statements: the last holds nothing stored at or before it
    assert len(scanned) == 2
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from raw.lms_statement") == [
        (9, 9)
    ]
    assert data_tables(warehouse_dsn)["activity"][:8] == published["activity"]


def test_a_statement_published_already_in_a_chunk_expected_new_is_left_out_and_the_rest_inserted(
    warehouse_dsn,
):
    """The LRS served again, stored after the watermark, a statement published already (the watermark
    was held back by the LRS's consistency point, or the LRS stored it anew): the primary key refuses the
    unprobed insert, which is undone and run again with the probe."""
    from turnover_signals.lms.statements import insert_new_statements
    from turnover_signals.sqlfiles import read_sql

    ids = [str(uuid.UUID(int=n)) for n in (1, 2, 3)]
    with psycopg.connect(warehouse_dsn) as conn, conn.transaction(force_rollback=True):
        conn.execute(
            "insert into raw.lms_statement (statement_id, stored_at, statement, source, batch_id, loaded_at)"
            " values (%s, now(), '{\"copy\": \"first\"}', 'lrs', 'earlier', now())",
            (ids[1],),
        )
        conn.execute(
            "create temp table chunk_checks as select id as statement_id, now() as stored_at,"
            ' now() as occurred_at, \'{"copy": "second"}\'::jsonb as statement, null::text as reject_reason'
            " from unnest(%s::text[]) as id",
            (ids,),
        )
        publish = sql.SQL(read_sql("raw", "lms_statement")).format(checks=sql.Identifier("chunk_checks"))
        inserted = insert_new_statements(conn, publish, {"source": "lrs", "batch": "b"}, True, "raw")
        assert inserted == 2
        assert conn.execute(
            "select statement_id, batch_id, statement ->> 'copy' from raw.lms_statement order by 1"
        ).fetchall() == [(ids[0], "b", "second"), (ids[1], "earlier", "first"), (ids[2], "b", "second")]
