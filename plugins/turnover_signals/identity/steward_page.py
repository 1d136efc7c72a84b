"""The steward page beside the Data quality page: the identity suggestion queue, best first, and decisions.

Served by the same plugin app (`turnover_signals.quality.report_app.create_app` calls
`register_steward_routes`) with the same authorization: Airflow's own `get_user` (a valid Airflow token), and
read access to the `identity_resolution` DAG's task instances, else 404. It reads `audit.identity_suggestion`
as the read-only `warehouse_quality_reader` login: ids, scores and the evidence's levels and weights, never
a name or an email. Decisions are not taken here (a read-only login, and no form to forge): the page shows
the steward's command for each suggestion (`turnover_signals.identity.stewardship`).
"""

from __future__ import annotations

import html
from typing import Annotated, Any

import psycopg
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from psycopg.rows import dict_row

from turnover_signals.identity.stewardship import open_suggestions

# The Data quality page's dependency (report_app.UserDep): a valid Airflow token, else 401. Defined here at
# module level because FastAPI resolves the (postponed) annotations of a route from the module's globals.
UserDep = Annotated[Any, Depends(get_user)]

IDENTITY_DAG_ID = "identity_resolution"
COMPARISONS = ("name", "email_local_part", "domain_class", "employment")
PAGE_COLUMNS = (
    "suggestion_id",
    "lms_user_id",
    "unmatched_reason",
    "rank",
    "employee_key",
    "hris_employee_id",
    "score",
    "match_weight",
    "evidence",
    "status",
    "created_at",
    "decided_by",
    "decided_at",
)


def fetch_decided(conn: psycopg.Connection, limit: int = 50) -> list[dict[str, Any]]:
    """The latest steward decisions on suggestions, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"""
            select {", ".join(PAGE_COLUMNS)} from audit.identity_suggestion
            where status <> 'open' order by decided_at desc, suggestion_id desc limit %(limit)s
            """,  # noqa: S608 - fixed column names
            {"limit": limit},
        )
        return cur.fetchall()


def _cell(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


def evidence_summary(evidence: dict[str, Any] | None) -> str:
    """`name exact (+8.1); email_local_part one_edit (+8.0); ...`: each comparison's level and weight."""
    parts = []
    for comparison in COMPARISONS:
        found = (evidence or {}).get(comparison)
        if found:
            parts.append(f"{comparison} {found.get('level')} ({float(found.get('weight', 0)):+.1f})")
    return "; ".join(parts)


def _rows(rows: list[dict[str, Any]], decided: bool) -> str:
    body = []
    for row in rows:
        action = (
            f"{_cell(row['status'])} by {_cell(row['decided_by'])} at {_cell(row['decided_at'])}"
            if decided
            else "<code>python -m turnover_signals.identity.stewardship accept|reject "
            f"{_cell(row['suggestion_id'])} --by … --reason …</code>"
        )
        body.append(
            f"<tr><td>{_cell(row['suggestion_id'])}</td><td>{_cell(row['lms_user_id'])}</td>"
            f"<td>{_cell(row['unmatched_reason'])}</td><td>{_cell(row['rank'])}</td>"
            f"<td>{_cell(row['employee_key'])} ({_cell(row['hris_employee_id'])})</td>"
            f"<td>{float(row['score']):.3f}</td><td>{_cell(evidence_summary(row['evidence']))}</td>"
            f"<td>{action}</td></tr>"
        )
    return "".join(body)


def render_steward_page(queue: list[dict[str, Any]], decided: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th>suggestion</th><th>LMS account</th><th>why unmatched</th><th>rank</th>"
        "<th>employee key (HRIS id)</th><th>score</th><th>evidence</th><th>decision</th></tr>"
    )
    accounts = len({row["lms_user_id"] for row in queue})
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Identity suggestions</title>
<style>body{{font-family:sans-serif;margin:1em;font-size:14px}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ddd;padding:.35em;text-align:left;
vertical-align:top}}</style></head><body>
<h1>Identity suggestions</h1>
<p>Candidate employees for LMS accounts the matching rules left unmatched, best first. Nothing here is linked:
accepting records a steward decision that the next identity run applies; rejecting keeps the pair from being
suggested again (docs/concepts/identity.md).</p>
<p>{len(queue)} open suggestion(s) for {accounts} account(s)</p>
<table id="identity-suggestions"><thead>{head}</thead><tbody>{_rows(queue, decided=False)}</tbody></table>
<h2>Recent decisions</h2>
<table id="identity-decisions"><thead>{head}</thead><tbody>{_rows(decided, decided=True)}</tbody></table>
</body></html>"""


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, (int, str, dict, list, bool, type(None))) else str(v)) for k, v in row.items()
    }


def register_steward_routes(app: FastAPI) -> None:
    """Add the steward page (`/identity-suggestions`) and its JSON twin to the Data quality plugin app."""
    # the page's own reader and authorization (report_app imports this module: imported when called)
    from turnover_signals.quality.report_app import _warehouse, readable_dag_ids

    def authorize(user: Any) -> None:
        if IDENTITY_DAG_ID not in readable_dag_ids(user, [IDENTITY_DAG_ID]):
            raise HTTPException(status_code=404, detail="no identity suggestions for this user")

    @app.get("/identity-suggestions", response_class=HTMLResponse)
    def identity_suggestions(user: UserDep) -> str:
        authorize(user)
        with _warehouse() as conn:
            return render_steward_page(open_suggestions(conn, limit=500), fetch_decided(conn))

    @app.get("/api/identity-suggestions")
    def identity_suggestions_json(user: UserDep) -> list[dict[str, Any]]:
        authorize(user)
        with _warehouse() as conn:
            return [_json_ready(row) for row in open_suggestions(conn, limit=500)]
