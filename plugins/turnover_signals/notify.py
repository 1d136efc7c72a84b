"""Failure notifications: every failed task of the bundle goes through `notify_failure`.

By default it logs one line an alerting pipeline can match (`TURNOVER-SIGNALS ALERT`). Set
`alerts.notifier` in the config to the import path of an Airflow notifier class (for example
`airflow.providers.slack.notifications.slack.SlackNotifier`) and `alerts.notifier_kwargs` to its
arguments; the message is passed as `text` unless `alerts.message_argument` names another one.

The Variable may choose the notifier, but only among the `BaseNotifier` subclasses that the configuration
FILE allow-lists (`alerts.allowed_notifiers`, which the Variable cannot change): anyone who may edit a
Variable must not be able to run code on the workers and the dag-processor by naming any class
(`subprocess.Popen`) with arguments of their choosing. A path not on the list is refused before anything
is imported (docs/security.md#notifier-allow-list). Code may also put an Airflow notifier instance there.

It is also every DAG's `on_failure_callback`, because a run can fail without a failed task: when
its `dagrun_timeout` passes, the scheduler stops the unfinished tasks (no task callback runs) and
calls only the DAG's callback, with a `reason` such as `timed_out`. A run that failed because a task
failed (`task_failure`) was already alerted by that task, with its error: it is logged, not sent again.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseNotifier

from turnover_signals.config import ConfigError, read_config_file
from turnover_signals.errors import runbook_link, runbook_links_for_alerts

log = logging.getLogger(__name__)

# The reason the scheduler gives a DAG-level callback when a failed task already alerted.
TASK_FAILURE_REASON = "task_failure"
# `package.module.Class`: nothing else is ever looked up as a notifier.
_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


@dataclass(frozen=True)
class RunFailure:
    """Why a DAG run failed without a task's own error to say so, and what on-call does about it."""

    problem: str
    next_step: str
    runbook_section: str


RUN_FAILURES = {
    "timed_out": RunFailure(
        "the run passed its dagrun_timeout ({timeout}); the scheduler marked its unfinished tasks "
        "skipped{last_task}",
        "read the log of the task that was still running (a hung source, a lock, a full disk), fix the "
        "cause, then clear the whole run (its stopped tasks are skipped, not failed)",
        "deadlines",
    ),
    "all_tasks_deadlocked": RunFailure(
        "no task of the run could be scheduled any more (deadlock){last_task}",
        "look at the grid for tasks left without a state, clear them with their downstream tasks",
        "rerun-one-date",
    ),
}
UNKNOWN_RUN_FAILURE = RunFailure(
    "the run failed{last_task}",
    "look at the run's tasks in the grid and clear the failed ones",
    "rerun-one-date",
)


def is_dag_level(context: Mapping[str, Any]) -> bool:
    """Whether `context` is a DAG's callback context (it carries the run's `reason`) rather than a task's."""
    return "reason" in context


def failure_message(context: Mapping[str, Any]) -> str:
    """What failed, where, and why (the exception carries the next step and the runbook section)."""
    if is_dag_level(context):
        return run_failure_message(context)
    ti = context.get("ti") or context.get("task_instance")
    where = ".".join(str(p) for p in (getattr(ti, "dag_id", "?"), getattr(ti, "task_id", "?")))
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        where += f"[{map_index}]"
    exception = context.get("exception")
    return (
        f"TURNOVER-SIGNALS ALERT {where} run {getattr(ti, 'run_id', '?')} try "
        f"{getattr(ti, 'try_number', '?')}: {exception or 'failed'}"
    )


def run_failure_message(context: Mapping[str, Any]) -> str:
    """The alert of a DAG-level callback: the DAG, the run, the reason, the next step and the runbook section.

    The context is either minimal (`dag`, `run_id`, `reason`) or, when the scheduler names the last
    unfinished task, that task's template context (`ti`, `dag_run`, ...) plus `reason`.
    """
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None) or getattr(ti, "dag_id", "?")
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "?")
    reason = str(context.get("reason") or "failed")
    failure = RUN_FAILURES.get(reason, UNKNOWN_RUN_FAILURE)
    timeout = getattr(dag, "dagrun_timeout", None)
    task_id = getattr(ti, "task_id", None)
    problem = failure.problem.format(
        timeout=timeout or "its deadline", last_task=f" (last: {task_id})" if task_id else ""
    )
    return (
        f"TURNOVER-SIGNALS ALERT {dag_id} run {run_id}: {reason}: {problem}. Next step: {failure.next_step} "
        f"(runbook: {runbook_link(failure.runbook_section)}, {runbook_link(dag_id)})"
    )


