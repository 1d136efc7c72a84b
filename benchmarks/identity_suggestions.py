"""Identity suggestions benchmark (issue 23): the rules alone, then the rules plus a perfect steward's
review of the suggestion queue, on three generated enterprises; and the suggestion stage's wall time near
100,000 accounts.

    PYTHONPATH=plugins:. .venv/bin/python benchmarks/identity_suggestions.py [--employees 1000] [--months 12]
        [--seed 7] [--presets default,mess_3x,messiest] [--timing-accounts 100000] [--readme]
        [--json-out FILE] [--keep]

Goals (issue 23): automatic links keep precision 1.0; with review, recall >= 0.99 on the messiest set with a
queue no longer than 2 % of the accounts and at least 80 % of it right; the suggestion stage under 60 s for
100,000 accounts on 2 cores.

For each data set (generator presets, `turnover_demo.synth.config.PRESETS`: `default`, `mess_3x` = three
times the default identity mess, `messiest` = that plus email typos, personal or unknown domains, dropped
GUIDs, namesakes and lookalike contractors):

1. Generates the enterprise (`statements_per_month` is kept low: statements change no account match) and
   loads it into a copy of a freshly migrated warehouse through the real loaders, as
   tests/integration/test_identity_enterprise.py does: the HRIS files from the sample SFTP server
   (`ingest_file`, then `build_employee_history`), the SCIM users from the sample LMS (`extract_users`).
2. Runs `resolve_identities` and scores `core.lms_account_match` against `ground_truth/lms_accounts.csv`:
   precision and recall of (LMS account, HRIS employee) links; the rules' misses by unmatched reason.
3. Runs `suggest_matches` (timed) and reads the open queue in `audit.identity_suggestion`. A perfect
   steward works through it best-first: accepts a suggestion when the truth says the account is that
   employee's, rejects every other one (`turnover_signals.identity.stewardship`, which records the accept
   in `audit.identity_override`, the path of every steward decision). Then `resolve_identities` runs again
   and the links are scored once more.

The queue's length counts suggestions (each one a steward's decision), as a share of all LMS accounts;
"right" is the share of suggestions the truth confirms. `--timing-accounts N` also generates a `messiest`
enterprise with about N accounts (one month), loads it, resolves it and times `suggest_matches` on it.

Prints a markdown table; `--readme` writes it to benchmarks/README.md under "Identity suggestions (issue
23)", `--json-out` saves everything. Drops its databases unless `--keep`; the server is the one of
`IDENTITY_BENCH_ADMIN_DSN` (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from _harness import (
    Warehouse,
    airflow_child_env,
    code_version,
    json_default,
    machine_description,
    markdown_table,
    on_path,
    write_readme_section,
)

os.environ.setdefault("TQDM_DISABLE", "1")  # GX's progress bars
on_path()

WAREHOUSE = Warehouse("IDENTITY_BENCH_ADMIN_DSN")
README_TITLE = "Identity suggestions (issue 23)"
PRESET_LABELS = {
    "default": "generator default",
    "mess_3x": "3x mess",
    "messiest": "3x mess + typos, personal domains, dropped GUIDs, namesakes, lookalikes",
}
STEWARD = "identity_suggestions benchmark (perfect steward)"
# Goals of issue 23.
GOAL_RULES_PRECISION = 1.0
GOAL_REVIEWED_RECALL = 0.99
GOAL_QUEUE_SHARE = 0.02
GOAL_QUEUE_RIGHT = 0.80
GOAL_STAGE_SECONDS = 60.0
GOAL_STAGE_ACCOUNTS = 100_000
# Accounts per employee in a one-month `messiest` enterprise (contractors and duplicate accounts come on top
# of the primary accounts): to size the timing run.
MESSIEST_ACCOUNTS_PER_EMPLOYEE = 1.25


# -- data ---------------------------------------------------------------------------------------


def generate_enterprise(preset: str, out_dir: Path, **settings: Any) -> dict[str, Any]:
    """A generated enterprise of the named preset; the manifest, with the generation time."""
    from turnover_demo.synth import SynthConfig, generate

    started = time.perf_counter()
    manifest = generate(SynthConfig.from_preset(preset, out_dir, **settings))
    os.chmod(out_dir / "sftp", 0o755)  # sshd's chroot refuses a group/world-writable root
    manifest["generate_seconds"] = round(time.perf_counter() - started, 2)
    return manifest


def load_enterprise(dsn: str, data_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The HRIS files and the SCIM directory of `data_dir` through the real loaders (no statements: they
    change no account match)."""
    from tests.integration.enterprise import load_hris, source_servers
    from turnover_signals.lms.users import extract_users

    started = time.perf_counter()
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # a line per SFTP session otherwise
    with source_servers(data_dir):
        hris = load_hris(dsn, config)
        users = extract_users(config, dsn=dsn)
    return {
        "hris_files": hris["hris_files"],
        "users": users,
        "load_seconds": round(time.perf_counter() - started, 2),
    }


