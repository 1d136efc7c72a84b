"""The auditors' suite catalogue (docs/auditors/suite-catalogue.md) is the one generated from the suite
definitions."""

from __future__ import annotations

from pathlib import Path

from turnover_signals.quality import catalogue

ROOT = Path(__file__).resolve().parents[2]


def test_the_suite_catalogue_page_is_the_one_generated_from_the_suites():
    page = (ROOT / catalogue.CATALOGUE_PAGE).read_text(encoding="utf-8")
    generated = catalogue.catalogue_markdown(catalogue.catalogue_entries())
    assert page == generated, (
        "a suite changed: run PYTHONPATH=plugins python -m turnover_signals.quality.catalogue"
    )


def test_the_catalogue_lists_every_suite_and_both_hris_versions():
    names = [(e.suite.name, e.suite.version) for e in catalogue.catalogue_entries()]
    for feed in ("employees", "compensation"):
        versions = {version for name, version in names if name == f"hris_{feed}_file"}
        assert len(versions) == 2 and any(v.endswith("-metrics") for v in versions)
    assert {name for name, _ in names} >= {
        "lms_statement_batch",
        "lms_user_batch",
        "course_catalog",
        "identity_resolution",
        "employee_features",
    }
