"""`audit.file_manifest`: one row per distinct (file_name, sha256) ever received, and its fate.

A row is written by `include/sql/audit/file_manifest.sql`; its later status changes (superseded here,
released by `turnover_signals.hris.release`) are small updates that stay in Python.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from turnover_signals.sqlfiles import read_sql

MANIFEST_COLUMNS = (
    "file_name",
    "sha256",
    "feed",
    "file_date",
    "size_bytes",
    "remote_mtime",
    "received_at",
    "status",
    "reason",
    "encoding",
    "date_format",
    "date_pattern",
    "date_groups",
    "control_rows",
    "control_sha256",
    "rows_read",
    "rows_loaded",
    "rows_rejected",
    "extra_columns",
    "duplicate_of_sha256",
    "superseded_by_sha256",
    "landed_path",
    "validation_id",
    "dag_id",
    "run_id",
    "task_id",
    "map_index",
    "try_number",
)


def _one(conn: psycopg.Connection, query: str, params: Any) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def find_by_listing(
    conn: psycopg.Connection, file_name: str, size_bytes: int, remote_mtime: str | None
) -> dict[str, Any] | None:
    """The manifest row for a file as listed (same name, size and modification time), if any."""
    return _one(
        conn,
        """
        select * from audit.file_manifest
        where file_name = %s and size_bytes = %s and remote_mtime is not distinct from %s::timestamptz
          and status <> 'released'
        order by received_at desc limit 1
        """,
        (file_name, size_bytes, remote_mtime),
    )


def find(conn: psycopg.Connection, file_name: str, sha256: str) -> dict[str, Any] | None:
    return _one(
        conn,
        "select * from audit.file_manifest where file_name = %s and sha256 = %s and status <> 'released'",
        (file_name, sha256),
    )


def find_published_copy(conn: psycopg.Connection, feed: str, sha256: str) -> dict[str, Any] | None:
    """A loaded (or since superseded) file of the same feed with exactly these bytes."""
    return _one(
        conn,
        """
        select * from audit.file_manifest
        where feed = %s and sha256 = %s and status in ('loaded', 'superseded')
        order by received_at limit 1
        """,
        (feed, sha256),
    )


def previous_good_rows(conn: psycopg.Connection, feed: str, file_date: str) -> int | None:
    """Rows of the latest loaded file of this feed dated before `file_date` (the volume baseline)."""
    row = _one(
        conn,
        """
        select rows_loaded from audit.file_manifest
        where feed = %s and status = 'loaded' and file_date < %s::date
        order by file_date desc limit 1
        """,
        (feed, file_date),
    )
    return None if row is None else row["rows_loaded"]


def insert(conn: psycopg.Connection, record: dict[str, Any]) -> None:
    """Insert one manifest row (`include/sql/audit/file_manifest.sql`), or rewrite the row of a released
    file; keys outside the manifest's columns are an error, and the columns a record leaves out are null."""
    unknown = set(record) - set(MANIFEST_COLUMNS)
    if unknown:
        raise KeyError(f"not manifest columns: {sorted(unknown)}")
    written = conn.execute(
        read_sql("audit", "file_manifest"), {column: record.get(column) for column in MANIFEST_COLUMNS}
    ).rowcount
    if written != 1:
        raise KeyError(f"a manifest row for {record.get('file_name')} with this sha256 already exists")


def supersede_loaded(conn: psycopg.Connection, feed: str, file_date: str, new_sha256: str) -> list[str]:
    """Mark every other loaded file of this feed and date as superseded by `new_sha256`."""
    with conn.cursor() as cur:
        cur.execute(
            """
            update audit.file_manifest
            set status = 'superseded', superseded_by_sha256 = %(sha)s,
                reason = 'superseded by a later delivery for the same date (sha256 ' ||
                    left(%(sha)s, 12) || ')'
            where feed = %(feed)s and file_date = %(date)s::date and status = 'loaded' and sha256 <> %(sha)s
            returning file_name
            """,
            {"feed": feed, "date": file_date, "sha": new_sha256},
        )
        return [name for (name,) in cur.fetchall()]
