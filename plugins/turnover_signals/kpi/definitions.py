"""What each integration KPI measures: its definition, the tables it is read from, its target, and what
on-call does when it is red.

The one list of KPIs (`KPIS`): `include/sql/mart/integration_kpi.sql` computes them, the KPI page plots them,
an alert names the next step and runbook entry given here, and docs/reference/kpis.md is generated from it
(`python -m turnover_signals.kpi.definitions`; tests/unit/test_kpi_definitions.py fails when it is stale).
Targets are configuration (`kpi.targets` in include/turnover_signals.yaml); the direction is the KPI's own.

Some KPIs have one row per member, named `<kpi>:<member>`: a suite, a DAG, an HRIS feed, an LRS source or a
feature (as `mart.model_monitoring` names `psi:<feature>`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The default of `alerts.runbook_url` (errors.RUNBOOK_URL); the KPI entries are on docs/runbook/kpis.md.
RUNBOOK_PAGE = "kpis"
STATUSES = ("ok", "alert", "no_data")


@dataclass(frozen=True)
class Kpi:
    """One KPI (or family of KPIs, one per `member`)."""

    name: str
    title: str
    unit: str  # share, hours, count, employees
    at_most: bool  # red above the target (else red below it)
    definition: str
    source: str
    next_step: str
    member: str | None = None  # what `<name>:<member>` ranges over
    target_note: str = ""  # how the target applies, beyond its direction

    @property
    def runbook_section(self) -> str:
        return f"kpi-{self.name.replace('_', '-')}"

    def runbook_link(self, url: str = "docs/runbook/{page}.md#{anchor}") -> str:
        """The link to this KPI's runbook entry, rendered with `url` (`alerts.runbook_url`)."""
        return url.format(page=RUNBOOK_PAGE, anchor=f"runbook-{self.runbook_section}")


