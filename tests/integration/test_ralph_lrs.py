"""The LMS client against Ralph, a real open-source LRS (ralph-malph 5.1.0, file-system backend) started on a
loopback port: the probe reads what Ralph does, and nothing is lost or loaded twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from turnover_signals.config import load_config
from turnover_signals.lms.conformance import probe_lrs
from turnover_signals.lms.statements import extract_statements
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sources.http_base import BasicAuth
from turnover_signals.sources.xapi import XapiClient

from .ralph_lrs import LOGIN, PASSWORD, RalphLrs

pytestmark = pytest.mark.integration
HOME = "https://lms.northwind.example"
VERB = "http://adlnet.gov/expapi/verbs/"


@pytest.fixture(scope="module")
def ralph_factory(tmp_path_factory):
    servers = []

    def start() -> RalphLrs:
        server = RalphLrs(tmp_path_factory.mktemp("ralph")).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def xapi_statement(occurred: datetime, verb: str = "completed", **extra) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": "u-1"}},
        "verb": {"id": VERB + verb, "display": {"en-US": verb}},
        "object": {"objectType": "Activity", "id": f"{HOME}/courses/C-1"},
        "timestamp": occurred.isoformat().replace("+00:00", "Z"),
        **extra,
    }


def first_load(now: datetime) -> list[dict]:
    """250 statements of the last hours (three pages of Ralph's 100), the last a void of the first."""
    statements = [xapi_statement(now - timedelta(hours=5) + timedelta(minutes=n)) for n in range(249)]
    void = xapi_statement(
        now - timedelta(minutes=10),
        verb="voided",
        object={"objectType": "StatementRef", "id": statements[0]["id"]},
    )
    return [*statements, void]


@pytest.fixture
def config():
    return load_config(
        {
            "lms": {
                "initial_backoff_seconds": 0.01,
                "max_backoff_seconds": 0.05,
                "request_timeout_seconds": 10,
            }
        },
        use_variable=False,
    )


def rows(dsn: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def data_tables(dsn: str) -> dict[str, list[tuple]]:
    return {
        table: rows(dsn, f"select statement_id, is_voided from {table} order by 1")  # noqa: S608 - fixed names
        for table in ("raw.lms_statement", "core.lms_activity")
    }


def test_the_probe_reads_what_ralph_does(ralph_factory):
    ralph = ralph_factory()
    ralph.post(first_load(datetime.now(UTC)))
    with XapiClient(base_url=ralph.base_url, auth=BasicAuth(LOGIN, PASSWORD)) as client:
        profile = probe_lrs(client)
    assert profile.summary() == {
        "since_field": "timestamp",  # not stored, as xAPI 1.0.3 says
        "page_cap": 100,
        "sends_version_header": False,
        "sends_consistent_through": False,
        "voided_hidden": False,  # voiding is not implemented: the target stays listed
        "voided_query_supported": False,  # voidedStatementId is ignored and a listing answers
        "more_form": "root_relative",
        "declared": False,
        "strategy": "timestamp_lookback",
    }


def test_from_ralph_no_statement_is_lost_and_none_is_loaded_twice(
    ralph_factory, monkeypatch, warehouse_dsn, config
):
    now = datetime.now(UTC)
    ralph = ralph_factory()
    statements = first_load(now)
    ralph.post(statements)
    for key, value in ralph.airflow_connections_env().items():
        monkeypatch.setenv(key, value)

    first = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (first["strategy"], first["received"], first["new"], first["voids_applied"]) == (
        "timestamp_lookback",
        250,
        250,
        1,
    )
    # an offline sync (5 days back) and an import of older results (20 days back) arrive with new activity
    arrivals = ralph.append_stored(
        [
            xapi_statement(datetime.now(UTC)),  # happened after the first extraction: not late
            xapi_statement(now - timedelta(days=5)),
            xapi_statement(now - timedelta(days=20)),
        ]
    )
    second = extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert (second["extraction_kind"], second["new"], second["late"]) == ("incremental", 2, 1)
    config["lms"]["reconciliation_sweep_hours"] = 0
    third = extract_statements(config, RunIdentity("d", "r3", "t"), warehouse_dsn)
    assert (third["extraction_kind"], third["new"], third["late"]) == ("sweep", 1, 1)

    expected = {s["id"] for s in statements} | {s["id"] for s in arrivals}
    loaded = rows(warehouse_dsn, "select statement_id from raw.lms_statement")
    assert {statement_id for (statement_id,) in loaded} == expected and len(loaded) == len(expected)
    # the stored time is Ralph's, the knowledge time of the features (point in time)
    [(stored,)] = rows(
        warehouse_dsn, "select stored_at from raw.lms_statement where statement_id = %s", (arrivals[2]["id"],)
    )
    assert stored == datetime.fromisoformat(arrivals[2]["stored"])
    assert rows(
        warehouse_dsn,
        "select is_voided from core.lms_activity where statement_id = %s",
        (statements[0]["id"],),
    ) == [(True,)]
    before = data_tables(warehouse_dsn)
    again = extract_statements(config, RunIdentity("d", "r4", "t"), warehouse_dsn)
    assert again["new"] == 0 and data_tables(warehouse_dsn) == before
