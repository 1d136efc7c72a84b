"""Run the whole simulation and write the output tree; `generate(config)` is the entry point.

```
DIR/manifest.json
DIR/sftp/outbound/hris/employees_YYYYMMDD.csv(.ctl), compensation_YYYYMMDD.csv(.ctl)
DIR/lms/users.jsonl, DIR/lms/statements.jsonl
DIR/ground_truth/persons.csv, DIR/ground_truth/lms_accounts.csv
```
Determinism: all randomness comes from `random.Random` streams seeded from the seed and a
stream name (HR, LMS, identity mess), nothing reads the clock, and nothing iterates a set. The
LMS and mess streams never feed back into HR, so for one seed the HR world (who leaves, when)
is the same whatever the signal strength or mess rates (mess rates that change hires aside).
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from random import Random

from turnover_demo.synth.catalog import read_course_catalog
from turnover_demo.synth.clock import day_start_ms, iso_date, months_before
from turnover_demo.synth.config import SynthConfig
from turnover_demo.synth.hris_files import HrisExportWriter
from turnover_demo.synth.identity_mess import MessLedger
from turnover_demo.synth.lms_events import LearningSimulator, StatementSink
from turnover_demo.synth.population import Company

GENERATOR_VERSION = 1
HRIS_SUBDIR = Path("sftp") / "outbound" / "hris"
PERSONS_COLUMNS = (
    "person_id",
    "employee_id",
    "sso_guid",
    "work_email",
    "hire_date",
    "termination_date",
    "termination_type",
    "latent_risk",
)
LMS_ACCOUNTS_COLUMNS = (
    "lms_user_id",
    "person_id",
    "employee_id",
    "is_contractor",
    "is_duplicate_account",
    "mess_kinds",
)


def snapshot_days(start_day: int, end_day: int, every_days: int) -> list[int]:
    """Snapshot dates counted back from the end date, so the last file is always as of the end."""
    days = list(range(end_day, start_day - 1, -every_days))
    return sorted(days)


def _prepare_output(out_dir: Path) -> None:
    """Create the tree and remove files an earlier run of the generator left (and only those)."""
    hris_dir = out_dir / HRIS_SUBDIR
    hris_dir.mkdir(parents=True, exist_ok=True)
    for pattern in ("employees_*.csv", "employees_*.csv.ctl", "compensation_*.csv", "compensation_*.csv.ctl"):
        for stale in sorted(hris_dir.glob(pattern)):
            stale.unlink()
    for subdir in ("lms", "ground_truth"):
        shutil.rmtree(out_dir / subdir, ignore_errors=True)
        (out_dir / subdir).mkdir(parents=True)
    (out_dir / "manifest.json").unlink(missing_ok=True)


class _HashingTextFile:
    """A UTF-8 text file written with its digest and row count, for the manifest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._digest = hashlib.sha256()
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in close()

    def write_line(self, text: str, is_row: bool = True) -> None:
        data = text.encode("utf-8")
        self._digest.update(data)
        self._handle.write(data)
        self.rows += is_row

    def close(self) -> dict[str, object]:
        self._handle.close()
        return {"rows": self.rows, "sha256": self._digest.hexdigest(), "bytes": self.path.stat().st_size}


class _CsvLine:
    """csv.writer target keeping the last line, so CSV text can go through a hashing file."""

    def __init__(self) -> None:
        self.line = ""

    def write(self, text: str) -> None:
        self.line = text


def _write_csv(path: Path, columns: tuple[str, ...], rows) -> dict[str, object]:
    target = _HashingTextFile(path)
    capture = _CsvLine()
    writer = csv.writer(capture)
    writer.writerow(columns)
    target.write_line(capture.line, is_row=False)
    for row in rows:
        writer.writerow(row)
        target.write_line(capture.line)
    return target.close()


def _persons_rows(company: Company):
    for employment in company.employments:
        yield (
            employment.person.person_id,
            employment.employee_id,
            employment.sso_guid,
            employment.work_email,
            iso_date(employment.hire_day),
            iso_date(employment.termination_day) if employment.termination_day is not None else "",
            employment.termination_type,
            f"{employment.person.latent_risk:.4f}",
        )


def _lms_account_rows(accounts):
    for account in accounts:
        yield (
            account.lms_user_id,
            account.person.person_id if account.person is not None else "",
            account.employment.employee_id if account.employment is not None else "",
            "true" if account.is_contractor else "false",
            "true" if account.is_duplicate else "false",
            ";".join(dict.fromkeys(account.mess_kinds)),
        )


