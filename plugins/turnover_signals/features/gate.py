"""The Great Expectations gate on a build's staged feature rows: nothing is published unless it passes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from turnover_signals.errors import BadInputError
from turnover_signals.features.columns import FEATURE_COLUMNS, NON_NEGATIVE_COLUMNS, RATE_COLUMNS
from turnover_signals.quality.gate import (
    RunIdentity,
    SuiteDefinition,
    ValidationOutcome,
    data_docs_location,
    record_validation,
    run_suite,
)
from turnover_signals.warehouse import sqlalchemy_url


def features_suite(config: Mapping[str, Any]) -> SuiteDefinition:
    """The suite on a build's staging table: every row of each reference date built.

    Run with the parameter `expected_rows`: the active HR headcount (as known at each date's cut-off)
    summed over the dates built.
    """
    import great_expectations.expectations as gxe

    from turnover_signals.quality.gate import described

    nulls = config["features"].get("max_null_fraction") or {}
    expectations = [
        described(
            gxe.ExpectCompoundColumnsToBeUnique(
                column_list=["employee_key", "reference_date", "feature_set_version"]
            ),
            "one row per employee_key, reference_date and feature set version",
        ),
        described(
            gxe.ExpectColumnPairValuesToBeEqual(
                column_A="date_feature_rows", column_B="date_active_headcount"
            ),
            "the rows of each reference date equal the active HR headcount on that date",
        ),
        described(
            gxe.ExpectTableRowCountToEqual(value={"$PARAMETER": "expected_rows"}),
            "every active employee of every reference date has a row (rows = the active HR headcount summed "
            "over the dates built, so a date without any row is caught too)",
        ),
        described(
            gxe.ExpectColumnValuesToNotBeNull(column="cutoff_at"),
            "every row carries the cut-off of its reference date",
        ),
    ]
    for column in RATE_COLUMNS:
        expectations.append(
            described(
                gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=1),
                f"{column} is a rate in 0..1",
            )
        )
    for column in NON_NEGATIVE_COLUMNS:
        expectations.append(
            described(
                gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0), f"{column} is not negative"
            )
        )
    for column in FEATURE_COLUMNS:
        fraction = float(nulls.get(column, 0))
        if fraction <= 0:
            expectations.append(
                described(
                    gxe.ExpectColumnValuesToNotBeNull(column=column),
                    f"{column} is never null (every feature without a band in features.max_null_fraction)",
                )
            )
        elif fraction < 1:
            expectations.append(
                described(
                    gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=round(1 - fraction, 6)),
                    f"{column} is null in at most {fraction:.0%} of rows",
                )
            )
    return SuiteDefinition(name="employee_features", version="4", expectations=expectations)


def gate_staged_rows(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    run: RunIdentity,
    dsn: str | None,
    staging_name: str,
    what: str,
    expected_rows: int,
) -> ValidationOutcome:
    """Validate the staged feature rows; a failure is recorded and raised, and nothing is published."""
    outcome = run_suite(
        sqlalchemy_url(config["connections"]["warehouse"], dsn),
        features_suite(config),
        data_asset="employee_features",
        batch_identifier=what,
        parameters={"expected_rows": expected_rows},
        pii_columns=config["quality"]["pii_columns"],
        table=("staging", staging_name),
        data_docs_dir=data_docs_location(config),
    )
    if not outcome.success:
        with conn.transaction():
            record_validation(conn, outcome, run)
        raise BadInputError(
            f"feature build: {what}",
            f"the feature gate failed ({outcome.failure_summary()}); nothing was published",
            "check the upstream data the failed expectations point at (HR headcount, identity, "
            "learning activity), fix it or adjust features.max_null_fraction, then clear build_features",
            "turnover_features",
        )
    return outcome
