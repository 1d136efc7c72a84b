"""Expectation reports for auditors: one Data Docs page per validation run, and no PII in pages or rows.

The files come from the generator (real names and addresses of the synthetic enterprise), are
broken in their PII columns, delivered over the real sshd and gated by the real loader.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.integration.hris_helpers import compensation_bytes, csv_bytes, insert_pay_changes, write_feed_file
from tests.integration.test_hris_ingest import config as hris_config  # noqa: F401 - fixture
from tests.integration.test_hris_ingest import run_pipeline
from turnover_signals import storage
from turnover_signals.config import load_config
from turnover_signals.errors import BadInputError
from turnover_signals.governance.pseudonyms import pii_mask_key
from turnover_signals.lms.users import extract_users, scim_client
from turnover_signals.quality.gate import (
    PII_WITHHELD,
    RunIdentity,
    ValidationOutcome,
    mask_value,
    record_validation,
)

pytestmark = pytest.mark.integration
PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")


def local_page(url: str) -> Path:
    """The local file behind a recorded `file://` Data Docs URL (these tests use a local folder as
    storage)."""
    return Path(storage.stored_path({}, url).path)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "turnover_demo.synth",
            "--out",
            str(out),
            "--employees",
            "60",
            "--months",
            "2",
            "--snapshot-every-days",
            "28",
        ],
        check=True,
        env={"PYTHONPATH": f"{PLUGINS}:{Path(PLUGINS).parent}", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
    )
    return out


def first_file(generated: Path, feed: str) -> list[dict[str, str]]:
    path = sorted((generated / "sftp" / "outbound" / "hris").glob(f"{feed}_*.csv"))[0]
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


PERSONAL_COLUMNS = (
    "employee_id",
    "manager_id",
    "sso_guid",
    "work_email",
    "first_name",
    "last_name",
    "base_salary",
    "previous_base_salary",
    "new_base_salary",
)


def personal_strings(rows: list[dict[str, str]]) -> set[str]:
    """Every id, email, name and salary of the delivered rows, as they could appear in a report."""
    found = set()
    for row in rows:
        for column in PERSONAL_COLUMNS:
            value = (row.get(column) or "").strip()
            if len(value) >= 4:
                found.add(value)
        email = row.get("work_email") or ""
        found.add(email.split("@")[0]) if "@" in email else None
    return found


def generated_users(generated: Path, count: int = 60) -> list[dict]:
    with open(generated / "lms" / "users.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(count), strict=False)]


def scim_personal_strings(users: list[dict]) -> set[str]:
    """Every id, user name, email (and its local part) and name of the SCIM users."""
    found = set()
    for user in users:
        name = user.get("name") or {}
        emails = [e["value"] for e in user.get("emails") or []]
        for value in (
            user["id"],
            user.get("userName"),
            user.get("externalId"),
            name.get("givenName"),
            name.get("familyName"),
            *emails,
            *(e.split("@")[0] for e in emails),
        ):
            if value and len(value) >= 4:
                found.add(value)
    return found


def validation_rows(dsn: str, suite_name: str) -> list[dict]:
    with psycopg.connect(dsn) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select success, suite_version, batch_identifier, data_docs_path, failed_expectations::text as "
            "failed, results::text as results, statistics::text as statistics, dag_id, run_id, task_id from "
            "audit.validation_result where suite_name = %s order by validated_at",
            (suite_name,),
        )
        return cur.fetchall()


def leaked(strings: set[str], *texts: str | None) -> list[str]:
    joined = "\n".join(t for t in texts if t)
    return sorted(s for s in strings if s in joined)


def test_failed_gates_write_one_data_docs_page_each_with_pii_masked(
    generated,
    sftp_drop,  # noqa: F811
    hris_dir,  # noqa: F811
    hris_config,  # noqa: F811
    warehouse_dsn,
    tmp_path,  # noqa: F811
    monkeypatch,
):
    # with the pseudonym key configured, samples of PII columns are masked under a key derived from it
    key = "quality-report-test-key-0123456789"
    monkeypatch.setenv(
        "AIRFLOW_CONN_ANALYTICS_PSEUDONYM", json.dumps({"conn_type": "generic", "password": key})
    )
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
    sftp_drop.sync()

    results, errors = run_pipeline(hris_config, warehouse_dsn)
    assert len(errors) == 2  # both files quarantined

    pages = sorted(docs.rglob("*.html"))
    with psycopg.connect(warehouse_dsn) as conn:
        rows = conn.execute(
            "select suite_name, success, data_docs_path, failed_expectations::text, results::text,"
            " statistics::text from audit.validation_result order by validated_at"
        ).fetchall()
    assert sorted((suite, success) for suite, success, *_ in rows) == [
        ("hris_compensation_file", False),
        ("hris_employees_file", False),
    ]
    assert {local_page(row[2]) for row in rows} == set(pages) and len(pages) == 2  # one page per run
    html = "\n".join(page.read_text(encoding="utf-8") for page in pages)
    assert "expect_column_values_to_match_regex" in html or "work_email" in html
    assert re.search(r"pii:[0-9a-f]{10}", html), "the failing samples are shown, masked"
    stored = "\n".join(text for row in rows for text in row[3:])
    # a malformed address is shown by its keyed mask, never by an unkeyed hash anyone could recompute
    address = employees[0]["work_email"]
    assert mask_value(address, pii_mask_key(key)) in html and mask_value(address, pii_mask_key(key)) in stored
    unkeyed = {"pii:" + hashlib.sha256(s.encode()).hexdigest()[:10] for s in personal_strings(employees)}
    assert not [m for m in unkeyed if m in html or m in stored]
    found = leaked(personal_strings(employees + compensation), html, stored)
    assert found == [], f"PII in the reports: {found[:5]} ({len(found)} values)"


def test_a_passed_hris_file_keeps_its_data_docs_page_under_the_configured_directory(
    generated,
    sftp_drop,  # noqa: F811
    hris_dir,  # noqa: F811
    hris_config,  # noqa: F811
    warehouse_dsn,
    tmp_path,  # noqa: F811
):
    # The fast gate writes its page in a temporary folder and moves it here when it is the verdict.
    docs = tmp_path / "docs"
    hris_config["quality"]["data_docs_dir"] = str(docs)
    employees = first_file(generated, "employees")
    write_feed_file(hris_dir, "employees_20260105.csv", csv_bytes(employees))
    sftp_drop.sync()
    results, errors = run_pipeline(hris_config, warehouse_dsn)
    assert errors == [] and results[0]["status"] == "loaded"
    (row,) = validation_rows(warehouse_dsn, "hris_employees_file")
    assert row["success"] and row["suite_version"].startswith("2-metrics+")
    page = local_page(row["data_docs_path"])
    assert page.is_file() and page.is_relative_to(docs), page
    assert list(docs.rglob("*.html")) == [page]
    assert "employees_20260105.csv@" in page.read_text(encoding="utf-8")  # what was validated
    with psycopg.connect(warehouse_dsn) as conn:
        manifest_docs = conn.execute(
            "select validation.data_docs_path from audit.file_manifest as manifest"
            " inner join audit.validation_result as validation using (validation_id)"
        ).fetchone()[0]
    assert manifest_docs == row["data_docs_path"]


def user(n: int, modified: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": f"u-{n:04d}",
        "userName": f"person{n}@northwind.example",
        "active": True,
        "emails": [{"value": f"person{n}@northwind.example", "type": "work", "primary": True}],
        "meta": {"resourceType": "User", "created": "2025-01-01T00:00:00Z", "lastModified": modified},
    }


def test_a_scim_pull_records_its_validation_with_the_last_modified_range_and_a_data_docs_page(
    lms_server_factory, monkeypatch, warehouse_dsn, tmp_path
):
    docs = tmp_path / "docs"
    config = load_config({"quality": {"data_docs_dir": str(docs)}}, use_variable=False)
    server = lms_server_factory(
        statements=[], users=[user(1, "2026-01-05T10:00:00Z"), user(2, "2026-01-06T11:30:00Z")]
    )
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    extract_users(
        config, RunIdentity("lms_api_ingest", "r1", "extract_lms_users", try_number=1), warehouse_dsn
    )
    server.add_or_update_users([user(3, "2026-01-07T00:00:00Z")])  # lastModified becomes now
    second = extract_users(
        config, RunIdentity("lms_api_ingest", "r2", "extract_lms_users", try_number=1), warehouse_dsn
    )

    first_run, second_run = validation_rows(warehouse_dsn, "lms_user_batch")
    assert (first_run["run_id"], first_run["task_id"], first_run["success"]) == (
        "r1",
        "extract_lms_users",
        True,
    )
    assert (
        " full pull lastModified start .. 2026-01-06T11:30:00+00:00 batch " in first_run["batch_identifier"]
    )
    # the incremental pull names the range it asked for: from the watermark less the overlap
    assert second["mode"] == "incremental"
    assert " incremental pull lastModified 2026-01-06T10:30:00+00:00 .. " in second_run["batch_identifier"]
    for row in (first_run, second_run):
        page = local_page(row["data_docs_path"])
        assert page.is_file() and page.is_relative_to(docs / "lms_user_batch")
        assert "lms_user_batch v1+" in page.read_text(encoding="utf-8")


class RepeatingListing:
    """A SCIM listing that sends some users twice, as a broken directory would within one page."""

    def __init__(self, listing, repeated_ids: set[str]):
        self.listing, self.repeated_ids, self.mode = listing, repeated_ids, listing.mode

    def __iter__(self):
        for resource in self.listing:
            yield resource
            if resource.get("id") in self.repeated_ids:
                yield dict(resource)


def test_a_failed_scim_pull_leaves_no_ids_names_or_emails_in_its_report(
    generated, lms_server_factory, monkeypatch, warehouse_dsn, tmp_path
):
    monkeypatch.delenv("AIRFLOW_CONN_ANALYTICS_PSEUDONYM", raising=False)  # no key: PII values are withheld
    docs = tmp_path / "docs"
    config = load_config({"quality": {"data_docs_dir": str(docs)}}, use_variable=False)
    users = generated_users(generated)
    for resource in users[:5]:  # malformed addresses, beyond the suite's 1% tolerance
        resource["emails"][0]["value"] = resource["emails"][0]["value"].replace("@", " at ")
    server = lms_server_factory(statements=[], users=users)
    for key, value in server.airflow_connections_env().items():
        monkeypatch.setenv(key, value)
    client = scim_client(config)
    pull = client.iter_users
    client.iter_users = lambda *args, **kwargs: RepeatingListing(
        pull(*args, **kwargs), {u["id"] for u in users[6:9]}
    )
    with pytest.raises(BadInputError, match="SCIM ids are unique") as failure:
        extract_users(config, RunIdentity("lms_api_ingest", "r1", "extract_lms_users"), warehouse_dsn, client)

    (row,) = validation_rows(warehouse_dsn, "lms_user_batch")
    assert row["success"] is False
    assert "work emails look like email addresses" in row["failed"] and "SCIM ids are unique" in row["failed"]
    page = local_page(row["data_docs_path"])
    html = page.read_text(encoding="utf-8")
    assert page.is_relative_to(docs) and PII_WITHHELD in html and PII_WITHHELD in row["failed"], (
        "the failing samples are shown, their values withheld"
    )
    assert not re.search(r"pii:[0-9a-f]{10}", html + row["failed"])
    with psycopg.connect(warehouse_dsn) as conn:
        (reason,) = conn.execute("select reason from audit.scim_extract_batch").fetchone()
    found = leaked(
        scim_personal_strings(users),
        html,
        row["failed"],
        row["results"],
        row["statistics"],
        row["batch_identifier"],
        reason,
        str(failure.value),
    )
    assert found == [], f"PII in the reports: {found[:5]} ({len(found)} values)"


REFERENCE_DATE = date(2026, 6, 30)


def at(day: int, month: int = 7) -> datetime:
    return datetime(2026, month, day, 1, tzinfo=UTC)


@pytest.fixture
def traced_row(warehouse_dsn, tmp_path):
    """One feature row of E1 on 2026-06-30 (cut-off 07-01 12:00), built on 07-02 among other builds of that
    date, and HRIS files known before and after its cut-off."""
    from tests.integration.test_identity_resolution import FILE_SHA, employee

    late_snapshot, old_pay, late_pay = "a" * 64, "c" * 64, "d" * 64
    passed = ValidationOutcome(
        validation_id="v-employees-20260101",
        suite_name="hris_employees_file",
        suite_version="2-metrics+x",
        data_asset="hris_employees_file",
        batch_identifier=f"employees_20260101.csv@{FILE_SHA}",
        success=True,
        statistics={},
        results=[],
        validated_at=at(2, 1),
        data_docs_path=str(tmp_path / "page.html"),
    )
    with psycopg.connect(warehouse_dsn, autocommit=True) as conn:
        email = "e1@northwind.example"
        employee(
            conn,
            "E1",
            email=email,
            hire=date(2022, 3, 1),
            intervals=[(date(2022, 3, 1), date(2026, 6, 15), email), (date(2026, 6, 15), None, email)],
        )
        # a correction of a snapshot dated before the reference date, known after its cut-off
        conn.execute(
            "update core.employee_history set source_sha256 = %s, known_at = %s"
            " where valid_from = '2026-06-15'",
            (late_snapshot, at(5)),
        )
        insert_pay_changes(
            conn,
            ("E1", date(2025, 4, 1), "merit_increase", 50000, 52000, "USD", 4.0, old_pay, at(2, 4)),
            ("E1", date(2026, 6, 1), "merit_increase", 52000, 54000, "USD", 3.8, late_pay, at(3)),
        )
        record_validation(conn, passed, RunIdentity("hris_sftp_ingest", "r-0102", "ingest_hris_files"))
        for name, sha, feed, file_date, received, validation_id in (
            ("employees_20260101.csv", FILE_SHA, "employees", "2026-01-01", at(2, 1), passed.validation_id),
            ("employees_20260615.csv", late_snapshot, "employees", "2026-06-15", at(5), None),
            ("compensation_20250401.csv", old_pay, "compensation", "2025-04-01", at(2, 4), None),
            ("compensation_20260601.csv", late_pay, "compensation", "2026-06-01", at(3), None),
        ):
            conn.execute(
                "insert into audit.file_manifest (file_name, sha256, feed, file_date, size_bytes, "
                "received_at, status, validation_id) values (%s, %s, %s, %s, 10, %s, 'loaded', %s)",
                (name, sha, feed, file_date, received, validation_id),
            )
        conn.execute(
            "insert into mart.employee_features (employee_key, reference_date, feature_set_version, "
            "hris_employee_id, built_at, build_id, cutoff_at) values (7, %s, 2, 'E1', %s, 'b-as-of', %s)",
            (REFERENCE_DATE, at(2), datetime(2026, 7, 1, 12, tzinfo=UTC)),
        )
        for build_id, kind, built_at, reference_date in (
            ("b-as-of", "as_of", at(2), REFERENCE_DATE),  # the row
            ("b-restated", "restatement", at(6), REFERENCE_DATE),  # the "as known now" variant, another table
            ("b-as-of", "as_of", at(2), date(2026, 5, 31)),  # another date
        ):
            conn.execute(
                "insert into audit.feature_build (build_id, reference_date, feature_set_version, build_kind,"
                " feature_rows, active_headcount, built_at) values (%s, %s, 2, %s, 1, 1, %s)",
                (build_id, reference_date, kind, built_at),
            )
    return 7


def test_lineage_names_the_builds_of_the_row_and_the_files_it_was_built_from(traced_row, warehouse_dsn):
    from turnover_signals.quality.lineage import trace_feature_row

    sources = trace_feature_row(
        load_config(use_variable=False), traced_row, REFERENCE_DATE, dsn=warehouse_dsn
    )
    assert [(s["source_kind"], s["source_name"]) for s in sources] == [
        ("feature_build", "as_of b-as-of"),
        ("hris_file", "compensation_20250401.csv"),
        ("hris_file", "employees_20260101.csv"),
    ]


def test_the_lineage_command_prints_each_source_with_its_validation(traced_row, warehouse_dsn, capsys):
    from turnover_signals.quality.lineage import main

    assert main([str(traced_row), REFERENCE_DATE.isoformat(), "--dsn", warehouse_dsn]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["feature_build", "as_of"],
        ["hris_file", "compensation_20250401.csv"],
        ["hris_file", "employees_20260101.csv"],
    ]
    employees = lines[2]
    assert "employees 2026-01-01, loaded" in employees and " passed " in employees
    assert employees.rstrip().endswith("page.html")  # its Data Docs page
    assert "no validation" in lines[1]
    assert main([str(traced_row), "2026-05-31", "--dsn", warehouse_dsn]) == 1
    assert "no such feature row" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["not-a-key", "2026-06-30"])