def generate(config: SynthConfig) -> dict[str, object]:
    """Generate the enterprise described by `config` into `config.out_dir`; return the manifest."""
    config.validate()
    out_dir = Path(config.out_dir)
    catalog = read_course_catalog(Path(config.catalog_file))
    start = months_before(config.end_date, config.months)
    start_day, end_day = start.toordinal(), config.end_date.toordinal()
    snapshots = snapshot_days(start_day, end_day, config.snapshot_every_days)
    snapshot_set = set(snapshots)
    _prepare_output(out_dir)

    ledger = MessLedger(config)
    hr_rng = Random(f"turnover-synth:{config.seed}:hr")
    lms_rng = Random(f"turnover-synth:{config.seed}:lms")
    # Separate streams for HR-side and LMS-side mess, so LMS settings never change the HR world.
    hr_mess_rng = Random(f"turnover-synth:{config.seed}:hr-mess")
    lms_mess_rng = Random(f"turnover-synth:{config.seed}:lms-mess")
    # The fuzzy kinds (issue 23) have streams of their own, so switching them on keeps the other mess.
    hr_fuzzy_mess_rng = Random(f"turnover-synth:{config.seed}:hr-fuzzy-mess")
    lms_fuzzy_mess_rng = Random(f"turnover-synth:{config.seed}:lms-fuzzy-mess")

    hris = HrisExportWriter(out_dir / HRIS_SUBDIR, snapshots)
    sink = StatementSink(out_dir / "lms" / "statements.jsonl")
    lms = LearningSimulator(
        config, catalog, start_day, end_day, lms_rng, lms_mess_rng, ledger, sink, lms_fuzzy_mess_rng
    )
    company = Company(config, start_day, end_day, hr_rng, hr_mess_rng, ledger, hris, lms, hr_fuzzy_mess_rng)
    lms.issued_corporate_emails = company.used_emails
    try:
        company.build_initial_population()
        initial_headcount = len(company.active)
        for day in range(start_day, end_day + 1):
            company.run_day(day)
            lms.run_day(day)
            if day in snapshot_set:
                hris.write_snapshot(day, company.snapshot_employments(day))
        lms.finish()
        statements_facts = sink.close(day_start_ms(end_day + 1))
    finally:
        hris.close()

    files: dict[str, object] = {}
    users = _HashingTextFile(out_dir / "lms" / "users.jsonl")
    for line in lms.users_jsonl_lines():
        users.write_line(line)
    files["lms/users.jsonl"] = users.close()
    files["lms/statements.jsonl"] = statements_facts
    files["ground_truth/persons.csv"] = _write_csv(
        out_dir / "ground_truth" / "persons.csv", PERSONS_COLUMNS, _persons_rows(company)
    )
    accounts = lms.accounts_in_directory_order()
    files["ground_truth/lms_accounts.csv"] = _write_csv(
        out_dir / "ground_truth" / "lms_accounts.csv", LMS_ACCOUNTS_COLUMNS, _lms_account_rows(accounts)
    )
    for hris_file in hris.files:
        files[f"{HRIS_SUBDIR.as_posix()}/{hris_file['file']}"] = {
            key: value for key, value in hris_file.items() if key != "file"
        }

    ledger.record_totals("mbox_actor", sink.mbox_statements, sink.learner_statements)
    ledger.record_totals("late_stored", sink.late_statements, sink.learner_statements)
    ledger.record_totals("voided", sink.voided_targets, sink.learner_statements)

    active_employee_months = company.active_employee_days / 30.44
    manifest = {
        "generator": "turnover_demo.synth",
        "generator_version": GENERATOR_VERSION,
        "seed": config.seed,
        "arguments": config.as_manifest_arguments(),
        "date_range": {
            "start": start.isoformat(),
            "end": config.end_date.isoformat(),
            "first_snapshot": iso_date(snapshots[0]),
            "last_snapshot": iso_date(snapshots[-1]),
        },
        "counts": {
            "persons": len(company.persons),
            "employments": len(company.employments),
            "initial_headcount": initial_headcount,
            "final_headcount": len(company.active),
            **company.stats,
            "employee_snapshots": len(snapshots),
            "compensation_files": len(snapshots),
            "employee_snapshot_rows": hris.snapshot_rows,
            "compensation_rows": hris.compensation_rows,
            "lms_accounts": len(accounts),
            "lms_accounts_active": sum(account.deactivated_ms is None for account in accounts),
            "contractor_accounts": sum(account.is_contractor for account in accounts),
            "duplicate_accounts": sum(account.is_duplicate for account in accounts),
            "statements": sink.written,
            "learner_statements": sink.learner_statements,
            "voiding_statements": sink.voiding_statements,
            "statements_not_yet_stored_at_end": sink.not_yet_stored,
            **lms.stats,
            "active_employee_months": round(active_employee_months, 1),
            "realized_statements_per_active_employee_month": (
                round(lms.stats["employee_learner_statements"] / active_employee_months, 3)
                if active_employee_months
                else None
            ),
        },
        "identity_mess": ledger.report(),
        "files": dict(sorted(files.items())),
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest
