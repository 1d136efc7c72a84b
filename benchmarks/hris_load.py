"""HRIS load benchmark (issue 3): one large employees file through the bundle's real path.

    PYTHONPATH=plugins:. .venv/bin/python benchmarks/hris_load.py [--rows 1000000] [--keep]

In one run, on this machine:

1. Streams a realistic employees CSV (HRIS contract, CRLF, RFC 4180 quoting, ~5% leavers)
   and its `.ctl` sidecar to `ROOT/outbound/hris/employees_20260105.csv`, where ROOT is a
   root-owned 0700 temporary directory (the sample server's "bind" chroot strategy).
2. Starts the real sshd (`SftpSampleServer`) and points `AIRFLOW_CONN_HRIS_SFTP` at it (pinned
   host key), with Airflow configured for a throwaway home.
3. Creates and migrates fresh warehouse databases, then runs `list_pending_files` +
   `ingest_file` in a CHILD process (download over SFTP, sha256, COPY into staging, the GX
   gate, partition attach): wall time and the child's own peak RSS (`os.wait4`). A second,
   instrumented child runs the same `ingest_file` with the phase functions wrapped (timing,
   per-phase peak RSS, and every SQL statement GX sends).
4. Baselines: `psql \\copy` into a plain 19-text-column table (and into a table shaped like the
   bundle's staging table), and the OpenSSH `sftp` client vs the Airflow `SFTPHook.retrieve_file`
   the bundle uses, on the same file and server (plus the hook with SSH compression off).
5. Diagnostic what-if (not the bundle's code path): on the loaded file, rebuilds the gate's check
   table and compares GX reading it as the bundle does (custom query asset) with a table asset.
6. Prints markdown tables. Stops the server, drops the databases and deletes the generated
   files (unless --keep).

Units: file sizes and throughput in MB = 10^6 bytes; memory in MiB.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from _harness import (
    REPO_ROOT,
    Warehouse,
    airflow_child_env,
    code_version,
    machine_description,
    markdown_table,
    mib,
    on_path,
    proc_status_kib,
    reset_peak_rss,
    run_child,
    write_child_result,
)

from turnover_signals.hris.contract import EMPLOYEE_COLUMNS

FILE_NAME = "employees_20260105.csv"
REMOTE_DIR = "/outbound/hris"
REMOTE_PATH = f"{REMOTE_DIR}/{FILE_NAME}"
SNAPSHOT_DATE = date(2026, 1, 5)
WAREHOUSE = Warehouse("HRIS_BENCH_ADMIN_DSN")
PSQL_ARGS = ["-h", "127.0.0.1", "-p", "5432", "-U", "postgres"]

GOAL_RATIO_BUNDLE_PSQL = 2.5
GOAL_RATIO_HOOK_SFTP = 0.7
GOAL_PEAK_RSS_MIB = 600

# The employees file as the contract names its columns, without the optional LMS user id.
HEADER = tuple(column for column in EMPLOYEE_COLUMNS if column != "lms_user_id")

# -- the synthetic employees file --------------------------------------------------------------

FIRST_NAMES = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Priya",
    "Arjun",
    "Wei",
    "Mei",
    "Hiroshi",
    "Yuki",
    "Olga",
    "Dmitri",
    "Fatima",
    "Omar",
    "Aisha",
    "Kwame",
    "Ngozi",
    "Lars",
    "Ingrid",
    "Mateo",
    "Lucía",
    "José",
    "Zoë",
    "Anne-Marie",
    "Seán",
    "Siobhán",
    "François",
    "Chloé",
    "Jürgen",
    "Søren",
    "Łukasz",
    "Agnieszka",
    "Thanh",
    "Minh",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Patel",
    "Shah",
    "Kumar",
    "Chen",
    "Wang",
    "Tanaka",
    "Sato",
    "Ivanova",
    "Petrov",
    "Haddad",
    "Okafor",
    "Mensah",
    "Nielsen",
    "Larsen",
    "O'Brien",
    "O'Connor",
    "McCarthy",
    "García López",
    "Müller",
    "Schäfer",
    "Dubois",
    "Lefèvre",
    "Kowalski",
    "Nowak",
    "Nguyen",
    "Tran",
    "van der Berg",
    "De Luca",
    "Smith, Jr.",
    "Jones-Whitaker",
)
DEPARTMENTS = (
    "Finance",
    "Engineering",
    "Sales, EMEA",
    "Sales, Americas",
    "Marketing",
    "Human Resources",
    "Research & Development",
    "Customer Success",
    "Legal",
    "Operations",
    "IT",
    "Procurement",
)
JOB_ROLES = (
    "Analyst",
    "Senior Analyst",
    "Engineer",
    "Senior Engineer",
    "Staff Engineer",
    "Manager",
    "Senior Manager",
    "Director",
    "Account Executive",
    "Sales Development Representative",
    "Customer Success Manager",
    "Recruiter",
    "Accountant",
    "Paralegal",
    "Product Manager",
    "Data Scientist",
    "Support Specialist",
    "Buyer",
)
LOCATIONS = (
    ("London", "GBP"),
    ("Manchester", "GBP"),
    ("New York", "USD"),
    ("Austin", "USD"),
    ("Toronto", "CAD"),
    ("Berlin", "EUR"),
    ("Paris", "EUR"),
    ("Madrid", "EUR"),
    ("Singapore", "SGD"),
    ("Bangalore", "INR"),
)
VOLUNTARY_REASONS = (
    "Resignation",
    "Better opportunity",
    "Relocation, family reasons",
    "Career change",
    "Retirement",
    "Compensation",
    'Left for "startup" role',
    "Return to education",
)
INVOLUNTARY_REASONS = (
    "Performance",
    "Redundancy",
    "Misconduct",
    "Restructuring, role eliminated",
    "End of contract",
)
FTES = ("1.0",) * 9 + ("0.8", "0.6", "0.5")
HIRE_START = date(1995, 1, 2)
HIRE_SPAN_DAYS = (date(2025, 12, 31) - HIRE_START).days
ROWS_PER_WRITE = 20_000


def _email_part(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower().encode("ascii", "ignore").decode()) or "x"


def employee_rows(rows: int, seed: int = 20260105):
    """Yield `rows` employee records (lists in HEADER order), deterministically from `seed`."""
    rng = random.Random(seed)
    email_first = {n: _email_part(n) for n in FIRST_NAMES}
    email_last = {n: _email_part(n) for n in LAST_NAMES}
    for n in range(1, rows + 1):
        first = rng.choice(FIRST_NAMES)
        if rng.random() < 0.001:
            first = f'{first} "{first[:3]}"'  # a nickname in quotes: RFC 4180 doubles them
        last = rng.choice(LAST_NAMES)
        hire = HIRE_START + timedelta(days=rng.randrange(HIRE_SPAN_DAYS))
        level = rng.randint(1, 7)
        location, currency = rng.choice(LOCATIONS)
        term_date = term_type = term_reason = ""
        if rng.random() < 0.05:
            days_employed = (SNAPSHOT_DATE - hire).days
            term_date = (hire + timedelta(days=rng.randint(1, max(days_employed, 1)))).isoformat()
            if rng.random() < 0.7:
                term_type, term_reason, status = "Voluntary", rng.choice(VOLUNTARY_REASONS), "Terminated"
            else:
                term_type, term_reason, status = "Involuntary", rng.choice(INVOLUNTARY_REASONS), "Terminated"
        else:
            status = "Active" if rng.random() < 0.96 else "On Leave"
        yield [
            f"E{n:07d}",
            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            f"{email_first[first.split(' ')[0]]}.{email_last[last]}{n}@northwind.example",
            first,
            last,
            hire.isoformat(),
            term_date,
            term_type,
            term_reason,
            status,
            rng.choice(JOB_ROLES),
            str(level),
            rng.choice(DEPARTMENTS),
            location,
            f"E{rng.randrange(1, n):07d}" if n > 1 else "",
            f"{rng.uniform(22_000, 40_000) * (1 + 0.35 * (level - 1)):.2f}",
            currency,
            rng.choice(FTES),
            "" if rng.random() < 0.04 else str(rng.randint(1, 5)),
        ]


def write_employees_file(directory: Path, rows: int) -> tuple[Path, str, int]:
    """Stream the CSV (CRLF, minimal RFC 4180 quoting) and its `.ctl` sidecar; return path, sha256, bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    digest = hashlib.sha256()
    size = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(HEADER)
    with open(path, "wb") as handle:
        for count, row in enumerate(employee_rows(rows), start=1):
            writer.writerow(row)
            if count % ROWS_PER_WRITE == 0 or count == rows:
                data = buffer.getvalue().encode("utf-8")
                buffer.seek(0)
                buffer.truncate()
                digest.update(data)
                handle.write(data)
                size += len(data)
        if rows == 0:
            data = buffer.getvalue().encode("utf-8")
            digest.update(data)
            handle.write(data)
            size += len(data)
    sha256 = digest.hexdigest()
    (directory / (FILE_NAME + ".ctl")).write_text(
        json.dumps({"rows": rows, "sha256": sha256}), encoding="utf-8"
    )
    return path, sha256, size


