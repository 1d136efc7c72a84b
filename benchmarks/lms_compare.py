"""Two versions of the xAPI loader against each other, interleaved in one run (issue 18 point 5).

    PYTHONPATH=plugins:. .venv/bin/python benchmarks/lms_compare.py REV_A REV_B [--statements 1000000]
        [--rounds 3] [--page-size 500] [--no-wait]

On a shared machine the bare client's speed can swing by a factor of two within minutes, so two runs of
`lms_load.py` taken one after another compare the host's moods as much as the code. This runs both versions
in one session instead: one sample LRS serving the same statements, then `--rounds` rounds of an end-to-end
run of A and one of B, each on a freshly created database migrated by its own version, every end-to-end run
between two bare-client runs (the ratio of a run is its throughput over the mean of the two). Each revision
is checked out in a temporary git worktree; its end-to-end run is its own `benchmarks/lms_load.py --child
end_to_end` with its own package on the path. Prints a table per round and the medians; rows are verified.
The databases and worktrees are removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _harness import markdown_table, on_path, run_child

REPO_ROOT = Path(__file__).resolve().parents[1]
on_path(REPO_ROOT / "plugins", REPO_ROOT)

from lms_load import (  # noqa: E402 - after the package is on the path
    WAREHOUSE,
    airflow_child_env,
    measure_child,
    published_counts,
    round_ratio,
    wait_until_quiet,
    write_statements,
)


def worktree(rev: str, parent: Path) -> tuple[Path, str]:
    """A detached worktree of `rev` under `parent`, and the commit it is at."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", f"{rev}^{{commit}}"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    path = parent / commit
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), commit],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
    return path, commit


def tree_env(base: dict[str, str], tree: Path) -> dict[str, str]:
    return {**base, "PYTHONPATH": os.pathsep.join([str(tree / "plugins"), str(tree)])}


def migrate_with(tree: Path, env: dict[str, str], dsn: str) -> None:
    """Migrate `dsn` with the migrations of `tree`'s version (in a child: its own package)."""
    subprocess.run(
        [sys.executable, "-m", "turnover_signals.warehouse", "migrate", "--dsn", dsn],
        cwd=tree,
        env={**os.environ, **tree_env(env, tree)},
        check=True,
        capture_output=True,
    )


def compare(args: argparse.Namespace) -> dict[str, Any]:
    from turnover_demo.sample_servers.lms_server import LmsSampleServer

    work = Path(tempfile.mkdtemp(prefix="lms-compare-"))
    logs, home = work / "logs", work / "airflow"
    logs.mkdir()
    home.mkdir()
    trees = [worktree(rev, work / "trees") for rev in (args.rev_a, args.rev_b)]
    base_env = airflow_child_env(home)
    server = None
    runs: dict[str, list[dict[str, Any]]] = {commit: [] for _, commit in trees}
    try:
        write_statements(work / "data", args.statements)
        server = LmsSampleServer(work / "data", max_page_size=args.page_size)
        server.start()
        child_args = ["--base-url", server.base_url, "--page-size", str(args.page_size)]

        def bare() -> dict[str, Any]:
            return measure_child("bare", child_args, logs, base_env)

        before = bare()
        for number in range(1, args.rounds + 1):
            for tree, commit in trees:
                name = f"lms_compare_{commit}_{number}_{os.getpid()}"
                dsn = WAREHOUSE.create(name)
                try:
                    migrate_with(tree, base_env, dsn)
                    e2e = run_child(
                        str(tree / "benchmarks" / "lms_load.py"),
                        "end_to_end",
                        [*child_args, "--dsn", dsn],
                        logs,
                        tree_env(base_env, tree),
                    )
                    rows = published_counts(dsn)
                finally:
                    WAREHOUSE.drop(name)
                after = bare()
                runs[commit].append(
                    {
                        "round": number,
                        "e2e_s": e2e["work_s"],
                        "bare_st_s": [b["statements"] / b["work_s"] for b in (before, after)],
                        "ratio": round_ratio(args.statements, {"e2e": e2e, "bare_pair": [before, after]}),
                        "rows": rows,
                    }
                )
                print(
                    f"round {number}, {commit}: {e2e['work_s']:.1f} s, {runs[commit][-1]['ratio']:.2f}x",
                    flush=True,
                )
                before = after
    finally:
        if server is not None:
            server.close()
        for tree, _ in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO_ROOT, check=False)
        shutil.rmtree(work, ignore_errors=True)
    return {"statements": args.statements, "commits": [commit for _, commit in trees], "runs": runs}


def render(result: dict[str, Any]) -> str:
    commits, runs, n = result["commits"], result["runs"], result["statements"]
    rows = []
    for index in range(len(runs[commits[0]])):
        cells = [str(index + 1)]
        for commit in commits:
            run = runs[commit][index]
            cells.append(f"{run['e2e_s']:.1f} ({run['ratio']:.2f}×)")
        rows.append(cells)
    rows.append(
        [
            "median",
            *(
                f"{statistics.median(r['e2e_s'] for r in runs[c]):.1f} "
                f"({statistics.median(r['ratio'] for r in runs[c]):.2f}×)"
                for c in commits
            ),
        ]
    )
    verified = all(r["rows"] == (n, n) for c in commits for r in runs[c])
    return "\n".join(
        [
            f"{n:,} statements, end-to-end wall s (ratio to the bare client runs beside it):",
            "",
            markdown_table(["round", *(f"`{c}`" for c in commits)], rows, "l" + "r" * len(commits)),
            "",
            f"rows verified: {'yes' if verified else 'NO'} (raw and core held every statement after each)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev_a")
    parser.add_argument("rev_b")
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--no-wait", action="store_true", help="do not wait for other benchmarks to finish")
    args = parser.parse_args(argv)
    wait_until_quiet(args.no_wait)
    print(render(compare(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
