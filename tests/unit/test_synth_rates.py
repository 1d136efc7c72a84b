"""The generator's statistical promises: identity-mess rates as configured, and the planted signal."""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from turnover_demo.synth import SynthConfig, generate

RATES = {
    "email_case_rate": 0.06,
    "plus_alias_rate": 0.04,
    "domain_alias_rate": 0.05,
    "missing_sso_rate": 0.05,
    "contractor_rate": 0.05,
    "duplicate_account_rate": 0.04,
    "email_reuse_rate": 0.08,
    "rehire_rate": 0.08,
    "mbox_rate": 0.12,
    "late_rate": 0.03,
    "void_rate": 0.02,
}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _assert_rate(name: str, count: int, denominator: int, expected: float) -> None:
    """Within four standard errors (plus one event for the draws still owed at the end)."""
    assert denominator > 0, name
    realized = count / denominator
    tolerance = 4 * math.sqrt(expected * (1 - expected) / denominator) + 1 / denominator
    assert abs(realized - expected) <= tolerance, (
        f"{name}: {count}/{denominator} = {realized:.4f}, want {expected}"
    )


@pytest.fixture(scope="module")
def mess_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth_rates")
    manifest = generate(
        SynthConfig(
            out_dir=out,
            employees=5000,
            months=12,
            seed=3,
            statements_per_month=2.5,
            snapshot_every_days=28,
            **RATES,
        )
    )
    return out, manifest


def test_manifest_reports_realized_rates_close_to_the_settings(mess_run):
    _, manifest = mess_run
    for kind, entry in manifest["identity_mess"]["rates"].items():
        assert entry["configured_rate"] == RATES[entry["setting"]], kind
        _assert_rate(kind, entry["count"], entry["denominator_count"], entry["configured_rate"])


def test_rates_recounted_from_the_files_match_the_settings(mess_run):
    out, manifest = mess_run
    start = date.fromisoformat(manifest["date_range"]["start"])
    persons = _read_csv(out / "ground_truth" / "persons.csv")
    by_employee = {row["employee_id"]: row for row in persons}
    accounts = _read_csv(out / "ground_truth" / "lms_accounts.csv")
    users = {user["id"]: user for user in _read_jsonl(out / "lms" / "users.jsonl")}

    primary = [
        row for row in accounts if row["is_contractor"] == "false" and row["is_duplicate_account"] == "false"
    ]
    email_kinds = defaultdict(int)
    for row in primary:
        lms_email = users[row["lms_user_id"]]["emails"][0]["value"]
        work_email = by_employee[row["employee_id"]]["work_email"]
        local, domain = work_email.split("@")
        if lms_email != work_email and lms_email.lower() == work_email:
            email_kinds["case"] += 1
        elif lms_email.startswith(local + "+") and lms_email.endswith("@" + domain):
            email_kinds["plus"] += 1
        elif lms_email == f"{local}@nw-corp.example":
            email_kinds["domain"] += 1
    _assert_rate("email case", email_kinds["case"], len(primary), RATES["email_case_rate"])
    _assert_rate("plus alias", email_kinds["plus"], len(primary), RATES["plus_alias_rate"])
    _assert_rate("domain alias", email_kinds["domain"], len(primary), RATES["domain_alias_rate"])
    duplicates = sum(row["is_duplicate_account"] == "true" for row in accounts)
    _assert_rate("duplicate accounts", duplicates, len(primary), RATES["duplicate_account_rate"])
    contractors = sum(row["is_contractor"] == "true" for row in accounts)
    _assert_rate("contractors", contractors, len(persons), RATES["contractor_rate"])
    _assert_rate(
        "missing sso", sum(row["sso_guid"] == "" for row in persons), len(persons), RATES["missing_sso_rate"]
    )

    seen_people, seen_emails = set(), {}
    rehires = reassigned = period_hires = 0
    for row in sorted(persons, key=lambda row: row["employee_id"]):
        hired_in_period = date.fromisoformat(row["hire_date"]) >= start
        is_rehire = row["person_id"] in seen_people
        if hired_in_period:
            period_hires += 1
            rehires += is_rehire
            if not is_rehire and seen_emails.get(row["work_email"], row["person_id"]) != row["person_id"]:
                reassigned += 1
        seen_people.add(row["person_id"])
        seen_emails[row["work_email"]] = row["person_id"]
    _assert_rate("rehires", rehires, period_hires, RATES["rehire_rate"])
    _assert_rate("reassigned emails", reassigned, period_hires - rehires, RATES["email_reuse_rate"])

    learner = mbox = late = voids = 0
    with open(out / "lms" / "statements.jsonl", encoding="utf-8") as handle:
        for statement in map(json.loads, handle):
            if statement["verb"]["id"].endswith("/voided"):
                voids += 1
                continue
            learner += 1
            mbox += "mbox" in statement["actor"]
            late += _instant(statement["stored"]) - _instant(statement["timestamp"]) >= timedelta(days=1)
    _assert_rate("mbox actors", mbox, learner, RATES["mbox_rate"])
    _assert_rate("late stored", late, learner, RATES["late_rate"])
    _assert_rate("voided", voids, learner, RATES["void_rate"])


