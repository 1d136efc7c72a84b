"""The model card's group comparisons and page, on small hand-made test windows."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from turnover_signals.config import load_config
from turnover_signals.model.card import (
    calibration_by_decile,
    group_table,
    render_card,
    small_group_members,
    tenure_band,
    top_decile_mask,
)
from turnover_signals.model.dataset import TimeSplit
from turnover_signals.model.metrics import SortedScores, evaluate_with_intervals, weighted_metrics
from turnover_signals.model.train import fit_feature_set


def three_departments() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """30 employees, 10 per department; the top decile is the 3 highest scores: 2 in A, 1 in B, 0 in C.

    Leavers: in A one inside the top decile and one outside; in B the one in the top decile; in C one outside.
    """
    frame = pd.DataFrame(
        {
            "employee_key": range(1, 31),
            "department": ["A"] * 10 + ["B"] * 10 + ["C"] * 10,
            "location": ["Lyon"] * 30,
            "job_level": [3.0] * 30,
            "tenure_days": [100] * 30,
        }
    )
    scores = np.linspace(0.01, 0.29, 30)[::-1].copy()  # strictly decreasing: row order = rank
    scores[[0, 1]] = [0.90, 0.80]  # A's top two
    scores[10] = 0.85  # B's top one
    labels = np.zeros(30, dtype=bool)
    labels[[0, 5, 10, 25]] = True  # A: in the top decile and outside it; B: in it; C: outside
    return frame, scores, labels


def row(table: pd.DataFrame, dimension: str, group: str) -> pd.Series:
    (index,) = table.index[(table["dimension"] == dimension) & (table["group"] == group)]
    return table.loc[index]


def test_the_top_decile_is_the_tenth_of_rows_with_the_highest_scores():
    assert top_decile_mask(np.array([0.1, 0.9, 0.5, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.05])).tolist() == [
        False,
        True,
        *[False] * 8,
    ]
    assert top_decile_mask(np.arange(25.0)).sum() == 2  # floor(2.5), as the registered metrics count it


def test_precision_and_recall_at_the_top_decile_per_group():
    frame, scores, labels = three_departments()
    table = group_table(frame, scores, labels, min_group_size=5, disparity_ratio=1.5)
    a, b, c = (row(table, "department", name) for name in "ABC")
    assert (a.rows, a.employees, a.top_decile_rate) == (10, 10, pytest.approx(0.2))
    assert (a.top_decile_precision, a.top_decile_recall) == (pytest.approx(0.5), pytest.approx(0.5))
    assert (b.top_decile_rate, b.top_decile_precision, b.top_decile_recall) == (pytest.approx(0.1), 1.0, 1.0)
    # C has no row in the top decile: its precision there is undefined, its leaver was missed
    assert c.top_decile_rate == 0 and math.isnan(c.top_decile_precision) and c.top_decile_recall == 0
    assert a.mean_score == pytest.approx(scores[:10].mean()) and a.median_score == pytest.approx(
        np.median(scores[:10])
    )


def test_the_whole_window_matches_the_registered_top_decile_metrics():
    frame, scores, labels = three_departments()
    whole = row(group_table(frame, scores, labels, 5, 1.5), "all", "whole test window")
    registered = weighted_metrics(SortedScores.of(scores, labels))
    assert whole.top_decile_precision == pytest.approx(registered["top_decile_precision"]) == 2 / 3
    assert whole.top_decile_recall == pytest.approx(registered["top_decile_recall"]) == 0.5
    assert (whole.rows, whole.top_decile_rate) == (30, pytest.approx(0.1))


def test_a_group_is_flagged_when_its_top_decile_rate_is_far_above_or_below_the_whole():
    frame, scores, labels = three_departments()
    table = group_table(frame, scores, labels, min_group_size=5, disparity_ratio=1.5)
    assert [row(table, "department", name).flag for name in "ABC"] == ["higher", "", "lower"]
    assert row(table, "department", "A").rate_ratio == pytest.approx(2.0)
    # a wider band tolerates A's 2x, but nothing tolerates C's zero share
    wide = group_table(frame, scores, labels, min_group_size=5, disparity_ratio=2.5)
    assert [row(wide, "department", name).flag for name in "ABC"] == ["", "", "lower"]


def test_groups_of_fewer_employees_than_the_size_are_suppressed_without_any_figure():
    frame, scores, labels = three_departments()
    # department D: two people on three reference dates (6 rows): its size is two
    small = pd.DataFrame(
        {
            "employee_key": [91, 92] * 3,
            "department": ["D"] * 6,
            "location": ["Lyon"] * 6,
            "job_level": [3.0] * 6,
            "tenure_days": [100] * 6,
        }
    )
    frame = pd.concat([frame, small], ignore_index=True)
    scores = np.r_[scores, [0.95] * 6]
    labels = np.r_[labels, [True] * 6]
    table = group_table(frame, scores, labels, min_group_size=3, disparity_ratio=1.5)
    d = row(table, "department", "D")
    assert d.status == "suppressed"
    figures = ["rows", "employees", "mean_score", "median_score", "top_decile_rate", "top_decile_precision"]
    assert all(pd.isna(d[column]) for column in [*figures, "top_decile_recall", "rate_ratio"])
    assert d.flag == ""
    assert row(table, "department", "A").status == "shown"  # 10 people
    assert row(group_table(frame, scores, labels, 11, 1.5), "department", "A").status == "suppressed"


def test_tenure_bands_and_a_dimension_the_rows_do_not_carry():
    days = pd.Series([0, 364, 365, 1094, 1095, 1824, 1825, 9000, None])
    assert tenure_band(days).tolist() == [
        "<1y",
        "<1y",
        "1–3y",
        "1–3y",
        "3–5y",
        "3–5y",
        "5y+",
        "5y+",
        "unknown",
    ]
    frame, scores, labels = three_departments()
    frame["tenure_days"] = [200] * 10 + [800] * 10 + [4000] * 10
    table = group_table(frame.drop(columns=["job_level"]), scores, labels, 5, 1.5)
    assert table.loc[table["dimension"] == "tenure_band", "group"].tolist() == ["<1y", "1–3y", "5y+"]
    assert table.loc[table["dimension"] == "job_level", "status"].tolist() == ["not available"]


def test_small_departments_are_found_with_missing_values_as_one_group():
    departments = pd.Series(["sales"] * 3 + ["legal"] + [None] * 2)
    assert small_group_members(departments, 2).tolist() == [False, False, False, True, False, False]
    assert small_group_members(departments, 3).tolist() == [False, False, False, True, True, True]


def test_calibration_by_decile_pairs_predicted_and_observed():
    scores = np.linspace(1.0, 0.01, 100)
    labels = np.zeros(100)
    labels[:5] = 1
    table = calibration_by_decile(scores, labels)
    assert table["rows"].tolist() == [10] * 10
    assert table["observed_rate"].tolist()[:2] == [0.5, 0.0]
    assert table["mean_predicted"].iloc[0] == pytest.approx(scores[:10].mean())


def card_inputs() -> dict:
    """A real model fitted on synthetic rows and a test window of 300 employees on two dates."""
    rng = np.random.default_rng(3)

    def rows(n: int, seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        tenure = r.integers(30, 4000, n)
        department = r.choice(["Sales", "Operations", "Finance"], n, p=[0.5, 0.45, 0.05])
        chance = 1 / (1 + np.exp(2.0 + (tenure - 1200) / 600))
        return pd.DataFrame(
            {
                "tenure_days": tenure,
                "department": department,
                "label": r.random(n) < chance,
            }
        )

    features = ["tenure_days", "department"]
    model = fit_feature_set(
        "hr_only", features, rows(2000, 1), rows(1000, 2), ["logistic_regression"], "pr_auc"
    )
    test = pd.concat([rows(300, 4), rows(300, 4)], ignore_index=True)
    test["employee_key"] = np.tile(np.arange(880001, 880301), 2)
    test["hris_employee_id"] = [f"EMP-{k}" for k in test["employee_key"]]
    test["work_email"] = [f"person{k}@northwind.example" for k in test["employee_key"]]
    test["location"] = rng.choice(["Lyon", "Oslo"], len(test))
    test["job_level"] = rng.choice([2.0, 3.0, 4.0], len(test))
    scores = model.predict(test)
    evaluation = evaluate_with_intervals(
        {"hr_only": scores}, test["label"].to_numpy(), test["employee_key"].to_numpy(), iterations=50
    )
    split = TimeSplit(
        fit_dates=[date(2025, 1, 31), date(2025, 2, 28)],
        calibration_dates=[date(2025, 9, 30)],
        test_dates=[date(2026, 3, 31), date(2026, 4, 30)],
        purged_dates=[],
    )
    return {
        "run_key": "0123456789ab",
        "versions": {"hr_only": "tm-0123456789ab-hr-only"},
        "models": {"hr_only": model},
        "predictions": {"hr_only": scores},
        "test": test,
        "evaluation": evaluation,
        "split": split,
        "metric": "pr_auc",
        "config": load_config(use_variable=False),
    }


def test_the_card_states_its_intended_use_and_holds_no_employee_identifier():
    inputs = card_inputs()
    page = render_card(**inputs)
    assert "For team-level retention planning" in page and "Not for decisions about an individual" in page
    assert "end of D (UTC) + 12 hours" in page and "voluntary exit within 90 days" in page
    assert "2026-03-31 .. 2026-04-30" in page and "tm-0123456789ab-hr-only" in page
    assert "pr_auc (promotion metric)" in page and "Known limits" in page
    # Finance holds about 5 % of 300 employees: fewer than the default 20
    assert '<td>department</td><td>Finance</td><td colspan="8">suppressed (&lt; 20)</td>' in page
    assert "<td>tenure band</td><td>&lt;1y</td>" in page and "<td>job level</td><td>level 3</td>" in page
    test = inputs["test"]
    for identifier in [*test["employee_key"].astype(str), *test["hris_employee_id"], *test["work_email"]]:
        assert identifier not in page
    assert "EMP-" not in page and "@" not in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
