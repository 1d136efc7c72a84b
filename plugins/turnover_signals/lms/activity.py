"""Reads of `core.lms_activity` that identity resolution and the feature build share."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import psycopg
from psycopg import sql

from turnover_signals.sqlfiles import read_sql

HighWaterColumn = Literal["stored_at", "loaded_at"]


def high_water_query(time_column: HighWaterColumn) -> sql.Composed:
    """lms_activity_high_water.sql for one time column; its parameter is `above`."""
    if time_column not in ("stored_at", "loaded_at"):
        raise ValueError(f"core.lms_activity has no high-water mark on {time_column!r}")
    return sql.SQL(read_sql("queries", "lms_activity_high_water")).format(
        time_column=sql.Identifier(time_column)
    )


def activity_high_water(
    conn: psycopg.Connection, time_column: HighWaterColumn, above: datetime | None
) -> datetime | None:
    """The latest `time_column` of the published activity, read above the caller's previous mark `above`
    (through the column's block-range index: only the page ranges published since are scanned). `above`
    itself when no row is above it; None when there is no mark and no row."""
    return conn.execute(high_water_query(time_column), {"above": above}).fetchone()[0]
