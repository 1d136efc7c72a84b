"""Monitoring the champion: its performance once labels mature, the drift of its inputs before they do.

Labels take `horizon_days` (90) to mature, so a degrading model would go unseen for a quarter if only its
performance were watched. After each scoring, `monitor_champion` writes `mart.model_monitoring`
(include/sql/mart/model_monitoring.sql), one row per model version, reference date and metric:

- **Performance** on every reference date the champion scored whose labels have matured (every scored
  employee's label is known or censored, and the HR data it was computed with reaches the end of the
  horizon, as `dataset.settled_reference_dates` requires of training dates): `roc_auc`, `pr_auc` and
  `top_decile_precision` of the published scores with bootstrap intervals over employees (`metrics.py`),
  and `calibration_error`, the expected calibration error over score deciles, its interval from the same
  draws.
- **Drift** at the latest scored date against the champion's training window (its fit dates in
  `mart.employee_features`): `psi_score`, the population stability index of the scores (the training window
  scored by the champion itself), and `psi:<feature>` for each of its most important features
  (`feature_importance` of its registry metrics: permutation importance on its test window).

A row's `threshold` comes from `model.monitoring` and its `status` is `alert` when it is crossed: a PSI at or
above `psi_alert`; a performance metric whose whole interval lies below the champion's test-window value minus
`max_drop[metric]`; a calibration error whose whole interval lies above `max_calibration_error`. The
intervals keep one date's few leavers from paging on-call for noise. Alerts of the latest matured date and
the latest scored date raise the standard alert (`notify.configured_notifier`) with the next step: retrain,
or roll back to the previous champion. Rerunning for the same dates leaves the same rows, `computed_at`
included: a row is only rewritten when one of its values changed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from threadpoolctl import threadpool_limits

from turnover_signals.errors import runbook_link
from turnover_signals.model.dataset import RUNBOOK_SECTION, as_numeric_frame, selected_features
from turnover_signals.model.metrics import (
    SortedScores,
    employee_bootstrap_weights,
    summarise,
    weighted_metrics,
)
from turnover_signals.model.registry import champion
from turnover_signals.model.train import load_artifact
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)

PERFORMANCE_METRICS = ("roc_auc", "pr_auc", "top_decile_precision")
CALIBRATION_METRIC = "calibration_error"
SCORE_PSI = "psi_score"
FEATURE_PSI_PREFIX = "psi:"
# A bin empty on one side would make the PSI infinite: its share counts as this instead.
PSI_EMPTY_SHARE = 1e-4
MISSING_BIN = "(missing)"
ROLLBACK_COMMAND = 'python -m turnover_signals.model.registry rollback --reason "..."'


# Pure functions: the statistics


def psi_from_shares(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two distributions over the same bins: sum((a - e) * ln(a / e)).

    Empty bins count as `PSI_EMPTY_SHARE`. 0 for identical distributions; 0.1 to 0.25 is usually read as a
    moderate shift, above 0.25 as a major one.
    """
    e = np.maximum(np.asarray(expected, dtype=float), PSI_EMPTY_SHARE)
    a = np.maximum(np.asarray(actual, dtype=float), PSI_EMPTY_SHARE)
    return float(np.sum((a - e) * np.log(a / e)))


def _bin_labels(values: pd.Series, edges: np.ndarray | None) -> pd.Series:
    present = values.notna()
    if edges is None:  # categories, or a number with few distinct values: a bin per value
        labels = values.astype("object").astype(str)
    else:
        labels = pd.Series(
            np.searchsorted(edges, values.to_numpy(dtype=float), side="right"), index=values.index
        )
        labels = labels.astype(str)
    return labels.where(present, MISSING_BIN)


