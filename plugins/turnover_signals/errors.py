"""Errors the bundle raises: each names what failed, where, why, and the next step.

Each error names its runbook entry as a link into `docs/runbook/` (the page holding the entry, then its
anchor `runbook-<section>`). Alerts rewrite these links with the setting `alerts.runbook_url` (see
`runbook_links_for_alerts`), so a message in a chat channel carries a URL people can click.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# The default of `alerts.runbook_url`: the entry's page in this repository, relative to its root.
RUNBOOK_URL = "docs/runbook/{page}.md#{anchor}"

# Which page of docs/runbook/ holds each entry (tests/unit/test_errors_point_to_the_runbook.py checks
# that every entry an error names is here and that its page carries the anchor).
RUNBOOK_PAGES = {
    "": "index",
    **dict.fromkeys(["rerun-one-date", "backfill", "rerun-hris-file", "identity-exceptions"], "procedures"),
    **dict.fromkeys(
        [
            "migrations",
            "warehouse-unavailable",
            "gate-not-evaluated",
            "stage-connection",
            "storage",
            "configuration",
        ],
        "warehouse",
    ),
    **dict.fromkeys(["alerts", "slo", "deadlines", "freshness"], "alerts"),
    **dict.fromkeys(
        [
            "hris_sftp_ingest",
            "hris-quarantined-file",
            "sftp-unavailable",
            "sftp-host-key",
            "hris-encrypted-files",
            "hris-files-not-taken",
        ],
        "hris",
    ),
    **dict.fromkeys(
        [
            "lms_api_ingest",
            "lms-batch-rejected",
            "lms-users-rejected",
            "course-catalog",
            "lms-lrs-conformance",
            "lms-late-statements",
            "lms-clock-skew",
            "lms-refused-statements",
            "lms-statement-backfill",
            "lms-publish-interrupted",
            "lms-extraction-busy",
            "lms-watcher",
            "lms-unavailable",
            "lms-rate-limited",
            "lms-pagination-loop",
            "lms-auth",
            "lms-refused",
            "lms-connection",
        ],
        "lms",
    ),
    "identity_resolution": "identity",
    "turnover_features": "features",
    "turnover_model": "model",
    # one entry per integration KPI (turnover_signals.kpi.definitions: Kpi.runbook_section)
    **dict.fromkeys(
        [
            "kpi-hris-headcount-reconciliation",
            "kpi-identity-match-rate",
            "kpi-attributable-statement-share",
            "kpi-open-identity-exceptions",
            "kpi-hris-file-age-hours",
            "kpi-lms-watermark-lag-hours",
            "kpi-validation-pass-rate",
            "kpi-rejected-statement-rate",
            "kpi-pipeline-success-rate",
            "kpi-feature-null-rate",
            "kpi-scored-headcount",
        ],
        "kpis",
    ),
    **dict.fromkeys(["warehouse_retention", "pseudonym-key", "retention-file-kept"], "retention"),
}

_DEFAULT_LINK = re.compile(r"docs/runbook/(?P<page>[a-z_-]+)\.md#(?P<anchor>runbook[A-Za-z0-9_-]*)")


def runbook_link(section: str = "", url: str = RUNBOOK_URL) -> str:
    """The link to runbook entry `section` (the runbook's index when empty), rendered with `url`."""
    page = RUNBOOK_PAGES.get(section, "index")
    return url.format(page=page, anchor=f"runbook-{section}" if section else "runbook")


def runbook_links_for_alerts(message: str, config: Mapping[str, Any]) -> str:
    """`message` with its runbook links rendered through `alerts.runbook_url` (unchanged when it is not
    set)."""
    url = (config.get("alerts") or {}).get("runbook_url") or RUNBOOK_URL
    if url == RUNBOOK_URL:
        return message
    return _DEFAULT_LINK.sub(lambda m: url.format(page=m["page"], anchor=m["anchor"]), message)


class TurnoverSignalsError(RuntimeError):
    """A failure an on-call engineer can act on.

    The message reads: `<subject>: <problem>. Next step: <next_step> (runbook: <section>)`.
    """

    def __init__(self, subject: str, problem: str, next_step: str, runbook_section: str = ""):
        self.subject = subject
        self.problem = problem
        self.next_step = next_step
        self.runbook_section = runbook_section
        super().__init__(
            f"{subject}: {problem}. Next step: {next_step} (runbook: {runbook_link(runbook_section)})"
        )


class SourceUnavailableError(TurnoverSignalsError):
    """A source server could not be reached or dropped the transfer; retrying may help."""


class SourceRefusedError(TurnoverSignalsError):
    """A source was reached but must not be trusted or read (host key mismatch, auth); retrying will not
    help."""


class BadInputError(TurnoverSignalsError):
    """The input itself is wrong: it is quarantined and must be corrected at the source."""


class GateNotEvaluatedError(TurnoverSignalsError):
    """A gate could not evaluate its expectations (a query of it failed: the warehouse went away, a timeout):
    nothing was judged, so nothing is quarantined or published; retrying may help."""


class FreshnessError(TurnoverSignalsError):
    """Published data is older than its service level objective."""


class StorageNotSharedError(BadInputError):
    """Tasks may run on several hosts and no shared object store (`storage.base_url`) is configured."""


class StorageVerificationError(TurnoverSignalsError):
    """An object read back differs from what was written; nothing it was to preserve was deleted."""
