"""What an LRS does, probed, and the extraction that loses nothing on it: the real sample LRS with its
deviations switched on, real PostgreSQL, the real GX gate. Ralph itself: test_ralph_lrs.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from turnover_signals.config import load_config
from turnover_signals.lms.conformance import extraction_window, latest_profile, probe_lrs, record_profile
from turnover_signals.lms.statements import extract_statements
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sources.http_base import BasicAuth
from turnover_signals.sources.xapi import XapiClient

pytestmark = pytest.mark.integration
HOME = "https://lms.northwind.example"
VERB = "http://adlnet.gov/expapi/verbs/"
RALPH_LIKE = (
    "since_on_timestamp",
    "voided_listed",
    "no_version_headers",
    "empty_final_page",
    "more_absent_at_end",
)


def xapi_statement(
    occurred: datetime, *, stored_after: timedelta | None = None, verb: str = "completed", **extra
):
    """A statement that happened at `occurred`; with `stored_after`, already stored that much later."""
    body = {
        "id": str(uuid.uuid4()),
        "actor": {"objectType": "Agent", "account": {"homePage": HOME, "name": "u-1"}},
        "verb": {"id": VERB + verb, "display": {"en-US": verb}},
        "object": {"objectType": "Activity", "id": f"{HOME}/courses/C-1"},
        "timestamp": occurred.isoformat().replace("+00:00", "Z"),
        "version": "1.0.3",
        **extra,
    }
    if stored_after is not None:
        body["stored"] = (occurred + stored_after).isoformat().replace("+00:00", "Z")
    return body


def void_of(target: dict, occurred: datetime, stored_after: timedelta) -> dict:
    return xapi_statement(
        occurred,
        stored_after=stored_after,
        verb="voided",
        object={"objectType": "StatementRef", "id": target["id"]},
    )


def history(now: datetime, count: int = 30) -> list[dict]:
    """Statements of the last hours, each stored 5 s after it happened, the newest a void of the first."""
    statements = [
        xapi_statement(now - timedelta(hours=2) + timedelta(minutes=n), stored_after=timedelta(seconds=5))
        for n in range(count)
    ]
    return statements + [void_of(statements[0], now - timedelta(minutes=30), timedelta(seconds=5))]


@pytest.fixture
def config():
    return load_config(
        {"lms": {"initial_backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "request_timeout_seconds": 5}},
        use_variable=False,
    )


def client_for(server) -> XapiClient:
    return XapiClient(
        base_url=f"{server.base_url}{server.xapi_base_path}", auth=BasicAuth(*server.xapi_credentials)
    )


def rows(dsn: str, query: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query, params).fetchall()


def loaded_ids(dsn: str) -> list[str]:
    return [row[0] for row in rows(dsn, "select statement_id from raw.lms_statement order by 1")]


def data_tables(dsn: str) -> dict[str, list[tuple]]:
    return {
        table: rows(dsn, f"select statement_id, is_voided from {table} order by 1")  # noqa: S608 - fixed names
        for table in ("raw.lms_statement", "core.lms_activity")
    }


def batches(dsn: str) -> list[tuple]:
    return rows(
        dsn,
        "select extraction_kind, strategy, statements_new, statements_late from audit.lms_extract_batch"
        " order by started_at, batch_id",
    )


def test_the_probe_reads_a_standard_lrs(lms_server_factory):
    server = lms_server_factory(statements=history(datetime.now(UTC)), max_page_size=20)
    with client_for(server) as client:
        profile = probe_lrs(client)
    assert profile.summary() == {
        "since_field": "stored",
        "page_cap": 20,
        "sends_version_header": True,
        "sends_consistent_through": True,
        "voided_hidden": True,
        "voided_query_supported": True,
        "more_form": "root_relative",
        "declared": False,
        "strategy": "stored_overlap",
    }
    # read only, and a handful of requests
    assert {request.method for request in server.requests} == {"GET"} and len(server.requests) <= 6


def test_the_probe_reads_an_lrs_bending_the_standard_like_ralph(lms_server_factory):
    server = lms_server_factory(
        statements=history(datetime.now(UTC)), max_page_size=20, deviations=RALPH_LIKE
    )
    with client_for(server) as client:
        profile = probe_lrs(client)
    assert profile.summary() == {
        "since_field": "timestamp",
        "page_cap": 20,
        "sends_version_header": False,
        "sends_consistent_through": False,
        "voided_hidden": False,
        "voided_query_supported": False,
        "more_form": "root_relative",
        "declared": False,
        "strategy": "timestamp_lookback",
    }
    conclusions = [step.get("conclusion") for step in profile.evidence if step.get("conclusion")]
    assert "since filters on timestamp" in conclusions


def test_an_lrs_that_shows_no_decisive_statement_gets_the_strategy_that_cannot_lose(lms_server_factory):
    now = datetime.now(UTC)
    statements = [
        xapi_statement(now - timedelta(minutes=n), stored_after=timedelta(milliseconds=50)) for n in range(5)
    ]
    server = lms_server_factory(statements=statements)
    with client_for(server) as client:
        profile = probe_lrs(client)
    assert (profile.since_field, profile.strategy) == ("unknown", "timestamp_lookback")
    assert profile.voided_hidden is None and profile.page_cap is None and profile.more_form == "root_relative"


def late_arrivals(now: datetime) -> dict[str, dict]:
    """Stored now: one that just happened, one that happened 5 days ago (an offline sync) and one 20 days
    ago (an import of older results)."""
    return {
        "on_time": xapi_statement(now - timedelta(minutes=1)),
        "late_5_days": xapi_statement(now - timedelta(days=5)),
        "late_20_days": xapi_statement(now - timedelta(days=20)),
    }


def test_on_an_lrs_filtering_on_timestamp_late_statements_are_found_counted_and_loaded_once(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    now = datetime.now(UTC)
    server = lms_server_factory(statements=history(now), deviations=RALPH_LIKE, max_page_size=10)
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    first = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert (first["extraction_kind"], first["strategy"], first["new"]) == (
        "initial",
        "timestamp_lookback",
        31,
    )
    arrivals = {name: server.add_statements([s])[0] for name, s in late_arrivals(now).items()}

    # the hourly run: a 7-day look-back on timestamp (the floor) finds the 5-day-late statement
    second = extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert (second["extraction_kind"], second["new"], second["late"]) == ("incremental", 2, 1)
    assert arrivals["late_5_days"]["id"] in loaded_ids(warehouse_dsn)
    assert arrivals["late_20_days"]["id"] not in loaded_ids(warehouse_dsn)

    # the daily sweep reaches 90 days back and reports what it found late
    config["lms"]["reconciliation_sweep_hours"] = 0
    third = extract_statements(config, RunIdentity("d", "r3", "t"), warehouse_dsn)
    assert (third["extraction_kind"], third["new"], third["late"]) == ("sweep", 1, 1)
    assert {s["id"] for s in arrivals.values()} <= set(loaded_ids(warehouse_dsn))
    [(lateness,)] = rows(
        warehouse_dsn,
        "select max_lateness_seconds from audit.lms_extract_batch where batch_id = %s",
        (third["batch_id"],),
    )
    assert lateness >= 20 * 86400

    # from now on every extraction reaches back past the longest lateness seen, with a quarter to spare
    config["lms"]["reconciliation_sweep_hours"] = 24
    with psycopg.connect(warehouse_dsn) as conn:
        profile, _endpoint, _at = latest_profile(conn, "xapi:lms_api")
        window = extraction_window(conn, "xapi:lms_api", profile, now, config["lms"], now)
    assert window.kind == "incremental" and window.lookback >= timedelta(days=25)

    # nothing twice, and a rerun changes nothing
    for table, statements in (
        ("raw.lms_statement", 34),
        ("core.lms_activity", 33),
    ):  # the void is no activity
        query = f"select count(*), count(distinct statement_id) from {table}"  # noqa: S608 - fixed names
        assert rows(warehouse_dsn, query) == [(statements, statements)]
    before = data_tables(warehouse_dsn)
    again = extract_statements(config, RunIdentity("d", "r4", "t"), warehouse_dsn)
    assert (again["new"], again["late"]) == (0, 0) and data_tables(warehouse_dsn) == before
    assert batches(warehouse_dsn) == [
        ("initial", "timestamp_lookback", 31, 0),
        ("incremental", "timestamp_lookback", 2, 1),
        ("sweep", "timestamp_lookback", 1, 1),
        ("incremental", "timestamp_lookback", 0, 0),
    ]


def test_trusting_since_on_an_lrs_filtering_on_timestamp_loses_late_statements(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    """What the probe prevents: declared (wrongly) as filtering on stored, the LRS hides the late ones."""
    now = datetime.now(UTC)
    server = lms_server_factory(statements=history(now), deviations=RALPH_LIKE)
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    config["lms"]["lrs_since_field"] = "stored"
    extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    arrivals = {name: server.add_statements([s])[0] for name, s in late_arrivals(now).items()}
    extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    loaded = set(loaded_ids(warehouse_dsn))
    assert arrivals["on_time"]["id"] in loaded
    assert arrivals["late_5_days"]["id"] not in loaded and arrivals["late_20_days"]["id"] not in loaded


def test_the_probe_runs_at_first_use_and_again_when_the_connection_points_elsewhere(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    now = datetime.now(UTC)
    standard = lms_server_factory(statements=history(now))
    for key, value in standard.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    extract_statements(config, RunIdentity("d", "r2", "t"), warehouse_dsn)
    assert rows(warehouse_dsn, "select since_field, strategy from audit.lrs_conformance") == [
        ("stored", "stored_overlap")
    ]
    # the connection now points at an LRS that filters on timestamp and ignores voidedStatementId
    moved = lms_server_factory(statements=history(now), deviations=RALPH_LIKE)
    for key, value in moved.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    summary = extract_statements(config, RunIdentity("d", "r3", "t"), warehouse_dsn)
    assert summary["strategy"] == "timestamp_lookback"
    assert rows(
        warehouse_dsn,
        "select since_field, strategy, voided_query_supported from audit.lrs_conformance order by probe_id",
    ) == [("stored", "stored_overlap", True), ("timestamp", "timestamp_lookback", False)]


def test_the_conformance_command_prints_the_profile_and_records_it(
    lms_server_factory, warehouse_dsn, tmp_path
):
    server = lms_server_factory(statements=history(datetime.now(UTC)), deviations=RALPH_LIKE)
    env = {**os.environ, **server.airflow_connections_env(), "GX_ANALYTICS_ENABLED": "false"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "turnover_signals.lms.conformance",
            "--conn-id",
            "lms_api",
            "--record",
            "--dsn",
            warehouse_dsn,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["since_field"], report["strategy"], report["recorded_for"]) == (
        "timestamp",
        "timestamp_lookback",
        "xapi:lms_api",
    )
    assert "lrs-secret" not in result.stdout + result.stderr  # the connection's password
    assert rows(warehouse_dsn, "select source, since_field from audit.lrs_conformance") == [
        ("xapi:lms_api", "timestamp")
    ]


def test_voided_targets_are_not_asked_of_an_lrs_known_to_ignore_voided_statement_queries(
    lms_server_factory, monkeypatch, warehouse_dsn, config
):
    now = datetime.now(UTC)
    target = xapi_statement(now - timedelta(hours=3), stored_after=timedelta(seconds=5))
    void = void_of(target, now - timedelta(hours=1), timedelta(seconds=5))
    server = lms_server_factory(
        statements=[*history(now), target, void]
    )  # the target is hidden from listings
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    with client_for(server) as client, psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        profile = probe_lrs(client)
        # as Ralph answers: voidedStatementId ignored (the probe saw a listing come back)
        record_profile(
            conn, "xapi:lms_api", client.statements_url, replace(profile, voided_query_supported=False)
        )
    server.requests.clear()
    summary = extract_statements(config, RunIdentity("d", "r1", "t"), warehouse_dsn)
    assert summary["voids_applied"] == 0 and target["id"] not in loaded_ids(warehouse_dsn)
    assert not any("voidedStatementId" in request.path for request in server.requests)
