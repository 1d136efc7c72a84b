"""`make demo`: the whole pipeline on a synthetic enterprise, with a summary a person can read.

1. A warehouse: $TURNOVER_WAREHOUSE_URL when set, else an embedded throwaway PostgreSQL
   (the pgserver wheel) under `.demo/pgdata`.
2. A synthetic enterprise from `turnover_demo.synth` (deterministic; regenerated only when
   the parameters change).
3. The sample servers on 127.0.0.1: SFTP (real sshd as root, asyncssh otherwise) and the LMS
   (xAPI + SCIM), with connections handed to Airflow through `AIRFLOW_CONN_*`; the warehouse
   migrated, with a login per stage (loader, transformer, quality reader) in its group role, so
   the DAGs run with least privilege as in production.
4. Every DAG of the bundle through `airflow dags test`, in dependency order, against a
   throwaway SQLite metadata DB in `.demo/airflow`.
5. A summary read back from the warehouse.

Running it twice ends with the same tables: every stage is idempotent.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from turnover_signals.deploy.warehouse_logins import STAGES, create_stage_login
from turnover_signals.paths import BUNDLE_ROOT
from turnover_signals.warehouse import DSN_ENV_VAR, migrate

DEMO_DIR = BUNDLE_ROOT / ".demo"
DAGS_DIR = BUNDLE_ROOT / "dags"
PLUGINS_DIR = BUNDLE_ROOT / "plugins"
DEMO_DATABASE = "turnover_demo"
# The pipeline's DAGs in dependency order; the demo runs those that exist in dags/.
PIPELINE_ORDER = (
    "hris_sftp_ingest",
    "lms_api_ingest",
    "identity_resolution",
    "turnover_features",
    "turnover_model",
    "warehouse_retention",
)
# One login per stage; names are cluster-wide, so they say whose they are.
DEMO_STAGE_LOGINS = {
    "loader": "turnover_demo_loader",
    "transformer": "turnover_demo_transformer",
    "quality_reader": "turnover_demo_quality_reader",
}


@dataclass
class StageRun:
    dag_id: str
    succeeded: bool
    seconds: float
    log_path: Path


def say(message: str) -> None:
    print(message, flush=True)


# -- warehouse -------------------------------------------------------------------------------


def start_warehouse() -> tuple[str, Any]:
    """The warehouse URL and a handle that keeps an embedded server alive (None otherwise)."""
    url = os.environ.get(DSN_ENV_VAR)
    if url:
        say(f"warehouse: {DSN_ENV_VAR} (your PostgreSQL)")
        return url, None
    import pgserver

    server = pgserver.get_server(DEMO_DIR / "pgdata", cleanup_mode="stop")
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (DEMO_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'create database "{DEMO_DATABASE}"')
    say(f"warehouse: embedded PostgreSQL in {DEMO_DIR / 'pgdata'} (set {DSN_ENV_VAR} to use your own)")
    return server.get_uri(DEMO_DATABASE), server


def airflow_warehouse_connection(url: str, login: str | None = None, password: str | None = None) -> str:
    """A warehouse connection as Airflow JSON: `url`'s, or `url`'s as another login.

    A Unix-socket directory (the embedded server listens on no TCP port) cannot travel in the
    connection's host field, which Airflow round-trips through a URI; it goes in the extra
    `host`, which the Postgres hook passes to psycopg as is.
    """
    info = psycopg.conninfo.conninfo_to_dict(url)
    host = info.get("host") or "127.0.0.1"
    connection = {
        "conn_type": "postgres",
        "host": "localhost" if host.startswith("/") else host,
        "port": int(info.get("port") or 5432),
        "login": login or info.get("user") or "postgres",
        "password": (password if login else info.get("password")) or "",
        "schema": info.get("dbname"),
    }
    if host.startswith("/"):
        connection["extra"] = {"host": host}
    return json.dumps(connection)


def stage_connections(url: str) -> dict[str, str]:
    """Migrate the warehouse, (re)make the demo's stage logins, and return their `AIRFLOW_CONN_*`.

    Each login gets a new random password per run. An owner that may not create roles (your own
    PostgreSQL) gets none: the demo then sets `security.allow_owner_fallback` and the tasks use
    `warehouse_postgres`, each with a WARNING.
    """
    from turnover_signals.config import load_config

    connection_ids = load_config(use_variable=False)["connections"]
    env: dict[str, str] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        try:
            for stage_name, login in DEMO_STAGE_LOGINS.items():
                password = secrets.token_urlsafe(18)
                create_stage_login(conn, login, stage_name, password)
                conn_id = connection_ids[STAGES[stage_name].config_key]
                env[f"AIRFLOW_CONN_{conn_id.upper()}"] = airflow_warehouse_connection(url, login, password)
        except psycopg.errors.InsufficientPrivilege as exc:
            say(
                f"warehouse: no stage logins ({exc.diag.message_primary}); every task uses warehouse_postgres"
            )
            return {}
    say(f"warehouse: stage logins {', '.join(DEMO_STAGE_LOGINS.values())} (docs/security.md#least-privilege)")
    return env


# -- synthetic data --------------------------------------------------------------------------


def generate_enterprise(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Generate the enterprise unless the same parameters were already generated."""
    wanted = {
        "employees": args.employees,
        "months": args.months,
        "seed": args.seed,
        "snapshot_every_days": args.snapshot_every_days,
        "end_date": args.end_date,
    }
    stamp = out_dir / "demo-parameters.json"
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and (out_dir / "manifest.json").exists():
        say(f"synthetic enterprise: reusing {out_dir} (same parameters)")
    else:
        shutil.rmtree(out_dir, ignore_errors=True)
        started = time.monotonic()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "turnover_demo.synth",
                "--out",
                str(out_dir),
                "--employees",
                str(args.employees),
                "--months",
                str(args.months),
                "--seed",
                str(args.seed),
                "--snapshot-every-days",
                str(args.snapshot_every_days),
                "--end-date",
                args.end_date,
            ],
            check=True,
            env=os.environ | {"PYTHONPATH": os.pathsep.join([str(PLUGINS_DIR), str(BUNDLE_ROOT)])},
        )
        stamp.write_text(json.dumps(wanted))
        say(f"synthetic enterprise: generated in {time.monotonic() - started:.0f} s into {out_dir}")
    # The SFTP root must not be group/world-writable for sshd's chroot.
    os.chmod(out_dir / "sftp", 0o755)
    return json.loads((out_dir / "manifest.json").read_text())


