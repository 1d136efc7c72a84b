"""Which reference dates a features run builds: the day before a daily run, a requested list, month-end
backfills."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest

from turnover_signals.features.build import reference_dates_for_run
from turnover_signals.features.dates import cutoff_of, month_ends_before


def run_context(logical_date=None, run_after=None):
    return {"logical_date": logical_date, "dag_run": SimpleNamespace(run_after=run_after)}


@pytest.mark.parametrize(
    "moment", [datetime(2026, 7, 1, 0, 0, tzinfo=UTC), datetime(2026, 7, 1, 23, 59, tzinfo=UTC)]
)
def test_a_daily_run_builds_the_last_full_day_before_its_logical_date(moment):
    assert reference_dates_for_run(run_context(logical_date=moment)) == [date(2026, 6, 30)]


def test_an_asset_triggered_run_without_a_logical_date_uses_run_after():
    context = run_context(run_after=datetime(2026, 3, 1, 4, 30, tzinfo=UTC))
    assert reference_dates_for_run(context) == [date(2026, 2, 28)]


def test_requested_dates_win_over_the_run_date_sorted_and_once_each():
    context = run_context(logical_date=datetime(2026, 7, 1, tzinfo=UTC))
    requested = ["2026-05-31", "2026-01-31", "2026-05-31", date(2026, 2, 28)]
    assert reference_dates_for_run(context, requested) == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 5, 31),
    ]


def test_a_requested_date_that_is_not_iso_fails():
    with pytest.raises(ValueError):
        reference_dates_for_run(run_context(), ["31/05/2026"])


@pytest.mark.parametrize(
    ("reference_date", "count", "expected"),
    [
        # strictly before the month of the date, oldest first, across a year end
        (date(2026, 3, 15), 3, [date(2025, 12, 31), date(2026, 1, 31), date(2026, 2, 28)]),
        # a month-end itself is not before its own month
        (date(2026, 3, 31), 2, [date(2026, 1, 31), date(2026, 2, 28)]),
        (date(2024, 3, 1), 1, [date(2024, 2, 29)]),  # leap year
        (date(2026, 1, 1), 1, [date(2025, 12, 31)]),
        (date(2026, 7, 10), 0, []),
    ],
)
def test_month_ends_before(reference_date, count, expected):
    assert month_ends_before(reference_date, count) == expected


def test_month_ends_before_covers_two_years_of_training_dates():
    ends = month_ends_before(date(2026, 7, 1), 24)
    assert (len(ends), ends[0], ends[-1]) == (24, date(2024, 7, 31), date(2026, 6, 30))
    assert all((end + timedelta(days=1)).day == 1 for end in ends)  # each the last day of its month
    assert len({(end.year, end.month) for end in ends}) == 24


@pytest.mark.parametrize(
    ("grace_hours", "cutoff"),
    [(12, datetime(2026, 7, 1, 12, tzinfo=UTC)), (0, datetime(2026, 7, 1, tzinfo=UTC))],
)
def test_the_cut_off_of_a_date_is_its_end_in_utc_plus_the_grace(grace_hours, cutoff):
    assert cutoff_of(date(2026, 6, 30), timedelta(hours=grace_hours)) == cutoff
