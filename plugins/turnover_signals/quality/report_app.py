"""The "Data quality" page: validation runs from `audit.validation_result`, with their Data Docs pages.

Served by the Airflow API server as a plugin FastAPI app (see `plugins/data_quality_plugin.py`).
Airflow mounts plugin apps without its authentication, so every route here depends on Airflow's
own `get_user`: the caller must present a valid Airflow token (the UI's `_token` session cookie,
which the embedded page is called with, or an `Authorization: Bearer` header), and sees only
validation runs of DAGs it may read; runs made outside a DAG need read access to all DAGs. The
page reads the warehouse as the read-only `warehouse_quality_reader` login (docs/security.md#least-privilege),
and Data Docs pages, model reports and model cards from object storage (`turnover_signals.storage`): only
objects under the configured base (or the configured Data Docs and report folders) are served.

Beside it, the "KPIs" page (`kpis`): the integration KPIs of `mart.integration_kpi` (latest value and status
first, then each one's history against its target, drawn on the server) and, once the model monitoring
table exists, `mart.model_monitoring`; each KPI links to its runbook entry, served as `runbook/<page>`
unless `alerts.runbook_url` points elsewhere. It needs read access to `turnover_features` (which writes the
KPIs); a DAG's success rate also needs read access to that DAG, and model monitoring to `turnover_model`.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import psycopg
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from psycopg import sql
from psycopg.rows import dict_row

from turnover_signals.errors import RUNBOOK_URL
from turnover_signals.identity.steward_page import register_steward_routes

LIST_COLUMNS = (
    "validation_id",
    "validated_at",
    "suite_name",
    "suite_version",
    "data_asset",
    "batch_identifier",
    "success",
    "evaluated_expectations",
    "failed_expectation_count",
    "dag_id",
    "run_id",
    "task_id",
    "map_index",
    "try_number",
    "data_docs_path",
)
LMS_BATCH_COLUMNS = (
    "batch_id",
    "source",
    "extraction_kind",
    "strategy",
    "requested_since",
    "statements_received",
    "statements_new",
    "statements_late",
    "max_lateness_seconds",
    "status",
    "dag_id",
    "run_id",
    "finished_at",
)
LRS_PROFILE_COLUMNS = (
    "source",
    "endpoint",
    "probed_at",
    "since_field",
    "strategy",
    "page_cap",
    "sends_version_header",
    "sends_consistent_through",
    "voided_hidden",
    "voided_query_supported",
    "more_form",
)
MODEL_COLUMNS = (
    "model_version",
    "feature_set",
    "algorithm",
    "status",
    "dag_id",
    "run_id",
    "report_path",
    "card_path",
    "test_to_date",
)


# Airflow's own dependency: a valid JWT from the `Authorization: Bearer` header or the UI's session
# cookie, else 401 (403 for a forged token).
UserDep = Annotated[Any, Depends(get_user)]


def validation_filters(
    suite_name: str | None = None,
    status: str | None = None,
    source: str | None = None,
    dag_id: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    map_index: Annotated[str | None, Query()] = None,
    since: str | None = None,
) -> dict[str, Any]:
    """The query parameters of the page and its JSON twin (see fetch_validations). A map index
    that is not a number (the UI leaves `{MAP_INDEX}` as it is when it has none) is no filter."""
    index = int(map_index) if map_index and re.fullmatch(r"-?[0-9]{1,9}", map_index) else None
    return {
        "suite_name": suite_name,
        "status": status,
        "source": source,
        "dag_id": dag_id,
        "run_id": run_id,
        "task_id": task_id,
        "map_index": index,
        "since": since,
    }


FiltersDep = Annotated[dict[str, Any], Depends(validation_filters)]


def readable_dag_ids(user: Any, dag_ids: Iterable[str | None]) -> set[str | None]:
    """Which of these DAG ids (None = no DAG) the user may read task instances of."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = get_auth_manager()
    allowed: set[str | None] = set()
    for dag_id in set(dag_ids):
        if manager.is_authorized_dag(
            method="GET",
            user=user,
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id) if dag_id else None,
        ):
            allowed.add(dag_id)
    return allowed


def _warehouse() -> AbstractContextManager[psycopg.Connection]:
    """The read-only `warehouse_quality_reader` login; refused (`ConfigError`) when it is not defined, unless
    `security.allow_owner_fallback` (the file's) allows the owner's."""
    from turnover_signals.airflow_tasks import config_for_stage
    from turnover_signals.config import load_config
    from turnover_signals.warehouse import warehouse_connection

    conn_id = config_for_stage(load_config(use_variable=False), "quality_reader")["connections"]["warehouse"]
    return warehouse_connection(conn_id)