# -- airflow ---------------------------------------------------------------------------------


def airflow_env(extra: dict[str, str]) -> dict[str, str]:
    airflow_home = DEMO_DIR / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    # Not $TURNOVER_WAREHOUSE_URL either: it would override every task's stage connection.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != DSN_ENV_VAR}
    env |= {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(DEMO_DIR / "logs" / "airflow"),
        "PYTHONPATH": str(PLUGINS_DIR),
        "GX_ANALYTICS_ENABLED": "false",
        # `airflow dags test` crashes on DAGs with deadline alerts in Airflow 3.3.2 (turnover_signals.slo)
        "TURNOVER_SIGNALS_DEADLINE_ALERTS": "off",
    }
    return env | extra


def run_dag(dag_id: str, logical_date: str, env: dict[str, str]) -> StageRun:
    log_path = DEMO_DIR / "logs" / f"{dag_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        completed = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.monotonic() - started
    succeeded = completed.returncode == 0 and "state=failed" not in log_path.read_text()[-5000:]
    return StageRun(dag_id, succeeded, seconds, log_path)


def existing_dags() -> list[str]:
    return [dag_id for dag_id in PIPELINE_ORDER if (DAGS_DIR / f"{dag_id}.py").exists()]


# -- summary ---------------------------------------------------------------------------------


