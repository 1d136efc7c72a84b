"""The steward's decisions on suggestions: accept (a decision the next identity run applies) or reject.

Accepting suggestion N records `match` of its LMS account to its `employee_key` in `audit.identity_override`,
the one path every steward decision takes (docs/concepts/identity.md), with the suggestion named in the
reason; the suggestion becomes `accepted` with who, when, why and the override's id. The next
`resolve_identities` run links the account (`match_method = 'steward_override'`). Rejecting marks the
suggestion `rejected` with who, when and why; the suggestion stage never suggests that pair again. Each
decision is one transaction; a suggestion already decided is refused.

    python -m turnover_signals.identity.stewardship list [--limit 50] [--dsn URL]
    python -m turnover_signals.identity.stewardship accept SUGGESTION_ID --by WHO --reason WHY [--dsn URL]
    python -m turnover_signals.identity.stewardship reject SUGGESTION_ID --by WHO --reason WHY [--dsn URL]

Without `--dsn`: $TURNOVER_WAREHOUSE_URL, else the Airflow connection `--conn-id` (default
`warehouse_postgres`, the owner's). A login in the `turnover_steward` role has the privileges it needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row

from turnover_signals.errors import BadInputError
from turnover_signals.warehouse import DEFAULT_CONN_ID, warehouse_connection

QUEUE_COLUMNS = (
    "suggestion_id",
    "lms_user_id",
    "rank",
    "employee_key",
    "hris_employee_id",
    "score",
    "match_weight",
    "unmatched_reason",
    "evidence",
    "created_at",
)


def open_suggestions(conn: psycopg.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The open queue best-first: accounts by their best score, each account's candidates by rank."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""
            select {", ".join(QUEUE_COLUMNS)}
            from audit.identity_suggestion as suggestion
            where status = 'open'
            order by
                max(score) over (partition by lms_user_id) desc, lms_user_id asc, rank asc
            limit %(limit)s
            """,  # noqa: S608 - fixed column names
            {"limit": limit},
        )
        return cur.fetchall()


def _open_suggestion(conn: psycopg.Connection, suggestion_id: int) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            select suggestion_id, lms_user_id, employee_key, status, decided_by, decided_at
            from audit.identity_suggestion where suggestion_id = %s for update
            """,
            (suggestion_id,),
        )
        row = cur.fetchone()
    if row is None:
        raise BadInputError(
            subject=f"identity suggestion {suggestion_id}",
            problem="no such suggestion in audit.identity_suggestion",
            next_step="list the open suggestions (python -m turnover_signals.identity.stewardship list)",
            runbook_section="identity_resolution",
        )
    if row["status"] != "open":
        raise BadInputError(
            subject=f"identity suggestion {suggestion_id}",
            problem=f"already {row['status']} by {row['decided_by']} at {row['decided_at']}",
            next_step=(
                "nothing to do; to undo an accepted one, deactivate its decision in audit.identity_override "
                "(docs/concepts/identity.md)"
            ),
            runbook_section="identity_resolution",
        )
    return row


def _require(decided_by: str, reason: str) -> None:
    if not decided_by.strip() or not reason.strip():
        raise BadInputError(
            subject="steward decision",
            problem="who decided and why are both required",
            next_step="give --by (your name or login) and --reason (e.g. the ticket)",
            runbook_section="identity_resolution",
        )


def accept_suggestion(
    conn: psycopg.Connection, suggestion_id: int, *, decided_by: str, reason: str
) -> dict[str, Any]:
    """Record the suggestion's pair as a steward `match` in audit.identity_override and mark it accepted."""
    _require(decided_by, reason)
    with conn.transaction():
        suggestion = _open_suggestion(conn, suggestion_id)
        override_id = conn.execute(
            """
            insert into audit.identity_override (
                identifier_type, identifier_value, decision, employee_key, decided_by, reason)
            values ('lms_user_id', %(lms_user_id)s, 'match', %(employee_key)s, %(decided_by)s, %(reason)s)
            returning override_id
            """,
            {
                "lms_user_id": suggestion["lms_user_id"],
                "employee_key": suggestion["employee_key"],
                "decided_by": decided_by,
                "reason": f"accepted identity suggestion {suggestion_id}: {reason}",
            },
        ).fetchone()[0]
        _decide(conn, suggestion_id, "accepted", decided_by, reason, override_id)
    return {**suggestion, "status": "accepted", "override_id": override_id}


def reject_suggestion(
    conn: psycopg.Connection, suggestion_id: int, *, decided_by: str, reason: str
) -> dict[str, Any]:
    """Mark the suggestion rejected: its pair is never suggested again."""
    _require(decided_by, reason)
    with conn.transaction():
        suggestion = _open_suggestion(conn, suggestion_id)
        _decide(conn, suggestion_id, "rejected", decided_by, reason, None)
    return {**suggestion, "status": "rejected", "override_id": None}


def _decide(
    conn: psycopg.Connection,
    suggestion_id: int,
    status: str,
    decided_by: str,
    reason: str,
    override_id: int | None,
) -> None:
    conn.execute(
        """
        update audit.identity_suggestion
        set status = %(status)s, decided_by = %(decided_by)s, decided_at = now(),
            decision_reason = %(reason)s, override_id = %(override_id)s
        where suggestion_id = %(suggestion_id)s
        """,
        {
            "status": status,
            "decided_by": decided_by,
            "reason": reason,
            "override_id": override_id,
            "suggestion_id": suggestion_id,
        },
    )


def _printable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (int, str, dict, list, type(None))) else str(v)) for k, v in row.items()}


def main(argv: list[str] | None = None) -> int:
    warehouse = argparse.ArgumentParser(add_help=False)
    warehouse.add_argument(
        "--dsn", help="PostgreSQL URL; default $TURNOVER_WAREHOUSE_URL or the Airflow connection"
    )
    warehouse.add_argument("--conn-id", default=DEFAULT_CONN_ID)
    parser = argparse.ArgumentParser(prog="python -m turnover_signals.identity.stewardship")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", parents=[warehouse], help="the open suggestions, best first")
    listing.add_argument("--limit", type=int, default=50)
    for name, text in (("accept", "link the account to the suggested employee"), ("reject", "never again")):
        decision = sub.add_parser(name, parents=[warehouse], help=text)
        decision.add_argument("suggestion_id", type=int)
        decision.add_argument("--by", required=True, dest="decided_by")
        decision.add_argument("--reason", required=True)
    args = parser.parse_args(argv)
    with warehouse_connection(args.conn_id, args.dsn) as conn:
        if args.command == "list":
            for row in open_suggestions(conn, args.limit):
                print(json.dumps(_printable(row)))
            return 0
        decide = accept_suggestion if args.command == "accept" else reject_suggestion
        outcome = decide(conn, args.suggestion_id, decided_by=args.decided_by, reason=args.reason)
    print(json.dumps(_printable(outcome)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
