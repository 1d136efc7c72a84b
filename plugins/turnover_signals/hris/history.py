"""Point-in-time HR history in `core`, rebuilt from the loaded raw files.

Files that retention sealed (their raw partitions dropped) contribute through the baselines in
`core` instead; see `turnover_signals.retention.seal`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from turnover_signals.hris.job_levels import job_level_mapping, require_mapped_job_levels
from turnover_signals.sqlfiles import read_sql, rebuild_relation
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)


def termination_mapping(config: Mapping[str, Any]) -> dict[str, str]:
    """Vendor termination type (lowercased) -> voluntary | involuntary | other."""
    return {k.strip().lower(): v for k, v in config["hris"]["termination_type_mapping"].items()}


def delivery_lag(config: Mapping[str, Any]) -> timedelta:
    """How long after the end of its date an HRIS file's facts count as known (`hris.delivery_lag_hours`)."""
    return timedelta(hours=float(config["hris"]["delivery_lag_hours"]))


def history_parameters(
    config: Mapping[str, Any],
    sealed_files_only: bool = False,
    known_by: datetime | None = None,
    employee_ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Bind parameters of the `core.hris_file_knowledge`, `core.employee_history` and
    `core.compensation_event` builds (`known_by`: the history as known then; `employee_ids`: only these)."""
    return {
        "termination_mapping": Jsonb(termination_mapping(config)),
        "job_level_mapping": Jsonb(job_level_mapping(config)),
        "sealed_files_only": sealed_files_only,
        "delivery_lag": delivery_lag(config),
        "known_by": known_by,
        "employee_ids": None if employee_ids is None else list(employee_ids),
    }


def rebuild_history_revisions(conn: psycopg.Connection, config: Mapping[str, Any]) -> int:
    """Rebuild `core.employee_history_revision`: for every correction of an employees file, the history of
    the employees its date's files list as it was known just before the correction became known."""
    corrections = conn.execute(
        """
        select knowledge.sha256, knowledge.known_at
        from core.hris_file_knowledge as knowledge
        where knowledge.feed = 'employees' and knowledge.is_correction
          and knowledge.file_date > coalesce(
              (select sealed_through_date from core.hris_sealed_through where feed = 'employees'), '-infinity'
          )
        order by knowledge.known_at, knowledge.sha256
        """
    ).fetchall()
    with conn.transaction():
        history_sql = sql.SQL(read_sql("core", "employee_history"))
        conn.execute("drop table if exists history_before_correction")
        # shaped like the history build's result, so each correction's rows go in as the build gives them
        conn.execute(
            sql.SQL(
                "create temp table history_before_correction as"
                " select built.*, null::timestamptz as known_until from ({}) as built with no data"
            ).format(history_sql),
            history_parameters(config),
        )
        for sha256, known_at in corrections:
            # the employees of the correction and of the files it superseded: only their history can differ
            employee_ids = [
                row[0]
                for row in conn.execute(
                    """
                select distinct employee_id from raw.hris_employee_snapshot
                where source_sha256 = %(sha)s or source_sha256 in (
                    select sha256 from audit.file_manifest where superseded_by_sha256 = %(sha)s)
                """,
                    {"sha": sha256},
                )
            ]
            params = history_parameters(
                config, known_by=known_at - timedelta(microseconds=1), employee_ids=employee_ids
            )
            conn.execute(
                sql.SQL(
                    "insert into history_before_correction select built.*, %(known_until)s from ({}) as built"
                ).format(history_sql),
                {**params, "known_until": known_at},
            )
        revisions = rebuild_relation(conn, "core", "employee_history_revision")
        conn.execute("drop table history_before_correction")
    return revisions


def files_in_sealed_periods(conn: psycopg.Connection) -> list[str]:
    """Loaded HRIS files dated on or before their feed's last sealed file: they arrived after retention
    sealed that period (a late correction or backfill), and the history builds do not use them."""
    rows = conn.execute(
        """
        select manifest.file_name
        from audit.file_manifest as manifest
        inner join core.hris_sealed_through as seal on manifest.feed = seal.feed
        where manifest.status = 'loaded' and manifest.file_date <= seal.sealed_through_date
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
        # One transaction: readers see the history, its revisions and the pay events of one set of files, or
        # the previous ones. A history committed without its revisions would show a correction to cut-offs
        # from before it was known; a job level the mapping no longer maps leaves everything as it was.
        with conn.transaction():
            rebuild_relation(conn, "core", "hris_file_knowledge", params)
            history_rows = rebuild_relation(conn, "core", "employee_history", params)
            require_mapped_job_levels(conn)
            revision_rows = rebuild_history_revisions(conn, config)
            compensation_versions = rebuild_relation(conn, "core", "compensation_event_version", params)
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
        "employee_history_revision_rows": revision_rows,
        "current_employees": current,
        "intervals_closed_by_absence": vanished,
        "compensation_events": compensation_rows,
        "compensation_event_versions": compensation_versions,
        "files_in_sealed_periods_ignored": len(ignored),
    }
    log.info("core HR history rebuilt: %s", summary)
    return summary