def summarize_hris(conn: psycopg.Connection) -> list[str]:
    lines = ["HRIS over SFTP (hris_sftp_ingest):"]
    rows = conn.execute(
        """
        select feed, status, count(*), coalesce(sum(rows_loaded), 0)
        from audit.file_manifest group by feed, status order by feed, status
        """
    ).fetchall()
    for feed, status, files, loaded in rows:
        lines.append(f"  {feed:<13} {status:<12} {files:>4} file(s) {loaded:>9,} rows loaded")
    quarantined = conn.execute(
        "select file_name, reason from audit.file_manifest where status = 'quarantined' order by file_name"
    ).fetchall()
    if not quarantined:
        lines.append("  quarantined: none (every delivered file passed its gate)")
    for name, reason in quarantined[:5]:
        lines.append(f"  QUARANTINED {name}: {reason[:240]}")
    if len(quarantined) > 5:
        lines.append(f"  ... and {len(quarantined) - 5} more quarantined file(s): see audit.file_manifest")
    passed, failed = conn.execute(
        "select count(*) filter (where success), count(*) filter (where not success) "
        "from audit.validation_result where suite_name like 'hris_%'"
    ).fetchone()
    lines.append(f"  validation runs: {passed} passed, {failed} failed (audit.validation_result)")
    history = conn.execute(
        """
        select count(*), count(distinct employee_id), count(*) filter (where is_current),
               count(*) filter (where closed_by = 'absent_from_snapshot'),
               min(valid_from), max(valid_from)
        from core.employee_history
        """
    ).fetchone()
    lines.append(
        f"  core.employee_history: {history[0]:,} intervals for {history[1]:,} employees "
        f"({history[2]:,} current, {history[3]:,} closed because they left the snapshot), "
        f"snapshots {history[4]} .. {history[5]}"
    )
    events = conn.execute(
        "select change_type, count(*) from core.compensation_event group by 1 order by 1"
    ).fetchall()
    lines.append("  core.compensation_event: " + ", ".join(f"{t} {n:,}" for t, n in events))
    return lines


def summarize_lms(conn: psycopg.Connection) -> list[str]:
    lines = ["LMS over its API (lms_api_ingest):"]
    for source, since_field, strategy, page_cap in conn.execute(
        "select distinct on (source) source, since_field, strategy, page_cap from audit.lrs_conformance"
        " order by source, probe_id desc"
    ).fetchall():
        lines.append(
            f"  LRS {source} probed: since filters on {since_field}, page cap {page_cap or 'none seen'}"
            f" -> strategy {strategy}"
        )
    for status, batches, received, new, late, rejected, voids in conn.execute(
        """
        select status, count(*), sum(statements_received), sum(statements_new), sum(statements_late),
               sum(statements_rejected), sum(voids_applied)
        from audit.lms_extract_batch group by status order by status
        """
    ).fetchall():
        lines.append(
            f"  xAPI batches {status}: {batches}, {received:,} statements received, {new:,} new "
            f"({late or 0:,} late), {rejected:,} rejected, {voids:,} voids applied"
        )
    totals = conn.execute(
        """
        select count(*), count(*) filter (where is_voided), count(distinct learner_identifier),
               min(occurred_at)::date, max(occurred_at)::date
        from core.lms_activity
        """
    ).fetchone()
    lines.append(
        f"  core.lms_activity: {totals[0]:,} statements ({totals[1]:,} voided) from {totals[2]:,} learners, "
        f"{totals[3]} .. {totals[4]}"
    )
    events = conn.execute(
        "select event_type, count(*) from core.lms_activity group by 1 order by 2 desc"
    ).fetchall()
    lines.append("  by event type: " + ", ".join(f"{t} {n:,}" for t, n in events))
    for reason, count in conn.execute(
        "select reason, count(*) from raw.lms_statement_rejected group by 1 order by 2 desc limit 5"
    ).fetchall():
        lines.append(f"  REJECTED {count:,} statement(s): {reason}")
    users = conn.execute(
        "select count(distinct lms_user_id), count(*), count(*) filter (where valid_to is null and "
        "is_active) from raw.lms_user"
    ).fetchone()
    lines.append(f"  raw.lms_user: {users[0]:,} users, {users[1]:,} versions, {users[2]:,} active now")
    unknown = conn.execute("select count(*) from audit.unknown_course").fetchone()[0]
    catalog = conn.execute("select count(*) from core.course_catalog").fetchone()[0]
    lines.append(
        f"  course catalog: {catalog} courses; {unknown} course id(s) seen in activity but not in it"
    )
    passed, failed = conn.execute(
        "select count(*) filter (where success), count(*) filter (where not success) from "
        "audit.validation_result where suite_name in ('lms_statement_batch', 'lms_user_batch', "
        "'course_catalog')"
    ).fetchone()
    lines.append(f"  validation runs: {passed} passed, {failed} failed")
    return lines