def bin_shares(
    expected: Sequence[Any], actual: Sequence[Any], bins: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """The shares of `expected` and `actual` in the same bins, both in the same order.

    Numbers are cut at the quantiles of `expected` (`bins` bins of about equal counts, fewer where values
    tie); numbers with at most `bins` distinct values and anything else (categories) get a bin per value;
    missing values have a bin of their own. A value `expected` never had lands in its own bin.
    """
    e, a = pd.Series(expected), pd.Series(actual)
    numeric = pd.api.types.is_numeric_dtype(e) and pd.api.types.is_numeric_dtype(a)
    edges = None
    if numeric:
        e, a = e.astype(float), a.astype(float)
        known = e.dropna().to_numpy()
        if len(np.unique(known)) > bins:
            edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1]))
    e_labels, a_labels = _bin_labels(e, edges), _bin_labels(a, edges)
    names = sorted(set(e_labels) | set(a_labels))
    e_shares = e_labels.value_counts(normalize=True).reindex(names, fill_value=0.0)
    a_shares = a_labels.value_counts(normalize=True).reindex(names, fill_value=0.0)
    return e_shares.to_numpy(), a_shares.to_numpy()


def population_stability_index(expected: Sequence[Any], actual: Sequence[Any], bins: int = 10) -> float:
    """PSI of `actual` against `expected` (the reference: the training window), binned by `bin_shares`."""
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    return psi_from_shares(*bin_shares(expected, actual, bins))


def expected_calibration_error(
    scores: Sequence[float], labels: Sequence[float], bins: int = 10, weights: Sequence[float] | None = None
) -> float:
    """Mean gap between predicted probability and observed rate over score deciles, weighted by their rows.

    The rows are cut into `bins` groups of equal count by score (as the model card's calibration table);
    with `weights` (a bootstrap draw) each row counts that many times.
    """
    p = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    total = w.sum()
    if total == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    gaps = (
        abs(np.sum(w[chunk] * p[chunk]) - np.sum(w[chunk] * y[chunk]))
        for chunk in np.array_split(order, bins)
    )
    return float(sum(gaps) / total)


def performance_with_intervals(
    scores: np.ndarray,
    labels: np.ndarray,
    employees: np.ndarray,
    iterations: int,
    level: float,
    calibration_bins: int = 10,
) -> dict[str, dict[str, float]]:
    """ROC AUC, PR AUC, top-decile precision and calibration error of one date's scores, each with its
    bootstrap interval (employees resampled, as for the registered metrics; the same draws for all four)."""
    sorted_scores = SortedScores.of(scores, labels)
    draws = employee_bootstrap_weights(employees, iterations)
    point = weighted_metrics(sorted_scores)
    resampled = [weighted_metrics(sorted_scores, w) for w in draws]
    result = {m: summarise(point[m], np.array([r[m] for r in resampled]), level) for m in PERFORMANCE_METRICS}
    calibration = np.array([expected_calibration_error(scores, labels, calibration_bins, w) for w in draws])
    result[CALIBRATION_METRIC] = summarise(
        expected_calibration_error(scores, labels, calibration_bins), calibration, level
    )
    return result


def performance_status(
    metric: str, value: Mapping[str, float], validation: Mapping[str, Any], settings: Mapping[str, Any]
) -> tuple[float | None, str]:
    """(threshold, status) of a matured date's metric.

    Performance: the champion's test-window value minus `max_drop[metric]`, alert when the whole interval is
    below it. Calibration error: `max_calibration_error`, alert when the whole interval is above it.
    """
    if metric == CALIBRATION_METRIC:
        threshold = float(settings["max_calibration_error"])
        return threshold, "alert" if value["ci_low"] > threshold else "ok"
    registered = (validation.get(metric) or {}).get("value")
    drop = (settings.get("max_drop") or {}).get(metric)
    if registered is None or drop is None:
        return None, "ok"
    threshold = round(float(registered) - float(drop), 12)  # 0.4 - 0.05 is 0.35, not 0.35000000000000003
    return threshold, "alert" if value["ci_high"] < threshold else "ok"


