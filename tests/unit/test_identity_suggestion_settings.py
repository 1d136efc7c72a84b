"""The suggestion stage's settings and the steward page's rendering, without a warehouse."""

from __future__ import annotations

import copy
from decimal import Decimal

from turnover_signals.config import load_config
from turnover_signals.identity.steward_page import evidence_summary, render_steward_page
from turnover_signals.identity.suggest import suggestion_parameters


def test_the_settings_come_from_the_identity_section_with_domains_lowercased():
    config = copy.deepcopy(load_config(use_variable=False))
    config["identity"]["contractor_domains"] = [" Contractor.Example "]
    params = suggestion_parameters(config, run_id="run-1")
    assert params["contractor_domains"] == ["contractor.example"]
    assert params["run_id"] == "run-1" and params["top_n"] >= 1 and 0 < params["min_score"] < 1
    assert "email_not_in_hris" in params["suggestion_reasons"]
    assert not any(reason.startswith("steward_") for reason in params["suggestion_reasons"])


def test_the_evidence_reads_as_each_comparisons_level_and_weight():
    evidence = {
        "name": {"level": "exact", "weight": 8.09},
        "email_local_part": {"level": "one_edit", "weight": 7.97},
        "domain_class": {"level": "corporate", "weight": 0.5},
        "employment": {"level": "created_outside", "weight": -3.0},
    }
    assert evidence_summary(evidence) == (
        "name exact (+8.1); email_local_part one_edit (+8.0); domain_class corporate (+0.5); "
        "employment created_outside (-3.0)"
    )


def test_the_steward_page_escapes_what_it_shows():
    row = {
        "suggestion_id": 7,
        "lms_user_id": "<script>u-1</script>",
        "unmatched_reason": "email_not_in_hris",
        "rank": 1,
        "employee_key": 42,
        "hris_employee_id": "E001",
        "score": Decimal("0.95"),
        "evidence": {"name": {"level": "exact", "weight": 8}},
        "status": "open",
        "decided_by": None,
        "decided_at": None,
    }
    page = render_steward_page([row], [])
    assert "<script>u-1" not in page and "&lt;script&gt;u-1" in page
    assert "1 open suggestion(s) for 1 account(s)" in page and "stewardship accept|reject 7" in page