# -- small helpers ----------------------------------------------------------------------------


def measure_child(
    mode: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """This script as a child process (`--child mode`); `--t0` lets it time its interpreter's start."""
    return run_child(__file__, mode, ["--t0", repr(time.time()), *args], log_dir, env)


def timed_run(command: list[str], stdin: str | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, input=stdin, text=True, check=True, capture_output=True)
    return time.perf_counter() - started


# -- baselines --------------------------------------------------------------------------------


def psql_baselines(database: str, csv_path: Path, sha256: str) -> dict[str, float]:
    """`\\copy` into a plain 19-text-column table, and into a table shaped like the staging table."""
    columns = ", ".join(f"{c} text" for c in HEADER)
    column_list = ", ".join(HEADER)
    psql = ["psql", *PSQL_ARGS, "-d", database, "-v", "ON_ERROR_STOP=1", "-qc"]
    results: dict[str, float] = {}

    subprocess.run([*psql, f"create table bench_plain ({columns})"], check=True, capture_output=True)
    results["plain"] = timed_run(
        [*psql, f"\\copy bench_plain from '{csv_path}' with (format csv, header true)"]
    )
    subprocess.run([*psql, "drop table bench_plain"], check=True, capture_output=True)

    # What stage_csv_file creates: constant default + CHECK on the partition key, a date default,
    # and COPY with encoding and force_null on every column.
    subprocess.run(
        [
            *psql,
            f"create table bench_staged (source_sha256 text not null default '{sha256}' "
            f"check (source_sha256 = '{sha256}'), snapshot_date date not null default '2026-01-05', "
            f"{columns})",
        ],
        check=True,
        capture_output=True,
    )
    results["staging_shaped"] = timed_run(
        [
            *psql,
            f"\\copy bench_staged ({column_list}) from '{csv_path}' with (format csv, header true, "
            f"encoding 'UTF8', force_null ({column_list}))",
        ]
    )
    subprocess.run([*psql, "drop table bench_staged"], check=True, capture_output=True)
    return results


def sftp_client_download(server, known_hosts: Path, local: Path) -> float:
    command = [
        "sftp",
        "-q",
        "-F",
        "/dev/null",
        "-b",
        "-",
        "-i",
        str(server.client_private_key_path),
        "-P",
        str(server.port),
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        f"{server.username}@{server.host}",
    ]
    seconds = timed_run(command, stdin=f"get {REMOTE_PATH} {local}\n")
    local.unlink()
    return seconds


# -- children ---------------------------------------------------------------------------------


def child_imports(args: argparse.Namespace) -> None:
    """Import costs on their own: GX, then Airflow's SFTP hook, then the bundle's ingest module."""
    started_at = time.time()
    out: dict[str, Any] = {"interpreter_start_s": started_at - args.t0}
    t = time.perf_counter()
    import great_expectations  # noqa: F401

    out["import_gx_s"] = time.perf_counter() - t
    out["rss_after_gx_mib"] = mib(proc_status_kib("VmRSS"))
    t = time.perf_counter()
    from airflow.providers.sftp.hooks.sftp import SFTPHook  # noqa: F401

    out["import_airflow_sftp_s"] = time.perf_counter() - t
    t = time.perf_counter()
    import turnover_signals.hris.ingest  # noqa: F401

    out["import_bundle_s"] = time.perf_counter() - t
    out["rss_after_imports_mib"] = mib(proc_status_kib("VmRSS"))
    write_child_result(args.result_file, out)


def _import_for_ingest(out: dict[str, Any]) -> None:
    t = time.perf_counter()
    import great_expectations  # noqa: F401

    out["import_gx_s"] = time.perf_counter() - t
    t = time.perf_counter()
    from airflow.providers.sftp.hooks.sftp import SFTPHook  # noqa: F401

    out["import_airflow_sftp_s"] = time.perf_counter() - t
    t = time.perf_counter()
    import turnover_signals.config  # noqa: F401
    import turnover_signals.hris.ingest  # noqa: F401

    out["import_bundle_s"] = time.perf_counter() - t
    out["rss_after_imports_mib"] = mib(proc_status_kib("VmRSS"))


def _run_ingest(dsn: str) -> dict[str, Any]:
    from turnover_signals.config import load_config
    from turnover_signals.hris.ingest import ingest_file, list_pending_files

    config = load_config(use_variable=False)
    pending = list_pending_files(config, dsn)
    remote = next(f for f in pending if f["name"] == FILE_NAME)
    return ingest_file(remote, config, dsn=dsn)


def child_bundle(args: argparse.Namespace) -> None:
    """The bundle's path, uninstrumented: list_pending_files then ingest_file."""
    out: dict[str, Any] = {"interpreter_start_s": time.time() - args.t0}
    _import_for_ingest(out)
    t = time.perf_counter()
    out["result"] = _run_ingest(args.dsn)
    out["work_s"] = time.perf_counter() - t
    out["self_peak_rss_mib"] = mib(proc_status_kib("VmHWM"))
    write_child_result(args.result_file, out)


def _short_sql(statement: str, validation_query: str | None) -> str:
    text = statement
    if validation_query:
        text = text.replace(validation_query, "<validation query>")
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= 400 else text[:400] + " …"


def child_phases(args: argparse.Namespace) -> None:
    """The same ingest_file, with its phase functions wrapped: time, peak RSS, and GX's SQL."""
    import sqlalchemy
    from sqlalchemy import event

    out: dict[str, Any] = {"interpreter_start_s": time.time() - args.t0}
    _import_for_ingest(out)

    import great_expectations as gx

    import turnover_signals.hris.ingest as ingest
    import turnover_signals.quality.gate as gate
    from turnover_signals.load import manifest
    from turnover_signals.sources.sftp_hris import HrisSftpSource

    phases: list[dict[str, Any]] = []
    depth = [0]
    can_reset = reset_peak_rss()

    skipped: list[str] = []

    def wrap(owner: Any, attribute: str, label: str) -> None:
        original = getattr(owner, attribute, None)
        if original is None:  # the package changed under the benchmark: say so, do not fail
            skipped.append(f"{getattr(owner, '__name__', owner)}.{attribute}")
            return

        def timed(*a: Any, **kw: Any) -> Any:
            top = depth[0] == 0
            if top and can_reset:
                reset_peak_rss()
            depth[0] += 1
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                depth[0] -= 1
                phases.append(
                    {
                        "phase": label,
                        "seconds": time.perf_counter() - t,
                        "nested": not top,
                        "peak_rss_mib": mib(proc_status_kib("VmHWM")) if top else None,
                    }
                )

        setattr(owner, attribute, timed)

    # The SELECT the gate validates, as ingest_file hands it to run_suite.
    captured_query: dict[str, str | None] = {"text": None}
    original_run_suite = ingest.run_suite

    def remember_query(*a: Any, **kw: Any) -> Any:
        captured_query["text"] = kw.get("query") if "query" in kw else (a[4] if len(a) > 4 else None)
        return original_run_suite(*a, **kw)

    ingest.run_suite = remember_query

    import turnover_signals.quality.hris_suites as hris_suites

    # Top-level phases, in the order ingest_file calls them.
    wrap(ingest, "list_pending_files", "list_pending_files (SFTP listing + manifest lookup)")
    wrap(manifest, "find_by_listing", "manifest: find_by_listing")
    wrap(HrisSftpSource, "read_control", "read_control (.ctl over SFTP)")
    wrap(HrisSftpSource, "stream", "stream: SFTP read + sha256 + COPY into staging, overlapped")
    wrap(ingest, "stage_csv_stream", "  stage_csv_stream (COPY, inside stream)")
    wrap(manifest, "find", "manifest: find")
    wrap(manifest, "find_published_copy", "manifest: find_published_copy")
    wrap(manifest, "previous_good_rows", "manifest: previous_good_rows")
    wrap(hris_suites, "create_metrics_table", "create_metrics_table (one aggregate pass: counts per check)")
    wrap(hris_suites, "hris_metrics_suite", "hris_metrics_suite (build expectations on the counts)")
    wrap(
        ingest, "run_suite", "run_suite (GX gate; fast gate on the counts, row-level suite only if it fails)"
    )
    wrap(hris_suites, "drop_metrics_table", "drop_metrics_table")
    wrap(ingest, "_keep_data_docs_page", "_keep_data_docs_page (move the passing page into Data Docs)")
    # Only a failing fast gate reaches these (never in this benchmark's good file).
    wrap(hris_suites, "hris_file_suite", "hris_file_suite (build expectations)")
    wrap(hris_suites, "create_check_relation", "create_check_relation (bad dates, duplicate ids, check view)")
    wrap(hris_suites, "drop_check_relation", "drop_check_relation")
    wrap(ingest, "_publish", "_publish (attach partition + manifest, one transaction)")
    wrap(ingest, "drop_staged", "drop_staged")
    # Inside run_suite (nested: time only).
    wrap(gx, "get_context", "  gx.get_context (ephemeral context)")
    wrap(gx.ValidationDefinition, "run", "  ValidationDefinition.run (metrics SQL + GX Python)")
    wrap(gate, "summarize_expectation_result", "  summarize_expectation_result")

    statements: list[dict[str, Any]] = []

    @event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    @event.listens_for(sqlalchemy.engine.Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        started = conn.info["bench_started"].pop()
        statements.append({"seconds": time.perf_counter() - started, "statement": statement})

    t = time.perf_counter()
    out["result"] = _run_ingest(args.dsn)
    out["work_s"] = time.perf_counter() - t
    out["self_peak_rss_mib_last_phase"] = mib(proc_status_kib("VmHWM"))
    out["phases"] = phases
    out["peak_reset_supported"] = can_reset
    out["not_wrapped"] = skipped
    query = captured_query["text"]
    out["validation_query"] = query
    out["gx_statements"] = [
        {
            "seconds": s["seconds"],
            "sql": _short_sql(s["statement"], query),
            "reads_validated_relation": bool(query and query in s["statement"]),
            "is_reflection_fallback": bool(query and s["statement"].strip() == query.strip()),
        }
        for s in statements
    ]
    write_child_result(args.result_file, out)


def child_hook_download(args: argparse.Namespace) -> None:
    """SFTPHook.retrieve_file as HrisSftpSource.download calls it (prefetch=True), timed."""
    out: dict[str, Any] = {"interpreter_start_s": time.time() - args.t0}
    t = time.perf_counter()
    from airflow.providers.sftp.hooks.sftp import SFTPHook

    out["import_s"] = time.perf_counter() - t
    hook = SFTPHook(ssh_conn_id="hris_sftp", conn_retry_attempts=1)
    local = Path(args.local)
    reset_peak_rss()
    t = time.perf_counter()
    with hook.get_managed_conn() as sftp:
        out["connect_s"] = time.perf_counter() - t
        transport = sftp.get_channel().get_transport()
        out["negotiated"] = {
            "cipher": transport.remote_cipher,
            "mac": transport.remote_mac,
            "compression": transport.remote_compression,
        }
        t = time.perf_counter()
        if args.stream:
            # The bundle's own read: HrisSftpSource.stream (the provider's async hook, its own SSH
            # connection), hashed as it arrives, bytes discarded instead of COPYed.
            from turnover_signals.config import load_config
            from turnover_signals.hris.ingest import hris_source
            from turnover_signals.load.csv_stage import ByteStream
            from turnover_signals.sources.sftp_hris import RemoteHrisFile

            source = hris_source(load_config(use_variable=False))
            listed = next(f for f in source.list_feed_files() if f.name == FILE_NAME)
            t = time.perf_counter()

            def consume(chunks):
                stream = ByteStream(chunks)
                stream.drain()
                return stream.size_bytes

            out["stream_bytes"] = source.stream(RemoteHrisFile.from_dict(listed.to_dict()), consume)
            out["transfer_s"] = time.perf_counter() - t
            local.write_bytes(b"")
        elif args.max_requests:
            # Diagnostic variant: paramiko's own prefetch with a cap on requests in flight.
            sftp.get(
                REMOTE_PATH, str(local), prefetch=True, max_concurrent_prefetch_requests=args.max_requests
            )
        else:
            hook.retrieve_file(REMOTE_PATH, str(local), prefetch=True)
        out["transfer_s"] = time.perf_counter() - t
    out["bytes"] = local.stat().st_size
    out["download_peak_rss_mib"] = mib(proc_status_kib("VmHWM"))
    local.unlink()
    write_child_result(args.result_file, out)


# What-if probes: NOT the bundle's code. On the file the bundle has just loaded, they rebuild
# the gate's check table with the bundle's own create_check_table and measure the GX gate as the
# bundle runs it (custom query asset) against GX reading the same table as a table asset.


def _gx_statement_recorder() -> list[dict[str, Any]]:
    import sqlalchemy
    from sqlalchemy import event

    statements: list[dict[str, Any]] = []

    @event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    @event.listens_for(sqlalchemy.engine.Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        statements.append(
            {"seconds": time.perf_counter() - conn.info["bench_started"].pop(), "statement": statement}
        )

    return statements


def child_what_if(args: argparse.Namespace) -> None:
    import great_expectations as gx
    import psycopg
    from psycopg import sql

    from turnover_signals.config import load_config
    from turnover_signals.hris.contract import FEEDS, map_header
    from turnover_signals.hris.job_levels import job_level_mapping
    from turnover_signals.load.csv_stage import StagedFile
    from turnover_signals.quality.gate import run_suite
    from turnover_signals.quality.hris_suites import (
        FileChecks,
        allowed_termination_types,
        create_check_relation,
        drop_check_relation,
        hris_file_suite,
    )
    from turnover_signals.warehouse import sqlalchemy_url

    statements = _gx_statement_recorder()
    out: dict[str, Any] = {"gate": {}}
    config = load_config(use_variable=False)
    feed = FEEDS["employees"]
    header = map_header(list(HEADER), feed, {})
    checks = FileChecks(
        control_rows=args.rows,
        previous_good_rows=None,
        volume_min_ratio=0.8,
        volume_max_ratio=1.25,
        allowed_termination_types=allowed_termination_types(config["hris"]["termination_type_mapping"]),
    )

    def new_suite():  # a fresh definition per GX run: GX binds expectation objects to their suite
        return hris_file_suite(feed, header, checks, "%Y-%m-%d")

    url = sqlalchemy_url(dsn=args.dsn)
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        partition = conn.execute(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "join pg_class p on p.oid = i.inhparent where p.relname = 'hris_employee_snapshot'"
        ).fetchone()[0]
        loaded = StagedFile("raw", partition, args.rows)
        t = time.perf_counter()
        conn.execute(sql.SQL("select count(*) from {}").format(loaded.qualified))
        out["full_scan_s"] = time.perf_counter() - t
        t = time.perf_counter()
        check_table = create_check_relation(conn, loaded, feed, header, "%Y-%m-%d", job_level_mapping(config))
        out["create_check_table_s"] = time.perf_counter() - t
        sizes = conn.execute(
            "select pg_total_relation_size(%s::regclass), pg_total_relation_size(%s::regclass)",
            (f"raw.{partition}", f"{check_table.schema}.{check_table.table}"),
        ).fetchone()
        out["loaded_table_mb"], out["check_table_mb"] = sizes[0] / 1e6, sizes[1] / 1e6
        distinct = conn.execute(
            sql.SQL("select count(distinct hire_date), count(distinct termination_date) from {}").format(
                loaded.qualified
            )
        ).fetchone()
        out["distinct_dates"] = {"hire_date": distinct[0], "termination_date": distinct[1]}
    query = sql.SQL("select * from {}").format(check_table.qualified).as_string()

    def measured(label: str, run) -> None:  # noqa: ANN001
        statements.clear()
        reset_peak_rss()
        rss_before = mib(proc_status_kib("VmRSS"))
        t = time.perf_counter()
        success = run()
        out["gate"][label] = {
            "seconds": time.perf_counter() - t,
            "success": success,
            "statements": len(statements),
            "sql_s": sum(s["seconds"] for s in statements),
            "reflection_fallback_s": sum(s["seconds"] for s in statements if s["statement"].strip() == query),
            "peak_rss_increase_mib": mib(proc_status_kib("VmHWM")) - rss_before,
        }

    def gx_table_asset(result_format: str, url_: str) -> bool:
        context = gx.get_context(mode="ephemeral")
        source = context.data_sources.add_sql(name="warehouse", connection_string=url_)
        asset = source.add_table_asset(
            name="checks", table_name=check_table.table, schema_name=check_table.schema
        )
        suite = new_suite()
        gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name))
        for expectation in suite.expectations:
            gx_suite.add_expectation(expectation)
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(
                name="what-if", data=asset.add_batch_definition_whole_table("all"), suite=gx_suite
            )
        )
        return bool(
            definition.run(expectation_parameters=checks.parameters(), result_format=result_format).success
        )

    measured(
        "the bundle's run_suite as it is (custom query asset `select * from <check table>`)",
        lambda: (
            run_suite(
                url,
                new_suite(),
                "what_if",
                "what-if",
                query,
                checks.parameters(),
                config["quality"]["pii_columns"],
            ).success
        ),
    )
    measured(
        "GX table asset on the same check table, BOOLEAN_ONLY", lambda: gx_table_asset("BOOLEAN_ONLY", url)
    )
    jit_off = url + ("&" if "?" in url else "?") + "options=-c%20jit%3Doff"
    measured("same, with jit=off for the GX connection", lambda: gx_table_asset("BOOLEAN_ONLY", jit_off))
    measured(
        "GX table asset, SUMMARY (what a failing file costs again)", lambda: gx_table_asset("SUMMARY", url)
    )
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        drop_check_relation(conn, check_table)  # a view and the small tables it joins
    write_child_result(args.result_file, out)


