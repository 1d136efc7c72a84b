"""The KPI definitions, their documentation, targets and runbook entries, the alert text and the KPI page."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from turnover_signals.config import read_config_file
from turnover_signals.kpi.build import alert_message, red_kpi_lines
from turnover_signals.kpi.definitions import KPIS, REFERENCE_PAGE, kpi_of, reference_page, sql_targets
from turnover_signals.quality.gate import RunIdentity

ROOT = Path(__file__).resolve().parents[2]


def test_the_kpi_reference_page_is_generated_from_the_definitions_and_the_configuration():
    documented = (ROOT / REFERENCE_PAGE).read_text(encoding="utf-8")
    assert documented == reference_page(read_config_file()), (
        "docs/reference/kpis.md is stale: run `python -m turnover_signals.kpi.definitions`"
    )
    for kpi in KPIS:
        assert f"| `{kpi.name}`" in documented and kpi.definition in documented


def test_every_kpi_has_a_configured_target_and_only_those():
    targets = read_config_file()["kpi"]["targets"]
    assert set(targets) == {kpi.name for kpi in KPIS}
    assert all(
        isinstance(value, (int, float)) for name, value in targets.items() if name != "feature_null_rate"
    )


def test_the_reference_page_is_in_the_docs_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "reference/kpis.md" in nav and "runbook/kpis.md" in nav


@pytest.mark.parametrize("kpi", KPIS, ids=lambda kpi: kpi.name)
def test_every_kpi_has_a_runbook_entry_with_its_next_step(kpi):
    runbook = (ROOT / "docs" / "runbook" / "kpis.md").read_text(encoding="utf-8")
    entry = runbook.split(f'<a id="runbook-{kpi.runbook_section}"></a>', 1)
    assert len(entry) == 2, f"no runbook entry for {kpi.name}"
    text = entry[1].split('<a id="', 1)[0]
    assert f"kpi.targets.{kpi.name}" in text and kpi.name in text
    assert kpi.runbook_link() == f"docs/runbook/kpis.md#runbook-{kpi.runbook_section}"


def test_a_member_kpi_is_read_by_its_family():
    assert kpi_of("validation_pass_rate:hris_employees_file").name == "validation_pass_rate"
    assert kpi_of("lms_watermark_lag_hours:xapi:lms_api").name == "lms_watermark_lag_hours"
    with pytest.raises(KeyError):
        kpi_of("no_such_kpi")


def test_feature_null_targets_come_from_the_kpi_section_else_the_feature_gate():
    config = read_config_file()
    config["kpi"]["targets"]["feature_null_rate"] = {"job_level": 0.01}
    bound = sql_targets(config, ["job_level", "department", "tenure_days"])
    assert bound["feature_null_rate:job_level"] == {"target": 0.01, "at_most": True}
    assert (
        bound["feature_null_rate:department"]["target"]
        == config["features"]["max_null_fraction"]["department"]
    )
    assert bound["feature_null_rate:tenure_days"]["target"] == 0.0  # the gate allows none
    assert bound["identity_match_rate"] == {"target": 0.95, "at_most": False}
    assert bound["open_identity_exceptions"]["at_most"] is True
    assert "feature_null_rate" not in bound


def row(kpi, value, target, status="alert", is_changed=True):
    return {
        "kpi": kpi,
        "kpi_value": value,
        "target_value": target,
        "status": status,
        "is_changed": is_changed,
    }


def test_the_alert_names_each_red_kpi_that_changed_with_its_next_step_and_runbook_entry():
    rows = [
        row("identity_match_rate", 0.9, 0.95),
        row("hris_file_age_hours:employees", 40.5, 30),
        row("open_identity_exceptions", 30, 25, is_changed=False),  # alerted when it turned red
        row("rejected_statement_rate", 0.001, 0.01, status="ok"),
    ]
    lines = red_kpi_lines(date(2026, 3, 4), rows)
    assert len(lines) == 2
    assert lines[0].startswith(
        "identity_match_rate on 2026-03-04 is 0.9 share, below its minimum 0.95. Next step:"
    )
    assert lines[1].startswith(
        "hris_file_age_hours:employees on 2026-03-04 is 40.5 hours, above its maximum 30."
    )
    assert lines[1].endswith("(runbook: docs/runbook/kpis.md#runbook-kpi-hris-file-age-hours)")
    message = alert_message(
        RunIdentity("turnover_features", "r-1", "record_integration_kpis"), date(2026, 3, 4), lines
    )
    assert message.startswith(
        "TURNOVER-SIGNALS ALERT turnover_features.record_integration_kpis run r-1: 2 KPI(s)"
    )


def history(kpi, values, target, at_most=False, start=date(2026, 3, 1)):
    return [
        {
            "kpi_date": start + timedelta(days=n),
            "kpi": kpi,
            "kpi_value": value,
            "target_value": target,
            "status": "no_data"
            if value is None
            else ("alert" if (value > target if at_most else value < target) else "ok"),
            "source": "x",
        }
        for n, value in enumerate(values)
    ]


def test_the_kpi_page_puts_red_kpis_first_plots_each_and_links_its_runbook_entry():
    from turnover_signals.quality.report_app import render_kpi_page

    rows = (
        history("identity_match_rate", [0.97, 0.96, 0.9], 0.95)
        + history("hris_file_age_hours:employees", [10, 12, 14], 30, at_most=True)
        + history("scored_headcount", [None, None, None], None)
        + history("not_a_kpi_any_more", [1, 2, 3], 1)
    )
    page = render_kpi_page(rows, [])
    latest = page.split('<table id="kpi-latest">', 1)[1].split("</table>", 1)[0]
    kpis = re.findall(r'<td><a href="#kpi-([^"]+)">', latest)
    assert kpis == ["identity_match_rate", "scored_headcount", "hris_file_age_hours-employees"]
    assert "<td>90.0%</td><td>≥ 95.0%</td><td class=status>RED</td>" in latest
    assert "<td>14.0 h</td><td>≤ 30.0 h</td><td class=status>ok</td>" in latest
    assert '<a href="runbook/kpis#runbook-kpi-identity-match-rate">runbook</a>' in latest
    assert page.count("<img class=kpi-plot") == 3 and "not_a_kpi_any_more" not in page
    assert "Model monitoring" not in page
    configured = render_kpi_page(rows, [], runbook_url="https://docs.example.com/{page}/#{anchor}")
    assert 'href="https://docs.example.com/kpis/#runbook-kpi-identity-match-rate"' in configured


def test_the_kpi_page_plots_each_model_monitoring_metric():
    from turnover_signals.quality.report_app import render_kpi_page

    monitoring = [
        {
            "model_version": version,
            "reference_date": date(2026, month, 1),
            "metric": metric,
            "value": 0.7,
            "lower": 0.65 if metric == "roc_auc" else None,
            "upper": 0.75 if metric == "roc_auc" else None,
            "threshold": 0.6,
            "status": "ok",
        }
        for version in ("m-1", "m-2")
        for month in (1, 2, 3)
        for metric in ("roc_auc", "psi:tenure_days", "calibration_error")
    ]
    page = render_kpi_page([], monitoring)
    section = page.split('<div class=plots id="model-monitoring">', 1)[1]
    assert section.count("<img class=monitoring-plot") == 3 and 'id="monitoring-psi-tenure_days"' in section


def test_a_success_rate_of_a_dag_needs_read_access_to_that_dag_too():
    from turnover_signals.quality.report_app import kpi_visible

    assert kpi_visible("identity_match_rate", {"turnover_features"})
    assert not kpi_visible("identity_match_rate", {"hris_sftp_ingest"})
    assert not kpi_visible("pipeline_success_rate:hris_sftp_ingest", {"turnover_features"})
    assert kpi_visible("pipeline_success_rate:hris_sftp_ingest", {"turnover_features", "hris_sftp_ingest"})


def test_the_runbook_page_keeps_each_entry_s_anchor_and_serves_only_runbook_pages():
    from fastapi import HTTPException

    from turnover_signals.quality.report_app import render_runbook_page

    page = render_runbook_page("kpis")
    for kpi in KPIS:
        assert f'<a id="runbook-{kpi.runbook_section}"></a>' in page
    assert "<ol><li>" in page and "<script" not in page
    for name in ("../../etc/passwd", "kpis.md", "STYLE"):
        with pytest.raises(HTTPException):
            render_runbook_page(name)
