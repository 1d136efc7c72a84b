"""Freshness SLOs as Airflow deadline alerts: every DAG carries one, the runbook's table is generated from
them, and a missed deadline sends the standard alert through the configured notifier."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from turnover_signals import slo

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(slo.SWITCH_ENV_VAR, "on")
        return DagBag(dag_folder=str(REPO_ROOT / "dags")).dags


def test_the_alerts_can_be_switched_off_for_dag_test_runs(monkeypatch):
    monkeypatch.setenv(slo.SWITCH_ENV_VAR, "off")
    assert slo.deadline_for("hris_sftp_ingest") is None
    monkeypatch.setenv(slo.SWITCH_ENV_VAR, "on")
    assert slo.deadline_for("hris_sftp_ingest").interval == slo.SLOS["hris_sftp_ingest"].interval


def test_every_dag_has_its_slo_as_a_deadline_alert_calling_the_alert(dags):
    from airflow.sdk.definitions.callback import AsyncCallback

    assert set(dags) == set(slo.SLOS)
    for dag_id, dag in dags.items():
        alerts = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
        assert len(alerts) == 1, dag_id
        alert = alerts[0]
        assert isinstance(alert.callback, AsyncCallback), dag_id
        assert alert.callback.path == slo.CALLBACK_PATH and alert.callback.kwargs == {"dag_id": dag_id}
        assert alert.interval == slo.SLOS[dag_id].interval
        # a run an asset may trigger has no logical date: its deadline counts from when it was queued
        asset_triggered = dag.timetable.__class__.__name__ != "CronTriggerTimetable"
        expected = "DagRunQueuedAtDeadline" if asset_triggered else "DagRunLogicalDateDeadline"
        assert type(alert.reference).__name__ == expected, dag_id
        # a deadline must fall before the run would time out, or it could never fire
        assert alert.interval < dag.dagrun_timeout, dag_id


def test_the_runbook_slo_table_is_the_one_generated_from_the_dags(dags):
    page = (REPO_ROOT / slo.SLO_TABLE_PAGE).read_text()
    assert slo.page_with_table(page, slo.slo_table(dags)) == page, "run: python -m turnover_signals.slo"


def test_a_missed_deadline_sends_the_alert_with_the_run_and_the_next_step(caplog, monkeypatch):
    context = {
        "dag_run": {"dag_run_id": "scheduled__2026-12-05T06:00:00+00:00", "state": "running"},
        "deadline": {"id": "d-1", "deadline_time": "2026-12-05T10:00:00+00:00"},
    }
    with caplog.at_level(logging.ERROR):
        asyncio.run(slo.deadline_missed(dag_id="hris_sftp_ingest", context=context))
    assert (
        "TURNOVER-SIGNALS ALERT hris_sftp_ingest run scheduled__2026-12-05T06:00:00+00:00: SLO missed: the "
        "daily HRIS files are loaded and the HR history published within 4 h of the run's logical date "
        "(deadline 2026-12-05T10:00:00+00:00); the run is still running. Next step: check the SFTP drop"
    ) in caplog.text

    # a notifier that fails still leaves the alert in the log
    monkeypatch.setattr("turnover_signals.notify.configured_notifier", lambda config, message: 1 / 0)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        asyncio.run(slo.deadline_missed(dag_id="turnover_features", context=context))
    assert (
        "SLO missed: the day's features and labels are built within 2 h of the run's queue time"
        in caplog.text
    )
