"""Suite versions: every Great Expectations suite of the bundle is pinned to the fingerprint of its
definition.

A suite's recorded version is `<SUITE_VERSION>+<fingerprint>`. The fingerprint is of what the suite
checks (expectation types and arguments), never of the data it runs on: the same suite on two HRIS
files has one version. Changing an expectation changes the fingerprint, and this test then asks for
a new version number, so the change shows in the reports as a new suite version, not only as a hash.
"""

from __future__ import annotations

import copy

import great_expectations.expectations as gxe
import pytest

from turnover_signals.config import load_config
from turnover_signals.features.gate import features_suite
from turnover_signals.hris.contract import FEEDS, map_header
from turnover_signals.identity.resolve import identity_suite
from turnover_signals.lms.catalog import catalog_suite
from turnover_signals.lms.statements import lms_batch_suite
from turnover_signals.lms.users import users_suite
from turnover_signals.quality.gate import SuiteDefinition
from turnover_signals.quality.hris_suites import (
    FileChecks,
    allowed_termination_types,
    hris_file_suite,
    hris_metrics_suite,
)

CONFIG = load_config(use_variable=False)
DATE_FORMAT = "%Y-%m-%d"

# suite (as built from the repository's configuration) -> (version, fingerprint of its definition)
PINNED = {
    "hris_employees_file": ("2", "7715aaaccbad"),
    "hris_employees_file (metrics)": ("2-metrics", "3ca3c2ab8ab4"),
    "hris_compensation_file": ("2", "a9cf3a43366f"),
    "hris_compensation_file (metrics)": ("2-metrics", "3f273fc24b44"),
    "lms_statement_batch": ("1", "9ff8c72f31e8"),
    "lms_user_batch": ("1", "5f225783c923"),
    "course_catalog": ("1", "38b82124c318"),
    "identity_resolution": ("1", "a52304d96931"),
    "employee_features": ("4", "7d4a27e40a1c"),
}
WHERE = {
    "hris": "SUITE_VERSION / METRICS_SUITE_VERSION in quality/hris_suites.py",
    "lms_statement_batch": "SUITE_VERSION in lms/statements.py",
    "lms_user_batch": "users_suite() in lms/users.py",
    "course_catalog": "catalog_suite() in lms/catalog.py",
    "identity_resolution": "identity_suite() in identity/resolve.py",
    "employee_features": "features_suite() in features/gate.py",
}


def file_checks(control_rows: int | None, previous_good_rows: int | None) -> FileChecks:
    return FileChecks(
        control_rows=control_rows,
        previous_good_rows=previous_good_rows,
        volume_min_ratio=float(CONFIG["hris"]["volume_guard"]["min_ratio"]),
        volume_max_ratio=float(CONFIG["hris"]["volume_guard"]["max_ratio"]),
        allowed_termination_types=allowed_termination_types(CONFIG["hris"]["termination_type_mapping"]),
    )


def hris_suites(
    feed_name: str, header_columns, control_rows, previous_good_rows
) -> tuple[SuiteDefinition, ...]:
    feed = FEEDS[feed_name]
    header = map_header(list(header_columns), feed, {})
    checks = file_checks(control_rows, previous_good_rows)
    return (
        hris_file_suite(feed, header, checks, DATE_FORMAT),
        hris_metrics_suite(feed, header, checks, DATE_FORMAT),
    )


def every_suite() -> dict[str, SuiteDefinition]:
    suites = {}
    for feed in ("employees", "compensation"):
        rows, metrics = hris_suites(feed, FEEDS[feed].columns, 1000, 1000)
        suites[rows.name], suites[f"{metrics.name} (metrics)"] = rows, metrics
    config = copy.deepcopy(CONFIG)
    suites.update(
        {
            "lms_statement_batch": lms_batch_suite(float(config["lms"]["max_reject_rate"])),
            "lms_user_batch": users_suite(),
            "course_catalog": catalog_suite(),
            "identity_resolution": identity_suite(config),
            "employee_features": features_suite(config),
        }
    )
    return suites


@pytest.mark.parametrize("label", sorted(PINNED))
def test_a_changed_suite_gets_a_new_version(label):
    suite = every_suite()[label]
    pinned_version, pinned_fingerprint = PINNED[label]
    where = WHERE["hris" if label.startswith("hris_") else label]
    if suite.fingerprint != pinned_fingerprint:
        assert suite.version != pinned_version, (
            f"suite {label} changed (fingerprint {pinned_fingerprint} -> {suite.fingerprint}) but kept "
            f"version {suite.version}: bump the version ({where}), then pin ({suite.version!r}, "
            f"{suite.fingerprint!r}) here"
        )
    assert (suite.version, suite.fingerprint) == PINNED[label], (
        f"suite {label} is now ({suite.version!r}, {suite.fingerprint!r}): pin it here with its new version"
    )


@pytest.mark.parametrize("feed", ["employees", "compensation"])
def test_two_files_of_a_feed_get_one_suite_version(feed):
    columns = FEEDS[feed].columns
    # a complete file with a control file, compared with a 1000-row snapshot ...
    full = hris_suites(feed, columns, 1000, 1000)
    # ... and one without a control file or previous snapshot, lacking an optional and a required column
    optional = next(c for c in columns if c not in FEEDS[feed].required_columns)
    sparse = hris_suites(feed, [c for c in columns if c not in (optional, "employee_id")], None, None)
    other_size = hris_suites(feed, columns, 7, 12)
    for a, b, c in zip(full, sparse, other_size, strict=True):
        assert len(a.expectations) > len(b.expectations)  # the runs differ ...
        versions = {f"{s.version}+{s.fingerprint}" for s in (a, b, c)}
        assert len(versions) == 1, versions  # ... the suite does not


def test_descriptions_and_order_do_not_change_the_fingerprint_but_arguments_do():
    def suite(*expectations):
        return SuiteDefinition("s", "1", list(expectations))

    unique = gxe.ExpectColumnValuesToBeUnique(column="a")
    not_null = gxe.ExpectColumnValuesToNotBeNull(column="a", description="about 1000 rows")
    reworded = gxe.ExpectColumnValuesToNotBeNull(column="a", description="about 999 rows")
    assert suite(unique, not_null).fingerprint == suite(reworded, unique).fingerprint
    assert (
        suite(unique, not_null).fingerprint
        != suite(unique, gxe.ExpectColumnValuesToNotBeNull(column="b")).fingerprint
    )
    mostly = gxe.ExpectColumnValuesToNotBeNull(column="a", mostly=0.9)
    assert suite(unique, not_null).fingerprint != suite(unique, mostly).fingerprint


def test_a_run_cannot_hold_an_expectation_outside_its_suite_definition():
    with pytest.raises(ValueError, match="outside its definition"):
        SuiteDefinition(
            "s",
            "1",
            [gxe.ExpectColumnValuesToBeUnique(column="b")],
            definition=[gxe.ExpectColumnValuesToBeUnique(column="a")],
        )
