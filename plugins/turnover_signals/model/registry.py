"""Champion / challenger promotion, rollback and the registry's command line.

A run's challenger is the better of its two models on `model.promotion_metric` measured on the
calibration dates (never on the test window, which then stays an honest estimate of the chosen
model). It replaces the champion only if it is at least as good when both are scored on the
challenger's own test window (the champion was trained on earlier data, so that window is unseen
by both); otherwise it stays registered as `challenger_not_promoted`. Every decision is a row in
`audit.model_promotion`.

    python -m turnover_signals.model.registry status
    python -m turnover_signals.model.registry rollback --reason "ticket PA-12" [--to MODEL_VERSION]

Rollback makes the previous champion (or `--to`) the champion again and re-scores the latest
reference date with it; a model that was rolled back is never the default target, so a second
rollback goes one champion further back instead of undoing the first.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from turnover_signals.errors import BadInputError
from turnover_signals.model.dataset import RUNBOOK_SECTION, load_training_set
from turnover_signals.model.metrics import LOWER_IS_BETTER, evaluate_with_intervals, higher_is_better
from turnover_signals.model.train import load_artifact
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)

PROMOTION_LOCK_ID = 74_207_318


def record_decision(conn: psycopg.Connection, decision: Mapping[str, Any]) -> None:
    """Append a decision to `audit.model_promotion` (include/sql/audit/model_promotion.sql)."""
    conn.execute(read_sql("audit", "model_promotion"), decision)


def champion(conn: psycopg.Connection) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("select * from audit.model_registry where status = 'champion'").fetchone()


def run_models(conn: psycopg.Connection, training_run_id: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "select * from audit.model_registry where training_run_id = %s order by feature_set",
            (training_run_id,),
        ).fetchall()


def selection_value(model: Mapping[str, Any], metric: str) -> float:
    """The model's metric on its calibration dates (where its algorithm was chosen), to pick the challenger.

    Registry rows written before this was recorded fall back to the test-window value.
    """
    on_calibration = model["metrics"].get("selection_on_calibration", {})
    if model["algorithm"] in on_calibration:
        return float(on_calibration[model["algorithm"]])
    return model["metrics"][metric]["value"]


def compare_on_challenger_window(
    conn, current: dict, challenger: dict, metric: str, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Champion and challenger side by side on the challenger's test window (unseen by both: the champion
    was trained on earlier data), with the paired bootstrap interval of the improvement — challenger minus
    champion, or champion minus challenger for a lower-is-better metric. When the champion cannot be scored
    there (another feature set version or horizon, a later window), the registered values are compared and
    the improvement has no interval."""
    comparable = (
        current["feature_set_version"] == challenger["feature_set_version"]
        and current["horizon_days"] == challenger["horizon_days"]
        and current["test_from_date"] <= challenger["test_from_date"]
    )
    if not comparable:
        champion_value = current["metrics"][metric]["value"]
        challenger_value = challenger["metrics"][metric]["value"]
        return {
            "champion_value": champion_value,
            "challenger_value": challenger_value,
            "improvement": {
                "value": higher_is_better(metric, challenger_value) - higher_is_better(metric, champion_value)
            },
            "compared_on": "registered metrics (different window or feature set version)",
        }
    model_config = (config or {}).get("model", {})
    champion_model = load_artifact(current["artifact_path"], current["artifact_sha256"], config)
    challenger_model = load_artifact(challenger["artifact_path"], challenger["artifact_sha256"], config)
    frame = load_training_set(
        conn,
        challenger["feature_set_version"],
        challenger["horizon_days"],
        sorted(set(champion_model.features) | set(challenger_model.features)),
    )
    test = frame[
        (frame["reference_date"] >= challenger["test_from_date"])
        & (frame["reference_date"] <= challenger["test_to_date"])
    ]
    evaluation = evaluate_with_intervals(
        {"champion": champion_model.predict(test), "challenger": challenger_model.predict(test)},
        test["label"].to_numpy(),
        test["employee_key"].to_numpy(),
        int(model_config.get("bootstrap_iterations", 400)),
        float(model_config.get("confidence_level", 0.95)),
        baseline="champion",
    )
    difference = evaluation["lift"]["challenger"][metric]
    sign = -1 if metric in LOWER_IS_BETTER else 1
    low, high = sorted((sign * difference["ci_low"], sign * difference["ci_high"]))
    return {
        "champion_value": evaluation["models"]["champion"][metric]["value"],
        "challenger_value": evaluation["models"]["challenger"][metric]["value"],
        "improvement": {"value": sign * difference["value"], "ci_low": low, "ci_high": high},
        "compared_on": f"test window {challenger['test_from_date']}..{challenger['test_to_date']}",
    }