def summarize_identity(conn: psycopg.Connection) -> list[str]:
    from turnover_signals.identity.report import (
        latest_reconciliation,
        reconciliation_lines,
        suggestion_queue_line,
    )

    row = latest_reconciliation(conn)
    lines = (
        reconciliation_lines(row)
        if row is None
        else [*reconciliation_lines(row), suggestion_queue_line(conn)]
    )
    return [
        "Identity resolution (identity_resolution):",
        *(line if line.startswith("  ") else f"  {line}" for line in lines),
    ]


def summarize_features(conn: psycopg.Connection) -> list[str]:
    from turnover_signals.config import load_config
    from turnover_signals.features.build import training_set_lines

    version = int(load_config(use_variable=False)["features"]["feature_set_version"])
    return [
        "Features and labels (turnover_features):",
        *(f"  {line}" for line in training_set_lines(conn, version)),
    ]


def replay_check_lines(warehouse_url: str, sample_size: int = 3) -> list[str]:
    """Rebuild a sample of the backfilled dates (the oldest, a middle and the newest) from scratch and
    compare them with the published rows: each uses only what was known by its cut-off, so they match."""
    from turnover_signals.config import load_config
    from turnover_signals.features.build import rebuild_matches

    config = load_config(use_variable=False)
    with psycopg.connect(warehouse_url) as conn:
        dates = [
            row[0]
            for row in conn.execute(
                "select distinct reference_date from mart.employee_features where feature_set_version = %s "
                "order by 1",
                (int(config["features"]["feature_set_version"]),),
            )
        ]
    if not dates:
        return []
    sample = sorted({dates[0], dates[len(dates) // 2], dates[-1]})[:sample_size]
    check = rebuild_matches(config, sample, dsn=warehouse_url)
    verdict = "matched" if check["matched"] else f"DIFFERED in {check['rows_differing']} rows"
    return [
        f"  replay check: {len(sample)} of {len(dates)} backfilled reference dates "
        f"({', '.join(check['reference_dates'])}) rebuilt from what was known at their cut-offs: "
        f"{check['rows']} rows, {verdict}"
    ]


def summarize_model(conn: psycopg.Connection) -> list[str]:
    from turnover_signals.config import load_config
    from turnover_signals.model.summary import registry_lines

    metric = load_config(use_variable=False)["model"]["promotion_metric"]
    return [
        "Turnover model (turnover_model): HR only vs HR + LMS on the same time-based split",
        *registry_lines(conn, metric),
    ]


def summarize_retention(conn: psycopg.Connection) -> list[str]:
    from turnover_signals.retention.purge import retention_lines

    return ["Retention and governance (warehouse_retention):", *retention_lines(conn)]


STAGE_SUMMARIES: dict[str, Callable[[psycopg.Connection], list[str]]] = {
    "hris_sftp_ingest": summarize_hris,
    "lms_api_ingest": summarize_lms,
    "identity_resolution": summarize_identity,
    "turnover_features": summarize_features,
    "warehouse_retention": summarize_retention,
    "turnover_model": summarize_model,
}


def report_lines(conn: psycopg.Connection) -> list[str]:
    """Where auditors look: the Data Docs pages, the Data quality page, and a lineage example."""
    pages, failed, latest = conn.execute(
        "select count(data_docs_path), count(*) filter (where not success), max(data_docs_path)"
        " from audit.validation_result"
    ).fetchone()
    lines = [
        f"Expectation reports: {pages} Data Docs pages ({failed} failed runs) under "
        f"{(DEMO_DIR / 'data_docs').relative_to(BUNDLE_ROOT)}/, e.g. {latest}",
        "  In Airflow: Browse > Data quality (the plugin at /data-quality/), or a task instance's "
        "'Data quality results' tab",
    ]
    sample = (
        conn.execute(
            "select employee_key, reference_date from mart.employee_features order by reference_date desc, "
            "employee_key limit 1"
        ).fetchone()
        if conn.execute("select to_regclass('mart.employee_features') is not null").fetchone()[0]
        else None
    )
    if sample:
        lines.append(
            f"  Lineage of a feature row: PYTHONPATH=plugins python -m turnover_signals.quality.lineage "
            f"{sample[0]} {sample[1]} --dsn '{_url_without_password(conn)}'"
        )
        if conn.info.password:
            lines.append("    (add the password from PGPASSWORD or ~/.pgpass; it is not printed)")
    return lines


def kpi_lines(conn: psycopg.Connection, config: dict[str, Any] | None = None) -> list[str]:
    """The integration KPIs: today's so far (measured now, beside the rows the DAG runs wrote for the day they
    replayed), each KPI's latest value and status, red first, and where the KPI page is."""
    from turnover_signals.config import load_config
    from turnover_signals.kpi.build import latest_kpis, write_kpis
    from turnover_signals.kpi.definitions import kpi_of

    if conn.execute("select to_regclass('mart.integration_kpi') is null").fetchone()[0]:
        return []
    # The demo replays history today: what its runs recorded is dated today, so today is what to measure.
    conn.commit()  # the summaries' reads: the measurement is a transaction of its own
    write_kpis(conn, config or load_config(use_variable=False), datetime.now(UTC).date())
    conn.commit()
    rows = sorted(latest_kpis(conn), key=lambda r: ({"alert": 0, "no_data": 1}.get(r["status"], 2), r["kpi"]))
    newest = max((row["kpi_date"] for row in rows), default=None)
    lines = [f"Integration KPIs (mart.integration_kpi): {len(rows)} KPIs, latest day {newest}"]
    # A KPI measured per feature, suite, feed or DAG (`family:member`) whose members are all green is one
    # line: the red ones are what the reader needs to see.
    families: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        families.setdefault(row["kpi"].split(":")[0], []).append(row)
    for family, members in families.items():
        if len(members) > 1 and all(row["status"] == "ok" for row in members):
            lines.append(
                f"  {family + ':*':<48} {newest}  {len(members)} of {len(members)} within target  ok"
            )
            continue
        for row in members:
            unit = kpi_of(row["kpi"]).unit
            value, target = (
                "—" if v is None else (f"{v:.1%}" if unit == "share" else f"{v:,.1f}")
                for v in (row["kpi_value"], row["target_value"])
            )
            status = {"alert": "RED", "no_data": "no data"}.get(row["status"], row["status"])
            lines.append(f"  {row['kpi']:<48} {row['kpi_date']}  {value:>10}  target {target:>8}  {status}")
    lines.append(
        "  KPI page: Browse > Data quality > KPIs in Airflow (the plugin's /data-quality/kpis), each KPI "
        "plotted against its target and linked to its runbook entry (docs/runbook/kpis.md)"
    )
    return lines


def _url_without_password(conn: psycopg.Connection) -> str:
    """The URL `conn` was opened with, minus its password: safe to print, usable with `--dsn`."""
    info = conn.info
    user = quote(info.user or "", safe="")
    if info.host.startswith("/"):  # a Unix-socket directory (the embedded demo server)
        return (
            f"postgresql://{user}@/{quote(info.dbname, safe='')}"
            f"?host={quote(info.host, safe='/')}&port={info.port}"
        )
    host = f"[{info.host}]" if ":" in info.host else info.host
    return f"postgresql://{user}@{host}:{info.port}/{quote(info.dbname, safe='')}"


# What a rerun may change: the bookkeeping of the run itself. Columns saying when or by which run, task or
# batch a row was written, and audit tables that log runs (one row per run, batch or validation).
RUN_BOOKKEEPING_COLUMNS = (
    "loaded_at",
    "scored_at",
    "built_at",
    "build_id",
    "batch_id",
    "dag_id",
    "run_id",
    "task_id",
    "try_number",
    "updated_at",
    "extracted_at",
    "rejected_at",
    "validation_id",
)
RUN_LOG_TABLES = (
    "audit.lms_extract_batch",
    "audit.scim_extract_batch",
    "audit.validation_result",
    "audit.feature_build",
    "audit.identity_reconciliation",
    "audit.retention_purge",
    "audit.schema_migration",
    "audit.schema_repeatable",
    "audit.lms_backfill_slice",
)


def demo_lms_port() -> int:
    """The sample LMS's port, kept per .demo directory: the LRS a rerun reads is at the same address, so its
    conformance profile stands (a connection pointing elsewhere is probed again). A new one if it is taken."""
    path = DEMO_DIR / "lms_port"
    port = int(path.read_text()) if path.exists() else 0
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path.write_text(str(port))
    return port


def demo_pseudonym_key() -> str:
    """The demo's pseudonym key: made once per .demo directory (owner-only), then reused."""
    path = DEMO_DIR / "pseudonym.key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(os.urandom(24).hex(), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def table_fingerprint(conn: psycopg.Connection) -> dict[str, list[Any]]:
    """Row counts and order-independent content hashes of every table in raw, core, mart and audit, without
    the run's own bookkeeping (RUN_BOOKKEEPING_COLUMNS, RUN_LOG_TABLES): what a rerun must leave as it was."""
    tables = conn.execute(
        """
        select table_schema || '.' || table_name from information_schema.tables
        where table_schema in ('raw', 'core', 'mart', 'audit') and table_type = 'BASE TABLE' order by 1
        """
    ).fetchall()
    fingerprint = {}
    for (table,) in tables:
        if table in RUN_LOG_TABLES:
            continue
        schema, name = table.split(".")
        query = psycopg.sql.SQL(
            "select count(*), coalesce(md5(string_agg(row_hash, '' order by row_hash)), '')"
            " from (select md5((to_jsonb(t) - %s::text[])::text) as row_hash from {}.{} as t) as rows"
        ).format(psycopg.sql.Identifier(schema), psycopg.sql.Identifier(name))
        fingerprint[table] = list(conn.execute(query, (list(RUN_BOOKKEEPING_COLUMNS),)).fetchone())
    return fingerprint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m turnover_demo.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=2000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    # Four-weekly files keep the demo within minutes; the generator's own default is weekly.
    parser.add_argument("--snapshot-every-days", type=int, default=28)
    parser.add_argument("--end-date", default="2026-10-31")
    parser.add_argument("--fresh", action="store_true", help="start from an empty .demo directory")
    args = parser.parse_args(argv)

    from turnover_demo.sample_servers.lms_server import LmsSampleServer
    from turnover_demo.sample_servers.sftp_server import SftpSampleServer

    started = time.monotonic()
    if args.fresh:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(exist_ok=True)
    os.chmod(DEMO_DIR, 0o755)
    warehouse_url, _server_handle = start_warehouse()
    data_dir = DEMO_DIR / "data"
    manifest = generate_enterprise(args, data_dir)
    logical_date = (date.fromisoformat(args.end_date) + timedelta(days=1)).isoformat()
    with psycopg.connect(warehouse_url) as conn:  # before this run migrates anything
        before = (
            table_fingerprint(conn)
            if conn.execute("select to_regclass('core.employee_history') is not null").fetchone()[0]
            else {}
        )

    with (
        SftpSampleServer(data_dir / "sftp", state_dir=DEMO_DIR / "sftp-state") as sftp,
        LmsSampleServer(data_dir, port=demo_lms_port()) as lms,
    ):
        say(f"sample servers: SFTP {sftp.backend} on 127.0.0.1:{sftp.port}, LMS on {lms.base_url}")
        variable = {
            "hris": {"landing_dir": str(DEMO_DIR / "landing"), "wait_for_files_minutes": 0},
            "quality": {"data_docs_dir": str(DEMO_DIR / "data_docs")},
        }
        stage_env = stage_connections(warehouse_url)
        if not stage_env:  # no stage logins could be made: run as one login on purpose (else it fails closed)
            variable["security"] = {"allow_owner_fallback": True}
        env = airflow_env(
            {
                **sftp.airflow_connection_env(),
                **lms.airflow_connections_env(),
                "AIRFLOW_CONN_WAREHOUSE_POSTGRES": airflow_warehouse_connection(warehouse_url),
                **stage_env,
                # One pseudonym key per demo directory, as a deployment keeps one until it rotates it: a
                # rerun publishes the same pseudonyms (--fresh starts with a new key).
                "AIRFLOW_CONN_ANALYTICS_PSEUDONYM": json.dumps(
                    {"conn_type": "generic", "password": demo_pseudonym_key()}
                ),
                "AIRFLOW_VAR_TURNOVER_SIGNALS": json.dumps(variable),
            }
        )
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
        )
        runs = []
        for dag_id in existing_dags():
            say(f"running {dag_id} (airflow dags test {dag_id} {logical_date}) ...")
            run = run_dag(dag_id, logical_date, env)
            runs.append(run)
            say(
                f"  {'ok' if run.succeeded else 'FAILED'} in {run.seconds:.0f} s — log: "
                f"{run.log_path.relative_to(BUNDLE_ROOT)}"
            )

    with psycopg.connect(warehouse_url) as conn:
        say("")
        say("=" * 100)
        say(
            f"Synthetic enterprise: {manifest.get('counts', {}).get('employments', '?')} employments, "
            f"{args.months} months ending {args.end_date}, seed {args.seed} "
            f"({data_dir.relative_to(BUNDLE_ROOT)})"
        )
        for run in runs:
            for line in STAGE_SUMMARIES.get(run.dag_id, lambda _c: [])(conn):
                say(line)
            if run.dag_id == "turnover_features" and run.succeeded:
                for line in replay_check_lines(warehouse_url):
                    say(line)
        after = table_fingerprint(conn)
        say("")
        if before and before == after:
            say(
                f"rerun: identical — the {len(after)} tables of raw, core, mart and audit are as before this "
                "run (run bookkeeping left out: run logs, load and run ids, load times)"
            )
        elif before:
            changed = sorted(t for t in after.keys() | before.keys() if before.get(t) != after.get(t))
            say(f"rerun: CHANGED — tables that differ from before this run: {', '.join(changed)}")
        for line in report_lines(conn):
            say(line)
        for line in kpi_lines(conn):  # after the rerun check: today's measurement changes as the day goes on
            say(line)
        say(f"Logs: {(DEMO_DIR / 'logs').relative_to(BUNDLE_ROOT)}/   Landed files: .demo/landing/")
        say(f"Total: {time.monotonic() - started:.0f} s")
        say("=" * 100)
    failed = [r.dag_id for r in runs if not r.succeeded]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
