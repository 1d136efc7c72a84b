"""Failure notifications: every failed task of the bundle goes through `notify_failure`.

By default it logs one line an alerting pipeline can match (`TURNOVER-SIGNALS ALERT`). Set
`alerts.notifier` in the config to the import path of any Airflow notifier class (for example
`airflow.providers.slack.notifications.slack.SlackNotifier`) and `alerts.notifier_kwargs` to its
arguments; the message is passed as `text` unless `alerts.message_argument` names another one.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)


def failure_message(context: Mapping[str, Any]) -> str:
    """What failed, where, and why (the exception carries the next step and the runbook section)."""
    ti = context.get("ti") or context.get("task_instance")
    where = ".".join(str(p) for p in (getattr(ti, "dag_id", "?"), getattr(ti, "task_id", "?")))
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        where += f"[{map_index}]"
    exception = context.get("exception")
    return (
        f"TURNOVER-SIGNALS ALERT {where} run {getattr(ti, 'run_id', '?')} try {getattr(ti, 'try_number', '?')}: "
        f"{exception or 'failed'}"
    )


class LogNotifier(BaseNotifier):
    """The default notifier: an error line in the task log (and whatever ships logs to on-call)."""

    def __init__(self, message: str = "") -> None:
        super().__init__()
        self.message = message

    def notify(self, context: Any) -> None:
        log.error("%s", self.message or failure_message(context))


def configured_notifier(config: Mapping[str, Any], message: str) -> BaseNotifier:
    alerts = config.get("alerts") or {}
    target = alerts.get("notifier")
    if not target:
        return LogNotifier(message)
    module_name, _, class_name = target.rpartition(".")
    notifier_class = getattr(importlib.import_module(module_name), class_name)
    kwargs = dict(alerts.get("notifier_kwargs") or {})
    kwargs[alerts.get("message_argument") or "text"] = message
    return notifier_class(**kwargs)


def notify_failure(context: Any) -> None:
    """`on_failure_callback` of every task: never raises (a broken notifier must not hide the failure)."""
    message = failure_message(context)
    try:
        from turnover_signals.config import load_config

        configured_notifier(load_config(), message).notify(context)
    except Exception:  # noqa: BLE001 - fall back to the log, always
        log.exception("the configured notifier failed; the alert was: %s", message)
        LogNotifier(message).notify(context)
