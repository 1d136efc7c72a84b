"""The readable reconciliation summary of the latest identity run (logs, task result, demo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from turnover_signals.identity.suggest import missing_scoring_extensions
from turnover_signals.warehouse import warehouse_connection


def latest_reconciliation(conn: psycopg.Connection) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select * from audit.identity_reconciliation order by finished_at desc limit 1")
        return cur.fetchone()


def _rate(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.2%}"


def reconciliation_lines(row: Mapping[str, Any] | None) -> list[str]:
    """The reconciliation row as the lines an on-call engineer or steward reads."""
    if row is None:
        return ["identity: no resolution run recorded yet"]
    reconciled = "reconciles" if row["hris_headcount"] == row["canonical_headcount"] else "DOES NOT reconcile"
    methods = ", ".join(f"{k} {v}" for k, v in sorted(row["lms_users_matched_by_method"].items())) or "none"
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(row["lms_users_unmatched_by_reason"].items())) or "none"
    exceptions = ", ".join(f"{k} {v}" for k, v in sorted(row["open_exceptions_by_kind"].items())) or "none"
    share = row["statements_attributable"] / row["statements"] if row["statements"] else None
    return [
        f"identity run {row['run_id']} ({row['mode']}, rule v{row['rule_version']}): "
        f"{'passed' if row['success'] else 'FAILED'} the gate",
        f"  HRIS headcount {row['hris_headcount']} vs canonical {row['canonical_headcount']}: {reconciled} "
        f"({row['employee_keys']} employee keys)",
        f"  LMS users {row['lms_users']}: matched {row['lms_users_matched']} ({methods}); unmatched by "
        f"reason: {reasons}",
        f"  active LMS users matched: {_rate(row['active_match_rate'])}; "
        f"with a corporate identifier: {_rate(row['active_corporate_match_rate'])}",
        f"  statements attributable to an employee: {row['statements_attributable']} of {row['statements']} "
        f"({_rate(share)})",
        f"  open exceptions: {exceptions}",
    ]


def suggestion_queue_line(conn: psycopg.Connection) -> str:
    """The steward's queue at a glance (docs/concepts/identity.md: suggestions)."""
    open_count, accounts = conn.execute(
        "select count(*), count(distinct lms_user_id) from audit.identity_suggestion where status = 'open'"
    ).fetchone()
    missing = missing_scoring_extensions(conn)
    if missing:
        return f"  suggestions for the steward: off (the warehouse lacks {', '.join(missing)})"
    return f"  suggestions for the steward: {open_count} open for {accounts} unmatched LMS account(s)"


def report_reconciliation(config: Mapping[str, Any], dsn: str | None = None) -> list[str]:
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        row = latest_reconciliation(conn)
        lines = reconciliation_lines(row)
        return lines if row is None else [*lines, suggestion_queue_line(conn)]
