"""The model report: one self-contained HTML file with the metrics table and the plots people look at.

ROC and precision-recall curves of both models, calibration, lift by decile, feature
importances (permutation on the test window) and the score distribution; PNGs embedded as
base64 so the file can be mailed or attached to a ticket. Ids and aggregates only: no PII.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on workers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.inspection import permutation_importance  # noqa: E402
from sklearn.metrics import precision_recall_curve, roc_curve  # noqa: E402

from turnover_signals.model.dataset import as_numeric_frame  # noqa: E402
from turnover_signals.model.metrics import METRICS, decile_lift  # noqa: E402
from turnover_signals.model.summary import LABELS, interval_text  # noqa: E402
from turnover_signals.storage import write_bytes  # noqa: E402

COLOURS = {"hr_only": "#7f7f7f", "hr_lms": "#1f77b4"}
IMPORTANCE_SAMPLE_ROWS = 2000


def png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def curves_figure(predictions: Mapping[str, np.ndarray], labels: np.ndarray) -> str:
    figure, (roc_ax, pr_ax, cal_ax) = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, scores in predictions.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        roc_ax.plot(fpr, tpr, color=COLOURS[name], label=LABELS[name])
        precision, recall, _ = precision_recall_curve(labels, scores)
        pr_ax.plot(recall, precision, color=COLOURS[name], label=LABELS[name])
        observed, predicted = calibration_curve(labels, scores, n_bins=10, strategy="quantile")
        cal_ax.plot(predicted, observed, marker="o", color=COLOURS[name], label=LABELS[name])
    roc_ax.plot([0, 1], [0, 1], ls=":", color="black")
    pr_ax.axhline(labels.mean(), ls=":", color="black", label="base rate")
    top = max(float(np.max(s)) for s in predictions.values())
    cal_ax.plot([0, top], [0, top], ls=":", color="black", label="perfect")
    for ax, title, xlabel, ylabel in (
        (roc_ax, "ROC curve", "false positive rate", "true positive rate"),
        (pr_ax, "Precision-recall curve", "recall", "precision"),
        (cal_ax, "Calibration (deciles of score)", "mean predicted probability", "observed exit rate"),
    ):
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.legend()
    return png(figure)


def lift_and_distribution_figure(predictions: Mapping[str, np.ndarray], labels: np.ndarray) -> str:
    figure, (lift_ax, dist_ax) = plt.subplots(1, 2, figsize=(13, 4.5))
    deciles = np.arange(1, 11)
    for offset, (name, scores) in zip((-0.2, 0.2), predictions.items(), strict=False):
        lift_ax.bar(
            deciles + offset, decile_lift(scores, labels), width=0.4, color=COLOURS[name], label=LABELS[name]
        )
    lift_ax.axhline(1, ls=":", color="black")
    lift_ax.set(
        title="Lift by score decile (1 = highest risk)",
        xlabel="decile",
        ylabel="exit rate / base rate",
        xticks=deciles,
    )
    lift_ax.legend()
    scores = predictions.get("hr_lms", next(iter(predictions.values())))
    bins = np.linspace(0, float(scores.max()) or 1.0, 40)
    dist_ax.hist(scores[labels == 0], bins=bins, alpha=0.6, density=True, label="stayed")
    dist_ax.hist(scores[labels == 1], bins=bins, alpha=0.6, density=True, label="left voluntarily")
    dist_ax.set(
        title="Score distribution, HR + LMS model (test window)",
        xlabel="predicted probability",
        ylabel="density",
    )
    dist_ax.legend()
    return png(figure)


def feature_importances(models: Mapping[str, Any], test: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per model, each feature's permutation importance on (a sample of) the test window: the drop in PR AUC.

    Plotted in the report and registered with the model's metrics (`feature_importance`), where monitoring
    reads the champion's most important features (model/monitoring.py).
    """
    sample = test.sample(min(len(test), IMPORTANCE_SAMPLE_ROWS), random_state=0)
    importances = {}
    for name, model in models.items():
        result = permutation_importance(
            model.estimator,
            as_numeric_frame(sample, model.features),
            sample["label"].to_numpy(),
            scoring="average_precision",
            n_repeats=2,
            random_state=0,
        )
        importances[name] = {
            f: float(v) for f, v in zip(model.features, result.importances_mean, strict=True)
        }
    return importances