KPIS: tuple[Kpi, ...] = (
    Kpi(
        name="hris_headcount_reconciliation",
        title="HRIS headcount reconciliation",
        unit="share",
        at_most=False,
        definition="canonical headcount (HRIS employee ids holding an identity in core.employee_identity) / "
        "HRIS headcount (distinct employee ids in core.employee_history), from the newest identity run "
        "finished by the end of the day",
        source="audit.identity_reconciliation",
        target_note="1.0: every HR employee has a canonical identity",
        next_step="compare core.employee_history with core.employee_identity for the missing employee ids "
        "and rerun identity_resolution",
    ),
    Kpi(
        name="identity_match_rate",
        title="Identity match rate",
        unit="share",
        at_most=False,
        definition="active LMS users carrying a corporate identifier (SSO GUID or corporate-domain email) "
        "that are matched to an employee / all such users, from the newest identity run finished by the end "
        "of the day (active_corporate_match_rate)",
        source="audit.identity_reconciliation",
        next_step="read the unmatched reasons of the newest identity run (lms_users_unmatched_by_reason) "
        "and work the steward queue; check identity.corporate_domains and domain_aliases",
    ),
    Kpi(
        name="attributable_statement_share",
        title="Statements attributable to an employee",
        unit="share",
        at_most=False,
        definition="non-voided xAPI statements whose learner maps to an employee identity valid on the day "
        "the statement happened / all non-voided statements, from the newest identity run finished by the "
        "end of the day",
        source="audit.identity_reconciliation",
        next_step="find the most frequent unattributed learner identifiers in core.lms_activity and why "
        "they match no LMS account or employee",
    ),
    Kpi(
        name="open_identity_exceptions",
        title="Open identity exceptions",
        unit="count",
        at_most=True,
        definition="identity exceptions first seen before the end of the day and not resolved by then",
        source="audit.identity_exception",
        next_step="work the steward queue (docs/runbook/procedures.md#runbook-identity-exceptions)",
    ),
    Kpi(
        name="hris_file_age_hours",
        title="Hours since the last good HRIS file",
        unit="hours",
        at_most=True,
        member="HRIS feed (`hris.file_patterns`: employees, compensation)",
        definition="hours from the receipt of the newest file of the feed that loaded (status loaded, or "
        "superseded later by a correction) to the end of the day; no row value while none ever loaded",
        source="audit.file_manifest",
        next_step="check the SFTP drop and the vendor's export schedule, and the quarantined files of the "
        "feed in audit.file_manifest",
    ),
    Kpi(
        name="lms_watermark_lag_hours",
        title="LMS watermark lag",
        unit="hours",
        at_most=True,
        member="LRS source (`xapi:<connection id>`)",
        definition="hours from the newest watermark (the LRS's stored time) a published xAPI batch finished "
        "by the end of the day reached, to the end of the day; a quiet LRS (nobody learning at night) lags "
        "too",
        source="audit.lms_extract_batch",
        next_step="look at the newest lms_api_ingest runs and failed batches in audit.lms_extract_batch; "
        "check the LRS and the watcher",
    ),
    Kpi(
        name="validation_pass_rate",
        title="Validation pass rate",
        unit="share",
        at_most=False,
        member="Great Expectations suite",
        definition="validation runs of the suite that passed / all its runs validated during the day",
        source="audit.validation_result",
        next_step="open the failed runs' Data Docs on the Data quality page (filter by the suite and status "
        "failed) and follow their entries",
    ),
    Kpi(
        name="rejected_statement_rate",
        title="Rejected-statement rate",
        unit="share",
        at_most=True,
        definition="distinct xAPI payloads first rejected during the day / (those + new statements "
        "published by the day's batches)",
        source="raw.lms_statement_rejected, audit.lms_extract_batch",
        next_step="group the day's rejects in raw.lms_statement_rejected by reason and raise the top one "
        "with the LMS vendor",
    ),
    Kpi(
        name="pipeline_success_rate",
        title="Pipeline success rate",
        unit="share",
        at_most=False,
        member="DAG id",
        definition="the DAG's runs due during the day (run_after, UTC) that succeeded / those that finished, "
        "as Airflow's REST API reports them to the KPI task through the `airflow_api` connection "
        "(audit.airflow_dag_run_count; a day's counts are frozen once none of its runs is unfinished). "
        "Without that connection, or when the API cannot be read, the outcomes the DAG's tasks recorded "
        "during the day: gate verdicts (audit.validation_result.success), HRIS file fates (loaded vs "
        "quarantined), xAPI batches (published vs failed), identity runs "
        "(audit.identity_reconciliation.success); the row's source says which was used",
        source="audit.airflow_dag_run_count; without the API: audit.validation_result, audit.file_manifest, "
        "audit.lms_extract_batch, audit.identity_reconciliation",
        next_step="open the DAG's failed runs in the grid and the failed validation runs on the Data "
        "quality page; follow the entry each failure names",
    ),
    Kpi(
        name="feature_null_rate",
        title="Feature null rate",
        unit="share",
        at_most=True,
        member="feature (columns of mart.employee_features)",
        definition="rows of mart.employee_features (current feature set version) at the newest reference "
        "date built by the end of the day (usually the day before) whose feature is null / all rows of that "
        "date",
        source="mart.employee_features",
        target_note="a feature not listed there: the feature gate's features.max_null_fraction (0 when the "
        "gate does not list it)",
        next_step="find which inputs went missing for the feature (its SQL under include/sql/staging) and "
        "whether a source delivered less than usual",
    ),
    Kpi(
        name="scored_headcount",
        title="Scored headcount",
        unit="employees",
        at_most=False,
        definition="employees in mart.turnover_risk_score at its newest reference date on or before the day "
        "scored by the end of the day",
        source="mart.turnover_risk_score, mart.employee_features",
        target_note="a share of the employees with features at the scored date; the row's target is that "
        "many employees",
        next_step="look at the newest turnover_model run's score task and the feature rows of the scored "
        "date",
    ),
)
BY_NAME: dict[str, Kpi] = {kpi.name: kpi for kpi in KPIS}


