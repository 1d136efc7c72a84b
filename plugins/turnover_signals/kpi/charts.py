"""Time-series plots of the KPIs and of the model monitoring metrics, drawn on the server as PNG images.

The KPI page embeds each image as a `data:` URI: nothing is fetched from anywhere at run time (no CDN, no
script). Matplotlib's object API (`Figure`, not pyplot) keeps no global state between requests.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

OK_COLOUR = "#16794c"
ALERT_COLOUR = "#b42318"
TARGET_COLOUR = "#667085"
LINE_COLOURS = ("#1f5fad", "#b54708", "#6941c6", "#027a48", "#c11574")


def _figure() -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, 2.1), dpi=90, layout="constrained")
    return figure, figure.add_subplot()


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _dates(axes: Any, days: Sequence[date]) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, DayLocator

    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.25)
    if not days:
        return
    span = (max(days) - min(days)).days
    margin = timedelta(days=1 if span < 2 else 0)
    axes.set_xlim(min(days) - margin, max(days) + margin)  # every day measured, also those without a value
    # over a few days the automatic locator finds no interval it likes (and says so on every request)
    locator = DayLocator(interval=max(1, span // 5)) if span <= 31 else AutoDateLocator(maxticks=7)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def kpi_plot(title: str, unit: str, history: Sequence[Mapping[str, Any]]) -> bytes:
    """One KPI over time (`history`: rows with kpi_date, kpi_value, target_value, status, oldest first): its
    values, red where it was red, and its target as a dashed line."""
    figure, axes = _figure()
    measured = [row for row in history if row["kpi_value"] is not None]
    days = [row["kpi_date"] for row in measured]
    axes.plot(days, [row["kpi_value"] for row in measured], color=LINE_COLOURS[0], linewidth=1.4, marker=".")
    red = [row for row in measured if row["status"] == "alert"]
    if red:
        axes.scatter(
            [row["kpi_date"] for row in red], [row["kpi_value"] for row in red], color=ALERT_COLOUR, zorder=3
        )
    targeted = [row for row in history if row["target_value"] is not None]
    if targeted:
        axes.step(
            [row["kpi_date"] for row in targeted],
            [row["target_value"] for row in targeted],
            where="mid",
            color=TARGET_COLOUR,
            linestyle="--",
            linewidth=1,
            label="target",
        )
        axes.legend(fontsize=7, loc="best")
    if not measured:
        axes.text(
            0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center", color=TARGET_COLOUR
        )
    axes.set_title(title, fontsize=9, loc="left")
    axes.set_ylabel(unit, fontsize=8)
    _dates(axes, [row["kpi_date"] for row in history])
    return _png(figure)


def monitoring_plot(metric: str, rows: Iterable[Mapping[str, Any]]) -> bytes:
    """One model monitoring metric over reference dates, a line per model version with its interval
    (lower..upper) shaded, alerts in red and the threshold dashed (`mart.model_monitoring` rows)."""
    figure, axes = _figure()
    by_version: dict[str, list[Mapping[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (str(r["model_version"]), r["reference_date"])):
        by_version.setdefault(str(row["model_version"]), []).append(row)
    for number, (version, points) in enumerate(by_version.items()):
        colour = LINE_COLOURS[number % len(LINE_COLOURS)]
        measured = [p for p in points if p["value"] is not None]
        days: list[date] = [p["reference_date"] for p in measured]
        axes.plot(
            days, [p["value"] for p in measured], color=colour, marker=".", linewidth=1.4, label=version
        )
        banded = [p for p in measured if p.get("lower") is not None and p.get("upper") is not None]
        if banded:
            axes.fill_between(
                [p["reference_date"] for p in banded],
                [p["lower"] for p in banded],
                [p["upper"] for p in banded],
                color=colour,
                alpha=0.15,
                linewidth=0,
            )
        alerts = [p for p in measured if p.get("status") == "alert"]
        if alerts:
            axes.scatter(
                [p["reference_date"] for p in alerts],
                [p["value"] for p in alerts],
                color=ALERT_COLOUR,
                zorder=3,
            )
        thresholds = [p for p in points if p.get("threshold") is not None]
        if thresholds:
            axes.step(
                [p["reference_date"] for p in thresholds],
                [p["threshold"] for p in thresholds],
                where="mid",
                color=TARGET_COLOUR,
                linestyle="--",
                linewidth=1,
            )
    axes.set_title(metric, fontsize=9, loc="left")
    if by_version:
        axes.legend(fontsize=7, loc="best")
    _dates(axes, [p["reference_date"] for points in by_version.values() for p in points])
    return _png(figure)


def data_uri(png: bytes) -> str:
    """`png` as a `data:` URI for an `<img src>`."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