def truth_owners(data_dir: Path) -> dict[str, str]:
    """lms_user_id -> the employee_id the account belongs to ('' for contractors)."""
    with open(data_dir / "ground_truth" / "lms_accounts.csv", encoding="utf-8", newline="") as handle:
        return {row["lms_user_id"]: row["employee_id"] for row in csv.DictReader(handle)}


# -- scoring ------------------------------------------------------------------------------------


def link_scores(dsn: str, owners: dict[str, str]) -> dict[str, Any]:
    """Precision and recall of the published (LMS account, HRIS employee) links; misses by reason."""
    import psycopg

    truth = {(user, employee) for user, employee in owners.items() if employee}
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select lms_user_id, hris_employee_id, employee_key is not null, match_method, unmatched_reason "
            "from core.lms_account_match"
        ).fetchall()
    predicted = {(user, employee) for user, employee, linked, _, _ in rows if linked}
    correct = len(truth & predicted)
    linked_users = {user for user, _ in predicted}
    missed_by_reason = Counter(
        reason or "matched to someone else"
        for user, _, _, _, reason in rows
        if owners.get(user) and (user, owners[user]) not in predicted and user not in linked_users
    )
    wrong_by_method = Counter(
        method for user, employee, linked, method, _ in rows if linked and (user, employee) not in truth
    )
    return {
        "links_true": len(truth),
        "links_predicted": len(predicted),
        "correct": correct,
        "precision": correct / len(predicted) if predicted else 1.0,
        "recall": correct / len(truth) if truth else 1.0,
        "missed_by_reason": dict(missed_by_reason.most_common()),
        "wrong_by_method": dict(wrong_by_method.most_common()),
    }


def run_resolve(config: dict[str, Any], dsn: str) -> dict[str, Any]:
    from turnover_signals.identity.resolve import resolve_identities

    started = time.perf_counter()
    summary = resolve_identities(config, dsn=dsn)
    return {"wall_seconds": round(time.perf_counter() - started, 2), "mode": summary.get("mode")}


def run_suggestions(config: dict[str, Any], dsn: str) -> dict[str, Any]:
    """`suggest_matches`, timed from the call to its return (the stage as a task would run it)."""
    from turnover_signals.identity.suggest import suggest_matches

    started = time.perf_counter()
    summary = suggest_matches(config, dsn=dsn)
    summary["wall_seconds"] = round(time.perf_counter() - started, 2)
    return summary