def drift_status(value: float, settings: Mapping[str, Any]) -> tuple[float, str]:
    """(threshold, status) of a PSI: alert at or above `psi_alert`."""
    threshold = float(settings["psi_alert"])
    return threshold, "alert" if value >= threshold else "ok"


def top_features(
    registered_metrics: Mapping[str, Any],
    model_features: Sequence[str],
    count: int,
    shown: Sequence[Sequence[str]],
) -> list[str]:
    """The champion's `count` most important features.

    From `feature_importance` in its registry metrics (recorded at training); for a model registered before
    that was recorded, the features its published scores name most often among their top contributions
    (`shown`: one list per employee), then its features in order.
    """
    importance = registered_metrics.get("feature_importance") or {}
    ranked = [
        f for f, v in sorted(importance.items(), key=lambda item: -item[1]) if f in model_features and v > 0
    ]
    if not ranked:
        counts = Counter(f for names in shown for f in names if f in model_features)
        ranked = [f for f, _ in counts.most_common()]
        ranked += [f for f in model_features if f not in ranked]
    return ranked[:count]


def _finding(row: Mapping[str, Any]) -> str:
    """`psi:tenure_days 0.412 at 2026-10-31 (at or above 0.25)`, or a metric with its interval."""
    where = f"{row['metric']} {row['value']:.3f}"
    if row["metric"].startswith("psi"):
        return f"{where} at {row['reference_date']} (at or above {row['threshold']:g})"
    interval = f"[{row['lower']:.3f}, {row['upper']:.3f}]"
    return f"{where} {interval} at {row['reference_date']} (beyond {row['threshold']:.3f})"


def alert_message(run: RunIdentity, model_version: str, alerts: Sequence[Mapping[str, Any]]) -> str:
    """The standard alert line for the rows in alert, with the next step and the runbook entry."""
    steps = []
    if any(not row["metric"].startswith("psi") for row in alerts):
        steps.append(
            "on matured labels the champion ranks or calibrates worse than it should: roll back to the "
            f"previous champion if it did better ({ROLLBACK_COMMAND}, after `... registry status`), or "
            "retrain (trigger turnover_model)"
        )
    if any(row["metric"].startswith("psi") for row in alerts):
        steps.append(
            "its inputs have moved away from its training window: check the drifted features' sources for "
            "a pipeline fault first; if the change is real, retrain (trigger turnover_model), and if the "
            f"scores are no longer usable meanwhile, roll back to the previous champion ({ROLLBACK_COMMAND})"
        )
    return (
        f"TURNOVER-SIGNALS ALERT {run.dag_id or 'turnover_model'} run {run.run_id or '?'}: model "
        f"{model_version} monitoring (mart.model_monitoring): {'; '.join(map(_finding, alerts))}. Next step: "
        f"{'; '.join(steps)} (runbook: {runbook_link(RUNBOOK_SECTION)}, Monitoring alerts)"
    )


# The warehouse

MATURITY_SQL = """
select
    score.reference_date,
    bool_and(
        label.hr_known_through is not null
        and score.reference_date + %(horizon)s <= label.hr_known_through
        and (label.label is not null or label.is_censored)
    ) as is_matured
from mart.turnover_risk_score as score
left join mart.turnover_label as label
    on label.employee_key = score.employee_key
    and label.reference_date = score.reference_date
    and label.horizon_days = %(horizon)s
where score.model_version = %(version)s
group by score.reference_date
order by score.reference_date
"""

LABELLED_SCORES_SQL = """
select score.employee_key, score.score, label.label
from mart.turnover_risk_score as score
inner join mart.turnover_label as label
    on label.employee_key = score.employee_key
    and label.reference_date = score.reference_date
    and label.horizon_days = %(horizon)s
where score.model_version = %(version)s and score.reference_date = %(day)s and label.label is not null
order by score.employee_key
"""

PUBLISHED_SCORES_SQL = """
select employee_key, score, top_features from mart.turnover_risk_score
where model_version = %(version)s and reference_date = %(day)s
order by employee_key
"""


