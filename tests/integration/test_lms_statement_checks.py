"""The checks computed while fetching agree with their SQL definition, column by column, on real
PostgreSQL."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.types.json import Jsonb

from tests.integration.test_lms_statements import statement
from turnover_signals.config import load_config
from turnover_signals.lms.statement_checks import CHECK_COLUMNS, StatementChecker
from turnover_signals.sqlfiles import read_sql

pytestmark = pytest.mark.integration
FUTURE_LIMIT = datetime(2026, 3, 5, tzinfo=UTC)
HOME = "https://lms.northwind.example"


def variants():
    """Statements of the usual shape and of every unusual one the checks must agree on."""
    out = []

    def add(**changes):
        body = statement(len(out) + 1, minutes=len(out))
        for key, value in changes.items():
            if value is ...:
                body.pop(key, None)
            else:
                body[key] = value
        out.append(body)

    add()
    add(result={"score": {"scaled": 0.8}, "success": True, "completion": True, "duration": "PT1H2M3.5S"})
    add(result={"score": {"raw": 30, "min": 0, "max": 40}, "duration": "P2DT4M"})
    add(result={"score": {"raw": 1, "min": 0, "max": 3}})  # 0.333333
    add(result={"score": {"raw": 2, "min": 0, "max": 3}})  # 0.666667, rounded half away from zero
    add(result={"score": {"scaled": -0.5, "raw": 50, "min": 60, "max": 40}})
    add(result={"score": {"scaled": 1.5, "raw": 5, "max": 4}})
    add(result={"score": {"scaled": "0.5", "raw": True}, "success": "yes", "completion": 1, "duration": 60})
    add(result={"duration": "PT"})
    add(result={"duration": "1 hour"})
    add(result={"duration": "PT1.2.3S"})  # [0-9.]+ but no number: not of the pattern, 0 seconds
    add(result={"duration": "PT.5S"})
    add(result={"duration": "PT5.M"})
    add(result={"duration": "P99999999D"})  # beyond an integer: unknown, not a cast error
    add(result={"duration": "PT2147483647.4S"})
    add(result=[1, 2])
    add(result="done")
    add(actor={"objectType": "Agent", "mbox": "MAILTO:Jane.Doe@northwind.example"})
    add(actor={"mbox_sha1sum": "ABCDEF0123"})
    add(actor={"openid": "https://openid.example/jane"})
    add(actor={"mbox": None})
    add(actor={"account": {"homePage": HOME}})
    add(actor={"account": "u-1"})
    add(actor={"mbox": "mailto:a@x.example", "openid": "https://o.example/a"})
    add(actor={"name": "nobody"})
    add(actor=...)
    add(verb={"id": "not an iri"})
    add(verb={"id": "urn:x:y"})
    add(verb={"id": "http://adlnet.gov/expapi/verbs/passed"})
    add(verb="completed")
    add(verb=...)
    add(id="not-a-uuid")
    add(id=str(uuid.UUID(int=77)).upper())
    add(timestamp="2026-03-02T09:04:00")
    add(timestamp="2026-03-02")
    add(timestamp="2026-03-02 09:04:00-05")
    add(timestamp="2026-03-02T09:04+0200")
    add(timestamp="2026-03-02T09:04:00.123456789+01:30")
    add(timestamp="  2026-03-02T09:04:00z  ")
    add(timestamp="2024-02-29T00:00:00Z")
    add(timestamp="2026-02-29T00:00:00Z")
    add(timestamp="2026-03-02T24:00:00Z")
    add(timestamp="yesterday")
    add(timestamp="")
    add(timestamp=...)
    add(timestamp=20260302)
    add(timestamp="2027-01-01T00:00:00Z")  # in the future
    add(stored="2099-01-01T00:00:00Z")  # stored in the future: the LRS's clock
    add(stored="2099-01-01T00:00:00Z", timestamp=...)  # and the time of the experience with it
    add(stored="2026-03-02T09:04:00")  # no zone: not a stored time
    add(stored=...)
    add(object={"objectType": "Activity", "id": f"{HOME}/courses/A/courses/B"})
    add(object={"id": "urn:course:9", "definition": {"name": {"en": "Nine"}}})
    add(object={"objectType": "StatementRef", "id": str(uuid.UUID(int=1))})
    add(object=["not", "an", "object"])
    add(object=...)
    return out


def unusual():
    """Shapes only the SQL definition decides: the loader leaves them to it."""
    base = statement(500)
    shapes = [
        {**base, "id": 12345},
        {**base, "id": ""},
        {k: v for k, v in base.items() if k != "id"},
        {**base, "actor": ["mbox"]},
        {**base, "actor": {"mbox": 5}},
        {**base, "verb": {"id": "http://example.com/vérb"}},
        {**base, "object": {"id": 9}},
        {**base, "result": {"score": {"raw": 0.1234567890123456789}}},
        # parts beyond 15 characters: Decimal's 28 digits could round where numeric is exact
        {**base, "result": {"duration": "PT0.49999999999999999999999999999S"}},
        {**base, "result": {"duration": "PT2147483647.4999999999999999999999S"}},
        {**base, "result": {"duration": "P10000000000000000000000000D"}},
    ]
    return [*shapes, [1, 2, 3], "a string"]


def sql_rows(dsn, texts, verb_event_types):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create temp table received_statements (received_order bigint, statement jsonb)")
        with conn.cursor().copy("copy received_statements from stdin") as copy:
            for order, text in enumerate(texts, start=1):
                copy.write_row((order, text))
        found = conn.execute(
            sql.SQL("select {} from ({}) as checks order by received_order").format(
                sql.SQL(", ").join(map(sql.Identifier, CHECK_COLUMNS)),
                sql.SQL(read_sql("staging", "lms_statement_checks")),
            ),
            {"future_limit": FUTURE_LIMIT, "verb_event_types": Jsonb(verb_event_types)},
        ).fetchall()
    return found


@pytest.fixture
def verb_event_types():
    return load_config(use_variable=False)["lms"]["verb_event_types"]


def test_the_fetching_threads_checks_equal_the_sql_definition_column_by_column(
    warehouse_dsn, verb_event_types
):
    texts = [json.dumps(body, ensure_ascii=False) for body in variants()]
    checker = StatementChecker(FUTURE_LIMIT, verb_event_types)
    in_python = [checker.check(order, text.encode()) for order, text in enumerate(texts, start=1)]
    assert all(row is not None for row in in_python)  # all of the usual shape: none left to SQL
    in_sql = sql_rows(warehouse_dsn, texts, verb_event_types)
    statement_column = CHECK_COLUMNS.index("statement")
    for python_row, sql_row in zip(in_python, in_sql, strict=True):
        expected = dict(zip(CHECK_COLUMNS, sql_row, strict=True))
        got = dict(zip(CHECK_COLUMNS, python_row, strict=True))
        got["statement"] = json.loads(python_row[statement_column])  # jsonb: the same value, not text
        assert got == expected, texts[python_row[0] - 1]
    reasons = {row[CHECK_COLUMNS.index("reject_reason")] for row in in_sql}
    assert {
        "id is not a UUID",
        "timestamp is not an ISO 8601 time",
        "timestamp is in the future beyond the tolerance",
        "stored is in the future beyond the tolerance",
        "timestamp is in the future beyond the tolerance; stored is in the future beyond the tolerance",
        "verb id is not an IRI",
        "actor must have exactly one identifier",
        "result.score.min above max; result.score.raw outside [min, max]",
        "result.score.scaled outside [-1, 1]; result.score.raw outside [min, max]",
        "stored is missing or not an ISO 8601 time with a zone",
    } <= reasons


def test_statements_of_unusual_shape_are_left_to_the_sql_definition(verb_event_types):
    checker = StatementChecker(FUTURE_LIMIT, verb_event_types)
    for order, body in enumerate(unusual(), start=1):
        assert checker.check(order, json.dumps(body, ensure_ascii=False).encode()) is None, body


def test_a_chunk_with_statements_of_unusual_shape_rejects_them_with_the_definitions_reasons(
    lms_server_factory, monkeypatch, warehouse_dsn
):
    from turnover_signals.lms.statements import extract_statements
    from turnover_signals.quality.gate import RunIdentity

    config = load_config({"lms": {"statements_page_limit": 4, "max_reject_rate": 0.5}}, use_variable=False)
    number_actor = statement(3, minutes=3, actor=5)  # `?` on a number: no identifier key
    number_id = statement(4, minutes=4)
    number_id["id"] = 4
    # left to SQL for its verb; its durations once stopped the chunk with a cast error there
    odd_verb = statement(5, minutes=5, verb="http://example.com/vérb", result={"duration": "PT1.2.3S"})
    huge = statement(6, minutes=6, verb="http://example.com/vérb", result={"duration": "P99999999D"})
    good = [statement(n, minutes=10 + n) for n in range(10, 16)]
    server = lms_server_factory(
        statements=[number_actor, number_id, odd_verb, huge, *good, statement(10, minutes=20)]
    )
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (summary["new"], summary["rejected"]) == (8, 2)
    with psycopg.connect(warehouse_dsn) as conn:
        reasons = dict(conn.execute("select statement_id, reason from raw.lms_statement_rejected").fetchall())
        durations = dict(
            conn.execute(
                "select statement_id, duration_seconds from core.lms_activity where statement_id = any(%s)",
                ([str(uuid.UUID(int=5)), str(uuid.UUID(int=6))],),
            ).fetchall()
        )
    assert durations == {str(uuid.UUID(int=5)): 0, str(uuid.UUID(int=6)): None}
    assert reasons == {
        str(uuid.UUID(int=3)): "actor must have exactly one identifier",
        "4": "id is not a UUID",
    }


def test_times_in_the_fetching_thread_equal_the_sql_parser(warehouse_dsn):
    from turnover_signals.lms.statement_checks import parse_time

    texts = [
        "2026-03-02T09:04:00Z",
        "2026-03-02T09:04:00.5-03:30",
        "2026-03-02T09:04:00,25+0100",
        "2026-03-02T09",
        "2026-03-02T09Z",
        "2026-03-02Z",
        "2026-13-01T00:00:00Z",
        "2026-03-02T09:04:00+16:00",
        "2100-02-29T00:00:00Z",
        "2000-02-29T00:00:00Z",
        "20260302T090400Z",
    ]
    with psycopg.connect(warehouse_dsn) as conn:
        for text in texts:
            for zoned in (True, False):
                expected = conn.execute(
                    "select core.parse_xapi_timestamp_text(%s, %s)", (text, zoned)
                ).fetchone()[0]
                assert parse_time(text, zoned)[0] == expected, (text, zoned)
    assert parse_time("2026-03-02T09:04:00Z", False)[0] - parse_time("2026-03-02T09:04:00", False)[0] == (
        timedelta(0)
    )
