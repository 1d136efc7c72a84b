"""The auditors' suite catalogue: every Great Expectations suite of the bundle, generated from its definition.

`docs/auditors/suite-catalogue.md` lists each suite with its version (`<version>+<fingerprint>`, as
recorded in `audit.validation_result.suite_version`), where it is defined and what it validates, then
every expectation with its plain-language description, its type, its column and its thresholds. The
suites are built as the tasks build them, from the repository's configuration
(`include/turnover_signals.yaml`, without the `turnover_signals` Variable); an HRIS suite is shown with every
check a file of its feed can get. `tests/unit/test_suite_catalogue.py` fails when the page differs from what
this module generates, so the catalogue cannot drift from the suites.

    PYTHONPATH=plugins python -m turnover_signals.quality.catalogue     # rewrites the page
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from turnover_signals.quality.gate import SuiteDefinition

CATALOGUE_PAGE = "docs/auditors/suite-catalogue.md"
# Arguments that say where an expectation looks, not how strict it is.
_PLACE_ARGUMENTS = ("column", "column_A", "column_B", "column_list", "batch_id")
# The volume guard and the control file compare with values known only when a file arrives.
_EXAMPLE_ROWS = 1000


@dataclass(frozen=True)
class CatalogueEntry:
    """One suite of the catalogue: the suite and what an auditor needs to know around it."""

    suite: SuiteDefinition
    defined_in: str
    validates: str


def catalogue_entries() -> list[CatalogueEntry]:
    """Every suite of the bundle, built as its task builds it from the repository's configuration."""
    from turnover_signals.config import load_config
    from turnover_signals.features.gate import features_suite
    from turnover_signals.hris.contract import FEEDS, map_header
    from turnover_signals.identity.resolve import identity_suite
    from turnover_signals.lms.catalog import catalog_suite
    from turnover_signals.lms.statements import lms_batch_suite
    from turnover_signals.lms.users import users_suite
    from turnover_signals.quality.hris_suites import (
        FileChecks,
        allowed_termination_types,
        hris_file_suite,
        hris_metrics_suite,
    )

    config = copy.deepcopy(load_config(use_variable=False))
    hris = config["hris"]
    entries = []
    for name, feed in FEEDS.items():
        header = map_header(list(feed.columns), feed, {})
        checks = FileChecks(
            control_rows=_EXAMPLE_ROWS,
            previous_good_rows=_EXAMPLE_ROWS,
            volume_min_ratio=float(hris["volume_guard"]["min_ratio"]),
            volume_max_ratio=float(hris["volume_guard"]["max_ratio"]),
            allowed_termination_types=allowed_termination_types(hris["termination_type_mapping"]),
        )
        date_format = hris.get("date_format") or "%Y-%m-%d"
        entries.append(
            CatalogueEntry(
                hris_metrics_suite(feed, header, checks, date_format),
                "`plugins/turnover_signals/quality/hris_suites.py` (`hris_metrics_suite`)",
                f"every `{name}_YYYYMMDD.csv` file first (the fast gate): a one-row table of counts of the "
                "staged file — how many rows fail each check",
            )
        )
        entries.append(
            CatalogueEntry(
                hris_file_suite(feed, header, checks, date_format),
                "`plugins/turnover_signals/quality/hris_suites.py` (`hris_file_suite`)",
                f"a `{name}_YYYYMMDD.csv` file the fast gate failed: the staged rows themselves, so the "
                "report shows which values failed (masked when they are personal data)",
            )
        )
    entries += [
        CatalogueEntry(
            lms_batch_suite(float(config["lms"]["max_reject_rate"])),
            "`plugins/turnover_signals/lms/statements.py` (`lms_batch_suite`)",
            "each chunk of xAPI statements extracted from the LRS, before it is published",
        ),
        CatalogueEntry(
            users_suite(),
            "`plugins/turnover_signals/lms/users.py` (`users_suite`)",
            "each pull of SCIM users from the LMS directory, before it is published",
        ),
        CatalogueEntry(
            catalog_suite(),
            "`plugins/turnover_signals/lms/catalog.py` (`catalog_suite`)",
            "`include/course_catalog.csv` whenever it changes, before it replaces `core.course_catalog`",
        ),
        CatalogueEntry(
            identity_suite(config),
            "`plugins/turnover_signals/identity/resolve.py` (`identity_suite`)",
            "the reconciliation row of each identity run, before the identity layer is published",
        ),
        CatalogueEntry(
            features_suite(config),
            "`plugins/turnover_signals/features/gate.py` (`features_suite`)",
            "the feature rows of each reference date, before they are published to `mart.employee_features`",
        ),
    ]
    return entries


