"""Readable lines about a model run: both models side by side with intervals, the lift, the champion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from turnover_signals.model.metrics import METRICS

LABELS = {"hr_only": "HR only", "hr_lms": "HR + LMS"}


def interval_text(value: Mapping[str, float], signed: bool = False, digits: int = 3) -> str:
    """`0.640 [0.590, 0.681]`: a value and its interval."""
    spec = f"{'+' if signed else ''}.{digits}f"
    return f"{value['value']:{spec}} [{value['ci_low']:{spec}}, {value['ci_high']:{spec}}]"


def comparison_lines(models: Mapping[str, Mapping], lift: Mapping[str, Mapping], metric: str) -> list[str]:
    """A metrics table: one row per metric, a column per model and the lift of HR + LMS over HR only."""
    lines = [f"  {'metric':<22}" + "".join(f"{LABELS[n]:<26}" for n in models) + "lift (HR + LMS − HR only)"]
    for m in METRICS:
        mark = " *" if m == metric else ""
        lines.append(
            f"  {m + mark:<22}"
            + "".join(f"{interval_text(models[n][m]):<26}" for n in models)
            + (interval_text(lift[m], signed=True) if m in lift else "")
        )
    lines.append("  (* promotion metric; 95% bootstrap intervals over employees, paired for the lift)")
    return lines


def model_run_lines(
    trained: Mapping[str, Any], decision: Mapping[str, Any], scored: Mapping[str, Any]
) -> list[str]:
    """The DAG's closing log lines, from what its tasks returned."""
    evaluation = trained["evaluation"]
    return [
        f"trained {', '.join(trained['versions'].values())} ({trained['algorithms']})",
        *comparison_lines(evaluation["models"], evaluation["lift"]["hr_lms"], trained["metric"]),
        f"promotion: {decision['decision']} — {decision.get('reason', '')}; champion {decision['champion']}",
        f"scored {scored['employees']} employees at {scored['reference_date']} with {scored['model_version']}"
        f" ({scored['high']} high, {scored['elevated']} elevated)",
        f"report: {trained['report_path']}",
        f"model card: {trained.get('card_path')}",
    ]


def registry_lines(conn: psycopg.Connection, metric: str) -> list[str]:
    """The latest training run, the last promotion decision and the published scores, from the warehouse."""
    latest = conn.execute(
        "select training_run_id from audit.model_registry order by trained_at desc limit 1"
    ).fetchone()
    if latest is None:
        return ["  no model trained yet (audit.model_registry is empty)"]
    rows = conn.execute(
        "select feature_set, model_version, algorithm, metrics, lift_over_hr_only, report_path, "
        "test_from_date, test_to_date, test_rows, test_positives, card_path from audit.model_registry where "
        "training_run_id = %s order by feature_set desc",
        (latest[0],),
    ).fetchall()
    models = {r[0]: r[3] for r in rows}
    lift = next((r[4] for r in rows if r[4]), {})
    first = rows[0]
    lines = [
        f"  test window {first[6]} .. {first[7]}: {first[8]:,} rows, {first[9]} voluntary exits; "
        + ", ".join(f"{LABELS[r[0]]} = {r[2]} ({r[1]})" for r in rows),
        *comparison_lines(models, lift, metric),
    ]
    decision = conn.execute(
        "select decision, reason, champion_after from audit.model_promotion order by decision_id desc limit 1"
    ).fetchone()
    if decision:
        lines.append(f"  promotion: {decision[0]} — {decision[1]}; champion {decision[2]}")
    scores = conn.execute(
        "select reference_date, count(*), count(*) filter (where risk_band = 'high'), min(model_version)"
        " from mart.turnover_risk_score group by 1 order by 1 desc limit 1"
    ).fetchone()
    if scores:
        lines.append(
            f"  mart.turnover_risk_score: {scores[1]:,} employees at {scores[0]} "
            f"({scores[2]} high risk) by {scores[3]}"
        )
    lines.append(f"  report: {first[5]}")
    lines.append(f"  model card: {first[10]}")
    return lines