def is_real_improvement(improvement: Mapping[str, float], margin: float) -> bool:
    """The promotion rule: the improvement is above the margin with the interval's confidence (its lower
    bound; the point value when the champion could only be compared on its registered metrics). A tie, or
    an improvement within the bootstrap's noise, keeps the champion."""
    return improvement.get("ci_low", improvement["value"]) > margin


def promote_challenger(
    config: Mapping[str, Any],
    training_run_id: str,
    dsn: str | None = None,
    allow_promotion: bool = True,
    force: bool = False,
    decided_by: str = "turnover_model",
) -> dict[str, Any]:
    """Decide whether this run's best model becomes the champion; record the decision."""
    metric = config["model"]["promotion_metric"]
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (PROMOTION_LOCK_ID,))
        models = run_models(conn, training_run_id)
        if not models:
            raise BadInputError(
                f"training run {training_run_id}",
                "no model registered",
                "rerun train_models of the same DAG run",
                RUNBOOK_SECTION,
            )
        challenger = max(
            models,
            key=lambda m: (
                higher_is_better(metric, selection_value(m, metric)),
                m["feature_set"] == "hr_only",
            ),
        )
        current = champion(conn)
        value = challenger["metrics"][metric]["value"]
        if current and current["model_version"] == challenger["model_version"]:
            return {"decision": "already_champion", "champion": current["model_version"], "metric": metric}
        if challenger["status"] != "registered":
            # decided before (a cleared task, or the same training set registered by an earlier run): the
            # decision stands, and recording it again would change the promotion log
            return {
                "decision": "already_decided",
                "champion": current["model_version"] if current else None,
                "challenger": challenger["model_version"],
                "metric": metric,
                "reason": f"{challenger['model_version']} was decided before ({challenger['status']})",
            }
        margin = float(config["model"].get("promotion_margin", 0.0))
        champion_value, compared_on, improvement = (None, None, None)
        if current:
            comparison = compare_on_challenger_window(conn, current, challenger, metric, config)
            champion_value, compared_on = comparison["champion_value"], comparison["compared_on"]
            value, improvement = comparison["challenger_value"], comparison["improvement"]
        if not allow_promotion:
            decision, promote = "promotion_disabled", False
        elif force:
            decision, promote = "forced", True
        elif current is None:
            decision, promote = "first_champion", True
        else:
            promote = is_real_improvement(improvement, margin)
            decision = "promoted" if promote else "kept_champion"
        before = current["model_version"] if current else None
        after = challenger["model_version"] if promote else before
        if promote and current:
            conn.execute(
                "update audit.model_registry set status = 'retired', retired_at = now()"
                " where model_version = %s",
                (before,),
            )
        conn.execute(
            "update audit.model_registry set status = %s, promoted_at = case when %s then now() end,"
            " retired_at = null where model_version = %s",
            ("champion" if promote else "challenger_not_promoted", promote, challenger["model_version"]),
        )
        reason = (
            f"challenger {metric} {value:.4f} vs champion {champion_value:.4f} on {compared_on}; improvement "
            + (
                f"{improvement['value']:+.4f} [{improvement['ci_low']:+.4f}, {improvement['ci_high']:+.4f}]"
                if "ci_low" in improvement
                else f"{improvement['value']:+.4f}"
            )
            + f" against a margin of {margin:+.4f}"
            if current
            else f"no champion yet; challenger {metric} {value:.4f}"
        )
        record_decision(
            conn,
            {
                "decision": decision,
                "challenger_version": challenger["model_version"],
                "champion_before": before,
                "champion_after": after,
                "metric": metric,
                "challenger_value": value,
                "champion_value": champion_value,
                "compared_on": compared_on,
                "reason": reason,
                "decided_by": decided_by,
            },
        )
    log.info("promotion decision %s: %s (champion now %s)", decision, reason, after)
    return {
        "decision": decision,
        "champion": after,
        "challenger": challenger["model_version"],
        "metric": metric,
        "challenger_value": value,
        "champion_value": champion_value,
        "reason": reason,
    }


