"""The model card of a training run: what its models are for, what they saw, how well and for whom they work.

One self-contained HTML page per training run, written once beside its report (same storage, same folder) and
recorded as `audit.model_registry.card_path`. It states the intended use, the training windows and the
knowledge cut-off, the features, the metrics with their intervals, calibration by decile, known limits and a
comparison of groups on the test window (department, location, job level, tenure band).

Group figures are computed on the pooled test window with the same top decile as the registered metrics
(`metrics.TOP_SHARE` of the rows, highest scores first, ties in row order), so the whole window's precision
and recall at the top decile equal the registered `top_decile_precision` / `top_decile_recall`. A group with
fewer than `model.card_min_group_size` employees is suppressed: no figure at all, not even its size. A group
whose top-decile rate is more than `model.card_disparity_ratio` times the whole's (or less than its inverse)
is flagged. Aggregates only: no names, emails or employee ids, and no external resources.
"""

from __future__ import annotations

import html
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from turnover_signals import storage
from turnover_signals.features.columns import LMS_COLUMNS
from turnover_signals.model.metrics import METRICS, TOP_SHARE
from turnover_signals.model.summary import LABELS, interval_text

# Dimension key -> (heading, the test-frame column it is derived from).
GROUP_DIMENSIONS = {
    "department": ("department", "department"),
    "location": ("location", "location"),
    "job_level": ("job level", "job_level"),
    "tenure_band": ("tenure band", "tenure_days"),
}
# Lower edges in days (years of 365 days): <1y, 1–3y, 3–5y, 5y+.
TENURE_BAND_EDGES = (0, 365, 3 * 365, 5 * 365)
TENURE_BANDS = ("<1y", "1–3y", "3–5y", "5y+")
UNKNOWN = "unknown"
GROUP_COLUMNS = (
    "dimension",
    "group",
    "status",  # shown | suppressed | not available
    "rows",
    "employees",
    "mean_score",
    "median_score",
    "top_decile_rate",
    "top_decile_precision",
    "top_decile_recall",
    "rate_ratio",
    "flag",  # higher | lower | ""
)


def tenure_band(tenure_days: pd.Series) -> pd.Series:
    """<1y, 1–3y, 3–5y, 5y+ from `tenure_days`; unknown when missing."""
    days = pd.to_numeric(tenure_days.astype("object"), errors="coerce").astype(float)
    bands = pd.cut(days, [*TENURE_BAND_EDGES, np.inf], right=False, labels=TENURE_BANDS)
    return bands.astype("object").where(bands.notna(), UNKNOWN)


def job_level_group(job_level: pd.Series) -> pd.Series:
    """`level N` from the job level ordinal the features carry (core.employee_history.job_level)."""
    levels = pd.to_numeric(job_level.astype("object"), errors="coerce").astype(float)
    return pd.Series(
        [UNKNOWN if np.isnan(v) else f"level {v:g}" for v in levels], index=job_level.index, dtype=object
    )


def group_labels(test: pd.DataFrame, dimension: str) -> pd.Series | None:
    """Each test row's group in `dimension`, or None when the rows do not carry its column."""
    column = GROUP_DIMENSIONS[dimension][1]
    if column not in test.columns:
        return None
    if dimension == "tenure_band":
        return tenure_band(test[column])
    if dimension == "job_level":
        return job_level_group(test[column])
    values = test[column].astype("object")
    return values.where(values.notna(), UNKNOWN).astype(str)


def _group_order(dimension: str, names: Sequence[str]) -> list[str]:
    def key(name: str) -> tuple:
        if name == UNKNOWN:
            return (2, 0, "")
        if dimension == "tenure_band":
            return (0, TENURE_BANDS.index(name), "")
        if dimension == "job_level":
            return (0, float(name.removeprefix("level ")), "")
        return (1, 0, name.casefold())

    return sorted(names, key=key)


