"""The synthetic enterprise generator: determinism and the output contract, on a small company."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from turnover_demo.synth import SynthConfig, SynthConfigError, generate
from turnover_demo.synth.__main__ import main
from turnover_demo.synth.catalog import read_course_catalog
from turnover_demo.synth.clock import months_before
from turnover_demo.synth.config import DEFAULT_CATALOG_FILE
from turnover_demo.synth.hris_files import COMPENSATION_COLUMNS, EMPLOYEE_COLUMNS
from turnover_signals.paths import BUNDLE_ROOT

HRIS = Path("sftp/outbound/hris")
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
INSTANT_MS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
INSTANT_S_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SALARY_PATTERN = re.compile(r"^\d+\.\d{2}$")
LEARNER_VERBS = {
    f"http://adlnet.gov/expapi/verbs/{verb}"
    for verb in ("registered", "launched", "completed", "passed", "failed", "scored")
}
VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
CURRENCY_BY_LOCATION = {
    "New York": "USD",
    "Austin": "USD",
    "San Francisco": "USD",
    "London": "GBP",
    "Manchester": "GBP",
    "Berlin": "EUR",
    "Amsterdam": "EUR",
    "Dublin": "EUR",
    "Madrid": "EUR",
}

# Small, but with every kind of mess frequent enough to appear.
SMALL = {
    "employees": 240,
    "months": 9,
    "seed": 11,
    "statements_per_month": 3.0,
    "rehire_rate": 0.25,
    "email_reuse_rate": 0.25,
    "duplicate_account_rate": 0.1,
    "contractor_rate": 0.1,
    "void_rate": 0.03,
    "late_rate": 0.05,
}


def _tree_digests(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth_small")
    manifest = generate(SynthConfig(out_dir=out, **SMALL))
    return out, manifest


@pytest.fixture(scope="module")
def statements(small_run) -> list[dict]:
    out, _ = small_run
    with open(out / "lms" / "statements.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def users(small_run) -> dict[str, dict]:
    out, _ = small_run
    with open(out / "lms" / "users.jsonl", encoding="utf-8") as handle:
        return {user["id"]: user for user in map(json.loads, handle)}


@pytest.fixture(scope="module")
def persons(small_run) -> dict[str, dict[str, str]]:
    out, _ = small_run
    return {row["employee_id"]: row for row in _read_csv(out / "ground_truth" / "persons.csv")}


@pytest.fixture(scope="module")
def accounts(small_run) -> dict[str, dict[str, str]]:
    out, _ = small_run
    return {row["lms_user_id"]: row for row in _read_csv(out / "ground_truth" / "lms_accounts.csv")}


def _snapshot_files(out: Path, prefix: str) -> list[Path]:
    return sorted((out / HRIS).glob(f"{prefix}_*.csv"))


def _file_day(path: Path) -> date:
    return datetime.strptime(path.stem.split("_")[1], "%Y%m%d").date()


# ----- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_output_and_another_seed_differs(small_run, tmp_path):
    out, _ = small_run
    again = tmp_path / "again"
    generate(SynthConfig(out_dir=again, **SMALL))
    assert _tree_digests(again) == _tree_digests(out)

    other = tmp_path / "other"
    generate(SynthConfig(out_dir=other, **{**SMALL, "seed": SMALL["seed"] + 1}))
    first, second = _tree_digests(out), _tree_digests(other)
    assert first["lms/statements.jsonl"] != second["lms/statements.jsonl"]
    assert first["ground_truth/persons.csv"] != second["ground_truth/persons.csv"]


def test_output_does_not_depend_on_the_hash_seed(tmp_path):
    """Separate interpreters with different PYTHONHASHSEED: no set or hash order leaks into the files."""
    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"hash{hash_seed}"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "turnover_demo.synth",
                "--out",
                str(out),
                "--employees",
                "80",
                "--months",
                "2",
                "--rehire-rate",
                "0.3",
                "--email-reuse-rate",
                "0.3",
            ],
            cwd=BUNDLE_ROOT,
            env={
                "PYTHONPATH": os.pathsep.join([str(BUNDLE_ROOT / "plugins"), str(BUNDLE_ROOT)]),
                "PYTHONHASHSEED": hash_seed,
            },
            capture_output=True,
            check=True,
            timeout=120,
        )
        digests.append(_tree_digests(out))
    assert digests[0] == digests[1]


@pytest.mark.parametrize(
    "end, months, start",
    [
        (date(2026, 10, 31), 24, date(2024, 11, 1)),
        (date(2025, 6, 30), 1, date(2025, 6, 1)),
        (date(2026, 10, 15), 1, date(2026, 9, 16)),
        (date(2026, 12, 31), 12, date(2026, 1, 1)),
        (date(2024, 2, 29), 12, date(2023, 3, 1)),
    ],
)
def test_period_is_the_months_ending_on_the_end_date(end, months, start):
    assert months_before(end, months) == start


def test_rerun_into_the_same_directory_replaces_earlier_output(tmp_path):
    config = SynthConfig(out_dir=tmp_path, employees=60, months=1, snapshot_every_days=3)
    generate(config)
    generate(SynthConfig(out_dir=tmp_path, employees=60, months=1, snapshot_every_days=10))
    assert len(_snapshot_files(tmp_path, "employees")) == 4  # 31 days back from the end in steps of 10


# ----- manifest and layout -------------------------------------------------------------------------


def test_manifest_describes_the_run(small_run):
    out, manifest = small_run
    on_disk = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == manifest
    assert manifest["seed"] == SMALL["seed"]
    assert manifest["arguments"]["employees"] == SMALL["employees"]
    assert manifest["date_range"] == {
        "start": "2026-02-01",
        "end": "2026-10-31",
        "first_snapshot": "2026-02-07",
        "last_snapshot": "2026-10-31",
    }
    for relative, facts in manifest["files"].items():
        path = out / relative
        assert path.stat().st_size == facts["bytes"], relative
        assert hashlib.sha256(path.read_bytes()).hexdigest() == facts["sha256"], relative
    assert manifest["counts"]["statements"] == manifest["files"]["lms/statements.jsonl"]["rows"]
    assert manifest["counts"]["employments"] == manifest["files"]["ground_truth/persons.csv"]["rows"]
    rates = manifest["identity_mess"]["rates"]
    for kind in (
        "email_case",
        "plus_alias",
        "domain_alias",
        "missing_sso_guid",
        "contractor",
        "duplicate_account",
        "reassigned_email",
        "rehire",
        "mbox_actor",
        "late_stored",
        "voided",
    ):
        assert rates[kind]["denominator_count"] > 0, kind
        assert rates[kind]["realized_rate"] == pytest.approx(
            rates[kind]["count"] / rates[kind]["denominator_count"], abs=1e-6
        )


def test_output_tree_matches_the_contract(small_run):
    out, manifest = small_run
    names = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    snapshots = _snapshot_files(out, "employees")
    compensation = _snapshot_files(out, "compensation")
    assert [_file_day(path) for path in snapshots] == [_file_day(path) for path in compensation]
    assert len(snapshots) == manifest["counts"]["employee_snapshots"]
    days = [_file_day(path) for path in snapshots]
    assert days[-1] == date(2026, 10, 31)
    assert {later - earlier for earlier, later in zip(days, days[1:], strict=False)} == {timedelta(days=7)}
    expected = {
        "manifest.json",
        "lms/users.jsonl",
        "lms/statements.jsonl",
        "ground_truth/persons.csv",
        "ground_truth/lms_accounts.csv",
    }
    for path in snapshots + compensation:
        expected |= {f"{HRIS.as_posix()}/{path.name}", f"{HRIS.as_posix()}/{path.name}.ctl"}
    assert names == expected


# ----- HRIS files ----------------------------------------------------------------------------------


def test_every_csv_is_utf8_crlf_without_bom_and_its_ctl_matches(small_run):
    out, _ = small_run
    for path in _snapshot_files(out, "employees") + _snapshot_files(out, "compensation"):
        data = path.read_bytes()
        assert not data.startswith(b"\xef\xbb\xbf")
        text = data.decode("utf-8")
        assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
        control = json.loads(Path(f"{path}.ctl").read_text(encoding="utf-8"))
        assert set(control) == {"rows", "sha256"}
        assert control["sha256"] == hashlib.sha256(data).hexdigest()
        assert control["rows"] == len(_read_csv(path))


def test_employee_snapshots_follow_the_column_contract(small_run):
    out, _ = small_run
    non_ascii_seen = apostrophe_seen = False
    for path in _snapshot_files(out, "employees"):
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            assert tuple(next(reader)) == EMPLOYEE_COLUMNS
            rows = [dict(zip(EMPLOYEE_COLUMNS, row, strict=True)) for row in reader]
        ids = [row["employee_id"] for row in rows]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        by_id = {row["employee_id"]: row for row in rows}
        active_emails = [row["work_email"] for row in rows if row["employment_status"] == "Active"]
        assert len(set(active_emails)) == len(active_emails), path.name
        ceo_count = 0
        for row in rows:
            assert re.fullmatch(r"E\d{6}", row["employee_id"])
            assert row["sso_guid"] == "" or UUID_PATTERN.match(row["sso_guid"])
            assert re.fullmatch(r"[a-z0-9.\-]+@northwind\.example", row["work_email"]), row["work_email"]
            assert DATE_PATTERN.match(row["hire_date"])
            assert row["employment_status"] in ("Active", "Terminated")
            if row["employment_status"] == "Active":
                assert row["termination_date"] == row["termination_type"] == row["termination_reason"] == ""
            else:
                assert DATE_PATTERN.match(row["termination_date"])
                assert row["termination_type"] in ("Voluntary", "Involuntary", "Other")
                assert row["termination_reason"]
            assert 1 <= int(row["job_level"]) <= 7
            assert SALARY_PATTERN.match(row["base_salary"])
            assert row["currency"] == CURRENCY_BY_LOCATION[row["location"]]
            assert row["fte"] in ("1.0", "0.8", "0.5")
            assert row["performance_rating"] in ("", "1", "2", "3", "4", "5")
            if row["manager_id"] == "":
                ceo_count += 1
                assert row["job_level"] == "7"
            elif row["employment_status"] == "Active":
                assert by_id[row["manager_id"]]["employment_status"] == "Active"
            non_ascii_seen |= any(not char.isascii() for char in row["first_name"] + row["last_name"])
            apostrophe_seen |= "'" in row["last_name"] or "-" in row["last_name"]
        assert ceo_count == 1
    assert non_ascii_seen and apostrophe_seen


def test_snapshots_hold_actives_and_leavers_of_the_last_90_days(small_run, persons):
    out, _ = small_run
    for path in _snapshot_files(out, "employees"):
        day = _file_day(path)
        listed = {row["employee_id"]: row for row in _read_csv(path)}
        expected = set()
        for employee_id, person in persons.items():
            if date.fromisoformat(person["hire_date"]) > day:
                continue
            ended = person["termination_date"]
            if not ended or date.fromisoformat(ended) > day:
                expected.add(employee_id)
            elif (day - date.fromisoformat(ended)).days <= 90:
                expected.add(employee_id)
        assert set(listed) == expected, path.name
        for employee_id, row in listed.items():
            ended = persons[employee_id]["termination_date"]
            shown_as_terminated = bool(ended) and date.fromisoformat(ended) <= day
            assert (row["employment_status"] == "Terminated") == shown_as_terminated


def test_a_leaver_disappears_after_90_days(small_run, persons):
    out, _ = small_run
    snapshots = {_file_day(path): path for path in _snapshot_files(out, "employees")}
    early_leavers = [
        (employee_id, date.fromisoformat(row["termination_date"]))
        for employee_id, row in persons.items()
        if row["termination_date"] and date.fromisoformat(row["termination_date"]) < date(2026, 6, 1)
    ]
    assert early_leavers
    employee_id, ended = early_leavers[0]
    inside = [day for day in snapshots if 0 <= (day - ended).days <= 90]
    outside = [day for day in snapshots if (day - ended).days > 90]
    assert inside and outside
    assert all(employee_id in {row["employee_id"] for row in _read_csv(snapshots[day])} for day in inside)
    assert all(
        employee_id not in {row["employee_id"] for row in _read_csv(snapshots[day])} for day in outside
    )


def test_rehires_come_back_under_a_new_employee_id(small_run, persons):
    by_person = defaultdict(list)
    for row in persons.values():
        by_person[row["person_id"]].append(row)
    rehired = [rows for rows in by_person.values() if len(rows) > 1]
    assert rehired
    for rows in rehired:
        rows.sort(key=lambda row: row["employee_id"])
        assert len({row["employee_id"] for row in rows}) == len(rows)
        for earlier, later in zip(rows, rows[1:], strict=False):
            assert earlier["termination_date"]
            assert date.fromisoformat(later["hire_date"]) > date.fromisoformat(earlier["termination_date"])
    assert any(rows[0]["sso_guid"] and rows[0]["sso_guid"] == rows[1]["sso_guid"] for rows in rehired)


def test_reassigned_work_email_goes_to_a_different_person_after_the_leaver_left(small_run, persons):
    by_email = defaultdict(list)
    for row in persons.values():
        by_email[row["work_email"]].append(row)
    reassigned = [rows for rows in by_email.values() if len({row["person_id"] for row in rows}) > 1]
    assert reassigned
    for rows in reassigned:
        rows.sort(key=lambda row: row["hire_date"])
        for earlier, later in zip(rows, rows[1:], strict=False):
            assert earlier["termination_date"]
            assert date.fromisoformat(later["hire_date"]) > date.fromisoformat(earlier["termination_date"])


def test_compensation_files_are_windows_of_a_consistent_pay_history(small_run):
    out, _ = small_run
    files = _snapshot_files(out, "compensation")
    last_salary: dict[str, str] = {}
    change_types = Counter()
    previous_day = None
    for index, path in enumerate(files):
        day = _file_day(path)
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            assert tuple(next(reader)) == COMPENSATION_COLUMNS
            rows = [dict(zip(COMPENSATION_COLUMNS, row, strict=True)) for row in reader]
        for row in rows:
            effective = date.fromisoformat(row["effective_date"])
            assert effective <= day
            if index > 0:
                assert effective > previous_day  # after the previous file's date
            change_types[row["change_type"]] += 1
            assert SALARY_PATTERN.match(row["new_base_salary"])
            if row["change_type"] == "hire":
                assert row["previous_base_salary"] == ""
                assert row["employee_id"] not in last_salary
            else:
                assert row["previous_base_salary"] == last_salary[row["employee_id"]]
            if row["change_type"] == "pay_freeze":
                assert row["new_base_salary"] == row["previous_base_salary"]
            last_salary[row["employee_id"]] = row["new_base_salary"]
        previous_day = day
    assert set(change_types) == {"hire", "merit_increase", "promotion", "market_adjustment", "pay_freeze"}
    for row in _read_csv(_snapshot_files(out, "employees")[-1]):
        assert last_salary[row["employee_id"]] == row["base_salary"]
        assert row["currency"] in ("USD", "EUR", "GBP")


# ----- LMS directory -------------------------------------------------------------------------------


def test_scim_users_are_well_formed(small_run, users, accounts, persons):
    out, _ = small_run
    assert set(users) == set(accounts)
    end = _instant("2026-11-01T00:00:00Z")
    for user_id, user in users.items():
        assert list(user)[:3] == ["schemas", "id", "userName"]
        assert user["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:User"]
        assert re.fullmatch(r"u-[0-9a-f]{10}", user_id)
        assert set(user) <= {"schemas", "id", "userName", "externalId", "name", "emails", "active", "meta"}
        assert set(user["name"]) == {"givenName", "familyName"}
        assert (
            len(user["emails"]) == 1 and user["emails"][0]["type"] == "work" and user["emails"][0]["primary"]
        )
        assert isinstance(user["active"], bool)
        assert user["meta"]["resourceType"] == "User"
        created, modified = _instant(user["meta"]["created"]), _instant(user["meta"]["lastModified"])
        assert INSTANT_S_PATTERN.match(user["meta"]["created"]) and created <= modified < end
        truth = accounts[user_id]
        if truth["is_contractor"] == "true":
            assert truth["person_id"] == truth["employee_id"] == ""
            assert user["emails"][0]["value"].endswith("@contractor.example") and "externalId" not in user
            continue
        employment = persons[truth["employee_id"]]
        assert created.date() >= date.fromisoformat(employment["hire_date"])
        if "externalId" in user:
            assert UUID_PATTERN.match(user["externalId"])
        if truth["is_duplicate_account"] == "false":
            assert user.get("externalId", "") == employment["sso_guid"]
            ended = employment["termination_date"]
            if ended and date.fromisoformat(ended) < date(2026, 10, 25):
                assert user["active"] is False
                assert modified.date() > date.fromisoformat(ended)
            if not ended:
                assert user["active"] is True
    user_names = [user["userName"].lower() for user in users.values()]
    assert len(set(user_names)) == len(user_names)


def test_identity_mess_is_visible_in_users_and_ground_truth(users, accounts, persons):
    kinds = Counter(kind for row in accounts.values() for kind in row["mess_kinds"].split(";") if kind)
    for kind in (
        "email_case",
        "plus_alias",
        "domain_alias",
        "missing_sso_guid",
        "contractor",
        "duplicate_account",
        "reassigned_email",
        "email_later_reassigned",
        "rehire",
    ):
        assert kinds[kind] > 0, kind
    for user_id, row in accounts.items():
        email = users[user_id]["emails"][0]["value"]
        mess = row["mess_kinds"].split(";")
        if row["is_contractor"] == "true":
            continue
        work_email = persons[row["employee_id"]]["work_email"]
        if "email_case" in mess:
            assert email != work_email and email.lower() == work_email
        elif "plus_alias" in mess:
            assert re.fullmatch(re.escape(work_email.split("@")[0]) + r"\+\w+@northwind\.example", email)
        elif "domain_alias" in mess:
            assert email == work_email.replace("@northwind.example", "@nw-corp.example")
        else:
            assert email == work_email
        if row["is_duplicate_account"] == "true":
            assert "duplicate_account" in mess
    # The leaver's deactivated primary account still carries the address a different person now has.
    people_by_work_email = defaultdict(set)
    for row in persons.values():
        people_by_work_email[row["work_email"]].add(row["person_id"])
    for user_id, row in accounts.items():
        if (
            "email_later_reassigned" in row["mess_kinds"].split(";")
            and row["is_duplicate_account"] == "false"
        ):
            assert users[user_id]["active"] is False
            work_email = persons[row["employee_id"]]["work_email"]
            assert (
                users[user_id]["emails"][0]["value"]
                .lower()
                .replace("@nw-corp.", "@northwind.")
                .startswith(work_email.split("@")[0])
            )
            assert len(people_by_work_email[work_email]) > 1


# ----- xAPI statements -----------------------------------------------------------------------------


def test_statements_are_valid_xapi_with_one_actor_identifier(statements, small_run):
    catalog = {course.course_id for course in read_course_catalog(DEFAULT_CATALOG_FILE)}
    ids = [statement["id"] for statement in statements]
    assert len(set(ids)) == len(ids)
    stored = [statement["stored"] for statement in statements]
    assert stored == sorted(stored)  # an LRS's order
    identifiers = Counter()
    for statement in statements:
        assert UUID_PATTERN.match(statement["id"])
        assert statement["version"] == "1.0.3"
        actor = statement["actor"]
        assert actor["objectType"] == "Agent" and actor["name"]
        present = [key for key in ("mbox", "mbox_sha1sum", "openid", "account") if key in actor]
        assert len(present) == 1
        identifiers[present[0]] += 1
        if "account" in actor:
            assert actor["account"]["homePage"] == "https://lms.northwind.example"
            assert set(actor["account"]) == {"homePage", "name"}
        else:
            assert actor["mbox"].startswith("mailto:")
        assert INSTANT_MS_PATTERN.match(statement["timestamp"]) and INSTANT_MS_PATTERN.match(
            statement["stored"]
        )
        assert _instant(statement["stored"]) >= _instant(statement["timestamp"])
        verb = statement["verb"]
        assert verb["display"]["en-US"] == verb["id"].rsplit("/", 1)[1]
        if verb["id"] == VOIDED_VERB:
            assert statement["object"]["objectType"] == "StatementRef"
            assert UUID_PATTERN.match(statement["object"]["id"])
            continue
        assert verb["id"] in LEARNER_VERBS
        target = statement["object"]
        assert target["objectType"] == "Activity"
        assert target["definition"]["type"] == "http://adlnet.gov/expapi/activities/course"
        assert target["id"].removeprefix("https://lms.northwind.example/courses/") in catalog
        assert UUID_PATTERN.match(statement["context"]["registration"])
        result = statement.get("result")
        if verb["id"].endswith(("passed", "failed", "scored")):
            score = result["score"]
            assert 0 <= score["scaled"] <= 1 and score["min"] <= score["raw"] <= score["max"]
            assert score["scaled"] == pytest.approx(score["raw"] / 100)
        if verb["id"].endswith(("passed", "failed")):
            assert result["success"] is verb["id"].endswith("passed")
        if verb["id"].endswith("completed"):
            assert result["completion"] is True and re.fullmatch(r"PT(\d+H)?(\d+M)?", result["duration"])
    assert identifiers["account"] > identifiers["mbox"] > 0


def test_voids_reference_earlier_statements_kept_in_the_file(statements):
    position = {statement["id"]: index for index, statement in enumerate(statements)}
    voids = [
        (index, statement)
        for index, statement in enumerate(statements)
        if statement["verb"]["id"] == VOIDED_VERB
    ]
    assert voids
    for index, void in voids:
        target_index = position[void["object"]["id"]]
        assert target_index < index
        target = statements[target_index]
        assert target["verb"]["id"] != VOIDED_VERB
        assert _instant(void["timestamp"]) >= _instant(target["timestamp"])


def test_some_statements_are_stored_days_late(statements):
    late = [
        statement
        for statement in statements
        if _instant(statement["stored"]) - _instant(statement["timestamp"]) >= timedelta(days=1)
    ]
    assert late


def test_activity_only_while_the_account_exists_and_its_owner_is_employed(
    statements, users, accounts, persons
):
    by_email = defaultdict(list)
    for user in users.values():
        by_email[user["emails"][0]["value"]].append(user["id"])
    for statement in statements:
        actor = statement["actor"]
        if "account" in actor:
            candidates = [actor["account"]["name"]]
        else:
            candidates = by_email[actor["mbox"].removeprefix("mailto:")]
        assert candidates, actor
        happened = _instant(statement["timestamp"])
        # With an mbox, one of the accounts holding the address must fit (a reassigned address has two).
        fits = []
        for user_id in candidates:
            user, truth = users[user_id], accounts[user_id]
            ok = happened >= _instant(user["meta"]["created"])
            if truth["employee_id"]:
                ended = persons[truth["employee_id"]]["termination_date"]
                if ended:
                    ok &= happened.date() <= date.fromisoformat(ended)
            fits.append(ok)
        assert any(fits), statement["id"]
        assert happened < _instant("2026-11-01T00:00:00Z")


def test_mandatory_courses_are_assigned_with_due_dates(statements):
    due_key = "https://lms.northwind.example/xapi/extensions/due-date"
    mandatory = [
        statement
        for statement in statements
        if statement.get("context", {}).get("extensions", {}).get(due_key)
    ]
    registered = [statement for statement in mandatory if statement["verb"]["id"].endswith("registered")]
    assert registered
    completed_at = {}
    for statement in mandatory:
        if statement["verb"]["id"].endswith("passed"):
            completed_at[statement["context"]["registration"]] = statement["timestamp"][:10]
    overdue = [
        statement
        for statement in registered
        if completed_at.get(statement["context"]["registration"], "9999")
        > statement["context"]["extensions"][due_key]
    ]
    assert 0 < len(overdue) < len(registered)


# ----- ground truth --------------------------------------------------------------------------------


def test_ground_truth_files_have_their_columns(small_run, persons, accounts):
    out, _ = small_run
    with open(out / "ground_truth" / "persons.csv", encoding="utf-8", newline="") as handle:
        assert next(csv.reader(handle)) == [
            "person_id",
            "employee_id",
            "sso_guid",
            "work_email",
            "hire_date",
            "termination_date",
            "termination_type",
            "latent_risk",
        ]
    with open(out / "ground_truth" / "lms_accounts.csv", encoding="utf-8", newline="") as handle:
        assert next(csv.reader(handle)) == [
            "lms_user_id",
            "person_id",
            "employee_id",
            "is_contractor",
            "is_duplicate_account",
            "mess_kinds",
        ]
    for row in persons.values():
        assert re.fullmatch(r"P\d{7}", row["person_id"]) and 0 <= float(row["latent_risk"]) <= 1
    for row in accounts.values():
        assert row["is_contractor"] in ("true", "false") and row["is_duplicate_account"] in ("true", "false")
        if row["is_contractor"] == "false":
            assert persons[row["employee_id"]]["person_id"] == row["person_id"]
    last_snapshot = _read_csv(_snapshot_files(out, "employees")[-1])
    for row in last_snapshot:
        truth = persons[row["employee_id"]]
        assert (truth["sso_guid"], truth["work_email"], truth["hire_date"]) == (
            row["sso_guid"],
            row["work_email"],
            row["hire_date"],
        )


# ----- settings and the command line ---------------------------------------------------------------


def test_course_catalog_is_readable_and_sensible():
    courses = read_course_catalog(DEFAULT_CATALOG_FILE)
    assert 35 <= len(courses) <= 50
    mandatory = [course for course in courses if course.is_mandatory]
    assert mandatory and all(course.due_within_days for course in mandatory)
    assert all(course.due_within_days is None for course in courses if not course.is_mandatory)
    assert all(1 <= course.difficulty <= 5 and course.skill_tags for course in courses)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"employees": 10}, "--employees"),
        ({"email_case_rate": 0.6, "plus_alias_rate": 0.5}, "must not exceed 1"),
        ({"rehire_rate": 0.5, "mess_scale": 3.0}, "rehire_rate"),
        ({"signal_strength": -1.0}, "--signal-strength"),
    ],
)
def test_unusable_settings_are_refused(tmp_path, overrides, message):
    with pytest.raises(SynthConfigError, match=message):
        generate(SynthConfig(out_dir=tmp_path, **overrides))


def test_mess_scale_zero_gives_clean_identities(tmp_path):
    manifest = generate(SynthConfig(out_dir=tmp_path, employees=120, months=2, mess_scale=0.0))
    rates = manifest["identity_mess"]["rates"]
    assert all(entry["count"] == 0 for kind, entry in rates.items() if kind not in ("late_stored", "voided"))
    for row in _read_csv(tmp_path / "ground_truth" / "lms_accounts.csv"):
        assert row["mess_kinds"] == "" and row["is_contractor"] == "false"


def test_command_line_writes_the_tree(tmp_path, capsys):
    assert (
        main(
            [
                "--out",
                str(tmp_path),
                "--employees",
                "60",
                "--months",
                "1",
                "--seed",
                "3",
                "--end-date",
                "2025-06-30",
                "--mbox-rate",
                "0.5",
            ]
        )
        == 0
    )
    assert "employments" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["date_range"]["start"] == "2025-06-01"
    assert manifest["arguments"]["mbox_rate"] == 0.5


def test_command_line_refuses_unusable_settings(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(
            [
                "--out",
                str(tmp_path),
                "--employees",
                "60",
                "--email-case-rate",
                "0.9",
                "--plus-alias-rate",
                "0.2",
            ]
        )
    assert stopped.value.code == 2
    assert "must not exceed 1" in capsys.readouterr().err
