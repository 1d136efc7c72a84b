"""Seal HRIS files past retention, so their raw partitions can go without changing any history row.

`core.employee_history` is rebuilt from every loaded employees snapshot, and `core.compensation_event`
from every loaded compensation file. Sealing a feed up to a file date keeps what those builds need
from the files up to that date, in `core`, and nothing else:

- `core.hris_sealed_file`: each sealed file and its date. The snapshot dates stay in the history's
  snapshot sequence, so an interval still closes at the right snapshot (an attribute change, or
  `absent_from_snapshot` when a worker vanishes from the first live snapshot after the seal).
- `core.employee_snapshot_baseline`: per employee, each run of consecutive sealed snapshots showing
  the same attributes, with the values the history computes from the raw text. The build treats a
  run like that many snapshots, so a run continued by a live snapshot stays one interval.
- `core.compensation_change_baseline`: per pay change, its versions as the sealed files made them
  known (`core.compensation_event_version` built over the sealed files; a later file may replace the
  last one).

A feed is sealed in file-date order, and only up to the first loaded file received less than
`retention.raw_days` ago: the sealed files are a prefix of the feed, and a period once sealed is
closed. A file dated inside it that arrives later (a late correction or backfill) is loaded by the
ingest but not used by the history builds (they log it), and its partition is purged with the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.hris.history import history_parameters
from turnover_signals.sqlfiles import read_sql, rebuild_relation

SEALABLE_FEEDS = ("employees", "compensation")


def files_to_seal(conn: psycopg.Connection, feed: str, cutoff: datetime) -> list[dict[str, Any]]:
    """Loaded files of `feed` after its sealed prefix, in date order, up to the first one received at
    or after `cutoff` (exclusive)."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            """
            with seal as (
                -- max: one row also while nothing of the feed is sealed
                select coalesce(max(sealed_through_date), '-infinity'::date) as sealed_through
                from core.hris_sealed_through where feed = %(feed)s
            ),
            unsealed as (
                select manifest.file_name, manifest.sha256, manifest.file_date, manifest.received_at,
                       coalesce(manifest.rows_loaded, 0) as rows_loaded
                from audit.file_manifest as manifest
                cross join seal
                where manifest.feed = %(feed)s and manifest.status = 'loaded'
                  and manifest.file_date > seal.sealed_through
            ),
            first_in_retention as (
                select min(file_date) as file_date from unsealed where received_at >= %(cutoff)s
            )
            select unsealed.*
            from unsealed cross join first_in_retention
            where first_in_retention.file_date is null or unsealed.file_date < first_in_retention.file_date
            order by unsealed.file_date, unsealed.file_name
            """,
            {"feed": feed, "cutoff": cutoff},
        )
        return cur.fetchall()


def seal_hris_files(
    conn: psycopg.Connection, config: Mapping[str, Any], cutoff: datetime, sealed_at: datetime
) -> dict[str, list[dict[str, Any]]]:
    """Extend each feed's sealed prefix to the files received before `cutoff` and refresh the baselines,
    in the caller's transaction. Returns the newly sealed files per feed; their raw partitions are still
    there for the caller to archive and drop."""
    sealed = {}
    for feed in SEALABLE_FEEDS:
        files = files_to_seal(conn, feed, cutoff)
        sealed[feed] = files
        if not files:
            continue
        if feed == "employees":
            _seal_employee_snapshots(conn, config, files, sealed_at)
        else:
            _seal_compensation_changes(conn, config, files, sealed_at)
    return sealed


def _record_sealed(
    conn: psycopg.Connection, feed: str, files: list[dict[str, Any]], sealed_at: datetime
) -> None:
    """One `core.hris_sealed_file` row per file (`include/sql/core/hris_sealed_file.sql`)."""
    with conn.cursor() as cur:
        cur.executemany(
            read_sql("core", "hris_sealed_file"),
            [
                {
                    "feed": feed,
                    "sha256": f["sha256"],
                    "file_name": f["file_name"],
                    "file_date": f["file_date"],
                    "received_at": f["received_at"],
                    "rows_sealed": f["rows_loaded"],
                    "sealed_at": sealed_at,
                }
                for f in files
            ],
        )


def _build_into_temporary_table(conn: psycopg.Connection, build: str, params: Mapping[str, Any]) -> None:
    """What the `core.<build>` SQL file yields now, as the temporary table `<build>_built` (dropped at
    commit), which the baseline's SQL file reads."""
    conn.execute(
        sql.SQL("create temporary table {} on commit drop as select * from ({}) as built").format(
            sql.Identifier(f"{build}_built"), sql.SQL(read_sql("core", build))
        ),
        params,
    )


def _seal_compensation_changes(
    conn: psycopg.Connection, config: Mapping[str, Any], files: list[dict[str, Any]], sealed_at: datetime
) -> None:
    """Record the newly sealed files, then replace the baseline with the versions built over the sealed
    files alone. The build reads the old baseline, so it is computed in full before the old rows go."""
    _record_sealed(conn, "compensation", files, sealed_at)
    _build_into_temporary_table(conn, "compensation_event_version", history_parameters(config, True))
    rebuild_relation(conn, "core", "compensation_change_baseline")


def _seal_employee_snapshots(
    conn: psycopg.Connection, config: Mapping[str, Any], files: list[dict[str, Any]], sealed_at: datetime
) -> None:
    """Cut the history as built now (from the old baseline and the raw snapshots) at the new seal.

    The history is computed before the newly sealed files are recorded, and here rather than read from
    `core.employee_history`, which may be stale and stores numerics rounded; the baseline needs the values
    the build compares intervals by.
    """
    _build_into_temporary_table(conn, "employee_history", history_parameters(config))
    _record_sealed(conn, "employees", files, sealed_at)
    rebuild_relation(conn, "core", "employee_snapshot_baseline")