def top_decile_mask(scores: np.ndarray) -> np.ndarray:
    """Whether each row is in the top decile: the `TOP_SHARE` highest scores, ties in row order, as the
    registered top-decile metrics count them (`metrics.weighted_metrics`)."""
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="stable")
    top = np.zeros(len(scores), dtype=bool)
    top[order[: int(np.floor(TOP_SHARE * len(scores) + 1e-9))]] = True
    return top


def _figures(scores: np.ndarray, labels: np.ndarray, top: np.ndarray) -> dict[str, float]:
    in_top, positives = int(top.sum()), int(labels.sum())
    hits = int((top & labels).sum())
    return {
        "rows": len(scores),
        "mean_score": float(np.mean(scores)),
        "median_score": float(np.median(scores)),
        "top_decile_rate": in_top / len(scores),
        # undefined, not zero, for a group with no row in the top decile or without a leaver
        "top_decile_precision": hits / in_top if in_top else float("nan"),
        "top_decile_recall": hits / positives if positives else float("nan"),
    }


def _people(test: pd.DataFrame, member: np.ndarray) -> int:
    # One person appears on every test reference date: a group's size is its people, not its rows.
    if "employee_key" in test.columns:
        return int(test.loc[member, "employee_key"].nunique())
    return int(member.sum())


def group_table(
    test: pd.DataFrame,
    scores: np.ndarray,
    labels: np.ndarray,
    min_group_size: int,
    disparity_ratio: float,
) -> pd.DataFrame:
    """The group comparison of one model on the test window: the whole window first, then each group of
    department, location, job level and tenure band (`GROUP_COLUMNS`).

    `test` holds the test rows (`employee_key` and the group columns, as `load_training_set` returns them),
    `scores` and `labels` are aligned with its rows. Groups of fewer than `min_group_size` employees are
    `suppressed` with every figure missing; a dimension whose column the rows lack is `not available`.
    `flag` is `higher` / `lower` when the group's top-decile rate is more than `disparity_ratio` times the
    whole's, or less than 1 / `disparity_ratio` times.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=bool)
    if not len(scores) == len(labels) == len(test):
        raise ValueError(f"{len(test)} test rows, {len(scores)} scores and {len(labels)} labels")
    top = top_decile_mask(scores)
    whole = _figures(scores, labels, top)
    whole_rate = whole["top_decile_rate"]
    everyone = np.ones(len(scores), dtype=bool)
    records = [
        {
            "dimension": "all",
            "group": "whole test window",
            "status": "shown",
            **whole,
            "employees": _people(test, everyone),
            "rate_ratio": 1.0,
            "flag": "",
        }
    ]
    for dimension in GROUP_DIMENSIONS:
        groups = group_labels(test, dimension)
        if groups is None:
            records.append({"dimension": dimension, "group": "", "status": "not available", "flag": ""})
            continue
        values = groups.to_numpy()
        for name in _group_order(dimension, list(pd.unique(values))):
            member = values == name
            employees = _people(test, member)
            if employees < min_group_size:
                records.append({"dimension": dimension, "group": name, "status": "suppressed", "flag": ""})
                continue
            figures = _figures(scores[member], labels[member], top[member])
            ratio = figures["top_decile_rate"] / whole_rate if whole_rate else float("nan")
            flag = "higher" if ratio > disparity_ratio else "lower" if ratio < 1 / disparity_ratio else ""
            records.append(
                {
                    "dimension": dimension,
                    "group": name,
                    "status": "shown",
                    **figures,
                    "employees": employees,
                    "rate_ratio": ratio,
                    "flag": flag,
                }
            )
    return pd.DataFrame.from_records(records, columns=list(GROUP_COLUMNS))


def calibration_by_decile(scores: np.ndarray, labels: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability and observed exit rate per score decile (1 = highest scores)."""
    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable")
    records = [
        {
            "decile": decile,
            "rows": len(chunk),
            "mean_predicted": float(np.mean(np.asarray(scores, dtype=float)[chunk])),
            "observed_rate": float(np.mean(np.asarray(labels, dtype=float)[chunk])),
        }
        for decile, chunk in enumerate(np.array_split(order, bins), start=1)
        if len(chunk)
    ]
    return pd.DataFrame.from_records(records, columns=["decile", "rows", "mean_predicted", "observed_rate"])