def test_statement_volume_follows_the_setting(mess_run):
    _, manifest = mess_run
    assert manifest["counts"]["realized_statements_per_active_employee_month"] == pytest.approx(2.5, rel=0.1)


# ----- the planted signal ----------------------------------------------------------------------------


def _pre_exit_activity_ratio(out: Path) -> tuple[float, int]:
    """Learner statements in the 90 days before a voluntary exit, relative to what the leaver would
    have done anyway.

    "Anyway" = what tenured stayers did in the same 90 days (compliance campaigns make some months
    busier), scaled by the leaver's own appetite for learning: their activity in a baseline window
    that ends 180 days before the exit (before any resignation intent) over the stayers' activity
    in that window. Scaling by a personal baseline removes most of the person-to-person spread, so
    a small company suffices. Only people with a year of tenure at the start are compared, so
    onboarding (which HR features capture anyway) does not mix in. Returns (ratio, leavers).
    """
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    start = date.fromisoformat(manifest["date_range"]["start"])
    end = date.fromisoformat(manifest["date_range"]["end"])
    persons = {row["employee_id"]: row for row in _read_csv(out / "ground_truth" / "persons.csv")}
    owner = {
        row["lms_user_id"]: row["employee_id"] for row in _read_csv(out / "ground_truth" / "lms_accounts.csv")
    }
    holders_of_email = defaultdict(list)
    for user in _read_jsonl(out / "lms" / "users.jsonl"):
        holders_of_email[user["emails"][0]["value"]].append(user["id"])

    activity_days = defaultdict(list)
    with open(out / "lms" / "statements.jsonl", encoding="utf-8") as handle:
        for statement in map(json.loads, handle):
            if statement["verb"]["id"].endswith("/voided"):
                continue
            actor = statement["actor"]
            day = date.fromisoformat(statement["timestamp"][:10])
            if "account" in actor:
                holders = [actor["account"]["name"]]
            else:
                holders = holders_of_email[actor["mbox"].removeprefix("mailto:")]
            for user_id in holders:  # a recycled address: credit whoever was employed that day
                employee_id = owner[user_id]
                if employee_id and _employed_on(persons[employee_id], day):
                    activity_days[employee_id].append((day - start).days)
                    break

    tenured_before = start - timedelta(days=365)
    stayers = [
        employee_id
        for employee_id, row in persons.items()
        if not row["termination_date"] and date.fromisoformat(row["hire_date"]) <= tenured_before
    ]
    stayer_daily = [0] * ((end - start).days + 1)
    for employee_id in stayers:
        for offset in activity_days[employee_id]:
            stayer_daily[offset] += 1

    def stayer_mean(first: int, stop: int) -> float:
        return sum(stayer_daily[first:stop]) / len(stayers)

    observed = expected = 0.0
    leavers = 0
    for employee_id, row in persons.items():
        if row["termination_type"] != "Voluntary" or date.fromisoformat(row["hire_date"]) > tenured_before:
            continue
        exit_offset = (date.fromisoformat(row["termination_date"]) - start).days
        baseline_stop = exit_offset - 180
        if baseline_stop < 120:
            continue  # too short a baseline before the intent could have started
        days = activity_days[employee_id]
        baseline = sum(1 for offset in days if offset < baseline_stop)
        leavers += 1
        observed += sum(1 for offset in days if exit_offset - 90 <= offset < exit_offset)
        expected += stayer_mean(exit_offset - 90, exit_offset) * baseline / stayer_mean(0, baseline_stop)
    return observed / expected, leavers


def _employed_on(person_row: dict[str, str], day: date) -> bool:
    if day < date.fromisoformat(person_row["hire_date"]):
        return False
    return not person_row["termination_date"] or day <= date.fromisoformat(person_row["termination_date"])


@pytest.mark.slow
def test_learning_fades_before_voluntary_exits_only_when_the_signal_is_on(tmp_path):
    settings = {"employees": 2000, "months": 24, "seed": 5, "snapshot_every_days": 91}
    generate(SynthConfig(out_dir=tmp_path / "off", signal_strength=0.0, **settings))
    generate(SynthConfig(out_dir=tmp_path / "on", signal_strength=1.0, **settings))
    # Signal strength only touches the LMS side: the HR world is the same.
    assert (tmp_path / "off" / "ground_truth" / "persons.csv").read_bytes() == (
        tmp_path / "on" / "ground_truth" / "persons.csv"
    ).read_bytes()

    ratio_off, leavers = _pre_exit_activity_ratio(tmp_path / "off")
    ratio_on, _ = _pre_exit_activity_ratio(tmp_path / "on")
    assert leavers >= 100
    # About 0.05 of noise at this size: independent of exits when off, a clear fade when on.
    assert 0.85 <= ratio_off <= 1.15, ratio_off
    assert ratio_on <= 0.8, ratio_on
    assert ratio_off - ratio_on >= 0.2
