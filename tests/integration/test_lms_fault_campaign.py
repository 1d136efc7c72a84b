"""Faults of the LMS fault campaign (issue 22) kept as regression tests: an LRS that rate-limits, fails and
resets the connection mid-page, one that rate-limits for good, two extractions at once, a statement whose id
is not a UUID and SQL text in a SCIM userName. The real sample LRS/SCIM server, real PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.integration.test_lms_publish_faults import Attempt, hold_publishing, run_identity, wait_for
from tests.integration.test_lms_statements import connect, data_tables, rows, statement
from tests.integration.test_lms_users_and_catalog import user
from turnover_signals.config import load_config
from turnover_signals.errors import SourceUnavailableError
from turnover_signals.lms.statements import batch_id_for, extract_statements
from turnover_signals.lms.users import extract_users
from turnover_signals.quality.gate import RunIdentity

pytestmark = pytest.mark.integration
STATEMENTS_PATH = "/xapi/statements"


@pytest.fixture
def config():
    return load_config(
        {
            "lms": {
                "initial_backoff_seconds": 0.01,
                "max_backoff_seconds": 0.05,
                "max_retry_after_seconds": 1,
                "statements_page_limit": 4,
                "request_timeout_seconds": 5,
                # declared, so that the faults armed here meet the extraction, not the conformance probe
                "lrs_since_field": "stored",
                "extraction_lock_wait_seconds": 60,
            }
        },
        use_variable=False,
    )


def statement_requests(server) -> int:
    return sum(request.path.startswith(STATEMENTS_PATH) for request in server.requests)


def test_429s_with_retry_after_500s_and_a_reset_mid_page_still_load_every_statement_exactly_once(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 21)])
    connect(server, monkeypatch)
    # Faults fire on the next requests in the order armed; a zero delay answers one request normally.
    server.inject_fault("status", STATEMENTS_PATH, count=3, status=429, retry_after=1)  # page 1
    server.inject_fault("delay", STATEMENTS_PATH, seconds=0)
    server.inject_fault("status", STATEMENTS_PATH, count=2, status=500)  # page 2
    server.inject_fault("delay", STATEMENTS_PATH, seconds=0)
    server.inject_fault("reset", STATEMENTS_PATH)  # page 3: headers and half the body, then a TCP reset
    started = time.monotonic()
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert time.monotonic() - started >= 3  # each 429's Retry-After of one second was waited out
    assert server.armed_faults == []
    assert statement_requests(server) == summary["pages"] + 6  # every fault met a request of the extraction
    assert (summary["received"], summary["new"], summary["rejected"]) == (20, 20, 0)
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from raw.lms_statement") == [
        (20, 20)
    ]
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from core.lms_activity") == [
        (20, 20)
    ]
    clean_dsn = make_warehouse()
    extract_statements(config, RunIdentity("d", "r1", "t"), clean_dsn)
    assert data_tables(warehouse_dsn) == data_tables(clean_dsn)


def test_an_lrs_answering_429_twelve_times_fails_the_extraction_clearly_and_keeps_the_watermark(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    server = lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 11)])
    connect(server, monkeypatch)
    extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    before = data_tables(warehouse_dsn)
    assert before["watermark"]
    server.add_statements([statement(n, minutes=n) for n in range(11, 16)])
    server.clear_requests()
    server.inject_fault("status", STATEMENTS_PATH, count=12, status=429)
    attempts = int(config["lms"]["max_retries"])
    with pytest.raises(SourceUnavailableError) as raised:
        extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    message = str(raised.value)
    assert f"failed {attempts} time(s); last: HTTP 429: rate limited" in message
    assert "Next step: check that the server is up and reachable" in message
    assert "the watermark only moves after a complete extraction" in message
    assert "runbook-lms-unavailable" in message
    assert statement_requests(server) == attempts  # bounded: the rest of the 429s were never asked for
    assert data_tables(warehouse_dsn) == before


def test_two_concurrent_extractions_with_different_run_ids_load_each_statement_once(
    lms_server_factory, monkeypatch, warehouse_dsn, make_warehouse, config
):
    connect(lms_server_factory(statements=[statement(n, minutes=n) for n in range(1, 21)]), monkeypatch)
    first_run, second_run = run_identity("first"), run_identity("second")
    # Both fetch and stage every statement before either may publish: the two overlap completely.
    holder = hold_publishing(warehouse_dsn)
    first = Attempt(lambda: extract_statements(config, first_run, warehouse_dsn))
    second = Attempt(lambda: extract_statements(config, second_run, warehouse_dsn))
    first.start()
    second.start()
    for batch in map(batch_id_for, (first_run, second_run)):
        wait_for(
            warehouse_dsn,
            "select from pg_tables where schemaname = 'staging' and tablename like %s",
            (f"lms\\_batch\\_{batch}\\_%",),
        )
    wait_for(
        warehouse_dsn,
        "select from pg_stat_activity where datname = current_database() and wait_event = 'advisory'"
        " having count(*) >= 2",
    )
    holder.close()
    summaries = [first.outcome(), second.outcome()]
    assert (first.error, second.error) == (None, None)
    assert sorted(summary["new"] for summary in summaries) == [0, 20]
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from raw.lms_statement") == [
        (20, 20)
    ]
    assert rows(warehouse_dsn, "select count(*), count(distinct statement_id) from core.lms_activity") == [
        (20, 20)
    ]
    clean_dsn = make_warehouse()
    extract_statements(config, run_identity("clean"), clean_dsn)
    assert data_tables(warehouse_dsn) == data_tables(clean_dsn)


def test_a_statement_whose_id_is_not_a_uuid_is_rejected_with_its_reason_and_the_rest_load(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    config["lms"]["statements_page_limit"] = 10
    not_a_uuid = statement(99, minutes=99, id="not-a-uuid")
    good = [statement(n, minutes=n) for n in range(1, 40)]  # 1 in 40: under the default reject rate
    connect(lms_server_factory(statements=[*good, not_a_uuid]), monkeypatch)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (summary["status"], summary["new"], summary["rejected"]) == ("published", 39, 1)
    [(statement_id, reason, raw)] = rows(
        warehouse_dsn, "select statement_id, reason, raw from raw.lms_statement_rejected"
    )
    assert (statement_id, reason) == ("not-a-uuid", "id is not a UUID")
    assert '"id": "not-a-uuid"' in raw or '"id":"not-a-uuid"' in raw
    assert rows(
        warehouse_dsn, "select count(*) from raw.lms_statement where statement_id::text = 'not-a-uuid'"
    ) == [(0,)]
    assert sorted(
        r[0] for r in rows(warehouse_dsn, "select statement_id::text from core.lms_activity")
    ) == sorted(str(uuid.UUID(int=n)) for n in range(1, 40))


SQL_TEXT = "x'); drop table raw.lms_user; --"


def test_sql_text_in_a_scim_user_name_is_stored_verbatim_and_every_table_stays(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    injected = user(3, external_id="guid-3")
    injected["userName"] = SQL_TEXT
    injected["name"]["familyName"] = "O'Brien\"; delete from raw.lms_user where true; --"
    users = [user(1, external_id="guid-1"), user(2, external_id="guid-2"), injected]
    connect(lms_server_factory(users=users), monkeypatch)
    summary = extract_users(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (summary["users_received"], summary["versions_new"]) == (3, 3)
    stored = rows(warehouse_dsn, "select lms_user_id, user_name, resource from raw.lms_user order by 1")
    assert [(lms_user_id, user_name) for lms_user_id, user_name, _ in stored] == [
        ("u-0001", "person1@northwind.example"),
        ("u-0002", "person2@northwind.example"),
        ("u-0003", SQL_TEXT),
    ]
    assert stored[2][2]["name"]["familyName"] == injected["name"]["familyName"]
    assert rows(warehouse_dsn, "select to_regclass('raw.lms_user') is not null") == [(True,)]
