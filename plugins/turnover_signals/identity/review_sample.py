"""The steward review sample: N random matches per method (and misses per reason) as a CSV.

Used for the identity-mapping sprint and later spot checks. PII is minimized: ids, dates and
methods only, with emails reduced to their first letter and domain. The draw is seeded (by the
run id unless given), so a rerun writes the same object and a new run a new sample. The CSV goes
to storage (`identity.review_sample_dir` under `storage.base_url`), where stewards on any host read it.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping
from typing import Any

from turnover_signals import storage
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)


def review_sample_path(config: Mapping[str, Any], seed: str) -> Any:
    """The sample's object (an `ObjectStoragePath`) under `identity.review_sample_dir` in storage."""
    safe_seed = re.sub(r"[^A-Za-z0-9_.-]+", "_", seed)[:80]
    folder = storage.location(config, config["identity"]["review_sample_dir"])
    return folder / f"identity_review_sample__{safe_seed}.csv"


def export_review_sample(
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
    seed: str | None = None,
    per_method: int | None = None,
) -> dict[str, Any]:
    """Write the sample CSV to storage (one whole object) and return its URL and row counts per method."""
    seed = seed or (run.run_id if run and run.run_id else "manual")
    target = review_sample_path(config, seed)  # first: without a shared store, fail before the query
    per_method = per_method or int(config["identity"]["review_sample_per_method"])
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn, conn.cursor() as cur:
        cur.execute(
            read_sql("queries", "identity_review_sample"), {"sample_seed": seed, "per_method": per_method}
        )
        columns = [d.name for d in cur.description]
        rows = cur.fetchall()
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows(rows)
    url = storage.write_bytes(target, buffer.getvalue().encode("utf-8"))
    per_group: dict[str, int] = {}
    for row in rows:
        group = row[0] if row[0] != "unmatched" else f"unmatched:{row[1]}"
        per_group[group] = per_group.get(group, 0) + 1
    log.info("identity review sample written to %s: %s", url, per_group)
    return {"path": url, "rows": len(rows), "per_group": per_group}
