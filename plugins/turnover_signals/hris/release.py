"""Release a quarantined HRIS file for another attempt, keeping the audit trail.

After the cause was fixed outside the file (column mapping, encoding, date format in the
`turnover_signals` Variable), the same bytes can be loaded again: the manifest row becomes
`released`, the decision (who, why, the quarantine reason) goes to `audit.file_release`, and the
next run of `hris_sftp_ingest` picks the file up as pending and reuses the row.

    python -m turnover_signals.hris.release employees_20260105.csv --by "jane@hr"
        --reason "mapping fixed" [--dsn URL]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from typing import Any

import psycopg

from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)


def release_quarantined_file(
    config: Mapping[str, Any], file_name: str, released_by: str, reason: str, dsn: str | None = None
) -> dict[str, Any]:
    """Mark the latest quarantined delivery of `file_name` released, and record who and why."""
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, conn.transaction():
        row = conn.execute(
            """
            select sha256, reason from audit.file_manifest
            where file_name = %s and status = 'quarantined' order by received_at desc limit 1 for update
            """,
            (file_name,),
        ).fetchone()
        if row is None:
            raise BadInputError(
                f"HRIS file {file_name}",
                "has no quarantined delivery to release",
                "check the name in audit.file_manifest (only quarantined files can be released)",
                "rerun-hris-file",
            )
        sha256, quarantine_reason = row
        record_release(conn, file_name, sha256, quarantine_reason, released_by, reason)
    log.info("HRIS file %s (sha256 %s…) released for another attempt", file_name, sha256[:12])
    return {"file_name": file_name, "sha256": sha256, "status": "released"}


def record_release(
    conn: psycopg.Connection,
    file_name: str,
    sha256: str,
    quarantine_reason: str | None,
    released_by: str,
    reason: str,
) -> None:
    """Record who released a quarantined delivery and why (audit.file_release), and mark its manifest row
    `released`, in the caller's transaction: its next attempt rewrites that row."""
    conn.execute(
        read_sql("audit", "file_release"),
        {
            "file_name": file_name,
            "sha256": sha256,
            "quarantine_reason": quarantine_reason,
            "released_by": released_by,
            "reason": reason,
        },
    )
    conn.execute(
        "update audit.file_manifest set status = 'released' where file_name = %s and sha256 = %s",
        (file_name, sha256),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m turnover_signals.hris.release", description=__doc__.splitlines()[0]
    )
    parser.add_argument("file_name")
    parser.add_argument("--by", required=True, help="who releases it (recorded)")
    parser.add_argument("--reason", required=True, help="why it can be loaded now (recorded)")
    parser.add_argument("--dsn", help="warehouse URL (default: the warehouse_postgres Airflow connection)")
    args = parser.parse_args(argv)
    print(
        release_quarantined_file(
            load_config(use_variable=False), args.file_name, args.by, args.reason, args.dsn
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