def kpi_of(kpi: str) -> Kpi:
    """The definition of row `kpi` (`<name>` or `<name>:<member>`)."""
    return BY_NAME[kpi.split(":", 1)[0]]


def sql_targets(config: Mapping[str, Any], feature_columns: list[str]) -> dict[str, dict[str, Any]]:
    """The targets the SQL binds (`%(targets)s`): per KPI name, and per `feature_null_rate:<feature>`, the
    target and whether the KPI is red above it (`at_most`)."""
    targets = (config.get("kpi") or {}).get("targets") or {}
    bound: dict[str, dict[str, Any]] = {}
    for kpi in KPIS:
        if kpi.name == "feature_null_rate":
            continue
        value = targets.get(kpi.name)
        bound[kpi.name] = {"target": None if value is None else float(value), "at_most": kpi.at_most}
    gate = (config.get("features") or {}).get("max_null_fraction") or {}
    overrides = targets.get("feature_null_rate") or {}
    for feature in feature_columns:
        value = overrides.get(feature, gate.get(feature, 0.0))
        bound[f"feature_null_rate:{feature}"] = {"target": float(value), "at_most": True}
    return bound


# -- docs/reference/kpis.md -------------------------------------------------------------------------------

REFERENCE_PAGE = "docs/reference/kpis.md"


def _target_text(config: Mapping[str, Any], kpi: Kpi) -> str:
    configured = ((config.get("kpi") or {}).get("targets") or {}).get(kpi.name)
    direction = "≤" if kpi.at_most else "≥"
    if isinstance(configured, Mapping):
        shown = ", ".join(f"{k}: {v}" for k, v in configured.items()) or "none set"
        text = f"{direction} per feature (`kpi.targets.{kpi.name}`: {shown})"
    else:
        text = f"{direction} {configured} (`kpi.targets.{kpi.name}`)"
    return f"{text}; {kpi.target_note}" if kpi.target_note else text


def reference_page(config: Mapping[str, Any]) -> str:
    """The Markdown of docs/reference/kpis.md: every KPI with its definition, source, target and entry."""
    lines = [
        "# Integration KPIs",
        "",
        "<!-- generated by `python -m turnover_signals.kpi.definitions` from turnover_signals/kpi/"
        "definitions.py and the kpi section of include/turnover_signals.yaml; do not edit by hand -->",
        "",
        "`mart.integration_kpi` holds one row per day (`kpi_date`) and KPI (`kpi`): `kpi_value`, "
        "`target_value`, `status` (`ok`, `alert` past its target, `no_data` when nothing was recorded to "
        "measure), `source` (the tables read) and `computed_at` (when the row last changed). The "
        "`record_integration_kpis` task of `turnover_features` writes the day before its run, as of the end "
        "of that day (UTC), from what the pipeline recorded by then: a rerun for the same day leaves the "
        "same rows. A KPI that turns red raises the standard alert with its next step and runbook entry; "
        "the KPI page (Browse → Data quality → KPIs, `/data-quality/kpis`) plots each one against its "
        "target.",
        "",
        "A KPI with a member is one row per member, named `<kpi>:<member>`.",
        "",
        "| KPI | definition | source | target | when red |",
        "|---|---|---|---|---|",
    ]
    for kpi in KPIS:
        name = f"`{kpi.name}`" + (
            f"<br>one row per {kpi.member}: `{kpi.name}:<member>`" if kpi.member else ""
        )
        lines.append(
            f"| {name}<br>{kpi.title} ({kpi.unit}) | {kpi.definition} | `{kpi.source}` | "
            f"{_target_text(config, kpi)} | "
            f"[runbook](../runbook/kpis.md#runbook-{kpi.runbook_section}) |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    from turnover_signals.config import read_config_file
    from turnover_signals.paths import BUNDLE_ROOT

    path = BUNDLE_ROOT / REFERENCE_PAGE
    path.write_text(reference_page(read_config_file()), encoding="utf-8")
    print(f"{path}: regenerated")
