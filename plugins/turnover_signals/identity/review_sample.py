"""The steward review sample: N random matches per method (and misses per reason) as a CSV.

Used for the identity-mapping sprint and later spot checks. PII is minimized: ids, dates and
methods only, with emails reduced to their first letter and domain. The draw is seeded (by the
run id unless given), so a rerun writes the same file and a new run a new sample.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from turnover_signals.paths import data_path
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)


def review_sample_path(config: Mapping[str, Any], seed: str) -> Path:
    safe_seed = re.sub(r"[^A-Za-z0-9_.-]+", "_", seed)[:80]
    return data_path(config["identity"]["review_sample_dir"]) / f"identity_review_sample__{safe_seed}.csv"


def export_review_sample(
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
    seed: str | None = None,
    per_method: int | None = None,
) -> dict[str, Any]:
    """Write the sample CSV (atomically) and return its path and row counts per method."""
    seed = seed or (run.run_id if run and run.run_id else "manual")
    per_method = per_method or int(config["identity"]["review_sample_per_method"])
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, conn.cursor() as cur:
        cur.execute(read_sql("audit", "identity_review_sample"), {"sample_seed": seed, "per_method": per_method})
        columns = [d.name for d in cur.description]
        rows = cur.fetchall()
    path = review_sample_path(config, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".csv.partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    partial.replace(path)
    per_group: dict[str, int] = {}
    for row in rows:
        group = row[0] if row[0] != "unmatched" else f"unmatched:{row[1]}"
        per_group[group] = per_group.get(group, 0) + 1
    log.info("identity review sample written to %s: %s", path, per_group)
    return {"path": str(path), "rows": len(rows), "per_group": per_group}
