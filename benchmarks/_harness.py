"""What every benchmark script needs besides its own measurement: the machine, the code measured,
throwaway warehouses, child processes with their own peak memory, and the README section of results.

The scripts import it as `_harness` (they run as `python benchmarks/<script>.py`, so this folder is on
`sys.path`); it imports nothing of the bundle at module level, so a child process pays only for what
it measures.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGINS_DIR = REPO_ROOT / "plugins"
README = REPO_ROOT / "benchmarks" / "README.md"
DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
# The server settings a reader needs to compare two runs.
POSTGRES_SETTINGS = (
    "server_version",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "synchronous_commit",
    "wal_level",
    "max_parallel_workers_per_gather",
    "jit",
    "lc_collate",
)


def on_path(*directories: Path) -> None:
    """Make the bundle (and the demo's tooling) importable in this process, whatever PYTHONPATH says."""
    for directory in reversed(directories or (PLUGINS_DIR, REPO_ROOT)):
        if str(directory) not in sys.path:
            sys.path.insert(0, str(directory))


# -- memory -------------------------------------------------------------------------------------


def mib(kib: float) -> float:
    return kib / 1024


def proc_status_kib(field: str, pid: str = "self") -> int:
    """A `/proc/<pid>/status` figure (VmRSS, VmHWM, ...) in KiB; 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            match = re.search(rf"^{field}:\s+(\d+) kB", handle.read(), re.MULTILINE)
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM (Linux: write 5 to clear_refs), so the next phase's peak is its own.

    It also resets what a parent later reads as this child's ru_maxrss: only a child that never calls it
    gives a whole-run peak.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


# -- the machine and the code -------------------------------------------------------------------


def machine_description(admin_dsn: str) -> dict[str, Any]:
    """Cores, memory, CPU model, kernel, Python, the PostgreSQL settings that matter, the load now."""
    import psycopg

    with open("/proc/meminfo", encoding="ascii") as handle:
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", handle.read()).group(1))
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        settings = dict(
            conn.execute(
                # current_setting: the value with its unit ('128MB'); setting || unit read '16384' || '8kB'
                "select name, current_setting(name) from pg_settings where name = any(%s)",
                (list(POSTGRES_SETTINGS),),
            ).fetchall()
        )
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgres": settings,
        "loadavg_start": os.getloadavg(),
    }


def _git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True).stdout.strip()


def code_version(paths: Sequence[str] = ("plugins", "dags", "include")) -> str:
    """The commit measured, with '+ uncommitted changes' when any of `paths` differs from it."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--", *paths)
    return f"{commit} + uncommitted changes" if dirty else commit


def package_fingerprint(files: Sequence[str]) -> dict[str, Any]:
    """The commit and a hash of the files measured, to spot code changing under a long run."""
    digest = hashlib.sha256()
    for name in files:
        digest.update((REPO_ROOT / name).read_bytes())
    return {
        "commit": _git("log", "-1", "--format=%h %s"),
        "files_sha256": digest.hexdigest()[:12],
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", *files)),
    }


def json_default(value: Any) -> Any:
    """For json.dumps: Decimals as numbers, anything else (dates, paths) as text."""
    return float(value) if hasattr(value, "is_finite") else str(value)


# -- throwaway warehouses -----------------------------------------------------------------------


class Warehouse:
    """The PostgreSQL server a benchmark creates its databases on, through an administrator's DSN."""

    def __init__(self, environment_variable: str):
        self.admin_dsn = os.environ.get(environment_variable, DEFAULT_ADMIN_DSN)

    def execute(self, statement: Any, params: Sequence[Any] | None = None) -> None:
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(statement, params)

    def dsn_for(self, database: str) -> str:
        base, _, _ = self.admin_dsn.rpartition("/")
        return f"{base}/{database}"

    def drop(self, database: str) -> None:
        from psycopg import sql

        self.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))

    def create(self, database: str, template: str | None = None) -> str:
        """A new empty database (or a copy of `template`, whose idle sessions are ended first); its DSN."""
        from psycopg import sql

        self.drop(database)
        if template is None:
            self.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
        else:
            self.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (template,)
            )
            self.execute(
                sql.SQL("create database {} template {}").format(
                    sql.Identifier(database), sql.Identifier(template)
                )
            )
        return self.dsn_for(database)


def analyze_tables(dsn: str, tables: Iterable[str], vacuum: bool = False) -> None:
    """What autovacuum would have done by the next run: statistics (and the visibility map) of `tables`."""
    import psycopg
    from psycopg import sql

    command = sql.SQL("vacuum analyze {}" if vacuum else "analyze {}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in tables:
            conn.execute(command.format(sql.Identifier(*table.split("."))))


# -- child processes ----------------------------------------------------------------------------


def airflow_child_env(airflow_home: Path) -> dict[str, str]:
    """The environment of a child: Airflow in a throwaway home (read at its first import), the bundle
    and the demo's tooling importable."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    resolved = [str(Path(p).resolve()) for p in paths]
    paths = [str(d) for d in (PLUGINS_DIR, REPO_ROOT) if str(d) not in resolved] + paths
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "GX_ANALYTICS_ENABLED": "false",
        "TURNOVER_DATA_DIR": str(airflow_home / "data"),
        "PYTHONPATH": os.pathsep.join(paths),
    }


def run_child(
    script: str,
    mode: str,
    args: Sequence[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    around: Callable[[], Callable[[], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Run `script --child mode --result-file F *args` and return the JSON it wrote to F, plus the
    parent's view of the child: `process_wall_s` from spawn to exit, and from os.wait4 its own peak RSS
    (`peak_rss_mib`) and CPU seconds. `around`, when given, is called at the start and returns what to
    call at the end (for example a contention watch); its result goes under `contention`."""
    result_file = log_dir / f"{mode}-{uuid.uuid4().hex[:6]}.json"
    log_file = log_dir / f"{mode}.log"
    finish = around() if around else None
    started = time.perf_counter()
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, script, "--child", mode, "--result-file", str(result_file), *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env={**os.environ, **(env or {})},
        )
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0 or not result_file.exists():
        tail = log_file.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise RuntimeError(f"child {mode} failed with exit code {code}:\n{tail}")
    result = json.loads(result_file.read_text(encoding="utf-8"))
    result_file.unlink()
    result |= {
        "process_wall_s": wall,
        "peak_rss_mib": mib(usage.ru_maxrss),
        "cpu_user_s": usage.ru_utime,
        "cpu_sys_s": usage.ru_stime,
    }
    if finish:
        result["contention"] = finish()
    return result


def write_child_result(path: str, payload: dict[str, Any]) -> None:
    """A child's answer to `run_child`."""
    Path(path).write_text(json.dumps(payload, default=str), encoding="utf-8")


# -- results ------------------------------------------------------------------------------------


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A markdown table; `align` holds one letter per column, `l` or `r` (default: first left, rest right)."""
    align = align or "l" + "r" * (len(header) - 1)
    rule = ["---" if side == "l" else "---:" for side in align]
    lines = [header, rule, *([str(cell) for cell in row] for row in rows)]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def write_readme_section(title: str, body: str) -> None:
    """Add or replace only the section `## title` of benchmarks/README.md; re-read right before writing,
    since other benchmarks write their own sections."""
    heading = f"## {title}"
    section = f"{heading}\n\n{body.rstrip()}\n"
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    README.write_text(text, encoding="utf-8")