def scored_dates(conn: psycopg.Connection, model: Mapping[str, Any]) -> tuple[list[date], list[date]]:
    """(scored, matured): the reference dates the model scored, and those whose labels have matured."""
    rows = conn.execute(
        MATURITY_SQL, {"horizon": int(model["horizon_days"]), "version": model["model_version"]}
    ).fetchall()
    return [day for day, _ in rows], [day for day, matured in rows if matured]


def feature_rows(
    conn: psycopg.Connection, version: int, features: Sequence[str], first: date, last: date
) -> pd.DataFrame:
    """Every employee's `features` on the reference dates `first` .. `last` of the feature set version."""
    query = sql.SQL(
        "select employee_key, reference_date, {} from mart.employee_features where feature_set_version = %s"
        " and reference_date between %s and %s order by reference_date, employee_key"
    ).format(selected_features(list(features)))
    with conn.cursor() as cur:
        cur.execute(query, (version, first, last))
        return pd.DataFrame(cur.fetchall(), columns=["employee_key", "reference_date", *features])


def performance_rows(
    conn: psycopg.Connection, model: Mapping[str, Any], day: date, config: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The performance and calibration rows of one matured date (none when it has a single label class)."""
    model_config, settings = config["model"], config["model"]["monitoring"]
    frame = pd.DataFrame(
        conn.execute(
            LABELLED_SCORES_SQL,
            {"horizon": int(model["horizon_days"]), "version": model["model_version"], "day": day},
        ).fetchall(),
        columns=["employee_key", "score", "label"],
    )
    if frame.empty or frame["label"].nunique() < 2:
        log.warning(
            "%s: labels at %s hold one class only; no performance figures", model["model_version"], day
        )
        return []
    figures = performance_with_intervals(
        frame["score"].to_numpy(dtype=float),
        frame["label"].to_numpy(dtype=float),
        frame["employee_key"].to_numpy(),
        int(model_config["bootstrap_iterations"]),
        float(model_config["confidence_level"]),
        int(settings["calibration_bins"]),
    )
    rows = []
    for metric, value in figures.items():
        threshold, status = performance_status(metric, value, model["metrics"], settings)
        rows.append(
            {
                "reference_date": day,
                "metric": metric,
                "value": value["value"],
                "lower": value["ci_low"],
                "upper": value["ci_high"],
                "threshold": threshold,
                "status": status,
            }
        )
    return rows


def drift_rows(
    conn: psycopg.Connection, model: Mapping[str, Any], day: date, config: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """PSI of the scores and of the top features at `day` against the champion's training window."""
    settings = config["model"]["monitoring"]
    bins = int(settings["psi_bins"])
    fitted = load_artifact(model["artifact_path"], model["artifact_sha256"], config)
    version = int(model["feature_set_version"])
    reference = feature_rows(conn, version, fitted.features, model["train_from_date"], model["train_to_date"])
    if reference.empty:
        log.warning(
            "%s: no feature rows in its training window %s .. %s (feature set version %s); no drift figures",
            model["model_version"],
            model["train_from_date"],
            model["train_to_date"],
            version,
        )
        return []
    with conn.cursor(row_factory=dict_row) as cur:
        published = cur.execute(
            PUBLISHED_SCORES_SQL, {"version": model["model_version"], "day": day}
        ).fetchall()
    shown = [[item["feature"] for item in row["top_features"]] for row in published]
    current = feature_rows(conn, version, fitted.features, day, day)
    checked = top_features(model["metrics"], fitted.features, int(settings["top_features"]), shown)
    values = {
        SCORE_PSI: population_stability_index(
            fitted.predict(reference), [r["score"] for r in published], bins
        )
    }
    reference_x = as_numeric_frame(reference, checked)
    current_x = as_numeric_frame(current, checked)
    for feature in checked:
        values[f"{FEATURE_PSI_PREFIX}{feature}"] = population_stability_index(
            reference_x[feature], current_x[feature], bins
        )
    rows = []
    for metric, value in values.items():
        if np.isnan(value):
            continue
        threshold, status = drift_status(value, settings)
        if float(settings["psi_warn"]) <= value < threshold:
            log.warning(
                "%s: %s %.3f at %s, a moderate shift (warn at %s)",
                model["model_version"],
                metric,
                value,
                day,
                settings["psi_warn"],
            )
        rows.append(
            {
                "reference_date": day,
                "metric": metric,
                "value": value,
                "lower": None,
                "upper": None,
                "threshold": threshold,
                "status": status,
            }
        )
    return rows


def write_rows(conn: psycopg.Connection, model_version: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """Upsert `rows` and delete the model's rows of the same dates and kind (drift, or performance) that this
    run no longer produces (a feature that left the top features), in one transaction."""
    computed_at = datetime.now(UTC)
    kinds: dict[tuple[date, bool], list[str]] = {}
    for row in rows:
        kinds.setdefault((row["reference_date"], row["metric"].startswith("psi")), []).append(row["metric"])
    with conn.transaction():
        for (day, is_drift), metrics in kinds.items():
            conn.execute(
                "delete from mart.model_monitoring where model_version = %s and reference_date = %s"
                " and (metric like 'psi%%') = %s and metric <> all(%s)",
                (model_version, day, is_drift, metrics),
            )
        with conn.cursor() as cur:
            cur.executemany(
                read_sql("mart", "model_monitoring"),
                [{**row, "model_version": model_version, "computed_at": computed_at} for row in rows],
            )


def raise_alert(config: Mapping[str, Any], message: str) -> None:
    """The standard alert (`alerts.notifier`, or the task log); never raises: the rows are written."""
    from turnover_signals.notify import LogNotifier, configured_notifier

    try:
        notifier = configured_notifier(config, message)
        if not isinstance(notifier, LogNotifier):  # which logs it itself
            log.warning("%s", message)
        notifier.notify({})
    except Exception:  # noqa: BLE001 - a broken notifier must not hide the alert
        log.exception("the configured notifier failed; the alert was: %s", message)


def monitor_champion(
    config: Mapping[str, Any], run: RunIdentity | None = None, dsn: str | None = None
) -> dict[str, Any]:
    """Write the champion's performance on matured dates and its drift at the latest scored date; alert on
    the current figures (latest matured date, latest scored date) that cross their thresholds."""
    with threadpool_limits(limits=int(config["model"]["threads"])):
        return _monitor_champion(config, run or RunIdentity(), dsn)


def _monitor_champion(config: Mapping[str, Any], run: RunIdentity, dsn: str | None) -> dict[str, Any]:
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        model = champion(conn)
        if model is None:
            return {"skipped": "no champion model"}
        scored, matured = scored_dates(conn, model)
        if not scored:
            return {"model_version": model["model_version"], "skipped": "the champion has scored no date"}
        rows = [row for day in matured for row in performance_rows(conn, model, day, config)]
        rows += drift_rows(conn, model, scored[-1], config)
        write_rows(conn, model["model_version"], rows)
    current = {scored[-1], *matured[-1:]}
    alerts = [row for row in rows if row["status"] == "alert" and row["reference_date"] in current]
    for row in rows:
        if row["reference_date"] in current:
            log.info(
                "%s %s %s = %.4f%s threshold %.4g: %s",
                model["model_version"],
                row["reference_date"],
                row["metric"],
                row["value"],
                f" [{row['lower']:.4f}, {row['upper']:.4f}]" if row["lower"] is not None else "",
                float("nan") if row["threshold"] is None else row["threshold"],
                row["status"],
            )
    if alerts:
        raise_alert(config, alert_message(run, model["model_version"], alerts))
    return {
        "model_version": model["model_version"],
        "latest_scored_date": str(scored[-1]),
        "matured_dates": [str(day) for day in matured],
        "rows": len(rows),
        "alerts": [f"{row['metric']} at {row['reference_date']}" for row in alerts],
    }
