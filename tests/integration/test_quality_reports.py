"""Expectation reports for auditors: one Data Docs page per validation run, and no PII in pages or rows.

The files come from the generator (real names and addresses of the synthetic enterprise), are
broken in their PII columns, delivered over the real sshd and gated by the real loader.
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.integration.hris_helpers import compensation_bytes, csv_bytes, write_feed_file
from tests.integration.test_hris_ingest import config as hris_config  # noqa: F401 - fixture
from tests.integration.test_hris_ingest import hris_dir, run_pipeline, sftp_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration
PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    subprocess.run(
        [sys.executable, "-m", "turnover_signals.synth", "--out", str(out), "--employees", "60", "--months", "2",
         "--snapshot-every-days", "28"],
        check=True, env={"PYTHONPATH": PLUGINS, "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return out


def first_file(generated: Path, feed: str) -> list[dict[str, str]]:
    path = sorted((generated / "sftp" / "outbound" / "hris").glob(f"{feed}_*.csv"))[0]
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def personal_strings(rows: list[dict[str, str]]) -> set[str]:
    """Every email, name and salary of the delivered rows, as they could appear in a report."""
    found = set()
    for row in rows:
        for column in ("work_email", "first_name", "last_name", "base_salary", "new_base_salary"):
            value = (row.get(column) or "").strip()
            if len(value) >= 4:
                found.add(value)
        email = row.get("work_email") or ""
        found.add(email.split("@")[0]) if "@" in email else None
    return found


def test_failed_gates_write_one_data_docs_page_each_with_pii_masked(
    generated, sftp_server, hris_dir, hris_config, warehouse_dsn, tmp_path  # noqa: F811
):
    docs = tmp_path / "docs"
    hris_config["quality"]["data_docs_dir"] = str(docs)
    employees = first_file(generated, "employees")
    compensation = first_file(generated, "compensation")
    # Break the PII columns so the failures quote them: malformed addresses, a repeated id, negative pay.
    for row in employees[:5]:
        row["work_email"] = row["work_email"].replace("@", " at ")
    employees[6]["employee_id"] = employees[7]["employee_id"]
    employees[8]["base_salary"] = "-" + employees[8]["base_salary"]
    compensation[0]["new_base_salary"] = "-" + compensation[0]["new_base_salary"]
    date = "20260105"
    write_feed_file(hris_dir, f"employees_{date}.csv", csv_bytes(employees))
    write_feed_file(hris_dir, f"compensation_{date}.csv", compensation_bytes(compensation))
    sftp_server.sync()

    results, errors = run_pipeline(hris_config, warehouse_dsn)
    assert len(errors) == 2  # both files quarantined

    pages = sorted(docs.rglob("*.html"))
    with psycopg.connect(warehouse_dsn) as conn:
        rows = conn.execute(
            "select suite_name, success, data_docs_path, failed_expectations::text, results::text,"
            " statistics::text from audit.validation_result order by validated_at"
        ).fetchall()
    assert sorted((suite, success) for suite, success, *_ in rows) == [
        ("hris_compensation_file", False), ("hris_employees_file", False)]
    assert {Path(row[2]) for row in rows} == set(pages) and len(pages) == 2  # one page per run
    html = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    assert "expect_column_values_to_match_regex" in html or "work_email" in html
    assert re.search(r"pii:[0-9a-f]{10}", html), "the failing samples are shown, masked"
    stored = "\n".join(text for row in rows for text in row[3:])
    leaked = sorted(s for s in personal_strings(employees + compensation) if s in html or s in stored)
    assert leaked == [], f"PII in the reports: {len(leaked)} values"