def small_group_members(groups: pd.Series, min_group_size: int) -> np.ndarray:
    """Whether each row's group has fewer than `min_group_size` rows (missing values form one group)."""
    keys = groups.astype("object").where(groups.notna(), UNKNOWN)
    return (keys.map(keys.value_counts()) < int(min_group_size)).to_numpy()


# Rendering


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _number(value: Any, spec: str) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:{spec}}"


def _group_rows(table: pd.DataFrame, min_group_size: int, disparity_ratio: float) -> str:
    cells = []
    for row in table.itertuples(index=False):
        heading = "whole test window" if row.dimension == "all" else GROUP_DIMENSIONS[row.dimension][0]
        if row.status == "not available":
            cells.append(
                f'<tr class="na"><td>{_e(heading)}</td><td colspan="9">not available: the test rows carry no'
                f" {_e(GROUP_DIMENSIONS[row.dimension][1])} column</td></tr>"
            )
            continue
        name = "" if row.dimension == "all" else _e(row.group)
        if row.status == "suppressed":
            cells.append(
                f'<tr class="suppressed"><td>{_e(heading)}</td><td>{name}</td>'
                f'<td colspan="8">suppressed (&lt; {int(min_group_size)})</td></tr>'
            )
            continue
        flag = ""
        if row.flag:
            bound = (
                f"more than {disparity_ratio:g}×"
                if row.flag == "higher"
                else f"less than 1/{disparity_ratio:g}"
            )
            flag = f'<span class="flag">⚑ {row.rate_ratio:.2f}× the whole\'s rate ({bound})</span>'
        cells.append(
            f'<tr class="{"flagged" if row.flag else "shown"}"><td>{_e(heading)}</td><td>{name}</td>'
            f"<td>{int(row.rows)}</td><td>{int(row.employees)}</td>"
            f"<td>{_number(row.mean_score, '.4f')}</td><td>{_number(row.median_score, '.4f')}</td>"
            f"<td>{_number(row.top_decile_rate, '.1%')}</td>"
            f"<td>{_number(row.top_decile_precision, '.1%')}</td>"
            f"<td>{_number(row.top_decile_recall, '.1%')}</td><td>{flag}</td></tr>"
        )
    return (
        '<table class="groups"><thead><tr><th>dimension</th><th>group</th><th>rows</th><th>employees</th>'
        "<th>mean score</th><th>median score</th><th>top-decile rate</th><th>precision at top decile</th>"
        f"<th>recall at top decile</th><th>disparity</th></tr></thead><tbody>{''.join(cells)}</tbody></table>"
    )


def _calibration_rows(table: pd.DataFrame) -> str:
    body = "".join(
        f"<tr><td>{row.decile}</td><td>{row.rows}</td><td>{row.mean_predicted:.4f}</td>"
        f"<td>{row.observed_rate:.4f}</td></tr>"
        for row in table.itertuples(index=False)
    )
    return (
        "<table><thead><tr><th>score decile (1 = highest)</th><th>rows</th><th>mean predicted</th>"
        f"<th>observed exit rate</th></tr></thead><tbody>{body}</tbody></table>"
    )


