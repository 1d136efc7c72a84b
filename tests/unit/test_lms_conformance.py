"""Where an extraction starts, per LRS profile and run type (lms.conformance.extraction_window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from turnover_signals.config import load_config
from turnover_signals.lms.conformance import declared_profile, extraction_window
from turnover_signals.lms.watch import config_for_run

WATERMARK = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_an_event_run_reads_minutes_whatever_the_lrs_filters_on_and_never_sweeps():
    config = config_for_run(load_config(use_variable=False), "asset_triggered")
    for since_field in ("stored", "timestamp"):
        # no warehouse is asked: an event run's window depends on nothing recorded
        window = extraction_window(
            None, "xapi:lms_api", declared_profile(since_field), WATERMARK, config["lms"], EPOCH
        )
        assert (window.kind, window.since) == ("event", WATERMARK - timedelta(minutes=10)), since_field


def test_on_an_lrs_filtering_on_stored_a_scheduled_run_rereads_the_overlap():
    lms = config_for_run(load_config(use_variable=False), "scheduled")["lms"]
    window = extraction_window(None, "xapi:lms_api", declared_profile("stored"), WATERMARK, lms, EPOCH)
    assert (window.kind, window.strategy, window.since) == (
        "incremental",
        "stored_overlap",
        WATERMARK - timedelta(days=3),
    )


def test_the_first_extraction_starts_at_the_initial_since():
    lms = load_config(use_variable=False)["lms"]
    window = extraction_window(None, "xapi:lms_api", declared_profile("timestamp"), None, lms, EPOCH)
    assert (window.kind, window.since) == ("initial", EPOCH)