class LogNotifier(BaseNotifier):
    """The default notifier: an error line in the task log (and whatever ships logs to on-call)."""

    def __init__(self, message: str = "") -> None:
        super().__init__()
        self.message = message

    def notify(self, context: Any) -> None:
        log.error("%s", self.message or failure_message(context))


def allowed_notifiers() -> frozenset[str]:
    """`alerts.allowed_notifiers` of the configuration FILE (never the Variable's): the notifier classes a
    Variable may name."""
    alerts = read_config_file().get("alerts") or {}
    return frozenset(str(path) for path in alerts.get("allowed_notifiers") or ())


def _refused_notifier(target: Any, problem: str) -> ConfigError:
    return ConfigError(
        subject=f"alerts.notifier {str(target)[:200]!r}",
        problem=f"{problem}; alerts go to the task log instead",
        next_step=(
            "name a notifier class listed in alerts.allowed_notifiers, or add a BaseNotifier subclass to "
            "that list in include/turnover_signals.yaml (the file, reviewed with the bundle; the Variable "
            "cannot change the list)"
        ),
        runbook_section="alerts",
    )


def notifier_class(target: str, allowed: Collection[str]) -> type[BaseNotifier]:
    """The notifier class at import path `target`, imported only when `allowed` lists it, and only returned
    when it is a `BaseNotifier` subclass; `ConfigError` otherwise."""
    if not isinstance(target, str) or not _IMPORT_PATH.fullmatch(target):
        raise _refused_notifier(target, "is not the import path of a class (package.module.Class)")
    if target not in allowed:
        raise _refused_notifier(
            target, "is not in alerts.allowed_notifiers of the configuration file, so it was not imported"
        )
    module_name, _, class_name = target.rpartition(".")
    found = getattr(importlib.import_module(module_name), class_name, None)
    if not (isinstance(found, type) and issubclass(found, BaseNotifier)):
        raise _refused_notifier(
            target, "is allow-listed but is not an Airflow notifier (BaseNotifier subclass)"
        )
    return found


def configured_notifier(
    config: Mapping[str, Any], message: str, allowed: Collection[str] | None = None
) -> BaseNotifier:
    """The notifier of `alerts.notifier`, with `message` (its runbook links as full URLs,
    `alerts.runbook_url`).

    `alerts.notifier` is an import path among `allowed` (default: `allowed_notifiers()`, from the file), or
    an Airflow notifier instance put there by code (a JSON Variable cannot hold one); anything else raises
    `ConfigError`.
    """
    message = runbook_links_for_alerts(message, config)
    alerts = config.get("alerts") or {}
    target = alerts.get("notifier")
    if not target:
        return LogNotifier(message)
    if isinstance(target, BaseNotifier):
        return target
    cls = notifier_class(target, allowed_notifiers() if allowed is None else allowed)
    kwargs = dict(alerts.get("notifier_kwargs") or {})
    kwargs[alerts.get("message_argument") or "text"] = message
    return cls(**kwargs)


def notify_failure(context: Any) -> None:
    """`on_failure_callback` of every task and every DAG: never raises (a broken notifier must not hide the
    failure)."""
    message = failure_message(context)
    if is_dag_level(context) and context.get("reason") == TASK_FAILURE_REASON:
        log.info("%s (already alerted by the failed task)", message)
        return
    try:
        from turnover_signals.config import load_config

        configured_notifier(load_config(), message).notify(context)
    except Exception:  # noqa: BLE001 - fall back to the log, always
        log.exception("the configured notifier failed; the alert was: %s", message)
        LogNotifier(message).notify(context)