CHILDREN = {
    "what-if": child_what_if,
    "imports": child_imports,
    "bundle": child_bundle,
    "phases": child_phases,
    "hook-download": child_hook_download,
}

# -- the parent: set-up, measurements, report -------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    on_path()
    airflow_home = Path(tempfile.mkdtemp(prefix="hris-bench-airflow-"))
    # Airflow reads its configuration at first import: set before anything imports it (children inherit).
    os.environ.update(
        airflow_child_env(airflow_home) | {"AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags")}
    )

    from turnover_demo.sample_servers.sftp_server import SftpSampleServer
    from turnover_signals.warehouse import migrate, warehouse_connection

    report: dict[str, Any] = {
        "rows": args.rows,
        "machine": machine_description(WAREHOUSE.admin_dsn),
        "code": code_version(),
    }
    sftp_root = Path(tempfile.mkdtemp(prefix="hris-bench-sftp-"))  # 0700, root-owned: "bind" chroot
    scratch = Path(tempfile.mkdtemp(prefix="hris-bench-scratch-"))
    tag = uuid.uuid4().hex[:8]
    databases: list[str] = []
    server = None
    try:
        print(f"generating {args.rows:,} rows under {sftp_root} ...", flush=True)
        t = time.perf_counter()
        csv_path, sha256, size = write_employees_file(sftp_root / "outbound" / "hris", args.rows)
        report["generate_s"] = time.perf_counter() - t
        report["file_bytes"] = size
        report["file_mb"] = size / 1e6
        print(f"  {size / 1e6:.1f} MB in {report['generate_s']:.1f} s (sha256 {sha256[:12]}…)", flush=True)

        server = SftpSampleServer(sftp_root).start()
        os.environ.update(server.airflow_connection_env())
        report["sftp"] = {
            "backend": server.backend,
            "chroot_strategy": server.chroot_strategy,
            "port": server.port,
        }
        print(f"sftp: {server.backend} on port {server.port} (chroot {server.chroot_strategy})", flush=True)
        known_hosts = scratch / "known_hosts"
        known_hosts.write_text(f"[{server.host}]:{server.port} {server.host_public_key}\n", encoding="ascii")

        template = f"hris_bench_{tag}_template"
        WAREHOUSE.create(template)
        databases.append(template)
        with warehouse_connection(dsn=WAREHOUSE.dsn_for(template)) as conn:
            migrate(conn)

        def fresh_database(purpose: str) -> str:
            name = f"hris_bench_{tag}_{purpose}"
            WAREHOUSE.create(name, template=template)
            databases.append(name)
            return name

        # Baseline (a): psql \copy.
        print("psql \\copy baselines ...", flush=True)
        report["psql_copy_s"] = psql_baselines(fresh_database("psql"), csv_path, sha256)
        print(f"  {report['psql_copy_s']}", flush=True)

        # Baseline (b): the OpenSSH sftp client vs SFTPHook.retrieve_file, alternated.
        print(f"downloads: sftp client vs SFTPHook, {args.download_rounds} rounds ...", flush=True)
        client_s: list[float] = []
        hook_runs: list[dict[str, Any]] = []
        stream_runs: list[dict[str, Any]] = []
        for _ in range(args.download_rounds):
            client_s.append(sftp_client_download(server, known_hosts, scratch / "client.csv"))
            hook_runs.append(measure_child("hook-download", ["--local", str(scratch / "hook.csv")], scratch))
            stream_runs.append(
                measure_child("hook-download", ["--local", str(scratch / "hook.csv"), "--stream"], scratch)
            )
        report["download"] = {"sftp_client_s": client_s, "hook": hook_runs, "stream": stream_runs}
        # Diagnostic: the same hook with SSH compression off (SSHHook compresses unless the
        # connection extra says "compress": false; the sftp client does not compress by default).
        uncompressed = server.airflow_connection()
        uncompressed["extra"]["compress"] = False
        report["download"]["hook_uncompressed"] = [
            measure_child(
                "hook-download",
                ["--local", str(scratch / "hook.csv")],
                scratch,
                env={"AIRFLOW_CONN_HRIS_SFTP": json.dumps(uncompressed)},
            )
            for _ in range(args.download_rounds)
        ]
        if args.prefetch_cap:
            report["download"]["hook_capped"] = measure_child(
                "hook-download",
                ["--local", str(scratch / "hook.csv"), "--max-requests", str(args.prefetch_cap)],
                scratch,
            )
        print(
            f"  client {[round(s, 2) for s in client_s]} s; hook transfer "
            f"{[round(h['transfer_s'], 2) for h in hook_runs]} s",
            flush=True,
        )

        print("import costs ...", flush=True)
        report["imports"] = measure_child("imports", [], scratch)

        print("bundle end to end (child process) ...", flush=True)
        bundle_runs = []
        for run in range(args.bundle_runs):
            dsn = WAREHOUSE.dsn_for(fresh_database(f"bundle{run}"))
            bundle_runs.append(measure_child("bundle", ["--dsn", dsn], scratch))
            result = bundle_runs[-1]["result"]
            if result["status"] != "loaded" or result["rows_loaded"] != args.rows:
                raise RuntimeError(f"the bundle did not load the file: {result}")
            import psycopg

            with psycopg.connect(dsn) as conn:
                loaded = conn.execute("select count(*) from raw.hris_employee_snapshot").fetchone()[0]
            if loaded != args.rows:
                raise RuntimeError(f"raw.hris_employee_snapshot holds {loaded} rows, expected {args.rows}")
            print(
                f"  wall {bundle_runs[-1]['process_wall_s']:.1f} s, work {bundle_runs[-1]['work_s']:.1f} s, "
                f"peak {bundle_runs[-1]['peak_rss_mib']:.0f} MiB",
                flush=True,
            )
        report["bundle"] = bundle_runs
        if args.what_if:
            print("what-if probes on the loaded file ...", flush=True)
            report["what_if"] = measure_child(
                "what-if",
                ["--dsn", dsn, "--rows", str(args.rows)],
                scratch,
            )

        print("instrumented run (phases) ...", flush=True)
        report["phases"] = measure_child(
            "phases", ["--dsn", WAREHOUSE.dsn_for(fresh_database("phases"))], scratch
        )
        report["machine"]["loadavg_end"] = os.getloadavg()
        report["date"] = time.strftime("%Y-%m-%d")
        return report
    finally:
        if server is not None:
            server.close()
        for name in reversed(databases):
            try:
                WAREHOUSE.drop(name)
            except Exception as exc:  # noqa: BLE001 - report and keep cleaning up
                print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(airflow_home, ignore_errors=True)
        if args.keep:
            print(f"kept the generated files under {sftp_root}", flush=True)
        else:
            shutil.rmtree(sftp_root, ignore_errors=True)


