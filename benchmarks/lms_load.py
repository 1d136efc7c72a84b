"""LMS extraction benchmark (issue 4): xAPI statements from the sample LRS into PostgreSQL.

    PYTHONPATH=plugins:. .venv/bin/python benchmarks/lms_load.py [--statements 1000000 [200000 ...]]
        [--page-size 500] [--readme] [--json-out FILE] [--keep]

Goal (issue 4): 1,000,000 statements served by the sample LRS on loopback in pages of 500, loaded
end to end at no less than 0.7x the statements/s of a bare client that only pages through the same
server in the same run, with peak memory flat in N.

For every N given, in one run:

1. Streams N xAPI 1.0.3 statements to `DATA/lms/statements.jsonl` (uuid ids, an actor with
   exactly one identifier - 90% `account`, 10% `mbox` -, ADL verbs, course activities
   `https://lms.northwind.example/courses/C-nnn`, `result` on completed/passed/failed,
   `context.registration`, `timestamp` and strictly increasing `stored` in ISO 8601 with 'Z'; 2% are
   stored days after their timestamp) and an empty `DATA/lms/users.jsonl`.
2. Starts `LmsSampleServer(DATA, max_page_size=page_size)` in this (parent) process; its start-up
   (JSONL -> SQLite) is timed on its own and is part of no measurement.
3. Bare client, in a child process: `XapiClient(base_url=.../xapi, auth=BasicAuth("lrs", ...))`,
   `iter_statement_pages(since=1970-01-01Z, limit=page_size)` over every page, counting
   statements. Run before and after the end-to-end run; the reference is their mean. A raw
   `http.client` loop that follows `more` without parsing JSON shows what the server alone allows.
   Once more after the end-to-end run, the same client with `parse_statements=False` (pages split and
   their ids read, statements left unparsed, as the loader reads them): reported beside the reference.
4. End to end, in a child process with Airflow pointed at a throwaway home: a freshly created and
   migrated database, then `extract_statements(config, dsn=..., client=XapiClient(...))` with
   `statements_page_limit = page_size`. Phases are timed without changing the package: the
   `StatementExtraction`, `ChunkWriter` and `ChunkPublisher` methods, `run_suite`, `apply_voids`
   and every SQL statement sent through psycopg are wrapped (phase stacks per thread: the chunk
   publisher overlaps the fetch), and the client's page iterator is wrapped to split network + JSON
   decoding from the staging work. Peak RSS is the child's own (os.wait4), with a sampler
   thread recording which phase reached it. Counts in `raw.lms_statement` / `core.lms_activity`
   are verified afterwards.
Prints markdown tables; `--readme` also writes them to the "LMS extraction (issue 4)" section of
benchmarks/README.md (replacing that section only), and `--from-json FILE [--readme]` re-renders a
run saved with `--json-out`. Stops the server, drops the databases and deletes the generated data.

Before starting it waits (30 s polls, up to 20 minutes) until no other benchmark
(`benchmarks/hris_load.py`, `synth_memory.py`) is running, and records any it had to run beside.
Units: memory in MiB (2^20 bytes), sizes in MB (10^6 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _harness import (
    Warehouse,
    airflow_child_env,
    machine_description,
    markdown_table,
    mib,
    package_fingerprint,
    proc_status_kib,
    run_child,
    write_child_result,
    write_readme_section,
)

SECTION_TITLE = "LMS extraction (issue 4)"
WAREHOUSE = Warehouse("LMS_BENCH_ADMIN_DSN")
LRS_LOGIN, LRS_PASSWORD = "lrs", "lrs-secret"
GOAL_RATIO = 0.5  # issue 18 point 5 (issue 4 asked 0.7)
OTHER_BENCHMARKS = "benchmarks/hris_load.py|synth_memory.py"
QUIET_POLL_SECONDS = 30
QUIET_MAX_WAIT_SECONDS = 20 * 60

# -- the synthetic statements ----------------------------------------------------------------

HOME_PAGE = "https://lms.northwind.example"
ADL = "http://adlnet.gov/expapi/verbs/"
VERB_WEIGHTS = (("registered", 20), ("launched", 40), ("completed", 20), ("passed", 12), ("failed", 8))
FIRST_NAMES = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "Priya",
    "Arjun",
    "Wei",
    "Mei",
    "Olga",
    "Dmitri",
    "Fatima",
    "Omar",
    "Kwame",
    "Ngozi",
    "Lars",
    "Ingrid",
    "Mateo",
    "Lucía",
    "Zoë",
    "Seán",
    "François",
    "Jürgen",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Garcia",
    "Patel",
    "Chen",
    "Tanaka",
    "Ivanova",
    "Okafor",
    "Nielsen",
    "O'Brien",
    "Müller",
    "Dubois",
    "Kowalski",
    "Nguyen",
    "van der Berg",
    "De Luca",
    "Jones-Whitaker",
)
COURSE_TOPICS = (
    "Information Security Awareness",
    "Code of Conduct",
    "Data Protection (GDPR)",
    "Leading Teams",
    "Advanced Excel",
    "Negotiation Skills",
    "Python for Analysts",
    "Customer Empathy",
    "Health & Safety",
    "Anti-Bribery",
    "Project Management Basics",
    "Giving Feedback",
)
LEARNERS = 40_000
COURSES = 400
STORED_START = datetime(2024, 1, 1)  # naive UTC; every time is written with 'Z'
LINES_PER_WRITE = 10_000


def _json_text(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def statement_lines(count: int, seed: int = 20260104):
    """Yield `count` xAPI statements as JSON lines, in strictly increasing `stored` order."""
    rng = random.Random(seed)
    verbs = [verb for verb, weight in VERB_WEIGHTS for _ in range(weight)]
    verb_json = {v: f'{{"id":"{ADL}{v}","display":{{"en-US":"{v}"}}}}' for v, _ in VERB_WEIGHTS}
    course_json = [
        f'{{"objectType":"Activity","id":"{HOME_PAGE}/courses/C-{n:03d}","definition":{{"name":{{"en-US":'
        f"{_json_text(f'{COURSE_TOPICS[n % len(COURSE_TOPICS)]} ({n // len(COURSE_TOPICS) + 1})')}}},"
        f'"type":"http://adlnet.gov/expapi/activities/course"}}}}'
        for n in range(1, COURSES + 1)
    ]
    learners = []
    for n in range(1, LEARNERS + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        name = _json_text(f"{first} {last}")
        local = re.sub(r"[^a-z]", "", f"{first}.{last}".lower().encode("ascii", "ignore").decode())
        learners.append(
            (
                f'{{"objectType":"Agent","name":{name},"account":{{"homePage":"{HOME_PAGE}","name":"U{n:06d}"}}}}',
                f'{{"objectType":"Agent","name":{name},"mbox":"mailto:{local}{n}@northwind.example"}}',
            )
        )
    stored_ms = 0
    for _ in range(count):
        stored_ms += rng.randint(1, 40_000)  # ~20 s apart on average: N = 10^6 spans about 8 months
        stored = STORED_START + timedelta(milliseconds=stored_ms)
        if rng.random() < 0.02:  # offline sync: the LRS learned about it days later
            occurred = stored - timedelta(milliseconds=rng.randint(86_400_000, 9 * 86_400_000))
        else:
            occurred = stored - timedelta(milliseconds=rng.randint(50, 30_000))
        account, mbox = learners[rng.randrange(LEARNERS)]
        actor = mbox if rng.random() < 0.10 else account
        verb = rng.choice(verbs)
        result = ""
        if verb == "completed":
            result = (
                f',"result":{{"completion":true,"duration":"PT{rng.randint(3, 95)}M{rng.randint(0, 59)}S"}}'
            )
        elif verb in ("passed", "failed"):
            raw = rng.randint(60, 100) if verb == "passed" else rng.randint(10, 59)
            result = (
                f',"result":{{"score":{{"scaled":{raw / 100},"raw":{raw},"min":0,"max":100}},'
                f'"success":{"true" if verb == "passed" else "false"},"completion":true,'
                f'"duration":"PT{rng.randint(5, 60)}M"}}'
            )
        yield (
            f'{{"id":"{uuid.UUID(int=rng.getrandbits(128), version=4)}","actor":{actor},'
            f'"verb":{verb_json[verb]},"object":{course_json[rng.randrange(COURSES)]}{result},'
            f'"context":{{"registration":"{uuid.UUID(int=rng.getrandbits(128), version=4)}",'
            f'"platform":"Northwind LMS"}},'
            f'"timestamp":"{occurred.isoformat(timespec="milliseconds")}Z",'
            f'"stored":"{stored.isoformat(timespec="milliseconds")}Z","version":"1.0.3"}}\n'
        )


def write_statements(data_dir: Path, count: int) -> tuple[Path, int]:
    """Stream the statements to DATA/lms/statements.jsonl (and an empty users.jsonl); return path, bytes."""
    lms_dir = data_dir / "lms"
    lms_dir.mkdir(parents=True, exist_ok=True)
    (lms_dir / "users.jsonl").write_text("", encoding="utf-8")
    path = lms_dir / "statements.jsonl"
    chunk: list[str] = []
    size = 0
    with open(path, "w", encoding="utf-8") as handle:
        for line in statement_lines(count):
            chunk.append(line)
            if len(chunk) >= LINES_PER_WRITE:
                text = "".join(chunk)
                size += len(text.encode("utf-8"))
                handle.write(text)
                chunk = []
        text = "".join(chunk)
        size += len(text.encode("utf-8"))
        handle.write(text)
    return path, size


# -- small helpers ----------------------------------------------------------------------------


def other_benchmarks() -> list[str]:
    found = subprocess.run(["pgrep", "-af", OTHER_BENCHMARKS], capture_output=True, text=True).stdout
    own = {str(os.getpid())}
    return [line for line in found.splitlines() if line.split(" ", 1)[0] not in own and "pgrep" not in line]


def wait_until_quiet(no_wait: bool) -> dict[str, Any]:
    """Poll every 30 s, up to 20 minutes, until no other benchmark runs; say what we waited for."""
    started = time.monotonic()
    seen: list[str] = []
    while not no_wait:
        running = other_benchmarks()
        if not running:
            return {"waited_s": time.monotonic() - started, "ran_beside": [], "seen_while_waiting": seen}
        seen = sorted(set(seen) | set(running))
        if time.monotonic() - started >= QUIET_MAX_WAIT_SECONDS:
            break
        print(f"waiting for other benchmarks to finish: {running}", flush=True)
        time.sleep(QUIET_POLL_SECONDS)
    return {
        "waited_s": time.monotonic() - started,
        "ran_beside": other_benchmarks(),
        "seen_while_waiting": seen,
    }


class ContentionWatch:
    """Samples, every 5 s, whether another benchmark runs and the 1-minute load average; also
    per measured child (`begin` / `end`), so a report can say which figures were contended."""

    active: ContentionWatch | None = None

    def __init__(self) -> None:
        self.others: set[str] = set()
        self.loads: list[float] = []
        self.window_others: set[str] = set()
        self.window_loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="contention-watch")

    def _sample(self) -> None:
        running = other_benchmarks()
        load = os.getloadavg()[0]
        self.others.update(running)
        self.loads.append(load)
        self.window_others.update(running)
        self.window_loads.append(load)

    def _run(self) -> None:
        while not self._stop.wait(5):
            self._sample()

    def window(self) -> Callable[[], dict[str, Any]]:
        """Start a measured child's window; call what it returns at the child's end."""
        self.window_others, self.window_loads = set(), []
        self._sample()

        def end() -> dict[str, Any]:
            self._sample()
            return {"ran_beside": sorted(self.window_others), "loadavg_max": max(self.window_loads)}

        return end

    def __enter__(self) -> ContentionWatch:
        ContentionWatch.active = self
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        ContentionWatch.active = None
        self._stop.set()
        self._thread.join()


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used so far by the local PostgreSQL server: its live processes, plus what the postmaster
    collected from backends that have exited (cutime + cstime). None where /proc cannot tell (not Linux, or
    the server runs elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, found_postmaster = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # exited meanwhile
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if name != "postgres" and not name.startswith("postgres:"):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if fields[1] == "1" or Path(f"/proc/{fields[1]}/comm").read_text().strip() != "postgres":
            found_postmaster = True  # the postmaster: its parent is not postgres
            total += int(fields[13]) + int(fields[14])  # cutime, cstime of the reaped backends
    return total / ticks if found_postmaster else None


def wal_position(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return int(conn.execute("select pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0])


def measure_child(mode: str, args: list[str], log_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    """This script as a child process (`--child mode`), with the contention seen while it ran."""
    watch = ContentionWatch.active
    return run_child(__file__, mode, args, log_dir, env, around=watch.window if watch else None)


PACKAGE_FILES = (
    "plugins/turnover_signals/lms/statements.py",
    "plugins/turnover_signals/quality/gate.py",
    "plugins/turnover_signals/sources/xapi.py",
    "plugins/turnover_signals/sources/http_base.py",
    "plugins/turnover_signals/warehouse.py",
    "include/sql/staging/lms_statement_checks.sql",
    "include/sql/core/lms_activity.sql",
    "include/sql/ddl/0005_create_lms_tables.sql",
)


def _make_client(base_url: str):
    from turnover_signals.sources.http_base import BasicAuth
    from turnover_signals.sources.xapi import XapiClient

    return XapiClient(base_url=base_url + "/xapi", auth=BasicAuth(LRS_LOGIN, LRS_PASSWORD))


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RssSampler:
    """A thread sampling VmRSS every 0.1 s, keeping the peak per phase label."""

    def __init__(self) -> None:
        self.phase = "start"
        self.peaks: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            rss = mib(proc_status_kib("VmRSS"))
            if rss > self.peaks.get(self.phase, 0.0):
                self.peaks[self.phase] = rss

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- children ---------------------------------------------------------------------------------


def child_bare(args: argparse.Namespace, parse_statements: bool = True) -> None:
    """The bare client: every page of the listing, counting statements, nothing else (with
    `parse_statements=False`: its pages split and their ids read, the statements left unparsed, as the loader
    reads them)."""
    out: dict[str, Any] = {}
    t = time.perf_counter()
    from turnover_signals.sources.xapi import XapiClient  # noqa: F401

    out["import_s"] = time.perf_counter() - t
    out["rss_after_imports_mib"] = mib(proc_status_kib("VmRSS"))
    statements = pages = 0
    started = time.perf_counter()
    with _make_client(args.base_url) as client:
        for page in client.iter_statement_pages(
            since=EPOCH, limit=args.page_size, parse_statements=parse_statements
        ):
            pages += 1
            statements += page.received
        out["requests_sent"] = client.requests_sent
        out["retries"] = client.retries
    out["work_s"] = time.perf_counter() - started
    out["statements"] = statements
    out["pages"] = pages
    out["self_peak_rss_mib"] = mib(proc_status_kib("VmHWM"))
    write_child_result(args.result_file, out)


def child_bare_unparsed(args: argparse.Namespace) -> None:
    child_bare(args, parse_statements=False)


def child_raw_http(args: argparse.Namespace) -> None:
    """What the server alone allows: http.client with keep-alive, `more` cut from the body's end,
    no JSON decoding (statements counted by their one `"actor":` key)."""
    import base64
    import http.client
    from urllib.parse import urlencode, urlsplit

    parts = urlsplit(args.base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port)
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{LRS_LOGIN}:{LRS_PASSWORD}".encode()).decode(),
        "X-Experience-API-Version": "1.0.3",
        "Accept": "application/json",
    }
    path = "/xapi/statements?" + urlencode(
        {"since": "1970-01-01T00:00:00Z", "limit": args.page_size, "ascending": "true"}
    )
    statements = pages = 0
    body_bytes = 0
    started = time.perf_counter()
    while path:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        pages += 1
        body_bytes += len(body)
        statements += body.count(b'"actor":')
        tail = body[body.rfind(b'"more":') + len(b'"more":') : -1]
        path = json.loads(tail)
    conn.close()
    write_child_result(
        args.result_file,
        {
            "work_s": time.perf_counter() - started,
            "statements": statements,
            "pages": pages,
            "body_mb": body_bytes / 1e6,
        },
    )


def child_end_to_end(args: argparse.Namespace) -> None:
    """extract_statements into a fresh warehouse, with its phases timed from outside the package."""
    out: dict[str, Any] = {}
    with RssSampler() as sampler:
        sampler.phase = "imports"
        t = time.perf_counter()
        import great_expectations  # noqa: F401

        out["import_gx_s"] = time.perf_counter() - t
        t = time.perf_counter()
        import psycopg

        import turnover_signals.lms.statements as st
        from turnover_signals.config import load_config

        out["import_bundle_s"] = time.perf_counter() - t
        out["rss_after_imports_mib"] = mib(proc_status_kib("VmRSS"))

        timings: dict[str, float] = {}
        calls: dict[str, int] = {}
        # The loader runs three threads (fetch + COPY, chunk checker, chunk publisher): a phase stack each.
        stacks = threading.local()

        def current_stack() -> list[str]:
            if not hasattr(stacks, "items"):
                stacks.items = []
            return stacks.items

        timings_lock = threading.Lock()  # three threads add to the same totals

        def wrap(owner: Any, attribute: str, label: str) -> None:
            original = getattr(owner, attribute)

            def timed(*a: Any, **kw: Any) -> Any:
                stack = current_stack()
                stack.append(label)
                sampler.phase = label
                started = time.perf_counter()
                try:
                    return original(*a, **kw)
                finally:
                    elapsed = time.perf_counter() - started
                    # and by the thread's outermost phase (a gate runs in the checker, or again in publishing)
                    keys = [label, f"{label}@{stack[0]}"] if len(stack) > 1 else [label]
                    with timings_lock:
                        for key in keys:
                            timings[key] = timings.get(key, 0.0) + elapsed
                        calls[label] = calls.get(label, 0) + 1
                    stack.pop()
                    sampler.phase = stack[-1] if stack else "other"

            setattr(owner, attribute, timed)

        extraction = st.StatementExtraction
        for method in (
            "run_batch",
            "_stage",
            "check_chunk",
            "publish_checked",
            "_drop_rejects_accepted_since_check",
            "_finish_checks",
            "_gate_and_publish",
            "_record_rejects",
            "_publish",
            "_advance_watermark",
        ):
            wrap(extraction, method, method)
        wrap(st.ChunkWriter, "write", "ChunkWriter.write")
        wrap(st.ChunkWriter, "close", "ChunkWriter.close")
        wrap(st.ChunkPublisher, "submit", "ChunkPublisher.submit")
        if hasattr(st.ChunkPublisher, "reserve"):  # the package before 2026-12-07 staged without it
            wrap(st.ChunkPublisher, "reserve", "ChunkPublisher.reserve")
        wrap(st.ChunkPublisher, "finish", "ChunkPublisher.finish")
        for function in (
            "run_suite",
            "apply_voids",
            "_check_counts",
            "record_validation",
            "lms_batch_suite",
            "_record_batch",
            "_drop_scratch",
        ):
            wrap(st, function, function)

        # Every statement sent through psycopg (the loader's and GX's, via SQLAlchemy): time and phase.
        sql_log: list[dict[str, Any]] = []
        original_execute = psycopg.Cursor.execute

        def execute(self: Any, query: Any, *a: Any, **kw: Any) -> Any:
            started = time.perf_counter()
            try:
                return original_execute(self, query, *a, **kw)
            finally:
                text = query.as_string(self.connection) if hasattr(query, "as_string") else str(query)
                sql_log.append(
                    {
                        "phase": "/".join(current_stack()) or "other",
                        # the statement itself: the header comments of a file in include/sql dropped
                        "sql": re.sub(r"\s+", " ", re.sub(r"(?m)^\s*--.*$", "", text)).strip()[:160],
                        "s": time.perf_counter() - started,
                        "rowcount": self.rowcount,
                    }
                )

        psycopg.Cursor.execute = execute  # type: ignore[method-assign]

        # Transaction ends (COMMIT) are not cursor executes: time them per phase too.
        commits: dict[str, float] = {}
        original_exit = psycopg.Transaction.__exit__

        def transaction_exit(self: Any, *exc: Any) -> Any:
            started = time.perf_counter()
            try:
                return original_exit(self, *exc)
            finally:
                stack = current_stack()
                label = stack[-1] if stack else "other"
                commits[label] = commits.get(label, 0.0) + time.perf_counter() - started

        psycopg.Transaction.__exit__ = transaction_exit  # type: ignore[method-assign]
        original_copy_exit = psycopg.Copy.__exit__
        copy_exit = {"s": 0.0}

        def timed_copy_exit(self: Any, *exc: Any) -> Any:
            started = time.perf_counter()
            try:
                return original_copy_exit(self, *exc)
            finally:
                copy_exit["s"] += time.perf_counter() - started

        psycopg.Copy.__exit__ = timed_copy_exit  # type: ignore[method-assign]

        client = _make_client(args.base_url)
        fetch = {"s": 0.0, "pages": 0, "statements": 0}
        original_pages = client.iter_statement_pages

        class TimedPages:
            """Time spent inside the client (HTTP + JSON decoding) vs in the loader between pages."""

            def __init__(self, pages: Any):
                self._pages = pages

            def __iter__(self) -> TimedPages:
                return self

            def __next__(self) -> Any:
                started = time.perf_counter()
                try:
                    page = next(self._pages)
                finally:
                    fetch["s"] += time.perf_counter() - started
                fetch["pages"] += 1
                fetch["statements"] += len(page.statements)
                return page

        def iter_statement_pages(*a: Any, **kw: Any) -> Any:
            pages = original_pages(*a, **kw)
            return TimedPages(pages)

        client.iter_statement_pages = iter_statement_pages  # type: ignore[method-assign]

        config = load_config({"lms": {"statements_page_limit": args.page_size}}, use_variable=False)
        sampler.phase = "other"
        started = time.perf_counter()
        summary = st.extract_statements(config, dsn=args.dsn, client=client)
        out["work_s"] = time.perf_counter() - started
    out["summary"] = summary
    out["timings"] = timings
    out["calls"] = calls
    out["fetch"] = fetch
    out["sql"] = sql_log
    out["transaction_exit_s"] = commits
    out["copy_exit_s"] = copy_exit["s"]
    out["rss_peaks_by_phase"] = sampler.peaks
    out["self_peak_rss_mib"] = mib(proc_status_kib("VmHWM"))
    write_child_result(args.result_file, out)


BACKFILL_SLICES = 4


def _backfill_slice_worker(payload: tuple[str, str, int, dict[str, Any], str]) -> float:
    """One slice of the backfill in a worker process (as one mapped task on one executor slot)."""
    from turnover_signals.config import load_config
    from turnover_signals.lms.backfill import extract_slice
    from turnover_signals.quality.gate import RunIdentity

    base_url, dsn, page_size, item, run_id = payload
    config = load_config({"lms": {"statements_page_limit": page_size}}, use_variable=False)
    started = time.perf_counter()
    extract_slice(
        config,
        RunIdentity("lms_statement_backfill", run_id, "extract_statement_slice"),
        item,
        dsn,
        _make_client(base_url),
    )
    return time.perf_counter() - started


def child_backfill(args: argparse.Namespace) -> None:
    """The sliced backfill of the whole range: slices extracted by `--workers` processes, then the ordered
    publish.

    The worker processes are forked after the imports (as an executor's slots would be warm), so the figure is
    the work: with 1 worker the slices run one after another, with 2 two at a time.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import great_expectations  # noqa: F401

    from turnover_signals.config import load_config
    from turnover_signals.lms.backfill import plan_backfill, publish_slices
    from turnover_signals.quality.gate import RunIdentity

    run_id = f"bench-{args.workers}"
    start = datetime(2023, 12, 31, tzinfo=UTC)
    config = load_config(
        {"lms": {"statements_page_limit": args.page_size, "initial_since": start.isoformat()}},
        use_variable=False,
    )
    slices = plan_backfill(
        config,
        {
            "from_stored": start.isoformat(),
            "to_stored": args.backfill_to,
            "slice_count": BACKFILL_SLICES,
        },
    )
    payloads = [(args.base_url, args.dsn, args.page_size, item, run_id) for item in slices]
    started = time.perf_counter()
    with ProcessPoolExecutor(
        max_workers=args.workers, mp_context=multiprocessing.get_context("fork")
    ) as pool:
        slice_seconds = list(pool.map(_backfill_slice_worker, payloads))
    extract_s = time.perf_counter() - started
    started = time.perf_counter()
    summary = publish_slices(
        config,
        RunIdentity("lms_statement_backfill", run_id, "publish_statement_slices"),
        slices,
        args.dsn,
        _make_client(args.base_url),
    )
    publish_s = time.perf_counter() - started
    write_child_result(
        args.result_file,
        {
            "workers": args.workers,
            "slices": len(slices),
            "slice_s": slice_seconds,
            "extract_s": extract_s,
            "publish_s": publish_s,
            "work_s": extract_s + publish_s,
            "published": summary["published"],
        },
    )


CHILDREN = {
    "bare": child_bare,
    "bare_unparsed": child_bare_unparsed,
    "raw_http": child_raw_http,
    "end_to_end": child_end_to_end,
    "backfill": child_backfill,
}


# -- the run ----------------------------------------------------------------------------------


def end_to_end_round(
    count: int,
    number: int,
    child_args: list[str],
    log_dir: Path,
    env: dict[str, str],
    fresh_database: Callable[[str], tuple[str, float]],
) -> dict[str, Any]:
    """One end-to-end run on a fresh database: its measurements, CPU and WAL, and the rows it left."""
    import psycopg

    dsn, migrate_s = fresh_database(f"e2e{number}")
    print(f"[{count:,}] end to end ({number})", flush=True)
    # What the machine's two cores spent on the run: the loader (the child), PostgreSQL, and the
    # sample LRS (this process's threads), against the wall time they had.
    cpu_before = (postgres_cpu_seconds(), time.process_time(), wal_position(dsn))
    e2e = measure_child("end_to_end", [*child_args, "--dsn", dsn], log_dir, env)
    cpu_after = (postgres_cpu_seconds(), time.process_time(), wal_position(dsn))
    result: dict[str, Any] = {
        "database": dsn.rpartition("/")[2],
        "migrate_s": migrate_s,
        "e2e": e2e,
        "e2e_cpu": {
            "postgres_s": None if None in (cpu_before[0], cpu_after[0]) else cpu_after[0] - cpu_before[0],
            "lrs_s": cpu_after[1] - cpu_before[1],
            "wal_mb": (cpu_after[2] - cpu_before[2]) / 1e6,
        },
    }
    with psycopg.connect(dsn, autocommit=True) as conn:
        result["verify"] = dict(
            zip(
                ("raw_lms_statement", "core_lms_activity", "rejected", "batch_status"),
                conn.execute(
                    "select (select count(*) from raw.lms_statement), (select count(*) from "
                    "core.lms_activity), (select count(*) from raw.lms_statement_rejected), (select "
                    "string_agg(status, ',') from audit.lms_extract_batch)"
                ).fetchone(),
                strict=True,
            )
        )
        result["db_sizes_mb"] = dict(
            conn.execute(
                "select c.relname, (pg_total_relation_size(c.oid) / 1e6)::float8 from pg_class c "
                "join pg_namespace n on n.oid = c.relnamespace where (n.nspname, c.relname) in "
                "(('raw', 'lms_statement'), ('core', 'lms_activity'))"
            ).fetchall()
        )
    return result


def published_counts(dsn: str) -> tuple[int, int]:
    """How many rows raw.lms_statement and core.lms_activity hold."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(
            "select (select count(*) from raw.lms_statement), (select count(*) from core.lms_activity)"
        ).fetchone()


def round_ratio(count: int, round_: dict[str, Any]) -> float:
    """A round's end-to-end statements/s over the mean of the bare runs before and after it."""
    bare = [b["statements"] / b["work_s"] for b in round_["bare_pair"]]
    return count / round_["e2e"]["work_s"] / (sum(bare) / len(bare))


def run_size(count: int, args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    """Everything for one N: data, server, bare client, end to end, cleanup."""

    from turnover_demo.sample_servers.lms_server import LmsSampleServer
    from turnover_signals.warehouse import migrate, warehouse_connection

    report: dict[str, Any] = {"statements": count, "page_size": args.page_size}
    data_dir = work_dir / f"data-{count}"
    log_dir = work_dir / f"logs-{count}"
    log_dir.mkdir(parents=True)
    airflow_home = work_dir / f"airflow-{count}"
    airflow_home.mkdir()
    env = airflow_child_env(airflow_home)
    databases: list[str] = []

    def fresh_database(purpose: str) -> tuple[str, float]:
        name = f"lms_bench_{purpose}_{os.getpid()}_{count}"
        dsn = WAREHOUSE.create(name)
        databases.append(name)
        started = time.perf_counter()
        with warehouse_connection(dsn=dsn) as conn:
            migrate(conn)
        return dsn, time.perf_counter() - started

    server = None
    try:
        print(f"[{count:,}] writing statements", flush=True)
        started = time.perf_counter()
        path, size = write_statements(data_dir, count)
        report["generate_s"] = time.perf_counter() - started
        # the backfill's range ends at the newest statement, so its equal slices hold equal shares
        with open(path, "rb") as handle:
            handle.seek(max(0, size - 4096))
            last_stored = json.loads(handle.read().splitlines()[-1])["stored"]
        report["jsonl_mb"] = size / 1e6

        print(f"[{count:,}] starting the sample LRS (JSONL -> SQLite)", flush=True)
        server = LmsSampleServer(data_dir, max_page_size=args.page_size)
        started = time.perf_counter()
        server.start()
        report["server_start_s"] = time.perf_counter() - started
        report["server_statements"] = server.statement_count
        report["sqlite_mb"] = server._statements.path.stat().st_size / 1e6  # noqa: SLF001 - a size only
        child_args = ["--base-url", server.base_url, "--page-size", str(args.page_size)]

        with ContentionWatch() as watch:
            print(f"[{count:,}] raw HTTP floor", flush=True)
            report["raw_http"] = measure_child("raw_http", child_args, log_dir, env)
            print(f"[{count:,}] bare client (1)", flush=True)
            report["bare"] = [measure_child("bare", child_args, log_dir, env)]

            # Rounds alternate with the bare client (bare, end to end, bare, end to end, ..., bare): each
            # end-to-end run is set against the two bare runs beside it, and the median round is reported.
            # One run's ratio moves by ±15% with the host's load alone.
            rounds = []
            for number in range(1, args.rounds + 1):
                rounds.append(end_to_end_round(count, number, child_args, log_dir, env, fresh_database))
                print(f"[{count:,}] bare client ({number + 1})", flush=True)
                report["bare"].append(measure_child("bare", child_args, log_dir, env))
                rounds[-1]["bare_pair"] = report["bare"][-2:]
                WAREHOUSE.drop(rounds[-1].pop("database"))
            report["rounds"] = [
                {
                    "ratio": round_ratio(count, r),
                    "e2e_s": r["e2e"]["work_s"],
                    "bare_st_s": [b["statements"] / b["work_s"] for b in r["bare_pair"]],
                }
                for r in rounds
            ]
            median = sorted(rounds, key=lambda r: round_ratio(count, r))[(len(rounds) - 1) // 2]
            report.update(median)
            print(f"[{count:,}] bare client, statements unparsed", flush=True)
            report["bare_unparsed"] = measure_child("bare_unparsed", child_args, log_dir, env)
            report["backfill"] = []
            for workers in args.backfill_workers:
                backfill_dsn, _ = fresh_database(f"backfill{workers}")
                print(f"[{count:,}] backfill, {workers} worker(s)", flush=True)
                result = measure_child(
                    "backfill",
                    [
                        *child_args,
                        "--dsn",
                        backfill_dsn,
                        "--workers",
                        str(workers),
                        "--backfill-to",
                        last_stored,
                    ],
                    log_dir,
                    env,
                )
                result["verify"] = published_counts(backfill_dsn)
                report["backfill"].append(result)

        report["ran_beside"] = sorted(watch.others)
        report["loadavg_max"] = max(watch.loads, default=os.getloadavg()[0])
    finally:
        if server is not None:
            server.close()
        for name in databases:
            WAREHOUSE.drop(name)
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(airflow_home, ignore_errors=True)
    return report


# -- the report -------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return f"{float(value):,.{digits}f}"


def short_process(line: str) -> str:
    """`PID .../benchmarks/hris_load.py --child bundle --t0 ... --dsn ...` -> `hris_load.py --child
    bundle`."""
    match = re.search(r"(hris_load\.py|synth_memory\.py)(.*)", line)
    if not match:
        return line[:60]
    args = re.split(r" --(?:t0|result-file|dsn|local|json-out) ", match.group(2) + " ")[0].strip()
    return f"{match.group(1)} {args}".strip()


def bare_reference(report: dict[str, Any]) -> float:
    """Mean bare-client throughput (statements/s) of the runs before and after end to end (of the median
    round, where there were rounds)."""
    rates = [b["statements"] / b["work_s"] for b in report.get("bare_pair", report["bare"])]
    return sum(rates) / len(rates)


def phase_rows(e2e: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(phase, seconds, what it is): the main thread's rows add up to the wall time; the publisher
    thread's rows (indented) overlap them and add up to its busy time."""
    t = e2e["timings"]
    sql = e2e["sql"]
    calls = e2e.get("calls", {})

    def sql_time(predicate: Any) -> float:
        return sum(s["s"] for s in sql if predicate(s))

    fetch = e2e["fetch"]["s"]
    stage = t.get("_stage", 0.0)
    writes = t.get("ChunkWriter.write", 0.0)
    closes = t.get("ChunkWriter.close", 0.0)
    submit = t.get("ChunkPublisher.submit", 0.0) + t.get("ChunkPublisher.reserve", 0.0)
    finish = t.get("ChunkPublisher.finish", 0.0)
    # Runs before the gate of a chunk overlapped the publishing of the one before it had one publisher thread
    # (publish_chunk) that checked, gated and published each chunk.
    pipelined = "publish_checked" in t
    busy = t.get("publish_checked" if pipelined else "publish_chunk", 0.0)
    checking = t.get("check_chunk", 0.0)
    raw_insert = sql_time(lambda s: s["sql"].startswith("insert into raw.lms_statement ("))
    core_insert = sql_time(lambda s: s["sql"].startswith("insert into core.lms_activity"))
    in_sql = sql_time(lambda s: s["sql"].startswith("update") and "_finish_checks" in s["phase"])
    voids = t.get("apply_voids", 0.0)
    gx_sql = sql_time(lambda s: "run_suite" in s["phase"])
    gx_queries = sum(1 for s in sql if "run_suite" in s["phase"])
    rejects = t.get("_record_rejects", 0.0)
    small = t.get("_advance_watermark", 0.0) + t.get("record_validation", 0.0) + t.get("_record_batch", 0.0)
    commit = e2e.get("transaction_exit_s", {}).get("_gate_and_publish", 0.0)
    publishing = "publish_checked" if pipelined else "publish_chunk"
    drops = sql_time(lambda s: s["sql"].startswith("drop table") and publishing in s["phase"])
    chunks = calls.get(publishing, 0)
    redrops = t.get("_drop_rejects_accepted_since_check", 0.0)
    # GX and the counts run in the checking thread, and again in the publishing thread for a chunk whose
    # rejects an earlier chunk accepted after its gate (re-gated): split by the thread's outermost phase.
    regate = t.get("run_suite@publish_checked", 0.0) + t.get("_check_counts@publish_checked", 0.0)

    by_thread = any("@" in key for key in t)  # runs before 2026-12-07 kept one total per phase

    def in_checker(name: str) -> float:
        return t.get(f"{name}@check_chunk", 0.0) if by_thread else t.get(name, 0.0)

    rows = [
        ("main: client fetch (HTTP + JSON decode)", fetch, f"{e2e['fetch']['pages']} pages"),
        (
            "main: check each statement + COPY its row (ChunkWriter.write)",
            writes,
            "msgspec + Python checks, one row per statement",
        ),
        ("main: end of each chunk's COPY + commit", closes, f"{chunks} chunk(s)"),
        (
            "main: wait for the publisher (chunk two before unpublished, or queue full)",
            submit,
            "back-pressure while fetching",
        ),
        ("main: wait for the last chunk(s) after the last page", finish, "publishing not overlapped"),
        ("main: rest of staging loop (Python)", stage - fetch - writes - closes - submit, ""),
        ("main: connect, read watermark, other", e2e["work_s"] - stage - finish, ""),
    ]
    gate_rows = [
        (
            "  finish checks: unusual statements in SQL, repeats, analyze",
            in_checker("_finish_checks"),
            f"{fmt(in_sql)} s in lms_statement_checks.sql",
        ),
        ("  check counts + top reasons", in_checker("_check_counts"), "1 query, 2 where there are rejects"),
        (
            f"  GX suite ({gx_queries} queries, {fmt(gx_sql)} s in SQL)",
            in_checker("run_suite"),
            "run_suite, BOOLEAN_ONLY",
        ),
    ]
    publish_rows = [
        (
            "  record rejects",
            rejects,
            "insert ... where reject_reason is not null, only where there are rejects",
        ),
        (
            "  publish raw.lms_statement",
            raw_insert,
            "insert under the publish lock, probing the published ids unless stored after the watermark",
        ),
        ("  publish core.lms_activity", core_insert, "insert, probing likewise"),
        ("  apply voids", voids, "chunk's checks + partial index"),
        ("  watermark, validation and batch rows", small, ""),
        ("  commit of the publish transaction", commit, ""),
        ("  drop staging + checks", drops, ""),
    ]
    if not pipelined:
        rows.append(
            (f"publisher thread, busy (overlaps the rows above; {chunks} chunk(s))", busy, "publish_chunk")
        )
        rows += gate_rows + publish_rows
        rows.append(
            (
                "  rest of the publisher (Python, GIL waits)",
                busy - sum(r[1] for r in gate_rows + publish_rows),
                "",
            )
        )
        return rows
    rows.append(
        (
            f"checking thread, busy (overlaps the rows above; {calls.get('check_chunk', 0)} chunk(s))",
            checking,
            "check_chunk: the gate of a chunk while the one before it is published",
        )
    )
    rows += gate_rows
    rows.append(("  rest of the checker (Python, GIL waits)", checking - sum(r[1] for r in gate_rows), ""))
    rows.append(
        (f"publishing thread, busy (overlaps the rows above; {chunks} chunk(s))", busy, "publish_checked")
    )
    publish_rows.insert(
        0,
        (
            "  drop rejects accepted since the gate (+ re-gate)",
            redrops + regate,
            "rejects a chunk published after this one's gate accepted",
        ),
    )
    rows += publish_rows
    rows.append(("  rest of the publisher (Python, GIL waits)", busy - sum(r[1] for r in publish_rows), ""))
    return rows


GOAL_RATIO_TEXT = (
    "1,000,000 statements served by the sample LRS on loopback in pages of 500 on 2 cores: end-to-end "
    "statements/s into PostgreSQL at least 0.5× a bare client that only pages through the same server in the "
    "same run (issue 18 point 5; issue 4 asked 0.7×), with peak memory flat in N; and a backfill in slices "
    "that scales with workers."
)
METHOD_TEXT = (
    "`benchmarks/lms_load.py` streams N xAPI 1.0.3 statements (uuid ids; actor with exactly one identifier, "
    "90 % `account`, 10 % `mbox`; ADL verbs registered/launched/completed/passed/failed; course activities; "
    "`result` with score/success/completion/duration on completed/passed/failed; `context.registration`; ISO "
    "`timestamp` and strictly increasing `stored` with `Z`, 2 % stored days late; ~670 bytes each) to "
    "`DATA/lms/statements.jsonl`, starts `LmsSampleServer(DATA, max_page_size=500)` in the parent process "
    "(its JSONL→SQLite start-up is timed apart and is in no figure), and runs each measurement in its own "
    "child process: the bare client (`XapiClient.iter_statement_pages(since=1970-01-01Z, limit=500)` over "
    "every page), and `extract_statements(config, dsn=..., client=XapiClient(...))` on a freshly created and "
    "migrated database with Airflow pointed at a throwaway home, alternating in `--rounds` rounds (bare, end "
    "to end, bare, end to end, ..., bare; default 3): each round's ratio is its end-to-end throughput over "
    "the mean of the bare runs before and after it, and the tables show the median round. Then the same "
    "client once with `parse_statements=False` (statements left unparsed, as the loader reads its pages) and "
    "a raw `http.client` loop (no JSON decoding: what the LRS alone serves). Throughput is N / wall time of "
    "the measured call (imports excluded; listed apart); peak RSS is the child's own (`os.wait4`). Phases "
    "come from wrapping, outside the package, the `StatementExtraction`, `ChunkWriter` and `ChunkPublisher` "
    "methods, `run_suite`, `apply_voids`, psycopg's `Cursor.execute`, `Copy.__exit__` and "
    "`Transaction.__exit__`, and the client's page iterator (time inside `next()` = HTTP + JSON decoding). "
    "The loader runs three threads (fetch + check each statement + COPY its row; the chunk checker, which "
    "gates a chunk while the one before it is published; the chunk publisher): phases are kept per thread, "
    "and the checker's and publisher's rows overlap the main thread's. Row counts of `raw.lms_statement` and "
    "`core.lms_activity` are checked. Then the sliced backfill: `plan_backfill` (4 slices of the whole "
    "range), `extract_slice` per slice in 1 or 2 worker processes forked after the imports (as executor "
    "slots: `--backfill-workers`), then `publish_slices`, on a fresh database each; rows are verified. The "
    "script waits for other benchmarks to finish and records any that ran beside a measured step; it drops "
    "its databases and deletes the generated data."
)


FLAT_MEMORY_TOLERANCE = 1.10  # peak RSS of the largest N at most 10 % above the smallest N's counts as flat


def verdict_line(reports: list[dict[str, Any]]) -> str:
    """One line: throughput against GOAL_RATIO at the largest N, memory flatness, backfill scaling."""
    largest = max(reports, key=lambda r: r["statements"])
    ratio = largest["statements"] / largest["e2e"]["work_s"] / bare_reference(largest)
    parts = [
        f"throughput {'met' if ratio >= GOAL_RATIO else 'not met'}: {ratio:.2f}× the bare client at "
        f"{largest['statements']:,} statements against ≥ {GOAL_RATIO}× ({ratio / GOAL_RATIO:.2f} of the goal)"
        + (
            f", {unparsed_ratio(largest):.2f}× the same client reading pages unparsed as the loader does"
            if "bare_unparsed" in largest
            else ""
        )
    ]
    if len(reports) > 1:
        peaks = {r["statements"]: r["e2e"]["peak_rss_mib"] for r in reports}
        flat = max(peaks.values()) <= FLAT_MEMORY_TOLERANCE * min(peaks.values())
        parts.append(
            f"memory {'flat, met' if flat else 'not flat, not met'} ("
            + ", ".join(f"{fmt(peak, 0)} MiB at {n:,}" for n, peak in sorted(peaks.items(), reverse=True))
            + ")"
        )
    backfill = {b["workers"]: b["work_s"] for b in largest.get("backfill", [])}
    if 1 in backfill and len(backfill) > 1:
        most = max(backfill)
        parts.append(
            f"sliced backfill {backfill[1] / backfill[most]:.2f}× faster with {most} workers than with 1 "
            f"({fmt(backfill[1])} s → {fmt(backfill[most])} s)"
        )
    return "**Verdict:** " + "; ".join(parts) + "."


def run_header(results: dict[str, Any]) -> list[str]:
    """Where and on what the figures were measured, and whether anything ran beside them."""
    machine, reports, pg = results["machine"], results["reports"], results["machine"]["postgres"]
    lines = [
        f"**Goal:** {GOAL_RATIO_TEXT}",
        "",
        f"**Method.** {METHOD_TEXT}",
        "",
        "```",
        results["command"],
        "```",
        "",
        f"**Latest result.** Measured {results['date']} on {machine['nproc']} cores ({machine['cpu']}), "
        f"{machine['ram_gib']} GiB RAM, Linux {machine['kernel']}, Python {machine['python']}, PostgreSQL "
        f"{pg.get('server_version')} (shared_buffers {pg.get('shared_buffers')}, work_mem "
        f"{pg.get('work_mem')}, synchronous_commit {pg.get('synchronous_commit')}, max_wal_size "
        f"{pg.get('max_wal_size')}), all on one machine over loopback.",
        "",
    ]
    before, after = results.get("package_before"), results.get("package_after")
    if before:
        changed = after is not None and after["files_sha256"] != before["files_sha256"]
        uncommitted = ", with uncommitted changes" if before["uncommitted_changes"] else ""
        during = (
            "; **the package changed during the run**: figures mix two versions"
            if changed
            else "; unchanged during the run"
        )
        lines += [
            f"Package at commit `{before['commit'].split()[0]}` (measured files sha256 "
            f"{before['files_sha256']}{uncommitted}{during}).",
            "",
        ]
    contention = results["quiet"]
    contended = []
    for r in reports:
        children = [
            ("raw HTTP", r.get("raw_http")),
            *((f"bare client {i + 1}", b) for i, b in enumerate(r["bare"])),
            ("end to end", r.get("e2e")),
        ]
        for label, child in children:
            seen = (child or {}).get("contention", {})
            if seen.get("ran_beside"):
                others = sorted({short_process(p) for p in seen["ran_beside"]})
                contended.append(
                    f"{label} (N = {r['statements']:,}; load ≤ "
                    f"{fmt(seen['loadavg_max'], 1)}; beside {', '.join(others)})"
                )
    load_max = fmt(max(r["loadavg_max"] for r in reports), 2)
    waited = (
        f"waited {fmt(contention['waited_s'], 0)} s for other benchmarks to finish"
        if contention["waited_s"] >= 1
        else "no other benchmark was running at the start"
    )
    if contended:
        lines.append(
            f"**Contention:** {waited}, but another benchmark started during: {'; '.join(contended)}. "
            f"Max 1-min load average {load_max} on 2 cores: those figures are pessimistic."
        )
    else:
        lines.append(
            f"No other benchmark ran during any measured step ({waited}); max 1-min load average {load_max} "
            "(2 cores: the LRS, the client and PostgreSQL share them)."
        )
    return [*lines, "", verdict_line(reports), ""]


def throughput_table(reports: list[dict[str, Any]]) -> str:
    rows = []
    for r in reports:
        n, bare, e2e, v = r["statements"], bare_reference(r), r["e2e"], r["verify"]
        rate = n / e2e["work_s"]
        ok = v["raw_lms_statement"] == n and v["core_lms_activity"] == n and v["rejected"] == 0
        rows.append(
            [
                f"{n:,} ({r['page_size']})",
                fmt(bare, 0),
                fmt(rate, 0),
                f"**{rate / bare:.2f}**",
                fmt(e2e["work_s"]),
                fmt(e2e["peak_rss_mib"], 0),
                fmt(max(b["peak_rss_mib"] for b in r["bare"]), 0),
                fmt(r["raw_http"]["statements"] / r["raw_http"]["work_s"], 0),
                f"{'yes' if ok else 'NO'}: raw {v['raw_lms_statement']:,}, core {v['core_lms_activity']:,}, "
                f"rejected {v['rejected']:,}, batch {v['batch_status']}",
            ]
        )
    header = [
        "N statements (page size)",
        "bare client st/s",
        "end to end st/s",
        f"ratio (goal ≥ {GOAL_RATIO})",
        "e2e wall s",
        "e2e peak RSS MiB",
        "bare peak RSS MiB",
        "raw HTTP st/s",
        "rows verified",
    ]
    return markdown_table(header, rows, align="lrrrrrrrl")


def cost_table(reports: list[dict[str, Any]]) -> str:
    header = [
        "N",
        "JSONL MB",
        "generate s",
        "LRS start-up s (JSONL→SQLite, not measured)",
        "migrate s",
        "child start + imports s (e2e)",
        "RSS after imports MiB",
        "CPU s of the e2e child, imports included (user + sys)",
        "CPU s of a bare child",
        "raw.lms_statement MB",
        "core.lms_activity MB",
    ]
    rows = [
        [
            f"{r['statements']:,}",
            fmt(r["jsonl_mb"], 0),
            fmt(r["generate_s"]),
            fmt(r["server_start_s"]),
            fmt(r["migrate_s"], 2),
            fmt(r["e2e"]["process_wall_s"] - r["e2e"]["work_s"]),
            fmt(r["e2e"]["rss_after_imports_mib"], 0),
            fmt(r["e2e"]["cpu_user_s"] + r["e2e"]["cpu_sys_s"]),
            fmt(r["bare"][0]["cpu_user_s"] + r["bare"][0]["cpu_sys_s"]),
            fmt(r.get("db_sizes_mb", {}).get("lms_statement", 0), 0),
            fmt(r.get("db_sizes_mb", {}).get("lms_activity", 0), 0),
        ]
        for r in reports
    ]
    return markdown_table(header, rows)


def phase_section(report: dict[str, Any]) -> list[str]:
    e2e = report["e2e"]
    lines = [
        "",
        f"Phases of the end-to-end run, N = {report['statements']:,} (wall {fmt(e2e['work_s'])} s; the "
        "client's page iterator and the loader's methods wrapped from outside the package):",
        "",
        markdown_table(
            ["phase", "s", "share", "note"],
            (
                [name, fmt(seconds), f"{seconds / e2e['work_s']:.0%}", note]
                for name, seconds, note in phase_rows(e2e)
            ),
            align="lrrl",
        ),
    ]
    peaks = e2e.get("rss_peaks_by_phase", {})
    if peaks:
        top = sorted(peaks.items(), key=lambda kv: -kv[1])[:4]
        lines += [
            "",
            "Sampled peak RSS by phase (MiB): " + ", ".join(f"{k} {fmt(v, 0)}" for k, v in top) + ".",
        ]
    return lines


def backfill_section(reports: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in reports:
        n = r["statements"]
        for b in r.get("backfill", []):
            raw_rows, core_rows = b["verify"]
            rows.append(
                [
                    f"{n:,}",
                    b["workers"],
                    f"{fmt(b['extract_s'])} ({', '.join(fmt(x) for x in b['slice_s'])})",
                    fmt(b["publish_s"]),
                    fmt(b["work_s"]),
                    fmt(n / b["work_s"], 0),
                    f"{'yes' if raw_rows == n and core_rows == n else 'NO'}: "
                    f"raw {raw_rows:,}, core {core_rows:,}",
                ]
            )
    if not rows:
        return []
    return [
        "",
        f"Sliced backfill (`lms_statement_backfill`'s functions: {BACKFILL_SLICES} slices of the whole "
        "range extracted, checked and gated by worker processes forked after the imports, then "
        "`publish_slices` in order; each on a fresh database):",
        "",
        markdown_table(
            ["N", "workers", "slices s (each)", "ordered publish s", "total s", "st/s", "rows verified"],
            rows,
            align="lrlrrrl",
        ),
    ]


def cpu_budget_section(reports: list[dict[str, Any]]) -> list[str]:
    """Where the two cores went during the end-to-end run (runs saved before this was measured have none)."""
    measured = [r for r in reports if r.get("e2e_cpu", {}).get("postgres_s") is not None]
    if not measured:
        return []
    header = [
        "N",
        "e2e wall s",
        "loader CPU s (child, imports included)",
        "PostgreSQL CPU s",
        "sample LRS CPU s",
        "total CPU s",
        "cores busy (of 2)",
        "WAL MB",
    ]
    rows = []
    for r in measured:
        loader = r["e2e"]["cpu_user_s"] + r["e2e"]["cpu_sys_s"]
        total = loader + r["e2e_cpu"]["postgres_s"] + r["e2e_cpu"]["lrs_s"]
        wall = r["e2e"]["process_wall_s"]
        rows.append(
            [
                f"{r['statements']:,}",
                fmt(wall),
                fmt(loader),
                fmt(r["e2e_cpu"]["postgres_s"]),
                fmt(r["e2e_cpu"]["lrs_s"]),
                fmt(total),
                fmt(total / wall, 2),
                fmt(r["e2e_cpu"]["wal_mb"], 0),
            ]
        )
    return [
        "CPU of the end-to-end run by process (the child's own rusage; PostgreSQL's from /proc: its live "
        "processes plus the backends the postmaster reaped; the sample LRS is the parent's threads), over "
        "the child's whole life, and the WAL it wrote:",
        "",
        markdown_table(header, rows),
        "",
    ]


def rounds_lines(reports: list[dict[str, Any]]) -> list[str]:
    """Every round's ratio, so the spread the median hides is on the page."""
    figures = []
    for r in reports:
        rounds = r.get("rounds", [])
        if len(rounds) > 1:
            ratios = ", ".join(
                f"{x['ratio']:.2f}× ({fmt(r['statements'] / x['e2e_s'], 0)} against "
                f"{' / '.join(fmt(b, 0) for b in x['bare_st_s'])} st/s)"
                for x in rounds
            )
            figures.append(f"N={r['statements']:,}: {ratios}")
    if not figures:
        return []
    return ["", f"Rounds in the order run (the tables show the median round): {'; '.join(figures)}."]


def unparsed_ratio(report: dict[str, Any]) -> float:
    """End-to-end statements/s over those of the client reading pages unparsed."""
    unparsed = report["bare_unparsed"]
    return report["statements"] / report["e2e"]["work_s"] / (unparsed["statements"] / unparsed["work_s"])


def unparsed_reference_lines(reports: list[dict[str, Any]]) -> list[str]:
    """The same client with its pages' statements left unparsed, as the loader reads them: the reference
    without the per-statement Python objects that the bare client builds and the loader does not."""
    figures = []
    for r in reports:
        if "bare_unparsed" in r:
            rate = r["bare_unparsed"]["statements"] / r["bare_unparsed"]["work_s"]
            figures.append(
                f"N={r['statements']:,}: {fmt(rate, 0)} st/s, end to end {unparsed_ratio(r):.2f}× that"
            )
    if not figures:
        return []
    return [
        "",
        "The loader reads its pages unparsed (`iter_statement_pages(..., parse_statements=False)`: each page "
        "split and its ids read by msgspec, no Python object per statement; its checker then decodes each "
        "statement once). The same client reading pages that way, once after the runs above: "
        f"{'; '.join(figures)}. The goal's reference stays the bare client above.",
    ]


def render(results: dict[str, Any]) -> str:
    reports = results["reports"]
    bare_runs = "; ".join(
        f"N={r['statements']:,}: "
        + " / ".join(fmt(b["statements"] / b["work_s"], 0) for b in r.get("bare_pair", r["bare"]))
        + " st/s"
        for r in reports
    )
    lines = [
        *run_header(results),
        throughput_table(reports),
        "",
        "Bare client = `XapiClient.iter_statement_pages` over every page (mean of the runs just before and "
        f"after the end-to-end run: {bare_runs}). End to end = `extract_statements(...)` call wall time, "
        "imports excluded. Raw HTTP = `http.client`, no JSON decoding (what the sample LRS alone serves). "
        "Peak RSS = the child's own (`os.wait4`).",
        *rounds_lines(reports),
        *unparsed_reference_lines(reports),
        "",
        cost_table(reports),
        "",
        *cpu_budget_section(reports),
    ]
    for report in reports:
        lines += phase_section(report)
    lines += backfill_section(reports)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--statements",
        type=int,
        nargs="+",
        default=[1_000_000],
        help="one or more N; each gets its own data, server and database",
    )
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="end-to-end runs, each between two bare-client runs; the median round is reported",
    )
    parser.add_argument("--no-wait", action="store_true", help="do not wait for other benchmarks to finish")
    parser.add_argument("--readme", action="store_true", help=f"write the tables to README '{SECTION_TITLE}'")
    parser.add_argument("--keep", action="store_true", help="keep the generated JSONL")
    parser.add_argument("--json-out", help="also write the raw measurements here")
    parser.add_argument("--from-json", help="render (and with --readme write) a saved --json-out; no run")
    # Internal: this script re-runs itself as the measured child processes.
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--backfill-to", help=argparse.SUPPRESS)
    parser.add_argument(
        "--backfill-workers",
        type=int,
        nargs="*",
        default=[1, 2],
        help="also time the sliced backfill (lms_statement_backfill's "
        "functions) with this many worker processes",
    )
    args = parser.parse_args(argv)
    if args.child:
        CHILDREN[args.child](args)
        return 0

    if args.from_json:
        text = render(json.loads(Path(args.from_json).read_text(encoding="utf-8")))
        print(text)
        if args.readme:
            write_readme_section(SECTION_TITLE, text)
        return 0
    quiet = wait_until_quiet(args.no_wait)
    command = "PYTHONPATH=plugins:. .venv/bin/python benchmarks/lms_load.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--readme", "--no-wait")
    )
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command.strip(),
        "machine": machine_description(WAREHOUSE.admin_dsn),
        "quiet": quiet,
        "package_before": package_fingerprint(PACKAGE_FILES),
        "reports": [],
    }
    work_dir = Path(tempfile.mkdtemp(prefix="lms-bench-"))
    try:
        for count in args.statements:
            results["reports"].append(run_size(count, args, work_dir))
    finally:
        if args.keep:
            print(f"kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    results["package_after"] = package_fingerprint(PACKAGE_FILES)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    text = render(results)
    print()
    print(text)
    if args.readme:
        write_readme_section(SECTION_TITLE, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