def open_queue(dsn: str) -> list[dict[str, Any]]:
    """The open suggestions, best account first and each account's candidates by rank."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            """
            select suggestion_id, lms_user_id, employee_key, rank, score, unmatched_reason
            from audit.identity_suggestion
            where status = 'open'
            order by max(score) over (partition by lms_user_id) desc, lms_user_id, rank
            """
        )
        return cur.fetchall()


def employments_by_key(dsn: str) -> dict[int, set[str]]:
    """employee_key -> the HRIS employee ids holding it (a rehire holds one key over two employments)."""
    import psycopg

    holders: dict[int, set[str]] = defaultdict(set)
    with psycopg.connect(dsn) as conn:
        for key, employee_id in conn.execute(
            "select employee_key, hris_employee_id from core.hris_employee_key"
        ):
            holders[key].add(employee_id)
    return holders


def judge_queue(dsn: str, queue: list[dict[str, Any]], owners: dict[str, str]) -> list[bool]:
    """For each suggestion, whether the truth says the account belongs to the suggested employee."""
    holders = employments_by_key(dsn)
    return [
        bool(owners.get(suggestion["lms_user_id"]))
        and owners[suggestion["lms_user_id"]] in holders.get(suggestion["employee_key"], ())
        for suggestion in queue
    ]


def review_as_perfect_steward(
    dsn: str, queue: list[dict[str, Any]], owners: dict[str, str]
) -> dict[str, Any]:
    """Accept each suggestion the truth confirms and reject every other one, through the stewardship path."""
    import psycopg

    from turnover_signals.identity.stewardship import accept_suggestion, reject_suggestion

    decisions = Counter()
    right_at_rank = Counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for suggestion, is_right in zip(queue, judge_queue(dsn, queue, owners), strict=True):
            owner = owners.get(suggestion["lms_user_id"], "")
            if is_right:
                right_at_rank[suggestion["rank"]] += 1
                accept_suggestion(
                    conn, suggestion["suggestion_id"], decided_by=STEWARD, reason="the ground truth says so"
                )
                decisions["accepted"] += 1
            else:
                reason = "a contractor or unknown account" if not owner else "the ground truth names another"
                reject_suggestion(conn, suggestion["suggestion_id"], decided_by=STEWARD, reason=reason)
                decisions["rejected"] += 1
    accounts = {suggestion["lms_user_id"] for suggestion in queue}
    owned = [user for user in accounts if owners.get(user)]
    return {
        "suggestions": len(queue),
        "accounts": len(accounts),
        "accounts_owned_by_an_employee": len(owned),
        "right": decisions["accepted"],
        "right_share": decisions["accepted"] / len(queue) if queue else None,
        "right_at_rank": dict(sorted(right_at_rank.items())),
        **decisions,
    }


# -- one data set -------------------------------------------------------------------------------


def measure_dataset(
    preset: str, args: argparse.Namespace, config: dict[str, Any], template: str, work_dir: Path
) -> dict[str, Any]:
    data_dir = work_dir / preset
    manifest = generate_enterprise(
        preset,
        data_dir,
        employees=args.employees,
        months=args.months,
        seed=args.seed,
        snapshot_every_days=28,
        statements_per_month=0.5,
    )
    database = f"{template.removesuffix('_template')}_{preset}"
    dsn = WAREHOUSE.create(database, template=template)
    print(f"{preset}: generated in {manifest['generate_seconds']} s, loading", flush=True)
    result: dict[str, Any] = {
        "preset": preset,
        "generate_seconds": manifest["generate_seconds"],
        "lms_accounts": manifest["counts"]["lms_accounts"],
        "employments": manifest["counts"]["employments"],
        "fuzzy_mess": {
            kind: entry["count"] for kind, entry in manifest["identity_mess"]["fuzzy_rates"].items()
        },
        "database": database,
    }
    result["load"] = load_enterprise(dsn, data_dir, config)
    owners = truth_owners(data_dir)
    result["resolve"] = run_resolve(config, dsn)
    result["rules"] = link_scores(dsn, owners)
    print(f"{preset}: rules {result['rules']}", flush=True)
    try:
        result["suggest"] = run_suggestions(config, dsn)
    except ImportError as exc:
        result["suggest_missing"] = str(exc)
        print(f"{preset}: no suggestion stage ({exc}); rules only", flush=True)
        return result
    queue = open_queue(dsn)
    result["queue"] = review_as_perfect_steward(dsn, queue, owners)
    result["queue"]["share_of_accounts"] = len(queue) / result["lms_accounts"]
    result["resolve_after_review"] = run_resolve(config, dsn)
    result["reviewed"] = link_scores(dsn, owners)
    print(f"{preset}: suggestions {result['suggest']['wall_seconds']} s, queue {result['queue']}", flush=True)
    print(f"{preset}: with review {result['reviewed']}", flush=True)
    return result


def timing_run(
    accounts: int, args: argparse.Namespace, config: dict[str, Any], template: str, work_dir: Path
) -> dict[str, Any]:
    """`suggest_matches` on a one-month `messiest` enterprise of about `accounts` LMS accounts."""
    employees = max(50, round(accounts / MESSIEST_ACCOUNTS_PER_EMPLOYEE))
    data_dir = work_dir / "timing"
    manifest = generate_enterprise(
        "messiest",
        data_dir,
        employees=employees,
        months=1,
        seed=args.seed,
        snapshot_every_days=28,
        statements_per_month=0.1,
    )
    database = f"{template.removesuffix('_template')}_timing"
    dsn = WAREHOUSE.create(database, template=template)
    print(f"timing: {manifest['counts']['lms_accounts']:,} accounts generated, loading", flush=True)
    result: dict[str, Any] = {
        "employees": employees,
        "lms_accounts": manifest["counts"]["lms_accounts"],
        "generate_seconds": manifest["generate_seconds"],
        "database": database,
    }
    result["load"] = load_enterprise(dsn, data_dir, config)
    result["resolve"] = run_resolve(config, dsn)
    owners = truth_owners(data_dir)
    result["rules"] = link_scores(dsn, owners)
    result["suggest"] = run_suggestions(config, dsn)
    queue = open_queue(dsn)
    verdicts = judge_queue(dsn, queue, owners)
    result["queue"] = {
        "suggestions": len(queue),
        "accounts": len({suggestion["lms_user_id"] for suggestion in queue}),
        "share_of_accounts": len(queue) / result["lms_accounts"],
        "right_share": sum(verdicts) / len(queue) if queue else None,
    }
    print(f"timing: suggestions {result['suggest']}, queue {result['queue']}", flush=True)
    return result


# -- report -------------------------------------------------------------------------------------


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def results_table(result: dict[str, Any]) -> str:
    rows = []
    for run in result["datasets"]:
        queue, reviewed = run.get("queue"), run.get("reviewed")
        rows.append(
            [
                PRESET_LABELS[run["preset"]],
                f"{run['lms_accounts']:,}",
                f"{run['rules']['links_true']:,}",
                _ratio(run["rules"]["precision"]),
                _ratio(run["rules"]["recall"]),
                f"{queue['suggestions']:,} ({queue['accounts']:,} accounts)" if queue else "not run",
                _share(queue["share_of_accounts"]) if queue else "—",
                _share(queue["right_share"]) if queue else "—",
                f"{run['suggest']['wall_seconds']:.2f}" if "suggest" in run else "—",
                _ratio(reviewed["precision"]) if reviewed else "—",
                _ratio(reviewed["recall"]) if reviewed else "—",
            ]
        )
    timing = result.get("timing")
    if timing:
        rows.append(
            [
                f"timing: {PRESET_LABELS['messiest']}, 1 month",
                f"{timing['lms_accounts']:,}",
                f"{timing['rules']['links_true']:,}",
                _ratio(timing["rules"]["precision"]),
                _ratio(timing["rules"]["recall"]),
                f"{timing['queue']['suggestions']:,} ({timing['queue']['accounts']:,} accounts)",
                _share(timing["queue"]["share_of_accounts"]),
                _share(timing["queue"]["right_share"]),
                f"{timing['suggest']['wall_seconds']:.2f}",
                "—",
                "—",
            ]
        )
    return markdown_table(
        [
            "data set",
            "LMS accounts",
            "true links",
            "rules: precision",
            "rules: recall",
            "review queue",
            "queue % of accounts",
            "queue right",
            "suggestion stage s",
            "with review: precision",
            "with review: recall",
        ],
        rows,
    )


def goal_lines(result: dict[str, Any]) -> list[str]:
    def verdict(met: bool) -> str:
        return "**met**" if met else "**NOT met**"

    lines = []
    precisions = [run["rules"]["precision"] for run in result["datasets"]]
    if "timing" in result:
        precisions.append(result["timing"]["rules"]["precision"])
    if precisions:
        lines.append(
            f"- Automatic links (rules) precision {GOAL_RULES_PRECISION}: "
            f"{', '.join(_ratio(p) for p in precisions)} — {verdict(min(precisions) >= GOAL_RULES_PRECISION)}"
        )
    messiest = next((run for run in result["datasets"] if run["preset"] == "messiest"), None)
    if messiest is None or "reviewed" not in messiest:
        lines.append(
            "- With review on the messiest set: not measured (no messiest run or no suggestion stage)"
        )
    else:
        recall, queue = messiest["reviewed"]["recall"], messiest["queue"]
        lines.append(
            f"- With review on the messiest set: recall {recall:.4f} (goal ≥ {GOAL_REVIEWED_RECALL}) — "
            f"{verdict(recall >= GOAL_REVIEWED_RECALL)}; queue {_share(queue['share_of_accounts'])} of "
            "accounts "
            f"(goal ≤ {GOAL_QUEUE_SHARE:.0%}) — {verdict(queue['share_of_accounts'] <= GOAL_QUEUE_SHARE)}; "
            f"{_share(queue['right_share'])} right (goal ≥ {GOAL_QUEUE_RIGHT:.0%}) — "
            f"{verdict((queue['right_share'] or 0) >= GOAL_QUEUE_RIGHT)}"
        )
    timing = result.get("timing")
    if timing is None:
        lines.append(
            "- Suggestion stage at 100,000 accounts: not measured (run with --timing-accounts 100000)"
        )
    else:
        seconds = timing["suggest"]["wall_seconds"]
        judged = (
            verdict(seconds < GOAL_STAGE_SECONDS)
            if timing["lms_accounts"] >= GOAL_STAGE_ACCOUNTS * 0.9
            else "too few accounts to judge"
        )
        lines.append(
            f"- Suggestion stage on {timing['lms_accounts']:,} accounts: {seconds:.1f} s "
            f"(goal < {GOAL_STAGE_SECONDS:.0f} s for {GOAL_STAGE_ACCOUNTS:,}) — {judged}"
        )
    return lines


def miss_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    for run in result["datasets"]:
        for phase in ("rules", "reviewed"):
            if phase in run and (run[phase]["missed_by_reason"] or run[phase]["wrong_by_method"]):
                lines.append(
                    f"- {run['preset']}, {'rules' if phase == 'rules' else 'with review'}: missed "
                    f"{json.dumps(run[phase]['missed_by_reason'])}, "
                    f"wrong {json.dumps(run[phase]['wrong_by_method'])}"
                )
    return lines


def readme_body(args: argparse.Namespace, result: dict[str, Any]) -> str:
    machine = result["machine"]
    command = (
        "PYTHONPATH=plugins:. .venv/bin/python benchmarks/identity_suggestions.py "
        f"--employees {args.employees} --months {args.months} --seed {args.seed}"
        + (f" --timing-accounts {args.timing_accounts}" if args.timing_accounts else "")
        + " --readme"
    )
    return "\n".join(
        [
            "The rules alone, then the rules plus a perfect steward's review of the suggestion queue",
            "(accept what the ground truth confirms, reject the rest, through",
            "`turnover_signals.identity.stewardship`), on generator presets loaded through the real HRIS and",
            "SCIM loaders; see the script's docstring.",
            "",
            f"`{command}`",
            "",
            f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on code {result['code_version']}: "
            f"{machine['nproc']} cores ({machine['cpu']}), {machine['ram_gib']} GiB, PostgreSQL "
            f"{machine['postgres'].get('server_version', '?')}, load average at the start "
            f"{', '.join(f'{value:.1f}' for value in machine['loadavg_start'])} (a shared machine).",
            "",
            results_table(result),
            "",
            "Goals (issue 23):",
            "",
            *goal_lines(result),
            "",
            "Misses and wrong links by reason:",
            "",
            *(miss_lines(result) or ["- none"]),
            *timing_notes(result),
        ]
    )


def timing_notes(result: dict[str, Any]) -> list[str]:
    """Where the timing run's time went, and why its blocks are larger than a real directory's."""
    timing = result.get("timing")
    if timing is None:
        return []
    from turnover_demo.synth.names import FIRST_NAMES, LAST_NAMES

    steps = timing["suggest"]["seconds"]
    return [
        "",
        f"Timing run: {timing['suggest']['accounts_scored']:,} accounts scored against "
        f"{timing['employees']:,} employees, {timing['suggest']['pairs_scored']:,} pairs; "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in steps.items())
        + ". The generator draws names from "
        f"{len(FIRST_NAMES)} first and {len(LAST_NAMES)} last names (common ones more often), so a family "
        "name is held by over a thousand employees at this size, as Smith is in a real directory of this "
        "size: blocking on the family name alone compared 3.2 million pairs here (163.5 s); with the first "
        "initial, about a hundred employees per account. A full name has several holders too: an account "
        "on a personal domain is then told apart from its namesakes only by its creation at a hire.",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--employees", type=int, default=1000, help="starting headcount of each data set")
    parser.add_argument("--months", type=int, default=12, help="simulated months of each data set")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--presets",
        default="default,mess_3x,messiest",
        help="comma-separated generator presets to measure ('' with --timing-accounts: the timing run only)",
    )
    parser.add_argument(
        "--timing-accounts",
        type=int,
        default=0,
        help="also time the suggestion stage on a messiest enterprise of about this many accounts (0: skip)",
    )
    parser.add_argument("--readme", action="store_true", help=f'write the "{README_TITLE}" section')
    parser.add_argument("--json-out")
    parser.add_argument("--keep", action="store_true", help="keep the databases and generated data")
    args = parser.parse_args()
    presets = [preset.strip() for preset in args.presets.split(",") if preset.strip()]
    unknown = [preset for preset in presets if preset not in PRESET_LABELS]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; choose from {', '.join(PRESET_LABELS)}")

    work_dir = Path(tempfile.mkdtemp(prefix="identity-suggestions-"))
    # Airflow (imported by the SFTP and HTTP hooks) reads its home at first import: a throwaway one.
    os.environ.update({k: v for k, v in airflow_child_env(work_dir / "airflow").items() if k != "PYTHONPATH"})

    from turnover_signals.config import load_config
    from turnover_signals.warehouse import migrate, warehouse_connection

    config = load_config(use_variable=False)
    config["identity"]["review_sample_dir"] = str(work_dir / "identity_review")
    template = f"identity_suggest_bench_{os.getpid()}_template"
    result: dict[str, Any] = {
        "arguments": vars(args),
        "machine": machine_description(WAREHOUSE.admin_dsn),
        "code_version": code_version(),
        "datasets": [],
    }
    base = template.removesuffix("_template")
    try:
        with warehouse_connection(dsn=WAREHOUSE.create(template)) as conn:
            migrate(conn)
        started = time.perf_counter()
        import great_expectations  # noqa: F401  (imported once, outside every timed run)

        result["gx_import_seconds"] = round(time.perf_counter() - started, 2)
        for preset in presets:
            result["datasets"].append(measure_dataset(preset, args, config, template, work_dir))
        if args.timing_accounts:
            result["timing"] = timing_run(args.timing_accounts, args, config, template, work_dir)
    finally:
        if not args.keep:
            for database in (template, *(f"{base}_{name}" for name in (*presets, "timing"))):
                WAREHOUSE.drop(database)
            shutil.rmtree(work_dir, ignore_errors=True)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    print()
    print(results_table(result))
    print()
    print("\n".join(goal_lines(result)))
    print("\n".join(miss_lines(result)))
    print(f"peak RSS (this Python process): {result['peak_rss_mib']} MiB")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1, default=json_default), encoding="utf-8")
    if args.readme:
        write_readme_section(README_TITLE, readme_body(args, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
