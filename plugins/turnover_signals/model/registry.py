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
from turnover_signals.model.metrics import (
    SortedScores,
    higher_is_better,
    is_at_least_as_good,
    weighted_metrics,
)
from turnover_signals.model.train import load_artifact
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)

PROMOTION_LOCK_ID = 74_207_318
DECISION_SQL = """
insert into audit.model_promotion (decision, challenger_version, champion_before, champion_after, metric,
                                   challenger_value, champion_value, compared_on, reason, decided_by)
values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


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


def champion_on_challenger_window(
    conn, current: dict, challenger: dict, metric: str, config: Mapping[str, Any] | None = None
) -> tuple[float, str]:
    """The champion's metric on the challenger's test window when it can be scored there, else as registered."""
    comparable = (
        current["feature_set_version"] == challenger["feature_set_version"]
        and current["horizon_days"] == challenger["horizon_days"]
        and current["test_from_date"] <= challenger["test_from_date"]
    )
    if comparable:
        model = load_artifact(current["artifact_path"], current["artifact_sha256"], config)
        frame = load_training_set(
            conn,
            challenger["feature_set_version"],
            challenger["horizon_days"],
            sorted(set(model.features) | set(challenger["features"])),
        )
        test = frame[
            (frame["reference_date"] >= challenger["test_from_date"])
            & (frame["reference_date"] <= challenger["test_to_date"])
        ]
        value = weighted_metrics(SortedScores.of(model.predict(test), test["label"].to_numpy()))[metric]
        return value, f"test window {challenger['test_from_date']}..{challenger['test_to_date']}"
    return current["metrics"][metric]["value"], "registered metrics (different window or feature set version)"


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
        champion_value, compared_on = (None, None)
        if current:
            champion_value, compared_on = champion_on_challenger_window(
                conn, current, challenger, metric, config
            )
        if not allow_promotion:
            decision, promote = "promotion_disabled", False
        elif force:
            decision, promote = "forced", True
        elif current is None:
            decision, promote = "first_champion", True
        else:
            promote = is_at_least_as_good(metric, value, champion_value)
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
            f"challenger {metric} {value:.4f} vs champion {champion_value:.4f} on {compared_on}"
            if current
            else f"no champion yet; challenger {metric} {value:.4f}"
        )
        conn.execute(
            DECISION_SQL,
            (
                decision,
                challenger["model_version"],
                before,
                after,
                metric,
                value,
                champion_value,
                compared_on,
                reason,
                decided_by,
            ),
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
        conn.execute(
            DECISION_SQL,
            (
                "rolled_back",
                None,
                current["model_version"] if current else None,
                target[0],
                metric,
                None,
                None,
                None,
                reason or "rollback",
                decided_by,
            ),
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
