"""Every error the bundle raises names its subject, problem and next step, and points to a runbook section
that exists."""

from __future__ import annotations

import ast
import re
import secrets
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "plugins" / "turnover_signals"
ERROR_CLASSES = {
    "TurnoverSignalsError",
    "SourceUnavailableError",
    "SourceRefusedError",
    "BadInputError",
    "FreshnessError",
    "PaginationLoopError",
    "MigrationError",
    "ConfigError",
    "StorageNotSharedError",
    "StorageVerificationError",
}


def error_constructions():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "synth" in path.parts or "sample_servers" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in ERROR_CLASSES:
                    yield path.relative_to(ROOT), node


RUNBOOK_DIR = ROOT / "docs" / "runbook"


def anchors_on(page: str) -> set[str]:
    """The runbook sections whose anchor (`<a id="runbook-<section>">`) is on docs/runbook/<page>.md."""
    return set(
        re.findall(
            r'<a id="runbook-([A-Za-z0-9_-]+)"', (RUNBOOK_DIR / f"{page}.md").read_text(encoding="utf-8")
        )
    )


def runbook_anchors() -> set[str]:
    """Every runbook section that is on the page errors.RUNBOOK_PAGES says, so its link resolves."""
    from turnover_signals.errors import RUNBOOK_PAGES

    return {section for section, page in RUNBOOK_PAGES.items() if section and section in anchors_on(page)}


def test_every_runbook_entry_is_mapped_to_the_page_that_holds_it():
    from turnover_signals.errors import RUNBOOK_PAGES

    on_pages = {section: page.stem for page in RUNBOOK_DIR.glob("*.md") for section in anchors_on(page.stem)}
    mapped = {section: page for section, page in RUNBOOK_PAGES.items() if section}
    assert mapped == on_pages


def test_an_error_links_to_its_runbook_page_and_an_alert_renders_the_configured_url():
    from turnover_signals.errors import BadInputError, runbook_links_for_alerts

    message = str(BadInputError("HRIS file x.csv", "quarantined", "fix it", "hris-quarantined-file"))
    assert message.endswith("(runbook: docs/runbook/hris.md#runbook-hris-quarantined-file)")
    url = "https://docs.example.com/ts/runbook/{page}/#{anchor}"
    assert runbook_links_for_alerts(message, {"alerts": {"runbook_url": url}}).endswith(
        "(runbook: https://docs.example.com/ts/runbook/hris/#runbook-hris-quarantined-file)"
    )
    assert runbook_links_for_alerts(message, {}) == message


def test_every_error_names_subject_problem_next_step_and_an_existing_runbook_section():
    anchors = runbook_anchors()
    checked = 0
    for path, call in error_constructions():
        section = (
            call.args[3]
            if len(call.args) >= 4
            else next((k.value for k in call.keywords if k.arg == "runbook_section"), None)
        )
        missing = [] if section is not None else [f"{path}:{call.lineno}"]
        assert not missing, f"an error without a runbook section: {missing}"
        checked += 1
        assert len(call.args) + len(call.keywords) >= 4, (
            f"{path}:{call.lineno} lacks subject/problem/next step"
        )
        if isinstance(section, ast.Constant):
            assert section.value in anchors, (
                f"{path}:{call.lineno}: no runbook section '{section.value}' in docs/runbook/"
            )
    assert checked >= 15


@pytest.mark.parametrize(
    "section",
    [
        "hris_sftp_ingest",
        "lms_api_ingest",
        "identity_resolution",
        "turnover_features",
        "turnover_model",
        "warehouse_retention",
        "freshness",
        "alerts",
        "rerun-hris-file",
        "migrations",
        "configuration",
        "backfill",
        "rerun-one-date",
        "identity-exceptions",
        "hris-quarantined-file",
        "deadlines",
        "warehouse-unavailable",
    ],
)
def test_the_runbook_covers_each_dag_and_the_on_call_procedures(section):
    assert section in runbook_anchors()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# A password made per run: the repository holds none (tests/integration/test_secrets.py looks for them).
PASSWORD = secrets.token_urlsafe(12)


def test_an_unreachable_warehouse_says_which_connection_and_what_to_do_and_is_retried(monkeypatch):
    """A down warehouse is an unavailable source: named, with a next step, and not failed without retries."""
    from turnover_signals.airflow_tasks import bad_input_fails_without_retry
    from turnover_signals.errors import SourceUnavailableError
    from turnover_signals.warehouse import DSN_ENV_VAR, warehouse_connection

    monkeypatch.delenv(DSN_ENV_VAR, raising=False)
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DOWN",
        f"postgres://pipeline_loader:{PASSWORD}@127.0.0.1:{closed_port()}/turnover",
    )
    with pytest.raises(SourceUnavailableError) as raised, bad_input_fails_without_retry():
        with warehouse_connection("warehouse_down"):
            pass  # pragma: no cover - the connection is refused
    message = str(raised.value)
    assert message.startswith("warehouse connection warehouse_down: could not connect: ")
    assert "Connection refused" in message and "Next step: check that the PostgreSQL server is up" in message
    assert "runbook-warehouse-unavailable" in message and PASSWORD not in message
    assert raised.value.runbook_section in runbook_anchors()


def test_an_unreachable_warehouse_url_is_named_without_its_password():
    from turnover_signals.errors import SourceUnavailableError
    from turnover_signals.warehouse import warehouse_connection

    port = closed_port()
    with pytest.raises(SourceUnavailableError) as raised:
        with warehouse_connection(dsn=f"postgresql://owner:{PASSWORD}@127.0.0.1:{port}/turnover"):
            pass  # pragma: no cover - the connection is refused
    message = str(raised.value)
    assert message.startswith(
        f"warehouse owner@127.0.0.1:{port}/turnover (TURNOVER_WAREHOUSE_URL or --dsn): "
    )
    assert PASSWORD not in message and "runbook-warehouse-unavailable" in message