def _value(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        return f"the file's `{value['$PARAMETER']}` (known when it arrives)"
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return f"`{text}`".replace("|", "\\|")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def expectation_row(number: int, expectation: Any) -> str:
    """One table row: number, description, expectation type, where it looks, thresholds."""
    configuration = expectation.configuration.to_json_dict()
    kwargs = {k: v for k, v in configuration["kwargs"].items() if k != "batch_id"}
    place = ", ".join(f"`{kwargs[k]}`" for k in _PLACE_ARGUMENTS if k in kwargs and k != "batch_id")
    thresholds = "; ".join(
        f"{k} = {_value(v)}" for k, v in sorted(kwargs.items()) if k not in _PLACE_ARGUMENTS
    )
    # A description quotes the example snapshot's count; the catalogue speaks of any file.
    description = _cell(getattr(expectation, "description", None) or "").replace(
        f"({_EXAMPLE_ROWS} rows)", "(its row count)"
    )
    return f"| {number} | {description} | `{configuration['type']}` | {place} | {thresholds or '—'} |"


def catalogue_markdown(entries: list[CatalogueEntry]) -> str:
    """The whole page."""
    lines = [
        "# Suite catalogue",
        "",
        "<!-- generated by `python -m turnover_signals.quality.catalogue` from the suite definitions; "
        "do not edit by hand -->",
        "",
        "Every Great Expectations suite the pipeline runs, with every expectation it can hold. A suite's "
        "version is `<version>+<fingerprint>`, as `audit.validation_result.suite_version` and each Data Docs "
        "page show it: the fingerprint is a hash of the expectations' types and arguments, so a changed "
        "check is a new version. Thresholds are those of the repository's configuration "
        "(`include/turnover_signals.yaml`); a tenant that overrides one in the `turnover_signals` Variable "
        "runs the same checks with its own value, and its recorded fingerprint differs accordingly.",
        "",
        "Why the HRIS suites come in two versions: see "
        "[Reports for auditors](index.md#two-versions-of-each-hris-suite).",
        "",
        "| suite | version | validates |",
        "|---|---|---|",
    ]
    for entry in entries:
        suite = entry.suite
        lines.append(
            f"| [`{suite.name}`](#{_slug(entry)}) | `{suite.version_string}` | {_cell(entry.validates)} |"
        )
    for entry in entries:
        suite = entry.suite
        lines += [
            "",
            f'<a id="{_slug(entry)}"></a>',
            "",
            f"## `{suite.name}` version `{suite.version_string}`",
            "",
            f"Validates {entry.validates}. Defined in {entry.defined_in}.",
            "",
            "| # | description | expectation | column | thresholds |",
            "|---|---|---|---|---|",
        ]
        lines += [expectation_row(i, e) for i, e in enumerate(suite.expectations, start=1)]
    return "\n".join(lines) + "\n"


def _slug(entry: CatalogueEntry) -> str:
    return f"suite-{entry.suite.name}-{entry.suite.version}".replace("_", "-").replace(".", "-")


if __name__ == "__main__":
    from turnover_signals.paths import BUNDLE_ROOT

    path = BUNDLE_ROOT / CATALOGUE_PAGE
    path.write_text(catalogue_markdown(catalogue_entries()), encoding="utf-8")
    print(f"{path}: suite catalogue regenerated")