def _reading(conn: psycopg.Connection | None) -> AbstractContextManager[psycopg.Connection]:
    """`conn`, left open for the request that owns it; else a quality-reader connection of its own."""
    return nullcontext(conn) if conn is not None else _warehouse()


def fetch_validations(
    filters: Mapping[str, Any], limit: int = 500, conn: psycopg.Connection | None = None
) -> list[dict[str, Any]]:
    """Validation runs, newest first, matching the given filters (all optional).

    `source` is a validated data asset (`hris_employees_file`, `lms_user_batch`, ...) or part of
    what was validated (a file name, sha256, LMS source or batch id); `map_index` -1 is an unmapped task.
    """
    clauses, params = [], {}
    for column in ("suite_name", "dag_id", "run_id", "task_id"):
        if filters.get(column):
            clauses.append(f"{column} = %({column})s")
            params[column] = filters[column]
    if filters.get("source"):
        clauses.append("(data_asset = %(source)s or batch_identifier ilike %(source_pattern)s)")
        params["source"] = filters["source"]
        params["source_pattern"] = "%" + re.sub(r"([\\%_])", r"\\\1", filters["source"]) + "%"
    if filters.get("map_index") is not None:
        clauses.append("coalesce(map_index, -1) = %(map_index)s")
        params["map_index"] = filters["map_index"]
    if filters.get("status") in ("passed", "failed"):
        clauses.append("success = %(success)s")
        params["success"] = filters["status"] == "passed"
    if filters.get("since"):
        clauses.append("validated_at >= %(since)s")
        params["since"] = filters["since"]
    where = " and ".join(clauses) or "true"
    query = f"select {', '.join(LIST_COLUMNS)} from audit.validation_result where {where}"  # noqa: S608 - fixed names
    with _reading(conn) as reader, reader.cursor(row_factory=dict_row) as cur:
        cur.execute(query + " order by validated_at desc limit %(limit)s", {**params, "limit": limit})
        return cur.fetchall()


def fetch_filter_choices(conn: psycopg.Connection) -> list[tuple[str, str, str | None]]:
    """Every (suite name, data asset, DAG id) with a validation run: the suite and source filters'
    choices, before authorization."""
    return conn.execute(
        "select distinct suite_name, data_asset, dag_id from audit.validation_result"
    ).fetchall()


