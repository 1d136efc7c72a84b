"""Freshness guards: is the published HR and LMS data within its SLO (`slo` in the config)?

HR data is as fresh as its latest snapshot (loaded, or a duplicate of an earlier day's bytes): a file dated D
describes the end of day D, so its
age at moment T is T - (D + 1 day). The run's own data time is T (its logical date, or `run_after`
for triggered runs), so a backfill or a demo judges data by the date it is about. LMS data is as
fresh as the last published extraction batch (the moment the LRS was last read completely), judged
against the wall clock: an LRS with no new statements overnight is not stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from turnover_signals.errors import FreshnessError
from turnover_signals.warehouse import warehouse_connection


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 1)


def check_hris_freshness(
    config: Mapping[str, Any], as_of: datetime, dsn: str | None = None
) -> dict[str, Any]:
    """Fail with a `FreshnessError` when the latest loaded employees snapshot is older than the SLO."""
    limit = float(config["slo"]["hris_max_age_hours"])
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        # A duplicate (the same bytes as an earlier day's file: nothing changed, as over a quiet weekend) is
        # that day's snapshot too, as for the features' input horizon.
        row = conn.execute(
            "select file_name, file_date from audit.file_manifest where feed = 'employees' and status in "
            "('loaded', 'duplicate') order by file_date desc, received_at desc limit 1"
        ).fetchone()
    if row is None:
        raise FreshnessError(
            "HR data",
            "no employees snapshot has ever been loaded",
            "check that the HRIS export is scheduled and lands in the SFTP directory, then clear "
            "wait_for_hris_files",
            "freshness",
        )
    file_name, file_date = row
    described_until = datetime.combine(file_date + timedelta(days=1), datetime.min.time(), UTC)
    age = _hours(as_of - described_until)
    result = {
        "latest_file": file_name,
        "snapshot_date": file_date.isoformat(),
        "age_hours": age,
        "slo_hours": limit,
    }
    if age > limit:
        raise FreshnessError(
            "HR data",
            f"the latest loaded employees snapshot ({file_name}, dated {file_date}) is {age} h old at "
            f"{as_of:%Y-%m-%d %H:%M} UTC, above the {limit:g} h objective",
            "check whether today's files arrived (the sensor's log) or were quarantined "
            "(audit.file_manifest); ask the HRIS team for the missing export",
            "freshness",
        )
    return result


def check_lms_freshness(
    config: Mapping[str, Any], dsn: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Fail with a `FreshnessError` when no LMS extraction was published within the SLO."""
    limit = float(config["slo"]["lms_max_age_hours"])
    now = now or datetime.now(UTC)
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        row = conn.execute(
            "select batch_id, finished_at, watermark_after from audit.lms_extract_batch where status = "
            "'published' order by finished_at desc limit 1"
        ).fetchone()
    if row is None:
        raise FreshnessError(
            "LMS data",
            "no xAPI extraction has ever been published",
            "check the lms_api connection and the extract_lms_statements log, then clear the task",
            "freshness",
        )
    batch_id, finished_at, watermark = row
    age = _hours(now - finished_at)
    result = {
        "last_batch": batch_id,
        "published_at": finished_at.isoformat(),
        "age_hours": age,
        "slo_hours": limit,
        "watermark": watermark.isoformat() if watermark else None,
    }
    if age > limit:
        raise FreshnessError(
            "LMS data",
            f"the last published xAPI batch ({batch_id}) finished {age} h ago, above the {limit:g} h "
            "objective",
            "look at the failed lms_api_ingest runs since then (LRS down, rejected batches, pagination "
            "loops) and follow their runbook sections",
            "freshness",
        )
    return result
