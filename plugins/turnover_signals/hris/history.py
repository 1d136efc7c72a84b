"""Point-in-time HR history in `core`, rebuilt from the loaded raw files."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from turnover_signals.sqlfiles import rebuild_relation
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)


def termination_mapping(config: Mapping[str, Any]) -> dict[str, str]:
    """Vendor termination type (lowercased) -> voluntary | involuntary | other."""
    return {k.strip().lower(): v for k, v in config["hris"]["termination_type_mapping"].items()}


def build_employee_history(config: Mapping[str, Any], dsn: str | None = None) -> dict[str, int]:
    """Rebuild `core.employee_history` (SCD type 2) and `core.compensation_event`."""
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        history_rows = rebuild_relation(
            conn, "core", "employee_history", {"termination_mapping": Jsonb(termination_mapping(config))}
        )
        compensation_rows = rebuild_relation(conn, "core", "compensation_event")
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
    }
    log.info("core HR history rebuilt: %s", summary)
    return summary
