"""Scores for retention programs: the champion's risk for every employee at the latest reference date.

`mart.turnover_risk_score` (include/sql/mart/turnover_risk_score.sql) keeps one row per employee per
reference date; scoring a date again (a new champion, a rollback) replaces that date's rows in one
transaction.

Each score carries its top contributing features, except for employees of a department with fewer than
`model.card_min_group_size` scored employees at that date: in a group that small, "why this score" points
at a person, so `top_features` is [] and `top_features_withheld_reason` says why (null when shown).
Departments, not managers' teams: most teams are smaller than the suppression size, and the features
carry no manager id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from turnover_signals.errors import BadInputError
from turnover_signals.model.card import small_group_members
from turnover_signals.model.dataset import RUNBOOK_SECTION, load_scoring_rows
from turnover_signals.model.registry import champion
from turnover_signals.model.train import load_artifact, top_contributions
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

DEPARTMENTS_SQL = """
select employee_key, department from mart.employee_features
where feature_set_version = %s and reference_date = %s
"""


def risk_bands(scores: np.ndarray, shares: Mapping[str, float]) -> tuple[np.ndarray, list[str]]:
    """Rank 1 = highest score; the top `shares['high']` are high, the next `shares['elevated']` elevated."""
    order = np.argsort(-scores, kind="stable")
    ranks = np.empty(len(scores), dtype=int)
    ranks[order] = np.arange(1, len(scores) + 1)
    high_cut = len(scores) * float(shares["high"])
    elevated_cut = high_cut + len(scores) * float(shares["elevated"])
    bands = ["high" if r <= high_cut else "elevated" if r <= elevated_cut else "low" for r in ranks]
    return ranks, bands


def score_latest_reference_date(config: Mapping[str, Any], dsn: str | None = None) -> dict[str, Any]:
    """Score every employee at the latest built reference date with the champion, replacing that date."""
    with threadpool_limits(limits=int(config["model"]["threads"])):
        return _score_latest_reference_date(config, dsn)


def _score_latest_reference_date(config: Mapping[str, Any], dsn: str | None) -> dict[str, Any]:
    model_config = config["model"]
    version = int(config["features"]["feature_set_version"])
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        current = champion(conn)
        if current is None:
            raise BadInputError(
                "audit.model_registry",
                "no champion model",
                "run turnover_model (or roll back to a registered model)",
                RUNBOOK_SECTION,
            )
        model = load_artifact(current["artifact_path"], current["artifact_sha256"], config)
        rows = load_scoring_rows(conn, version, model.features)
        if rows.empty:
            raise BadInputError(
                "mart.employee_features",
                f"no rows for feature set version {version}",
                "run turnover_features first",
                RUNBOOK_SECTION,
            )
        scores = model.predict(rows)
        ranks, bands = risk_bands(scores, model_config["risk_bands"])
        reference_date = rows["reference_date"].iloc[0]
        min_size = int(model_config["card_min_group_size"])
        departments = dict(conn.execute(DEPARTMENTS_SQL, (version, reference_date)).fetchall())
        withheld = small_group_members(rows["employee_key"].map(departments), min_size)
        reason = f"department below {min_size} scored employees"
        per_employee = int(model_config["top_features_per_employee"])
        shown = iter(top_contributions(model, rows[~withheld], per_employee) if not withheld.all() else [])
        contributions = [[] if small else next(shown) for small in withheld]
        scored_at = datetime.now(UTC)
        with conn.transaction():
            conn.execute("delete from mart.turnover_risk_score where reference_date = %s", (reference_date,))
            with conn.cursor() as cur:
                cur.executemany(
                    read_sql("mart", "turnover_risk_score"),
                    [
                        {
                            "employee_key": int(key),
                            "reference_date": reference_date,
                            "feature_set_version": version,
                            "model_version": current["model_version"],
                            "score": float(score),
                            "risk_rank": int(rank),
                            "risk_band": band,
                            "top_features": json.dumps(top),
                            "top_features_withheld_reason": reason if small else None,
                            "scored_at": scored_at,
                        }
                        for key, score, rank, band, top, small in zip(
                            rows["employee_key"], scores, ranks, bands, contributions, withheld, strict=True
                        )
                    ],
                )
    return {
        "reference_date": str(reference_date),
        "model_version": current["model_version"],
        "employees": len(rows),
        "high": bands.count("high"),
        "elevated": bands.count("elevated"),
        "mean_score": float(scores.mean()),
        "top_features_withheld": int(withheld.sum()),
    }
