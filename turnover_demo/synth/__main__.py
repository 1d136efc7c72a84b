"""Command line: `python -m turnover_demo.synth --employees N --months M --seed S --out DIR`.

`--preset messiest` starts from a named set of settings (see `config.PRESETS`); options given
explicitly override it. Prints a one-line summary; everything else is in `DIR/manifest.json`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import fields
from datetime import date
from pathlib import Path

from turnover_demo.synth.config import PRESETS, SynthConfig, SynthConfigError
from turnover_demo.synth.generator import generate

_DEFAULTS = {spec.name: spec.default for spec in fields(SynthConfig) if spec.name != "out_dir"}

_RATE_HELP = {
    "email_case_rate": "share of primary LMS accounts whose email differs from the HRIS one only by case",
    "plus_alias_rate": "share of primary LMS accounts using a plus alias (jane.doe+lms@...)",
    "domain_alias_rate": "share of primary LMS accounts using the alias domain nw-corp.example",
    "missing_sso_rate": "share of employments (HRIS rows) without an sso_guid (so no SCIM externalId)",
    "contractor_rate": "LMS-only contractor accounts per employment",
    "duplicate_account_rate": "share of primary LMS accounts whose owner also has a second account",
    "email_reuse_rate": "share of non-rehire hires who get a leaver's recycled work_email",
    "rehire_rate": "share of hires during the period that are rehires under a new employee_id",
    "mbox_rate": "share of learner statements identifying the actor by mbox instead of account",
    "email_typo_rate": "share of primary LMS accounts with one edit (typo) in the email's local part",
    "personal_domain_rate": "share of primary LMS accounts registered with a personal or unknown domain",
    "dropped_guid_rate": "share of primary LMS accounts without externalId although the HRIS has the GUID",
    "namesake_rate": "share of newly named hires who get the first and last name of an earlier employee",
    "contractor_lookalike_rate": "share of contractor accounts with an employee's name and local part",
    "late_rate": "share of learner statements stored 1-10 days after their timestamp (not scaled)",
    "void_rate": "share of learner statements voided by a later statement (not scaled)",
}


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every option has a default except --out."""
    parser = argparse.ArgumentParser(
        prog="python -m turnover_demo.synth",
        description="Generate a deterministic synthetic enterprise (HRIS SFTP files, SCIM users, xAPI "
        "statements).",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default="default",
        help="start from named settings: default, mess_3x (3x identity mess), messiest (3x identity mess "
        "plus typos, personal domains, dropped GUIDs, namesakes and lookalike contractors)",
    )
    parser.add_argument("--employees", type=int, default=_DEFAULTS["employees"], help="starting headcount")
    parser.add_argument(
        "--months", type=int, default=_DEFAULTS["months"], help="length of the simulated period"
    )
    parser.add_argument("--seed", type=int, default=_DEFAULTS["seed"])
    parser.add_argument(
        "--end-date",
        type=_iso_date,
        default=_DEFAULTS["end_date"],
        help="last day of the simulated period (fixed default, never today)",
    )
    parser.add_argument(
        "--snapshot-every-days",
        type=int,
        default=_DEFAULTS["snapshot_every_days"],
        help="days between HRIS snapshot/compensation files, counted back from --end-date",
    )
    parser.add_argument(
        "--signal-strength",
        type=float,
        default=_DEFAULTS["signal_strength"],
        help="how strongly learning fades before a voluntary exit; 0 = independent of exits",
    )
    parser.add_argument(
        "--statements-per-month",
        type=float,
        default=_DEFAULTS["statements_per_month"],
        help="mean learner statements per active employee per month",
    )
    for name, help_text in _RATE_HELP.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=float, default=_DEFAULTS[name], help=help_text
        )
    parser.add_argument(
        "--mess-scale",
        type=float,
        default=_DEFAULTS["mess_scale"],
        help="multiplies every identity-mess rate (0 = clean identities)",
    )
    parser.add_argument("--catalog", type=Path, default=_DEFAULTS["catalog_file"], help="course catalog CSV")
    return parser


def config_from_arguments(arguments: argparse.Namespace) -> SynthConfig:
    """Turn parsed arguments into a SynthConfig."""
    values = {name: getattr(arguments, name) for name in _DEFAULTS if name != "catalog_file"}
    return SynthConfig(out_dir=arguments.out, catalog_file=arguments.catalog, **values)


def parse_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse twice: the preset's settings become the defaults, so options given explicitly still win."""
    preset = parser.parse_known_args(argv)[0].preset
    parser.set_defaults(**PRESETS[preset])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, generate, print a summary; exit status 2 for unusable settings."""
    parser = build_parser()
    arguments = parse_arguments(parser, argv)
    try:
        manifest = generate(config_from_arguments(arguments))
    except SynthConfigError as exc:
        parser.error(str(exc))
    counts = manifest["counts"]
    print(
        f"wrote {arguments.out}: {counts['employments']} employments, {counts['employee_snapshots']} "
        f"snapshots, {counts['lms_accounts']} LMS accounts, {counts['statements']} statements "
        f"({manifest['date_range']['start']} to {manifest['date_range']['end']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
