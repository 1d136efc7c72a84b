"""Freshness guards against the SLOs, and failure notifications (logged by default, or any configured
notifier)."""

from __future__ import annotations

import copy
import logging
import os
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest

from tests.unit.test_notify_dag_level import (  # a stand-in for a user's notifier class
    RecordingNotifier,
    allow_recording_notifier,
)
from turnover_signals.config import load_config
from turnover_signals.errors import FreshnessError
from turnover_signals.notify import failure_message, notify_failure
from turnover_signals.quality.freshness import check_hris_freshness, check_lms_freshness

pytestmark = pytest.mark.integration


@pytest.fixture
def config():
    return copy.deepcopy(load_config(use_variable=False))


def loaded_snapshot(dsn, file_date: date, status="loaded"):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, received_at, "
            "status) values (%s, %s, 'employees', %s, 10, now(), %s)",
            (f"employees_{file_date:%Y%m%d}.csv", f"{file_date:%Y%m%d}".ljust(64, "0"), file_date, status),
        )


def published_batch(dsn, finished_at: datetime):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            insert into audit.lms_extract_batch (batch_id, source, endpoint, pages, statements_received,
                statements_new, statements_already_loaded, statements_rejected, voids_applied,
                reject_rate, status, started_at, finished_at, watermark_after)
            values (%s, 'xapi:lms_api', '/statements', 1, 1, 1, 0, 0, 0, 0, 'published', %s, %s, %s)
            """,
            (f"b{finished_at:%H%M}", finished_at, finished_at, finished_at - timedelta(minutes=5)),
        )


def test_hr_data_is_fresh_for_a_day_after_its_snapshot_date_then_alerts(warehouse_dsn, config):
    with pytest.raises(FreshnessError, match="no employees snapshot has ever been loaded"):
        check_hris_freshness(config, datetime(2026, 3, 2, 6, tzinfo=UTC), warehouse_dsn)
    loaded_snapshot(warehouse_dsn, date(2026, 3, 1))
    fresh = check_hris_freshness(config, datetime(2026, 3, 2, 6, tzinfo=UTC), warehouse_dsn)
    assert fresh == {
        "latest_file": "employees_20260301.csv",
        "snapshot_date": "2026-03-01",
        "age_hours": 6.0,
        "slo_hours": 24.0,
    }
    with pytest.raises(FreshnessError) as stale:
        check_hris_freshness(config, datetime(2026, 3, 3, 6, tzinfo=UTC), warehouse_dsn)
    message = str(stale.value)
    assert "employees_20260301.csv" in message and "30.0 h old" in message and "runbook-freshness" in message
    config["slo"]["hris_max_age_hours"] = 48
    assert (
        check_hris_freshness(config, datetime(2026, 3, 3, 6, tzinfo=UTC), warehouse_dsn)["age_hours"] == 30.0
    )


def test_a_snapshot_with_the_bytes_of_the_day_before_keeps_hr_data_fresh(warehouse_dsn, config):
    loaded_snapshot(warehouse_dsn, date(2026, 3, 6))  # Friday
    # nothing changed over the weekend: Saturday's file has Friday's bytes and is recorded as a duplicate
    loaded_snapshot(warehouse_dsn, date(2026, 3, 7), status="duplicate")
    fresh = check_hris_freshness(config, datetime(2026, 3, 8, 6, tzinfo=UTC), warehouse_dsn)
    assert (fresh["latest_file"], fresh["age_hours"]) == ("employees_20260307.csv", 6.0)


def test_lms_data_is_stale_when_no_batch_was_published_within_the_slo(warehouse_dsn, config):
    now = datetime(2026, 3, 3, 12, tzinfo=UTC)
    published_batch(warehouse_dsn, now - timedelta(minutes=50))
    assert check_lms_freshness(config, warehouse_dsn, now)["age_hours"] == 0.8
    with pytest.raises(FreshnessError, match=r"finished 3\.8 h ago, above the 2 h objective"):
        check_lms_freshness(config, warehouse_dsn, now + timedelta(hours=3))


def failed_context(exception):
    ti = SimpleNamespace(
        dag_id="hris_sftp_ingest", task_id="ingest_hris_files", map_index=3, run_id="r1", try_number=1
    )
    return {"ti": ti, "exception": exception}


def test_a_failure_is_logged_by_default_with_what_where_and_the_runbook(caplog):
    error = FreshnessError("HR data", "too old", "ask HR", "freshness")
    with caplog.at_level(logging.ERROR, logger="turnover_signals.notify"):
        notify_failure(failed_context(error))
    assert (
        "TURNOVER-SIGNALS ALERT hris_sftp_ingest.ingest_hris_files[3] run r1 try 1: HR data: too old"
        in caplog.text
    )
    assert "runbook-freshness" in caplog.text


def test_a_configured_notifier_receives_the_alert(monkeypatch):
    notifier = f"{RecordingNotifier.__module__}.RecordingNotifier"
    override = {"alerts": {"notifier": notifier, "notifier_kwargs": {"channel": "#oncall"}}}
    monkeypatch.setattr("turnover_signals.config.read_variable_override", lambda: override)
    allow_recording_notifier(monkeypatch)
    RecordingNotifier.sent.clear()
    notify_failure(failed_context(RuntimeError("boom")))
    assert RecordingNotifier.sent == [f"#oncall: {failure_message(failed_context(RuntimeError('boom')))}"]


def test_the_demo_summary_points_to_the_reports_and_a_lineage_command_that_connects(warehouse_dsn):
    """The demo's last lines: the Data Docs pages, the Data quality page, and a lineage command that runs as
    printed."""
    import shlex
    import subprocess
    import sys

    from turnover_demo.demo import report_lines
    from turnover_signals.paths import BUNDLE_ROOT

    docs_page = ".demo/data_docs/hris_employees/2026-03-02T060000Z.html"
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        conn.execute(
            """
            insert into audit.validation_result (validation_id, suite_name, suite_version, data_asset,
                batch_identifier, success, evaluated_expectations, failed_expectation_count, statistics,
                failed_expectations, results, data_docs_path, validated_at)
            values ('v1', 'hris_employees', '1', 'employees_20260301.csv', 'sha', true, 3, 0, '{}',
                '[]', '[]', %s,
                    now()),
                   ('v2', 'hris_employees', '1', 'employees_20260302.csv', 'sha', false, 3, 1, '{}', '[]',
                       '[]', null,
                    now())
            """,
            (docs_page,),
        )
        conn.execute(
            "insert into mart.employee_features (employee_key, reference_date, feature_set_version, "
            "hris_employee_id, built_at, build_id) values (42, '2026-03-01', 1, 'E42', now(), 'b1')"
        )
        lines = report_lines(conn)

    assert lines[0].startswith(
        "Expectation reports: 1 Data Docs pages (1 failed runs) under .demo/data_docs/"
    )
    assert lines[0].endswith(f"e.g. {docs_page}")
    assert "Browse > Data quality" in lines[1]
    lineage = next(line for line in lines if "Lineage of a feature row" in line)
    assert "<warehouse URL>" not in lineage
    command = shlex.split(lineage.split(": ", 1)[1])
    assert command[:5] == ["PYTHONPATH=plugins", "python", "-m", "turnover_signals.quality.lineage", "42"]
    assert command[5] == "2026-03-01" and command[6] == "--dsn"
    assert psycopg.conninfo.conninfo_to_dict(command[7])["dbname"] == warehouse_dsn.rsplit("/", 1)[1]
    ran = subprocess.run(
        [sys.executable, *command[2:]],
        cwd=BUNDLE_ROOT,
        env={**os.environ, "PYTHONPATH": "plugins"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # it connects with the printed URL: rows, or "no such feature row" for this hand-made one (exit 1)
    assert ran.returncode in (0, 1) and "Traceback" not in ran.stderr, ran.stderr[-2000:]
