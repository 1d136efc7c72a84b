"""Benchmark: the synthetic generator at 100,000 employees x 24 months, in a child process.

Reports wall and CPU time, the child's peak RSS (getrusage RUSAGE_CHILDREN ru_maxrss, kilobytes on Linux)
and the output sizes, then prints a markdown table row for benchmarks/README.md:

    .venv/bin/python benchmarks/synth_memory.py [--employees N] [--months M] [--out DIR] [--keep]

The output goes to a temporary directory that is removed afterwards unless --keep or --out is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BUNDLE_ROOT = Path(__file__).resolve().parent.parent
PEAK_RSS_LIMIT_MB = 1024


def _directory_bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:,.0f} MB"


def run(employees: int, months: int, out_dir: Path, extra: list[str]) -> dict[str, object]:
    """Run the generator once in a subprocess and measure it."""
    command = [
        sys.executable,
        "-m",
        "turnover_demo.synth",
        "--employees",
        str(employees),
        "--months",
        str(months),
        "--out",
        str(out_dir),
        *extra,
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(BUNDLE_ROOT / "plugins"), str(BUNDLE_ROOT)]),
    }
    started = time.perf_counter()
    subprocess.run(command, cwd=BUNDLE_ROOT, env=environment, check=True)
    wall_seconds = time.perf_counter() - started
    child_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_rss_kb = child_usage.ru_maxrss
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    return {
        "employees": employees,
        "months": months,
        "wall_seconds": wall_seconds,
        # CPU time tells more than wall time on a shared machine.
        "cpu_seconds": child_usage.ru_utime + child_usage.ru_stime,
        "peak_rss_mb": peak_rss_kb / 1024,
        "statements": manifest["counts"]["statements"],
        "statements_bytes": (out_dir / "lms" / "statements.jsonl").stat().st_size,
        "users_bytes": (out_dir / "lms" / "users.jsonl").stat().st_size,
        "hris_bytes": _directory_bytes(out_dir / "sftp"),
        "total_bytes": _directory_bytes(out_dir),
        "snapshot_rows": manifest["counts"]["employee_snapshot_rows"],
    }


def markdown_row(result: dict[str, object]) -> str:
    """One row of the README table."""
    return (
        f"| synth {result['employees']:,} x {result['months']} months | {result['wall_seconds']:,.0f} s "
        f"({result['cpu_seconds']:,.0f} s CPU) "
        f"| {result['peak_rss_mb']:,.0f} MB | {result['statements']:,} statements, "
        f"{_megabytes(result['statements_bytes'])} | {_megabytes(result['hris_bytes'])} HRIS "
        f"({result['snapshot_rows']:,} snapshot rows) | {_megabytes(result['total_bytes'])} total "
        f"| {platform.python_version()}, {os.cpu_count()} cores |"
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the row; exit 1 when peak RSS exceeds the 1 GB budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--out", type=Path, help="keep the output here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary output")
    arguments, extra = parser.parse_known_args(argv)

    out_dir = arguments.out or Path(tempfile.mkdtemp(prefix="synth_bench_"))
    try:
        result = run(arguments.employees, arguments.months, out_dir, extra)
    finally:
        if arguments.out is None and not arguments.keep:
            shutil.rmtree(out_dir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print("| run | wall time | peak RSS | statements.jsonl | HRIS files | all output | machine |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(markdown_row(result))
    if result["peak_rss_mb"] > PEAK_RSS_LIMIT_MB:
        print(f"peak RSS above {PEAK_RSS_LIMIT_MB} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
