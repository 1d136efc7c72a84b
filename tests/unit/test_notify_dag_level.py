"""DAG-level failure alerts: a run that passed its dagrun_timeout has no failed task to alert for it.

The scheduler stops the unfinished tasks (their callbacks do not run) and calls only the DAG's
`on_failure_callback`, with a context that carries the run's `reason` and, at most, the last
unfinished task (Airflow 3.3 dag processor, `_execute_dag_callbacks`).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from airflow.sdk import BaseNotifier

from turnover_signals.notify import failure_message, notify_failure

RUN_ID = "scheduled__2026-03-02T06:00:00+00:00"
HRIS_DAG = SimpleNamespace(dag_id="hris_sftp_ingest", dagrun_timeout=timedelta(hours=20))


def timed_out_context() -> dict:
    """The minimal context: no `ti`, no `dag_run` (the scheduler named no unfinished task)."""
    return {"dag": HRIS_DAG, "run_id": RUN_ID, "reason": "timed_out"}


def timed_out_context_with_last_task() -> dict:
    """The last unfinished task's template context plus `reason`."""
    ti = SimpleNamespace(
        dag_id="hris_sftp_ingest", task_id="wait_for_hris_files", map_index=-1, run_id=RUN_ID, try_number=1
    )
    dag_run = SimpleNamespace(dag_id="hris_sftp_ingest", run_id=RUN_ID)
    return {"dag": HRIS_DAG, "ti": ti, "task_instance": ti, "dag_run": dag_run, "reason": "timed_out"}


@pytest.fixture
def no_variable(monkeypatch):
    monkeypatch.setattr("turnover_signals.config.read_variable_override", lambda: {})


class RecordingNotifier(BaseNotifier):
    """Stands in for a user's notifier class (Slack, SMTP, ...), named in the config by import path."""

    sent: list[str] = []

    def __init__(self, text: str, channel: str) -> None:
        super().__init__()
        self.text, self.channel = text, channel

    def notify(self, context) -> None:
        RecordingNotifier.sent.append(f"{self.channel}: {self.text}")


RECORDING_NOTIFIER = f"{__name__}.RecordingNotifier"


def allow_recording_notifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """Put RecordingNotifier on the allow-list, as a deployment lists its notifier in the config file."""
    monkeypatch.setattr("turnover_signals.notify.allowed_notifiers", lambda: frozenset({RECORDING_NOTIFIER}))


@pytest.fixture
def recording_notifier(monkeypatch):
    override = {"alerts": {"notifier": RECORDING_NOTIFIER, "notifier_kwargs": {"channel": "#oncall"}}}
    monkeypatch.setattr("turnover_signals.config.read_variable_override", lambda: override)
    allow_recording_notifier(monkeypatch)
    RecordingNotifier.sent.clear()
    return RecordingNotifier.sent


def test_a_timed_out_run_names_the_dag_run_reason_next_step_and_runbook_section():
    message = failure_message(timed_out_context())
    assert message.startswith(f"TURNOVER-SIGNALS ALERT hris_sftp_ingest run {RUN_ID}: timed_out: ")
    assert "dagrun_timeout (20:00:00)" in message
    assert "Next step: read the log of the task that was still running" in message
    assert (
        "docs/runbook/alerts.md#runbook-deadlines" in message
        and "docs/runbook/hris.md#runbook-hris_sftp_ingest" in message
    )
    assert "?" not in message


def test_a_timed_out_run_with_its_last_task_names_that_task():
    message = failure_message(timed_out_context_with_last_task())
    assert f"hris_sftp_ingest run {RUN_ID}: timed_out:" in message
    assert "(last: wait_for_hris_files)" in message and "runbook-deadlines" in message


def test_a_timed_out_run_is_logged_by_default(no_variable, caplog):
    with caplog.at_level(logging.ERROR, logger="turnover_signals.notify"):
        notify_failure(timed_out_context())
    assert f"TURNOVER-SIGNALS ALERT hris_sftp_ingest run {RUN_ID}: timed_out" in caplog.text
    assert "runbook-deadlines" in caplog.text


def test_a_timed_out_run_goes_to_the_configured_notifier(recording_notifier):
    notify_failure(timed_out_context_with_last_task())
    assert recording_notifier == [f"#oncall: {failure_message(timed_out_context_with_last_task())}"]
    assert f"hris_sftp_ingest run {RUN_ID}: timed_out:" in recording_notifier[0]


def test_a_run_failed_by_a_task_is_not_alerted_twice(recording_notifier, caplog):
    context = {**timed_out_context(), "reason": "task_failure"}
    with caplog.at_level(logging.INFO, logger="turnover_signals.notify"):
        notify_failure(context)
    assert recording_notifier == []
    assert "already alerted by the failed task" in caplog.text


def test_a_task_failure_still_reads_as_before():
    ti = SimpleNamespace(
        dag_id="lms_api_ingest", task_id="extract_lms_statements", map_index=-1, run_id="r1", try_number=3
    )
    assert failure_message({"ti": ti, "exception": RuntimeError("boom")}) == (
        "TURNOVER-SIGNALS ALERT lms_api_ingest.extract_lms_statements run r1 try 3: boom"
    )