def rollback(
    config: Mapping[str, Any],
    dsn: str | None = None,
    to_version: str | None = None,
    reason: str = "",
    decided_by: str = "cli",
) -> dict[str, Any]:
    """Make the previous champion (or `to_version`) the champion again and re-score the latest date."""
    from turnover_signals.model.score import score_latest_reference_date

    metric = config["model"]["promotion_metric"]
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (PROMOTION_LOCK_ID,))
        current = champion(conn)
        target = conn.execute(
            "select model_version, artifact_path, artifact_sha256 from audit.model_registry"
            " where model_version = coalesce(%s, (select model_version from audit.model_registry"
            "   where promoted_at is not null and status not in ('champion', 'rolled_back')"
            "   order by promoted_at desc limit 1))",
            (to_version,),
        ).fetchone()
        if target is None or (current and target[0] == current["model_version"]):
            raise BadInputError(
                "audit.model_registry",
                "no earlier champion to roll back to",
                "name one with --to MODEL_VERSION",
                RUNBOOK_SECTION,
            )
        load_artifact(
            target[1], target[2], config
        )  # refuse before switching if its artifact is gone or altered
        if current:
            conn.execute(
                "update audit.model_registry set status = 'rolled_back', retired_at = now()"
                " where model_version = %s",
                (current["model_version"],),
            )
        conn.execute(
            "update audit.model_registry set status = 'champion', retired_at = null where model_version = %s",
            (target[0],),
        )
        record_decision(
            conn,
            {
                "decision": "rolled_back",
                "challenger_version": None,
                "champion_before": current["model_version"] if current else None,
                "champion_after": target[0],
                "metric": metric,
                "challenger_value": None,
                "champion_value": None,
                "compared_on": None,
                "reason": reason or "rollback",
                "decided_by": decided_by,
            },
        )
    scored = score_latest_reference_date(config, dsn=dsn)
    log.info("rolled back to %s; %s", target[0], scored)
    return {
        "champion": target[0],
        "rolled_back": current["model_version"] if current else None,
        "scored": scored,
    }


def status_lines(conn: psycopg.Connection, limit: int = 10) -> list[str]:
    rows = conn.execute(
        "select model_version, status, algorithm, metrics -> 'pr_auc' ->> 'value', trained_at::date"
        " from audit.model_registry order by trained_at desc, model_version limit %s",
        (limit,),
    ).fetchall()
    return [f"{v:<36} {s:<24} {a:<20} pr_auc {float(p):.4f}  trained {t}" for v, s, a, p, t in rows]


def main(argv: list[str] | None = None) -> int:
    from turnover_signals.config import load_config

    parser = argparse.ArgumentParser(prog="python -m turnover_signals.model.registry", description=__doc__)
    parser.add_argument("command", choices=["status", "rollback"])
    parser.add_argument(
        "--dsn", help="warehouse URL (default: $TURNOVER_WAREHOUSE_URL or the Airflow connection)"
    )
    parser.add_argument(
        "--to", dest="to_version", help="model version to make champion (default: the previous)"
    )
    parser.add_argument("--reason", default="", help="why, for audit.model_promotion")
    parser.add_argument("--by", default="cli", help="who decided, for audit.model_promotion")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    config = load_config()
    if args.command == "rollback":
        print(rollback(config, args.dsn, args.to_version, args.reason, args.by))
    with warehouse_connection(config["connections"]["warehouse"], args.dsn) as conn:
        print("\n".join(status_lines(conn)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