def _metrics_rows(evaluation: Mapping[str, Any], metric: str) -> str:
    names = list(evaluation["models"])
    lift = evaluation.get("lift", {}).get("hr_lms", {})
    header = "".join(f"<th>{_e(LABELS.get(n, n))}</th>" for n in names)
    body = "".join(
        f"<tr><td>{m}{' (promotion metric)' if m == metric else ''}</td>"
        + "".join(f"<td>{interval_text(evaluation['models'][n][m], digits=4)}</td>" for n in names)
        + f"<td>{interval_text(lift[m], signed=True, digits=4) if m in lift else ''}</td></tr>"
        for m in METRICS
    )
    return (
        f"<table><thead><tr><th>metric</th>{header}<th>lift (HR + LMS − HR only)</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


KNOWN_LIMITS = (
    "A pilot: trained on one organisation's history; its test window is a few month-ends and a few dozen to a"
    " few hundred leavers, so the intervals above are wide and small differences between groups are noise.",
    "It learns who left in the past. Past exits reflect past management, pay and hiring decisions, and a "
    "group that left more often in the past is scored higher now, whatever the reason was.",
    "Learning activity is a signal only where people have access to the LMS and time to use it; a group with"
    " less access (frontline roles, leave, part-time) looks less engaged without being so.",
    "Only voluntary exits are predicted; involuntary exits, retirements and transfers are not positives.",
    "Scores rank people within a reference date; probabilities are calibrated on the dates just before the "
    "test window and drift as the workforce and the labour market change. Re-train monthly and read the "
    "calibration table before trusting a probability.",
    "Group comparisons describe the test window only. A flag asks for a look at why, not for an adjustment of"
    " scores; suppressed groups are too small to describe without pointing at individuals.",
    "Contributions shown with a score are associations the model uses, not causes; they are withheld for"
    " employees of departments with fewer scored employees than the suppression size.",
)


def render_card(
    *,
    run_key: str,
    versions: Mapping[str, str],
    models: Mapping[str, Any],
    predictions: Mapping[str, np.ndarray],
    test: pd.DataFrame,
    evaluation: Mapping[str, Any],
    split: Any,
    metric: str,
    config: Mapping[str, Any],
) -> str:
    """The card as one HTML document (no script, no external resource, no employee-level value)."""
    model_config = config["model"]
    horizon = int(model_config["horizon_days"])
    grace_hours = float(config["features"]["as_of_grace_hours"])
    min_size = int(model_config["card_min_group_size"])
    ratio = float(model_config["card_disparity_ratio"])
    level = float(model_config["confidence_level"])
    labels = test["label"].to_numpy().astype(bool)
    windows = "".join(
        f"<tr><td>{part}</td><td>{first} .. {last}</td><td>{len(getattr(split, f'{part}_dates'))}</td></tr>"
        for part, (first, last) in ((p, split.window(p)) for p in ("fit", "calibration", "test"))
    )
    model_rows = "".join(
        f"<tr><td>{_e(LABELS.get(fs, fs))}</td><td>{_e(versions[fs])}</td><td>{_e(m.algorithm)}</td>"
        f"<td>{len(m.features)}</td></tr>"
        for fs, m in models.items()
    )
    feature_lists = "".join(
        f"<h3>{_e(LABELS.get(fs, fs))}</h3><p>"
        + ", ".join(f"<code>{_e(f)}</code>{' (LMS)' if f in LMS_COLUMNS else ''}" for f in m.features)
        + "</p>"
        for fs, m in models.items()
    )
    per_model = "".join(
        f"<h3>{_e(LABELS.get(fs, fs))} ({_e(versions[fs])})</h3>"
        f"{_group_rows(group_table(test, predictions[fs], labels, min_size, ratio), min_size, ratio)}"
        for fs in models
    )
    calibration = "".join(
        f"<h3>{_e(LABELS.get(fs, fs))}"
        f"</h3>{_calibration_rows(calibration_by_decile(predictions[fs], labels))}"
        for fs in models
    )
    limits = "".join(f"<li>{_e(text)}</li>" for text in KNOWN_LIMITS)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Model card: turnover model run {_e(run_key)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px;line-height:1.4}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}}\
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}
tr.suppressed td,tr.na td{{color:#667085;font-style:italic}}tr.flagged{{background:#fff4e5}}
.flag{{color:#b54708;font-weight:bold}}\
.use{{border-left:4px solid #b42318;padding:.2em 1em;background:#fef3f2}}</style>
</head><body>
<h1>Model card: turnover model run {_e(run_key)}</h1>
<h2>Intended use</h2>
<div class="use"><p><b>For team-level retention planning</b>: where voluntary exits are likely to concentrate
across departments, locations, levels and tenure, which retention programmes to fund and where to follow up,
looked at in aggregate by HR and leadership.</p>
<p><b>Not for decisions about an individual.</b> Do not use a score or its contributions to hire, dismiss,
promote, pay, rate, assign, monitor or approach any one person. A score is a probability estimated from
patterns in past exits; it says nothing certain about what a given person will do, and acting on it for one
person would treat them by the history of others.</p></div>
<h2>Models</h2>
<table><thead><tr><th>feature set</th><th>version</th><th>algorithm</th><th>features</th></tr></thead>
<tbody>{model_rows}</tbody></table>
<h2>Training data and cut-off</h2>
<p>Rows: <code>mart.training_set</code>, one per employee per month-end reference date (feature set version
{_e(config["features"]["feature_set_version"])}). <b>Cut-off:</b> the features of reference date D use only
what was known by the end of D (UTC) + {grace_hours:g} \
hours (<code>features.as_of_grace_hours</code>), each fact
by its knowledge time, whenever the row is built. <b>Label:</b> a voluntary exit within {horizon} days after D
(<code>model.horizon_days</code>); a date is used only once its horizon has passed for everyone, and the dates
within one horizon before the calibration and the test windows are left out.</p>
<table><thead><tr><th>window</th><th>reference dates</th><th>dates</th></tr></thead><tbody>{windows}</tbody>\
</table>
<p>Test window: {len(test)} rows, {int(labels.sum())} voluntary exits ({labels.mean():.2%}); purged dates:
{len(split.purged_dates)}; dates left out with their horizon still open: {len(split.open_dates)}.</p>
<h2>Features used</h2>{feature_lists}
<h2>Metrics on the test window</h2>
<p>{level:.0%} bootstrap intervals over employees (paired \
for the lift). Top decile: the {TOP_SHARE:.0%} highest
scores of the whole test window.</p>{_metrics_rows(evaluation, metric)}
<h2>Calibration on the test window</h2>
<p>Observed voluntary exit rate against the mean predicted probability, by score decile.</p>{calibration}
<h2>Group comparisons on the test window</h2>
<p>Per group: test rows and employees, the score \
distribution (mean, median), the <b>top-decile rate</b> (share
of the group's rows among the {TOP_SHARE:.0%} highest \
scores of the whole test window), and precision and recall
at that top decile within the group. Groups of fewer than {min_size} employees are suppressed
(<code>model.card_min_group_size</code>). <span \
class="flag">⚑</span> marks a group whose top-decile rate is more
than {ratio:g} times the whole's or less than 1/{ratio:g} of it (<code>model.card_disparity_ratio</code>). Job
level is the ordinal of <code>core.employee_history.job_level</code>; tenure bands by <code>tenure_days</code>
(years of 365 days).</p>{per_model}
<h2>Known limits</h2><ul>{limits}</ul>
</body></html>
"""


def write_model_card(target: Any, **card: Any) -> str:
    """Render the card (`render_card`'s arguments) and write it once to `target` (an `ObjectStoragePath`).

    The document holds no time of writing, so a cleared task renders the same bytes and finds them already
    written; other bytes under the same name are refused (`storage.publish_once`). Returns the object's URL.
    """
    document = render_card(**card).encode("utf-8")
    with tempfile.TemporaryDirectory(prefix="turnover-card-") as scratch:
        local = Path(scratch) / "card.html"
        local.write_bytes(document)
        return storage.publish_once(local, target, "model card")
