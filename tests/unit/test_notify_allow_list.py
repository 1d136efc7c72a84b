"""The `turnover_signals` Variable chooses the notifier only among the classes the configuration FILE
allow-lists (issue 22, point 1): naming `subprocess.Popen`, or any class not on the list, runs nothing.

The Variable is the real one (`AIRFLOW_VAR_TURNOVER_SIGNALS`, as a deployment's secrets backend or the
metadata DB hands it over), and the payloads are real: a command that would leave a file behind if it ran.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from types import SimpleNamespace

import pytest

from turnover_signals.config import ConfigError, load_config
from turnover_signals.notify import (
    LogNotifier,
    allowed_notifiers,
    configured_notifier,
    notifier_class,
    notify_failure,
)

CANARY_MODULE = "turnover_signals_canary_notifier"


def failed_context() -> dict:
    ti = SimpleNamespace(
        dag_id="hris_sftp_ingest", task_id="ingest_hris_files", map_index=-1, run_id="r1", try_number=1
    )
    return {"ti": ti, "exception": RuntimeError("boom")}


def set_variable(monkeypatch: pytest.MonkeyPatch, value: dict) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_TURNOVER_SIGNALS", json.dumps(value))


def still_absent(path, seconds: float = 1.0) -> bool:
    """`path` does not appear within `seconds` (a started process would need a moment to create it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return False
        time.sleep(0.05)
    return not path.exists()


@pytest.fixture
def canary_module(tmp_path, monkeypatch):
    """An importable notifier module: leaves `imported` behind when imported, `notified` when used."""
    marker = tmp_path / "imported"
    (tmp_path / f"{CANARY_MODULE}.py").write_text(
        "import pathlib\n"
        "from airflow.sdk import BaseNotifier\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        "class CanaryNotifier(BaseNotifier):\n"
        "    def __init__(self, text=''):\n"
        "        super().__init__()\n"
        "    def notify(self, context):\n"
        f"        pathlib.Path({str(tmp_path / 'notified')!r}).touch()\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, CANARY_MODULE, raising=False)
    yield SimpleNamespace(
        path=f"{CANARY_MODULE}.CanaryNotifier", imported=marker, notified=tmp_path / "notified"
    )
    sys.modules.pop(CANARY_MODULE, None)


def test_a_variable_naming_subprocess_popen_starts_no_process(monkeypatch, tmp_path, caplog):
    marker = tmp_path / "popen-ran"
    set_variable(
        monkeypatch,
        {
            "alerts": {
                "notifier": "subprocess.Popen",
                "notifier_kwargs": {"args": ["sh", "-c", f"touch {marker}"]},
            }
        },
    )
    with caplog.at_level(logging.ERROR, logger="turnover_signals.notify"):
        notify_failure(failed_context())
    assert still_absent(marker)
    assert "alerts.notifier 'subprocess.Popen'" in caplog.text
    assert "is not in alerts.allowed_notifiers of the configuration file" in caplog.text
    assert "docs/runbook/alerts.md#runbook-alerts" in caplog.text
    # the alert itself still reaches the log
    assert "TURNOVER-SIGNALS ALERT hris_sftp_ingest.ingest_hris_files run r1 try 1: boom" in caplog.text


def test_a_class_not_on_the_allow_list_is_never_imported(monkeypatch, canary_module):
    set_variable(monkeypatch, {"alerts": {"notifier": canary_module.path}})
    with pytest.raises(ConfigError, match="so it was not imported"):
        configured_notifier(load_config(), "the alert")
    assert CANARY_MODULE not in sys.modules
    assert not canary_module.imported.exists()


def test_the_variable_cannot_extend_the_allow_list(monkeypatch, canary_module):
    set_variable(
        monkeypatch,
        {"alerts": {"notifier": canary_module.path, "allowed_notifiers": [canary_module.path]}},
    )
    assert canary_module.path in load_config()["alerts"]["allowed_notifiers"]  # merged, but never read
    assert canary_module.path not in allowed_notifiers()
    notify_failure(failed_context())
    assert not canary_module.imported.exists()
    assert not canary_module.notified.exists()


def test_an_allow_listed_notifier_named_by_the_variable_is_used(monkeypatch, canary_module):
    monkeypatch.setattr("turnover_signals.notify.allowed_notifiers", lambda: frozenset({canary_module.path}))
    set_variable(monkeypatch, {"alerts": {"notifier": canary_module.path}})
    notify_failure(failed_context())
    assert canary_module.notified.exists()


def test_an_allow_listed_class_that_is_no_notifier_is_refused_before_it_is_called(tmp_path):
    marker = tmp_path / "popen-ran"
    config = {"alerts": {"notifier": "subprocess.Popen", "notifier_kwargs": {"args": ["touch", str(marker)]}}}
    with pytest.raises(ConfigError, match=r"is not an Airflow notifier \(BaseNotifier subclass\)"):
        configured_notifier(config, "the alert", allowed={"subprocess.Popen"})
    assert still_absent(marker)


@pytest.mark.parametrize("target", ["os.system('id')", "subprocess", "", "a..b", 42])
def test_anything_but_an_import_path_is_refused(target):
    with pytest.raises(ConfigError, match="is not the import path of a class"):
        notifier_class(target, allowed={str(target)})


def test_an_airflow_notifier_instance_set_by_code_is_used_as_it_is():
    instance = LogNotifier("from code")
    assert configured_notifier({"alerts": {"notifier": instance}}, "the alert") is instance


def test_the_files_allow_list_names_notifier_classes_only():
    listed = allowed_notifiers()
    assert "airflow.providers.slack.notifications.slack.SlackNotifier" in listed
    assert all(".notifications." in path and path.rpartition(".")[2].endswith("Notifier") for path in listed)