def render(report: dict[str, Any]) -> str:
    rows = report["rows"]
    size_mb = report["file_mb"]
    bundle = min(report["bundle"], key=lambda r: r["process_wall_s"])
    startup = (
        bundle["interpreter_start_s"]
        + bundle["import_gx_s"]
        + bundle["import_airflow_sftp_s"]
        + bundle["import_bundle_s"]
    )
    psql_s = report["psql_copy_s"]["plain"]
    client_s = median(report["download"]["sftp_client_s"])
    hooks = report["download"]["hook"]
    hook_total_s = median([h["connect_s"] + h["transfer_s"] for h in hooks])
    hook_transfer_s = median([h["transfer_s"] for h in hooks])
    client_mbs = size_mb / client_s
    hook_mbs = size_mb / hook_total_s
    streams = report["download"]["stream"]
    stream_mbs = size_mb / median([h["transfer_s"] for h in streams])
    ratio_e2e = bundle["process_wall_s"] / psql_s
    ratio_work = bundle["work_s"] / psql_s
    ratio_hook = hook_mbs / client_mbs
    ratio_stream = stream_mbs / client_mbs
    verdict = lambda ok: "met" if ok else "**missed**"  # noqa: E731

    lines = [
        f"### HRIS load, {rows:,} rows ({report['date']}, {report['machine']['nproc']} cores, "
        f"{report['machine']['ram_gib']} GiB RAM)",
        "",
        markdown_table(
            [
                "rows",
                "file MB",
                "bundle wall s incl. start-up",
                "excl. start-up",
                "peak RSS MiB",
                "psql \\copy s",
                "ratio incl. start-up",
                "ratio excl. start-up (goal ≤ 2.5)",
                "bundle stream read MB/s",
                "retrieve_file MB/s",
                "sftp client MB/s",
                "ratio stream/sftp (goal ≥ 0.7)",
                "ratio retrieve_file/sftp",
            ],
            [
                [
                    f"{rows:,}",
                    f"{size_mb:.1f}",
                    f"{bundle['process_wall_s']:.1f}",
                    f"{bundle['work_s']:.1f}",
                    f"{bundle['peak_rss_mib']:.0f}",
                    f"{psql_s:.2f}",
                    f"{ratio_e2e:.1f} ({verdict(ratio_e2e <= GOAL_RATIO_BUNDLE_PSQL)})",
                    f"{ratio_work:.2f} ({verdict(ratio_work <= GOAL_RATIO_BUNDLE_PSQL)})",
                    f"{stream_mbs:.0f}",
                    f"{hook_mbs:.0f}",
                    f"{client_mbs:.0f}",
                    f"{ratio_stream:.2f} ({verdict(ratio_stream >= GOAL_RATIO_HOOK_SFTP)})",
                    f"{ratio_hook:.2f}",
                ]
            ],
            align="r" * 13,
        ),
        "",
        "- Stream read = the bundle's own download path (`HrisSftpSource.stream`: the provider's async hook "
        "`SFTPHookAsync` (asyncssh), 1 MiB reads split into parallel requests, sha256 on the way), median "
        f"of {len(streams)}, its SSH connection included, bytes discarded instead of COPYed; retrieve_file = "
        "the sync `SFTPHook.retrieve_file` (paramiko) to a local file (incl. connect). Both verify the "
        "pinned host key.",
        f"- Bundle wall excluding interpreter and import start-up ({startup:.1f} s: interpreter "
        f"{bundle['interpreter_start_s']:.2f} s, GX import {bundle['import_gx_s']:.1f} s, Airflow SFTP hook "
        f"import {bundle['import_airflow_sftp_s']:.1f} s, bundle modules {bundle['import_bundle_s']:.2f} s): "
        f"{bundle['work_s']:.1f} s, ratio to psql {ratio_work:.1f}.",
        f"- GX import on its own (fresh interpreter): {report['imports']['import_gx_s']:.1f} s, RSS after it "
        f"{report['imports']['rss_after_gx_mib']:.0f} MiB; RSS after all imports "
        f"{report['imports']['rss_after_imports_mib']:.0f} MiB.",
        f"- Code measured: {report['code']}.",
        f"- Machine: {report['machine']['cpu']}, "
        f"PostgreSQL {report['machine']['postgres']['server_version']}, Python "
        f"{report['machine']['python']}; load average (1/5/15 min) at start "
        f"{'/'.join(f'{x:.1f}' for x in report['machine']['loadavg_start'])}, at end "
        f"{'/'.join(f'{x:.1f}' for x in report['machine']['loadavg_end'])} (the machine is shared).",
        f"- Peak RSS {bundle['peak_rss_mib']:.0f} MiB (goal < {GOAL_PEAK_RSS_MIB}: "
        f"{verdict(bundle['peak_rss_mib'] < GOAL_PEAK_RSS_MIB)}).",
        f"- psql \\copy into a table shaped like the staging table (constant default + CHECK, date default, "
        f"force_null on all columns): {report['psql_copy_s']['staging_shaped']:.2f} s.",
        f"- Downloads (median of {len(hooks)}): sftp client {client_s:.2f} s per file (whole process); hook "
        f"{hook_total_s:.2f} s incl. SSH connect ({hook_transfer_s:.2f} s transfer only, "
        f"{size_mb / hook_transfer_s:.0f} MB/s), hook download peak RSS "
        f"{max(h['peak_rss_mib'] for h in hooks):.0f} MiB.",
    ]
    uncompressed = report["download"].get("hook_uncompressed")
    if uncompressed:
        unc_s = median([h["connect_s"] + h["transfer_s"] for h in uncompressed])
        lines.append(
            f"- Negotiated by the hook: {hooks[0]['negotiated']}. Diagnostic: the same hook with the "
            f"connection extra `compress: false`: {unc_s:.2f} s incl. connect ({size_mb / unc_s:.0f} MB/s, "
            f"ratio to the sftp client {size_mb / unc_s / client_mbs:.2f}), negotiated "
            f"{uncompressed[0]['negotiated']}."
        )
    capped = report["download"].get("hook_capped")
    if capped:
        lines.append(
            f"- Diagnostic: paramiko get with max_concurrent_prefetch_requests={report['prefetch_cap']}: "
            f"{capped['transfer_s']:.2f} s transfer, download peak {capped['download_peak_rss_mib']:.0f} MiB "
            f"(uncapped: {max(h['download_peak_rss_mib'] for h in hooks):.0f} MiB)."
        )

    phases = report["phases"]
    lines += [
        "",
        f"#### Phase breakdown ({rows:,} rows, instrumented run of the same `ingest_file`)",
        "",
    ]
    work = phases["work_s"]
    merged: dict[str, dict[str, Any]] = {}
    for phase in phases["phases"]:
        label = phase["phase"] + (
            " (inside list_pending_files)" if phase["nested"] and not phase["phase"].startswith("  ") else ""
        )
        entry = merged.setdefault(
            label, {"seconds": 0.0, "calls": 0, "nested": phase["nested"], "peak": None}
        )
        entry["seconds"] += phase["seconds"]
        entry["calls"] += 1
        if phase["peak_rss_mib"] is not None:
            entry["peak"] = max(entry["peak"] or 0, phase["peak_rss_mib"])
    top_total = sum(e["seconds"] for e in merged.values() if not e["nested"])
    startup_phases = (
        phases["interpreter_start_s"]
        + phases["import_gx_s"]
        + phases["import_airflow_sftp_s"]
        + phases["import_bundle_s"]
    )
    phase_rows = [
        [
            name + (f" ×{entry['calls']}" if entry["calls"] > 1 else ""),
            f"{entry['seconds']:.2f}",
            f"{100 * entry['seconds'] / work:.0f}%",
            f"{entry['peak']:.0f}" if entry["peak"] is not None else "",
        ]
        for name, entry in merged.items()
    ]
    phase_rows += [
        [
            "other (temp dir clean-up, connections, config)",
            f"{work - top_total:.2f}",
            f"{100 * (work - top_total) / work:.0f}%",
            "",
        ],
        ["**total work (excl. start-up)**", f"**{work:.2f}**", "100%", ""],
        [
            f"start-up: interpreter + imports (GX {phases['import_gx_s']:.1f} s)",
            f"{startup_phases:.2f}",
            "",
            f"{phases['rss_after_imports_mib']:.0f} (RSS after)",
        ],
    ]
    lines.append(markdown_table(["phase", "s", "share of work", "peak RSS MiB during phase"], phase_rows))

    statements = phases["gx_statements"]
    scans = [s for s in statements if s["reads_validated_relation"]]
    fallback = [s for s in statements if s["is_reflection_fallback"]]
    lines += [
        "",
        f"GX sent {len(statements)} SQL statements ({sum(s['seconds'] for s in statements):.2f} s in the "
        f"database), {len(scans)} of which read the validated relation "
        f"({sum(s['seconds'] for s in scans):.2f} s); {len(fallback)} is GX's column-reflection fallback, "
        "which runs the whole query and fetches every row into the worker just to learn the column names "
        f"({sum(s['seconds'] for s in fallback):.2f} s). Slowest:",
        "",
        markdown_table(
            ["s", "statement (`<validation query>` = the SELECT the gate validates)"],
            (
                [f"{s['seconds']:.2f}", f"`{s['sql'][:300].replace('|', '∣')}`"]
                for s in sorted(statements, key=lambda s: -s["seconds"])[:12]
            ),
            align="rl",
        ),
    ]
    what_if = report.get("what_if")
    if what_if:
        lines += [
            "",
            f"#### What-if ({rows:,} rows; diagnostic GX runs "
            "on the loaded file, not the bundle's code path)",
            "",
            f"One plain scan of the loaded table {what_if['full_scan_s']:.2f} s; the bundle's "
            f"`create_check_table` on it {what_if['create_check_table_s']:.2f} s (loaded table "
            f"{what_if['loaded_table_mb']:.0f} MB, check table {what_if['check_table_mb']:.0f} MB; distinct "
            f"dates: {what_if['distinct_dates']}).",
            "",
            markdown_table(
                [
                    "gate variant, same check table",
                    "s",
                    "SQL statements",
                    "s in SQL",
                    "of which reflection fallback s",
                    "peak RSS increase MiB",
                    "success",
                ],
                (
                    [
                        label,
                        f"{gate['seconds']:.2f}",
                        gate["statements"],
                        f"{gate['sql_s']:.2f}",
                        f"{gate['reflection_fallback_s']:.2f}",
                        f"{gate['peak_rss_increase_mib']:.0f}",
                        gate["success"],
                    ]
                    for label, gate in what_if["gate"].items()
                ),
                align="lrrrrrl",
            ),
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated CSV and .ctl")
    parser.add_argument(
        "--download-rounds", type=int, default=3, help="sftp client / hook downloads, alternated"
    )
    parser.add_argument(
        "--bundle-runs", type=int, default=1, help="end-to-end runs (the fastest is reported)"
    )
    parser.add_argument(
        "--prefetch-cap",
        type=int,
        default=0,
        help="also time paramiko get with max_concurrent_prefetch_requests=N (diagnostic)",
    )
    parser.add_argument(
        "--no-what-if",
        dest="what_if",
        action="store_false",
        help="skip the diagnostic what-if GX runs (query asset vs table asset on the check table)",
    )
    parser.add_argument("--json-out", help="also write the raw measurements here")
    # Internal: this script re-runs itself as the measured child process.
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--local", help=argparse.SUPPRESS)
    parser.add_argument("--max-requests", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--stream", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        CHILDREN[args.child](args)
        return 0
    report = run_benchmark(args)
    report["prefetch_cap"] = args.prefetch_cap
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print()
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