def visible(user: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    allowed = readable_dag_ids(user, (row["dag_id"] for row in rows))
    return [row for row in rows if row["dag_id"] in allowed]


def _model_registry_exists(cur: psycopg.Cursor[Any]) -> bool:
    # the page is also served before the model layer's migration has run
    cur.execute("select to_regclass('audit.model_registry') is not null as present")
    return cur.fetchone()["present"]


def fetch_model_reports(limit: int = 50, conn: psycopg.Connection | None = None) -> list[dict[str, Any]]:
    """Trained models with their HTML reports (empty before the model layer exists)."""
    with _reading(conn) as reader, reader.cursor(row_factory=dict_row) as cur:
        if not _model_registry_exists(cur):
            return []
        cur.execute(
            f"select {', '.join(MODEL_COLUMNS)} from audit.model_registry"  # noqa: S608 - fixed names
            " order by model_version desc limit %s",
            (limit,),
        )
        return cur.fetchall()


def fetch_lms_extractions(
    conn: psycopg.Connection, limit: int = 20
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The newest xAPI extraction batches with their late counts, and the LRS profile in force per source
    (both empty before the conformance migration has run)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("select to_regclass('audit.lrs_conformance') is not null as present")
        if not cur.fetchone()["present"]:
            return [], []
        cur.execute(
            f"select {', '.join(LMS_BATCH_COLUMNS)} from audit.lms_extract_batch"  # noqa: S608 - fixed names
            " order by finished_at desc, batch_id desc limit %s",
            (limit,),
        )
        batches = cur.fetchall()
        cur.execute(
            f"select distinct on (source) {', '.join(LRS_PROFILE_COLUMNS)} from audit.lrs_conformance"  # noqa: S608 - fixed names
            " order by source, probe_id desc"
        )
        return batches, cur.fetchall()


def fetch_model_report(conn: psycopg.Connection, model_version: str) -> dict[str, Any] | None:
    """One trained model by its version, or None (also before the model layer exists)."""
    with conn.cursor(row_factory=dict_row) as cur:
        if not _model_registry_exists(cur):
            return None
        cur.execute(
            f"select {', '.join(MODEL_COLUMNS)} from audit.model_registry where model_version = %s",  # noqa: S608 - fixed names
            (model_version,),
        )
        return cur.fetchone()


def _cell(value: Any) -> str:
    return html.escape("" if value is None else str(value))


HEX_DIGEST = re.compile(r"\b[0-9a-f]{40,64}\b")


def _readable(value: Any) -> str:
    """A cell people read at a glance: times to the second in UTC, hashes shortened (the full value on
    hover)."""
    if isinstance(value, datetime):
        return _cell(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"))
    text = "" if value is None else str(value)
    parts, last = [], 0
    for digest in HEX_DIGEST.finditer(text):
        parts += [
            _cell(text[last : digest.start()]),
            f'<abbr title="{digest.group()}">{digest.group()[:12]}…</abbr>',
        ]
        last = digest.end()
    return "".join(parts) + _cell(text[last:])


def render_models(models: list[dict[str, Any]]) -> str:
    if not models:
        return ""
    items = "".join(
        f"<tr><td>{_cell(m['model_version'])}</td>"
        f"<td>{_cell(m['feature_set'])} / {_cell(m['algorithm'])}</td>"
        f"<td>{_cell(m['status'])}</td><td>{_cell(m['test_to_date'])}</td><td>"
        + (f'<a href="model-reports/{_cell(m["model_version"])}">report</a>' if m["report_path"] else "—")
        + "</td><td>"
        + (f'<a href="model-cards/{_cell(m["model_version"])}">model card</a>' if m["card_path"] else "—")
        + "</td></tr>"
        for m in models
    )
    return (
        "<h2>Turnover model runs</h2><table><thead><tr><th>model version</th><th>features / algorithm</th>"
        "<th>status</th><th>tested through</th><th>report</th>"
        f"<th>model card</th></tr></thead><tbody>{items}</tbody>"
        "</table>"
    )


def _hours(seconds: int | None) -> str:
    return "—" if seconds is None else f"{seconds / 3600:.1f} h"


def render_lms_extractions(batches: list[dict[str, Any]], profiles: list[dict[str, Any]]) -> str:
    """xAPI extractions with what they found late, beside what each LRS was found to do."""
    if not batches and not profiles:
        return ""
    profile_rows = "".join(
        f"<tr><td>{_cell(p['source'])}<br><small>{_cell(p['endpoint'])}</small></td>"
        f"<td>{_readable(p['probed_at'])}</td>"
        f"<td>{_cell(p['since_field'])}</td><td>{_cell(p['strategy'])}</td>"
        f"<td>{_cell(p['page_cap'] or '—')}</td>"
        f"<td>{'yes' if p['sends_version_header'] else 'no'} / "
        f"{'yes' if p['sends_consistent_through'] else 'no'}</td>"
        f"<td>{_cell({True: 'hidden', False: 'listed', None: 'not seen'}[p['voided_hidden']])}"
        f" / {_cell({True: 'answered', False: 'ignored', None: 'not seen'}[p['voided_query_supported']])}"
        "</td>"
        f"<td>{_cell(p['more_form'])}</td></tr>"
        for p in profiles
    )
    batch_rows = "".join(
        f"<tr class={'late' if b['statements_late'] else 'ok-row'}><td>{_readable(b['finished_at'])}</td>"
        f"<td>{_readable(b['batch_id'])}<br><small>{_cell(b['source'])}</small></td>"
        f"<td>{_cell(b['extraction_kind'] or '—')}<br><small>{_cell(b['strategy'] or '')}</small></td>"
        f"<td>{_readable(b['requested_since'])}</td><td>{_cell(b['statements_received'])}</td>"
        f"<td>{_cell(b['statements_new'])}</td>"
        f"<td class=late-count>{_cell('—' if b['statements_late'] is None else b['statements_late'])}</td>"
        f"<td>{_hours(b['max_lateness_seconds'])}</td><td>{_cell(b['status'])}</td>"
        f"<td>{_cell(b['dag_id'])}<br><small>{_cell(b['run_id'])}</small></td></tr>"
        for b in batches
    )
    return f"""<h2>LMS extractions</h2>
<p>What each LRS was found to do (the conformance probe) and the strategy that loses no statement on it; then
the newest xAPI batches. <b>late</b>: new statements a plain <code>since = watermark</code> query would have
missed, found by the look-back or a sweep (docs/runbook/lms.md#runbook-lms-late-statements).</p>
<table id="lrs-profiles"><thead><tr><th>LRS</th><th>probed (UTC)</th><th>since filters on</th>\
<th>strategy</th>
<th>page cap</th><th>version / consistency headers</th><th>voided statements / voidedStatementId</th>
<th>more</th></tr></thead><tbody>{profile_rows}</tbody></table>
<table id="lms-extractions"><thead><tr><th>finished (UTC)</th><th>batch</th><th>kind</th><th>since</th>
<th>received</th><th>new</th><th>late</th><th>longest lateness</th><th>status</th><th>DAG run</th></tr>\
</thead>
<tbody>{batch_rows}</tbody></table>"""


def render_page(
    rows: list[dict[str, Any]],
    filters: Mapping[str, Any],
    suites: list[str],
    models_html: str = "",
    sources: Iterable[str] = (),
    lms_html: str = "",
) -> str:
    """The page: a filter form and one table row per validation run, linking to its Data Docs."""
    options = "".join(
        f'<option value="{_cell(s)}"{" selected" if s == filters.get("suite_name") else ""}>{_cell(s)}'
        "</option>"
        for s in suites
    )
    statuses = "".join(
        f'<option value="{s}"{" selected" if s == filters.get("status") else ""}>{s or "any"}</option>'
        for s in ("", "passed", "failed")
    )
    body = []
    for row in rows:
        task = f"{row['task_id'] or ''}" + ("" if row["map_index"] is None else f"[{row['map_index']}]")
        docs = f'<a href="docs/{_cell(row["validation_id"])}">Data Docs</a>' if row["data_docs_path"] else "—"
        run_link = "?" + urlencode({"dag_id": row["dag_id"] or "", "run_id": row["run_id"] or ""})
        source_link = "?" + urlencode({"source": row["data_asset"]})
        body.append(
            f"<tr class={'passed' if row['success'] else 'failed'}>"
            f"<td>{_readable(row['validated_at'])}</td><td>{_cell(row['suite_name'])}<br><small>"
            f"{_cell(row['suite_version'])}</small></td>"
            f'<td><a href="{_cell(source_link)}">{_cell(row["data_asset"])}</a></td>'
            f"<td>{_readable(row['batch_identifier'])}</td>"
            f"<td class={'ok' if row['success'] else 'bad'}>{'passed' if row['success'] else 'FAILED'}</td>"
            f"<td>{_cell(row['failed_expectation_count'])} / {_cell(row['evaluated_expectations'])}</td>"
            f'<td><a href="{_cell(run_link)}">{_cell(row["dag_id"])}'
            f"<br><small>{_cell(row['run_id'])}</small></a></td>"
            f"<td>{_cell(task)} try {_cell(row['try_number'])}</td><td>{docs}</td>"
            "</tr>"
        )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Data quality</title>
<style>body{{font-family:sans-serif;margin:1em;font-size:14px}}
table{{border-collapse:collapse;width:100%;table-layout:fixed}}
td,th{{border-bottom:1px solid #ddd;padding:.35em;text-align:left;vertical-align:top;overflow-wrap:anywhere}}
tr.failed{{background:#fef3f2}}tr.late .late-count{{color:#b54708;font-weight:bold}}.ok{{color:#16794c}}\
.bad{{color:#b42318;font-weight:bold}}
form{{display:flex;flex-wrap:wrap;gap:.4em .8em}}input{{max-width:12em}}abbr{{text-decoration:none}}</style>
</head><body>
<h1>Data quality</h1>
<nav><a href="kpis">KPIs: integration health and model monitoring</a></nav>
<p>Every Great Expectations validation run of the turnover-signals pipelines: what was checked, on which
file, batch or reference date, with what outcome. Unexpected values from PII columns are masked.</p>
<form method="get">
<label>Suite <select name="suite_name"><option value="">any</option>{options}</select></label>
<label>Status <select name="status">{statuses}</select></label>
<label>Source <input name="source" list="sources" value="{_cell(filters.get("source"))}"></label>
<datalist id="sources">{"".join(f'<option value="{_cell(source)}">' for source in sources)}</datalist>
<label>DAG <input name="dag_id" value="{_cell(filters.get("dag_id"))}"></label>
<label>Run <input name="run_id" value="{_cell(filters.get("run_id"))}"></label>
<label>Task <input name="task_id" value="{_cell(filters.get("task_id"))}"></label>
<label>Since <input name="since" type="date" value="{_cell(filters.get("since"))}"></label>
<button type="submit">Filter</button></form>
<p>{len(rows)} validation run(s)</p>
<table id="validation-runs"><thead><tr><th>validated at (UTC)</th><th>suite</th><th>source</th>
<th>what was validated</th><th>outcome</th><th>failed / evaluated</th><th>DAG run</th><th>task</th>\
<th>report</th></tr>
</thead><tbody>{"".join(body)}</tbody></table>{lms_html}{models_html}</body></html>"""


# -- the KPI page ----------------------------------------------------------------------------------------

KPI_DAG = "turnover_features"  # writes mart.integration_kpi
MONITORING_DAG = "turnover_model"  # its monitoring task writes mart.model_monitoring
KPI_COLUMNS = ("kpi_date", "kpi", "kpi_value", "target_value", "status", "source")
MONITORING_COLUMNS = (
    "model_version",
    "reference_date",
    "metric",
    "value",
    "lower",
    "upper",
    "threshold",
    "status",
)


def _page_config() -> dict[str, Any]:
    """The configuration with the Variable (targets, page_days and runbook_url may be set there); the file's
    alone when the Variable cannot be read."""
    from turnover_signals.config import ConfigError, load_config

    try:
        return load_config()
    except ConfigError:
        return load_config(use_variable=False)


def _readable_relation(cur: psycopg.Cursor[Any], name: str) -> bool:
    # served before the migration that creates it has run, and by a login that may not be granted it yet
    cur.execute(
        "select to_regclass(%(name)s) is not null and has_table_privilege(to_regclass(%(name)s), 'select')"
        " as readable",
        {"name": name},
    )
    return bool(cur.fetchone()["readable"])


def _recent_rows(
    conn: psycopg.Connection,
    relation: tuple[str, str],
    columns: Iterable[str],
    date_column: str,
    order_by: Iterable[str],
    days: int,
) -> list[dict[str, Any]]:
    """The rows of `relation` dated in the `days` days up to its newest date, in `order_by` order (empty while
    it does not exist, cannot be read or holds nothing)."""
    with conn.cursor(row_factory=dict_row) as cur:
        if not _readable_relation(cur, ".".join(relation)):
            return []
        cur.execute(
            sql.SQL(
                "select {columns} from {relation} where {day} > (select max({day}) from {relation})"
                " - %s::integer order by {order}"
            ).format(
                columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                relation=sql.Identifier(*relation),
                day=sql.Identifier(date_column),
                order=sql.SQL(", ").join(map(sql.Identifier, order_by)),
            ),
            (days,),
        )
        return cur.fetchall()


def fetch_kpi_history(conn: psycopg.Connection, days: int = 90) -> list[dict[str, Any]]:
    """Every KPI row of the `days` days up to the newest KPI date, per KPI oldest first (empty before the KPI
    migration)."""
    return _recent_rows(conn, ("mart", "integration_kpi"), KPI_COLUMNS, "kpi_date", ("kpi", "kpi_date"), days)


def fetch_model_monitoring(conn: psycopg.Connection, days: int = 90) -> list[dict[str, Any]]:
    """The model monitoring rows of the `days` days up to the newest reference date (empty while
    `mart.model_monitoring` does not exist, cannot be read or holds nothing)."""
    return _recent_rows(
        conn,
        ("mart", "model_monitoring"),
        MONITORING_COLUMNS,
        "reference_date",
        ("metric", "model_version", "reference_date"),
        days,
    )


def _per_dag(row: Mapping[str, Any]) -> bool:
    return row["kpi"].startswith("pipeline_success_rate:")


def kpi_visible(kpi: str, allowed: set[str | None]) -> bool:
    """Whether a reader of the DAGs `allowed` may see KPI `kpi`: the KPI DAG's readers see every KPI but
    another DAG's success rate, which needs read access to that DAG too."""
    if KPI_DAG not in allowed:
        return False
    return not kpi.startswith("pipeline_success_rate:") or kpi.split(":", 1)[1] in allowed


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "share":
        return f"{value:.1%}"
    if unit == "hours":
        return f"{value:.1f} h"
    return f"{value:,.0f}"


def _kpi_link(kpi_name: str, runbook_url: str) -> str:
    from turnover_signals.kpi.definitions import kpi_of

    definition = kpi_of(kpi_name)
    if runbook_url == RUNBOOK_URL:  # the repository's path: served by this app instead
        return f"runbook/kpis#runbook-{definition.runbook_section}"
    return definition.runbook_link(runbook_url)


def _slug(kpi: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", kpi)


STATUS_LABELS = {"alert": "RED", "ok": "ok", "no_data": "no data"}


def _kpi_summary_row(row: Mapping[str, Any], runbook_url: str) -> str:
    """A KPI's latest value and status, linking to its plot and its runbook entry."""
    from turnover_signals.kpi.definitions import kpi_of

    definition = kpi_of(row["kpi"])
    target = row["target_value"]
    target_text = (
        "—" if target is None else ("≤ " if definition.at_most else "≥ ") + _value(target, definition.unit)
    )
    return (
        f"<tr class={_cell(row['status'])}>"
        f'<td><a href="#kpi-{_slug(row["kpi"])}">{_cell(row["kpi"])}</a></td>'
        f"<td>{_cell(row['kpi_date'])}</td><td>{_value(row['kpi_value'], definition.unit)}</td>"
        f"<td>{target_text}</td>"
        f"<td class=status>{_cell(STATUS_LABELS.get(row['status'], row['status']))}</td>"
        f'<td><a href="{_cell(_kpi_link(row["kpi"], runbook_url))}">runbook</a></td></tr>'
    )


def render_kpi_page(
    history: list[dict[str, Any]], monitoring: list[dict[str, Any]], runbook_url: str = "", plots: bool = True
) -> str:
    """The KPI page: each KPI's latest value and status (red first), then its history against its target,
    then the model monitoring metrics. `history`: KPI rows, per KPI oldest first."""
    from turnover_signals.kpi.charts import data_uri, kpi_plot, monitoring_plot
    from turnover_signals.kpi.definitions import BY_NAME, kpi_of

    runbook_url = runbook_url or RUNBOOK_URL
    by_kpi: dict[str, list[dict[str, Any]]] = {}
    for row in history:
        if row["kpi"].split(":", 1)[0] in BY_NAME:
            by_kpi.setdefault(row["kpi"], []).append(row)
    order = {"alert": 0, "no_data": 1, "ok": 2}
    latest = sorted(
        (rows[-1] for rows in by_kpi.values()), key=lambda r: (order.get(r["status"], 3), r["kpi"])
    )
    summary = "".join(_kpi_summary_row(row, runbook_url) for row in latest)
    figures = []
    for kpi, rows in sorted(by_kpi.items()):
        definition = kpi_of(kpi)
        image = (
            f'<img class=kpi-plot alt="{_cell(kpi)} over time, with its target" '
            f'src="{data_uri(kpi_plot(kpi, definition.unit, rows))}">'
            if plots
            else ""
        )
        figures.append(
            f'<figure id="kpi-{_slug(kpi)}">{image}<figcaption><b>{_cell(definition.title)}</b> '
            f"({_cell(kpi)}): {_cell(definition.definition)}. "
            f"Source: <code>{_cell(definition.source)}</code>. "
            f'<a href="{_cell(_kpi_link(kpi, runbook_url))}">What to do when it is red</a>'
            "</figcaption></figure>"
        )
    metrics: dict[str, list[dict[str, Any]]] = {}
    for row in monitoring:
        metrics.setdefault(row["metric"], []).append(row)
    monitoring_html = ""
    if metrics:
        monitoring_figures = "".join(
            f'<figure id="monitoring-{_slug(metric)}">'
            + (
                f'<img class=monitoring-plot alt="{_cell(metric)} per reference date" '
                f'src="{data_uri(monitoring_plot(metric, rows))}">'
                if plots
                else ""
            )
            + f"<figcaption>{_cell(metric)}: newest {_cell(rows[-1]['value'])} "
            f"({_cell(rows[-1]['model_version'])}, {_cell(rows[-1]['reference_date'])}, "
            f"{_cell(rows[-1]['status'])})</figcaption></figure>"
            for metric, rows in sorted(metrics.items())
        )
        monitoring_html = (
            "<h2>Model monitoring</h2><p>From <code>mart.model_monitoring</code>: performance of the "
            "champion once labels mature (with intervals, shaded), drift and calibration before; the dashed "
            "line is the threshold, red points crossed it.</p>"
            f'<div class=plots id="model-monitoring">{monitoring_figures}</div>'
        )
    empty = (
        ""
        if latest
        else "<p>No KPI has been recorded yet (the record_integration_kpis task writes them).</p>"
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>KPIs</title>
<style>body{{font-family:sans-serif;margin:1em;font-size:14px}}
table{{border-collapse:collapse;width:100%;table-layout:fixed}}
td,th{{border-bottom:1px solid #ddd;padding:.35em;text-align:left;vertical-align:top;overflow-wrap:anywhere}}
tr.alert{{background:#fef3f2}}tr.alert .status{{color:#b42318;font-weight:bold}}tr.ok .status{{color:#16794c}}
tr.no_data .status{{color:#667085}}.plots{{display:flex;flex-wrap:wrap;gap:1em}}
figure{{margin:0;max-width:520px}}figure img{{max-width:100%;height:auto}}figcaption{{font-size:12px}}</style>
</head><body>
<nav><a href="./">Data quality</a></nav>
<h1>KPIs</h1>
<p>Integration health of the turnover-signals pipelines, one row per day in <code>mart.integration_kpi</code>,
measured as of the end of each day (UTC). Latest first; red KPIs at the top.</p>
{empty}<table id="kpi-latest"><thead><tr><th>KPI</th><th>day</th><th>latest value</th><th>target</th>
<th>status</th><th>when red</th></tr></thead><tbody>{summary}</tbody></table>
<h2>History</h2><div class=plots id="kpi-history">{"".join(figures)}</div>
{monitoring_html}</body></html>"""


_RUNBOOK_ANCHOR = re.compile(r'<a id="(runbook[A-Za-z0-9_-]*)"></a>')
_LIST_MARK = re.compile(r"^(\d+\.|-) ")
_MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _inline(text: str) -> str:
    """Escaped text with `code`, **bold** and links to other runbook pages (served here)."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", escaped)

    def link(match: re.Match[str]) -> str:
        target = re.fullmatch(r"([a-z_-]+)\.md(#[A-Za-z0-9_-]+)?|(#[A-Za-z0-9_-]+)", match[2])
        if target is None:
            return match[1]
        href = target[3] or target[1] + (target[2] or "")
        return f'<a href="{href}">{match[1]}</a>'

    return _MD_LINK.sub(link, escaped)


def render_runbook_page(page: str) -> str:
    """A page of docs/runbook/ as simple HTML with its entries' anchors (404 for anything else)."""
    from turnover_signals.errors import RUNBOOK_PAGES
    from turnover_signals.paths import BUNDLE_ROOT

    if page not in set(RUNBOOK_PAGES.values()):
        raise HTTPException(status_code=404, detail="no such runbook page")
    path = BUNDLE_ROOT / "docs" / "runbook" / f"{page}.md"
    if not path.is_file():
        raise HTTPException(status_code=404, detail="the runbook is not deployed with this bundle")
    blocks, body = re.split(r"\n\s*\n", path.read_text(encoding="utf-8")), []
    for block in blocks:
        stripped = block.strip()
        if anchor := _RUNBOOK_ANCHOR.fullmatch(stripped):
            body.append(f'<a id="{anchor[1]}"></a>')
        elif heading := re.fullmatch(r"(#{1,4}) (.+)", stripped):
            level = len(heading[1])
            body.append(f"<h{level}>{_inline(heading[2])}</h{level}>")
        elif stripped.startswith("```"):
            body.append(f"<pre>{html.escape(stripped.strip('`').removeprefix('text'))}</pre>")
        elif re.match(r"(\d+\.|-) ", stripped):
            items = [_LIST_MARK.sub("", item) for item in re.split(r"\n(?=\d+\. |- )", stripped)]
            tag = "ol" if stripped[0].isdigit() else "ul"
            body.append(f"<{tag}>" + "".join(f"<li>{_inline(item)}</li>" for item in items) + f"</{tag}>")
        elif stripped.startswith("|"):
            rows = [line.strip().strip("|").split(" | ") for line in stripped.splitlines()]
            cells = "".join(
                "<tr>" + "".join(f"<td>{_inline(cell.strip())}</td>" for cell in row) + "</tr>"
                for row in rows
                if not set("".join(row)) <= set("-| ")
            )
            body.append(f"<table>{cells}</table>")
        elif stripped:
            body.append(f"<p>{_inline(stripped)}</p>")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Runbook: {html.escape(page)}</title>
<style>body{{font-family:sans-serif;margin:1em;font-size:14px;max-width:60em}}code{{background:#f2f4f7}}
td{{border-bottom:1px solid #ddd;padding:.3em;vertical-align:top}}</style></head><body>
<nav><a href="../kpis">KPIs</a> · <a href="../">Data quality</a></nav>{"".join(body)}</body></html>"""


# Data Docs pages and model reports are generated HTML that loads third-party scripts (Great Expectations'
# pages pull jQuery and Bootstrap from CDNs). Served under the Airflow UI's origin, such a script could call
# the Airflow API as the viewer. A CSP sandbox without allow-same-origin gives the page an opaque origin:
# its scripts still render it, but cannot read the viewer's cookies or storage, or call the API as them.
SANDBOXED_PAGE_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def sandboxed_page(content: bytes) -> Response:
    """A generated HTML page, served so that no script on it can act as the viewer."""
    return Response(content=content, media_type="text/html", headers=SANDBOXED_PAGE_HEADERS)


def stored_page(recorded: str | None, what: str) -> Response:
    """A recorded page (object URL, or a local path from before object storage), read from storage.

    Only objects under the storage base or the configured Data Docs / report folders are served: a row
    pointing anywhere else (a tampered or mistyped path, a `..` segment, a symbolic link leading out of
    storage) gets a 404, not that file. A page retention purged (`retention.data_docs_days`) is a 404 too.
    """
    from turnover_signals import storage
    from turnover_signals.config import load_config

    config = load_config()  # the Variable too: storage.base_url is usually set there
    folders = (config["quality"]["data_docs_dir"], config["model"]["report_dir"])
    try:
        page = storage.readable_object(config, recorded, folders) if recorded else None
    except storage.StorageNotSharedError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    if page is None or not _served_name(page).endswith(".html"):
        raise HTTPException(status_code=404, detail=f"the {what} is not under the configured storage")
    try:
        with page.open("rb") as handle:
            return sandboxed_page(handle.read())
    except (FileNotFoundError, IsADirectoryError) as exc:
        raise HTTPException(
            status_code=404, detail=f"the {what} is no longer in storage (retention may have purged it)"
        ) from exc


def _served_name(page: Any) -> str:
    """The name of what would be read: for a local file, where a symbolic link leads (a `page.html` link
    to some other kind of file is not an HTML page)."""
    if (page.protocol or "file") in ("file", "local"):
        return os.path.basename(os.path.realpath(page.path))
    return page.name


def create_app() -> FastAPI:
    """The plugin's FastAPI app (mounted by Airflow under the plugin's url_prefix)."""
    app = FastAPI(title="turnover-signals data quality", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse)
    def validation_runs(user: UserDep, filters: FiltersDep) -> str:
        with _warehouse() as conn:
            rows = fetch_validations(filters, conn=conn)
            choices = fetch_filter_choices(conn)
            models = fetch_model_reports(conn=conn)
            batches, profiles = fetch_lms_extractions(conn)
        # one authorization pass over every DAG the page could show
        dag_ids = [row["dag_id"] for row in rows] + [dag for _suite, _asset, dag in choices]
        dag_ids += [m["dag_id"] for m in models] + [b["dag_id"] for b in batches] + ["lms_api_ingest"]
        allowed = readable_dag_ids(user, dag_ids)
        return render_page(
            [row for row in rows if row["dag_id"] in allowed],
            filters,
            sorted({suite for suite, _asset, dag in choices if dag in allowed}),
            render_models([m for m in models if m["dag_id"] in allowed]),
            sorted({asset for _suite, asset, dag in choices if dag in allowed}),
            render_lms_extractions(
                [b for b in batches if b["dag_id"] in allowed],
                profiles if "lms_api_ingest" in allowed else [],
            ),
        )

    @app.get("/api/validations")
    def validation_runs_json(user: UserDep, filters: FiltersDep) -> list[dict[str, Any]]:
        return [
            {k: (str(v) if k == "validated_at" else v) for k, v in row.items()}
            for row in visible(user, fetch_validations(filters))
        ]

    @app.get("/docs/{validation_id}")
    def data_docs_page(user: UserDep, validation_id: str) -> Response:
        with _warehouse() as conn:
            row = conn.execute(
                "select dag_id, data_docs_path from audit.validation_result where validation_id = %s",
                (validation_id,),
            ).fetchone()
        if row is None or not row[1] or row[0] not in readable_dag_ids(user, [row[0]]):
            raise HTTPException(status_code=404, detail="no such validation run")
        return stored_page(row[1], "Data Docs page")

    @app.get("/model-reports/{model_version}")
    def model_report(user: UserDep, model_version: str) -> Response:
        with _warehouse() as conn:
            model = fetch_model_report(conn, model_version)
        if model is None or model["dag_id"] not in readable_dag_ids(user, [model["dag_id"]]):
            raise HTTPException(status_code=404, detail="no such model run")
        return stored_page(model["report_path"], "model report")

    @app.get("/kpis", response_class=HTMLResponse)
    def kpi_page(user: UserDep) -> str:
        config = _page_config()
        days = int((config.get("kpi") or {}).get("page_days") or 90)
        with _warehouse() as conn:
            history = fetch_kpi_history(conn, days)
            monitoring = fetch_model_monitoring(conn, days)
        dag_ids = [KPI_DAG, MONITORING_DAG] + [
            row["kpi"].split(":", 1)[1] for row in history if _per_dag(row)
        ]
        allowed = readable_dag_ids(user, dag_ids)
        return render_kpi_page(
            [row for row in history if kpi_visible(row["kpi"], allowed)],
            monitoring if MONITORING_DAG in allowed else [],
            runbook_url=(config.get("alerts") or {}).get("runbook_url") or RUNBOOK_URL,
        )

    @app.get("/runbook/{page}", response_class=HTMLResponse)
    def runbook_page(user: UserDep, page: str) -> str:
        return render_runbook_page(page)

    @app.get("/model-cards/{model_version}")
    def model_card(user: UserDep, model_version: str) -> Response:
        with _warehouse() as conn:
            model = fetch_model_report(conn, model_version)
        if model is None or model["dag_id"] not in readable_dag_ids(user, [model["dag_id"]]):
            raise HTTPException(status_code=404, detail="no such model run")
        return stored_page(model["card_path"], "model card")

    register_steward_routes(app)
    return app