def importance_figure(
    models: Mapping[str, Any],
    test: pd.DataFrame,
    importances: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    importances = importances or feature_importances(models, test)
    figure, axes = plt.subplots(1, len(models), figsize=(14, 7))
    for ax, (name, model) in zip(np.atleast_1d(axes), models.items(), strict=True):
        values = np.array([importances[name][f] for f in model.features])
        order = np.argsort(values)[-15:]
        ax.barh([model.features[i] for i in order], values[order], color=COLOURS[name])
        ax.set(title=f"Permutation importance, {LABELS[name]} ({model.algorithm})", xlabel="drop in PR AUC")
    figure.tight_layout()
    return png(figure)


def metrics_table(evaluation: Mapping[str, Any], metric: str) -> str:
    header = "<tr><th>metric</th>" + "".join(f"<th>{LABELS[n]}</th>" for n in evaluation["models"])
    header += "<th>lift (HR + LMS − HR only)</th></tr>"
    body = []
    for m in METRICS:
        cells = [interval_text(evaluation["models"][n][m], digits=4) for n in evaluation["models"]]
        lift = evaluation["lift"].get("hr_lms", {}).get(m)
        mark = " (promotion metric)" if m == metric else ""
        body.append(
            f"<tr><td>{m}{mark}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + f"<td>{interval_text(lift, signed=True, digits=4) if lift else ''}</td></tr>"
        )
    return f"<table>{header}{''.join(body)}</table>"


def write_report(
    target: Any,
    models: Mapping[str, Any],
    predictions: Mapping[str, np.ndarray],
    test: pd.DataFrame,
    evaluation: Mapping[str, Any],
    split: Any,
    versions: Mapping[str, str],
    metric: str,
    importances: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """Render the report and write it to `target` (an `ObjectStoragePath`); returns the object's URL.

    `importances`: `feature_importances(models, test)` when the caller has them already."""
    labels = test["label"].to_numpy().astype(int)
    split_rows = "".join(
        f"<tr><td>{part}</td><td>{a} .. {b}</td></tr>"
        for part, (a, b) in ((p, split.window(p)) for p in ("fit", "calibration", "test"))
    )
    model_rows = "".join(
        f"<tr><td>{LABELS[n]}</td><td>{html.escape(versions[n])}</td><td>{m.algorithm}</td>"
        f"<td>{len(m.features)}</td><td>{', '.join(f'{a} {v:.4f}' for a, v in m.selection.items())}</td></tr>"
        for n, m in models.items()
    )
    images = [
        curves_figure(predictions, labels),
        lift_and_distribution_figure(predictions, labels),
        importance_figure(models, test, importances),
    ]
    document = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Turnover model report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}\
 table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} img{{max-width:100%}}</style></head><body>
<h1>Turnover model report</h1>
<p>Voluntary exit within the label horizon, predicted from HR features alone and from HR + LMS features,
trained and evaluated on the same time-based split. Intervals: {int(100 * 0.95)}% bootstrap over employees
(paired for the lift). Test window: {len(test)} rows, {int(labels.sum())} exits
({labels.mean():.2%}); purged before the calibration and test windows: {len(split.purged_dates)} reference
date(s); left out because their label horizon is still open: {len(split.open_dates)}.</p>
<h2>Split</h2><table><tr><th>part</th><th>reference dates</th></tr>{split_rows}</table>
<h2>Models</h2><table><tr><th>feature set</th><th>version</th><th>algorithm</th><th>features</th>
<th>{metric} of each candidate on the calibration dates</th></tr>{model_rows}</table>
<h2>Metrics on the test window</h2>{metrics_table(evaluation, metric)}
<h2>Curves</h2><img alt="ROC, precision-recall and \
calibration curves" src="data:image/png;base64,{images[0]}">
<h2>Lift and score distribution</h2><img alt="lift by decile \
and score distribution" src="data:image/png;base64,{images[1]}">
<h2>Feature importances</h2><img alt="permutation feature \
importances" src="data:image/png;base64,{images[2]}">
</body></html>
"""
    # One write of the whole document: an object store publishes the object only when it is closed.
    return write_bytes(target, document.encode("utf-8"))
