"""Point-in-time HR history in `core`, rebuilt from the loaded raw files.

Files that retention sealed (their raw partitions dropped) contribute through the baselines in
`core` instead; see `turnover_signals.retention.seal`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from turnover_signals.sqlfiles import rebuild_relation
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)


def termination_mapping(config: Mapping[str, Any]) -> dict[str, str]:
    """Vendor termination type (lowercased) -> voluntary | involuntary | other."""
    return {k.strip().lower(): v for k, v in config["hris"]["termination_type_mapping"].items()}


def history_parameters(config: Mapping[str, Any], sealed_files_only: bool = False) -> dict[str, Any]:
    """Bind parameters of the `core.employee_history` and `core.compensation_event` builds."""
    return {"termination_mapping": Jsonb(termination_mapping(config)), "sealed_files_only": sealed_files_only}


def files_in_sealed_periods(conn: psycopg.Connection) -> list[str]:
    """Loaded HRIS files dated on or before their feed's last sealed file: they arrived after retention
    sealed that period (a late correction or backfill), and the history builds do not use them."""
    rows = conn.execute(
        """
        select manifest.file_name
        from audit.file_manifest as manifest
        inner join (
            select feed, max(file_date) as sealed_through from core.hris_sealed_file group by feed
        ) as seal on manifest.feed = seal.feed
        where manifest.status = 'loaded' and manifest.file_date <= seal.sealed_through
          and not exists (
              select 1 from core.hris_sealed_file as sealed
              where sealed.feed = manifest.feed and sealed.sha256 = manifest.sha256
          )
        order by manifest.file_date, manifest.file_name
        """
    ).fetchall()
    return [name for (name,) in rows]


def build_employee_history(config: Mapping[str, Any], dsn: str | None = None) -> dict[str, int]:
    """Rebuild `core.employee_history` (SCD type 2) and `core.compensation_event`."""
    params = history_parameters(config)
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        history_rows = rebuild_relation(conn, "core", "employee_history", params)
        compensation_rows = rebuild_relation(conn, "core", "compensation_event", params)
        ignored = files_in_sealed_periods(conn)
        if ignored:
            log.warning(
                "HRIS file(s) %s are dated inside a period retention already sealed (their raw data was "
                "purged): history keeps the sealed version of those dates and does not use them",
                ", ".join(ignored),
            )
        with conn.cursor() as cur:
            cur.execute(
                """
                select count(*) filter (where is_current),
                       count(*) filter (where closed_by = 'absent_from_snapshot')
                from core.employee_history
                """
            )
            current, vanished = cur.fetchone()
    summary = {
        "employee_history_rows": history_rows,
        "current_employees": current,
        "intervals_closed_by_absence": vanished,
        "compensation_events": compensation_rows,
        "files_in_sealed_periods_ignored": len(ignored),
    }
    log.info("core HR history rebuilt: %s", summary)
    return summary
