"""The generator's fuzzy identity mess (issue 23): typos, personal domains, dropped GUIDs, namesakes and
lookalike contractors, each at its configured rate and recorded in the ground truth."""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from turnover_demo.synth import SynthConfig, SynthConfigError, generate
from turnover_demo.synth.__main__ import main
from turnover_demo.synth.config import FUZZY_MESS_REFERENCE_RATES, PRESETS
from turnover_demo.synth.names import email_local_part

FUZZY_RATES = {
    "email_typo_rate": 0.08,
    "personal_domain_rate": 0.06,
    "dropped_guid_rate": 0.15,
    "namesake_rate": 0.06,
    "contractor_lookalike_rate": 0.3,
}
CORPORATE_DOMAINS = ("northwind.example", "nw-corp.example")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def _assert_rate(name: str, count: int, denominator: int, expected: float) -> None:
    """Within four standard errors (plus one event), as in test_synth_rates."""
    assert denominator > 0, name
    realized = count / denominator
    tolerance = 4 * math.sqrt(expected * (1 - expected) / denominator) + 1 / denominator
    assert abs(realized - expected) <= tolerance, (
        f"{name}: {count}/{denominator} = {realized:.4f}, want {expected}"
    )


def _edit_distance(first: str, second: str) -> int:
    previous = list(range(len(second) + 1))
    for row, left in enumerate(first, start=1):
        current = [row]
        for column, right in enumerate(second, start=1):
            current.append(min(previous[column] + 1, current[-1] + 1, previous[column - 1] + (left != right)))
        previous = current
    return previous[-1]


def _canonical(email: str) -> tuple[str, str]:
    """(local part without +tag, domain with the alias mapped), lower case: what the mail server delivers."""
    local, _, domain = email.lower().partition("@")
    return local.partition("+")[0], "northwind.example" if domain == "nw-corp.example" else domain


def _kinds(row: dict[str, str]) -> list[str]:
    return [kind for kind in row["mess_kinds"].split(";") if kind]


class Enterprise:
    """A generated enterprise read back: its manifest, ground truth and SCIM users."""

    def __init__(self, out: Path, manifest: dict) -> None:
        self.manifest = manifest
        self.employments = {
            row["employee_id"]: row for row in _read_csv(out / "ground_truth" / "persons.csv")
        }
        self.accounts = _read_csv(out / "ground_truth" / "lms_accounts.csv")
        self.users = {user["id"]: user for user in _read_jsonl(out / "lms" / "users.jsonl")}
        self.primary = [
            row
            for row in self.accounts
            if row["is_contractor"] == "false" and row["is_duplicate_account"] == "false"
        ]
        self.contractors = [row for row in self.accounts if row["is_contractor"] == "true"]

    def email(self, row: dict[str, str]) -> str:
        return self.users[row["lms_user_id"]]["emails"][0]["value"]

    def name(self, row: dict[str, str]) -> tuple[str, str]:
        name = self.users[row["lms_user_id"]]["name"]
        return name["givenName"], name["familyName"]

    def work_email(self, row: dict[str, str]) -> str:
        return self.employments[row["employee_id"]]["work_email"]


@pytest.fixture(scope="module")
def fuzzy_run(tmp_path_factory: pytest.TempPathFactory) -> Enterprise:
    out = tmp_path_factory.mktemp("synth_fuzzy_mess")
    manifest = generate(
        SynthConfig(
            out_dir=out,
            employees=3000,
            months=6,
            seed=23,
            statements_per_month=0.5,
            snapshot_every_days=28,
            contractor_rate=0.1,
            **FUZZY_RATES,
        )
    )
    return Enterprise(out, manifest)


def test_manifest_reports_each_fuzzy_rate_close_to_its_setting(fuzzy_run):
    reported = fuzzy_run.manifest["identity_mess"]["fuzzy_rates"]
    assert {entry["setting"] for entry in reported.values()} == set(FUZZY_RATES)
    for kind, entry in reported.items():
        assert entry["configured_rate"] == FUZZY_RATES[entry["setting"]], kind
        _assert_rate(kind, entry["count"], entry["denominator_count"], entry["configured_rate"])


def test_email_typos_are_one_edit_in_the_local_part_and_recorded(fuzzy_run):
    typos = []
    for row in fuzzy_run.primary:
        lms_local, lms_domain = _canonical(fuzzy_run.email(row))
        work_local, work_domain = _canonical(fuzzy_run.work_email(row))
        if lms_domain == work_domain and lms_local != work_local:
            assert _edit_distance(lms_local, work_local) == 1, (
                fuzzy_run.email(row),
                fuzzy_run.work_email(row),
            )
            typos.append(row["lms_user_id"])
    recorded = [row["lms_user_id"] for row in fuzzy_run.primary if "email_typo" in _kinds(row)]
    assert typos == recorded
    _assert_rate("email typos", len(typos), len(fuzzy_run.primary), FUZZY_RATES["email_typo_rate"])


def test_a_typo_never_lands_on_another_employees_address(fuzzy_run):
    issued = {_canonical(row["work_email"]) for row in fuzzy_run.employments.values()}
    for row in fuzzy_run.primary:
        if "email_typo" in _kinds(row):
            assert _canonical(fuzzy_run.email(row)) not in issued, fuzzy_run.email(row)


def test_personal_and_unknown_domains_replace_the_corporate_address_and_are_recorded(fuzzy_run):
    personal = [
        row
        for row in fuzzy_run.primary
        if fuzzy_run.email(row).lower().partition("@")[2] not in CORPORATE_DOMAINS
    ]
    assert [row["lms_user_id"] for row in personal] == [
        row["lms_user_id"] for row in fuzzy_run.primary if "personal_domain" in _kinds(row)
    ]
    # A personal address replaces any corporate variant: the truth must not claim one as well.
    assert not any({"email_case", "plus_alias", "domain_alias"} & set(_kinds(row)) for row in personal)
    assert len({fuzzy_run.email(row).partition("@")[2] for row in personal}) >= 3
    _assert_rate(
        "personal domains", len(personal), len(fuzzy_run.primary), FUZZY_RATES["personal_domain_rate"]
    )


def test_dropped_guids_leave_the_account_without_external_id_and_are_recorded(fuzzy_run):
    with_guid = [row for row in fuzzy_run.primary if fuzzy_run.employments[row["employee_id"]]["sso_guid"]]
    dropped = [row for row in with_guid if "externalId" not in fuzzy_run.users[row["lms_user_id"]]]
    assert [row["lms_user_id"] for row in dropped] == [
        row["lms_user_id"] for row in fuzzy_run.primary if "dropped_guid" in _kinds(row)
    ]
    _assert_rate("dropped GUIDs", len(dropped), len(with_guid), FUZZY_RATES["dropped_guid_rate"])


def test_namesakes_share_first_and_last_name_with_an_earlier_employee(fuzzy_run):
    first_holder: dict[tuple[str, str], str] = {}
    namesake_persons, persons = set(), set()
    for row in sorted(fuzzy_run.primary, key=lambda row: row["person_id"]):
        person_id, name = row["person_id"], fuzzy_run.name(row)
        persons.add(person_id)
        if "namesake" in _kinds(row):
            namesake_persons.add(person_id)
            assert first_holder.get(name, person_id) < person_id, name
        first_holder.setdefault(name, person_id)
    assert namesake_persons
    # Counted over people with an account (the ledger also counts hires who left before the LMS caught up).
    _assert_rate("namesakes", len(namesake_persons), len(persons), FUZZY_RATES["namesake_rate"])


def test_lookalike_contractors_carry_an_employees_name_and_local_part(fuzzy_run):
    issued_local_parts = {row["work_email"].partition("@")[0] for row in fuzzy_run.employments.values()}
    lookalikes = [row for row in fuzzy_run.contractors if "contractor_lookalike" in _kinds(row)]
    for row in lookalikes:
        local, _, domain = fuzzy_run.email(row).partition("@")
        assert domain == "contractor.example"
        assert local in issued_local_parts, fuzzy_run.email(row)
        # the employee's name too: their address is first.last, with digits when the name was taken
        assert re.fullmatch(re.escape(email_local_part(*fuzzy_run.name(row))) + r"\d*", local), local
        assert "externalId" not in fuzzy_run.users[row["lms_user_id"]] and row["employee_id"] == ""
    _assert_rate(
        "lookalike contractors",
        len(lookalikes),
        len(fuzzy_run.contractors),
        FUZZY_RATES["contractor_lookalike_rate"],
    )


def test_every_fuzzy_kind_is_in_the_ground_truth(fuzzy_run):
    kinds = Counter(kind for row in fuzzy_run.accounts for kind in _kinds(row))
    for kind in ("email_typo", "personal_domain", "dropped_guid", "namesake", "contractor_lookalike"):
        assert kinds[kind] > 0, kind


# ----- defaults, streams and presets -------------------------------------------------------------

SMALL = {"employees": 300, "months": 3, "seed": 5, "statements_per_month": 0.5, "contractor_rate": 0.1}


def test_defaults_leave_the_fuzzy_kinds_out(tmp_path):
    manifest = generate(SynthConfig(out_dir=tmp_path, **SMALL))
    assert all(entry["count"] == 0 for entry in manifest["identity_mess"]["fuzzy_rates"].values())
    assert all(entry["denominator_count"] > 0 for entry in manifest["identity_mess"]["fuzzy_rates"].values())
    kinds = {
        kind for row in _read_csv(tmp_path / "ground_truth" / "lms_accounts.csv") for kind in _kinds(row)
    }
    assert not kinds & {"email_typo", "personal_domain", "dropped_guid", "namesake", "contractor_lookalike"}


def test_switching_fuzzy_kinds_on_keeps_the_rest_of_the_enterprise(tmp_path):
    """Apart from namesakes (a name changes an address), the fuzzy kinds only add to the same enterprise."""
    without_namesakes = {**FUZZY_RATES, "namesake_rate": 0.0}
    generate(SynthConfig(out_dir=tmp_path / "plain", **SMALL))
    generate(SynthConfig(out_dir=tmp_path / "fuzzy", **SMALL, **without_namesakes))
    plain = _read_csv(tmp_path / "plain" / "ground_truth" / "lms_accounts.csv")
    fuzzy = _read_csv(tmp_path / "fuzzy" / "ground_truth" / "lms_accounts.csv")
    assert (tmp_path / "plain" / "ground_truth" / "persons.csv").read_bytes() == (
        tmp_path / "fuzzy" / "ground_truth" / "persons.csv"
    ).read_bytes()
    assert [row["lms_user_id"] for row in plain] == [row["lms_user_id"] for row in fuzzy]
    fuzzy_kinds = {"email_typo", "personal_domain", "dropped_guid", "contractor_lookalike"}
    changed = 0
    for before, after in zip(plain, fuzzy, strict=True):
        added = [kind for kind in _kinds(after) if kind in fuzzy_kinds]
        changed += bool(added)
        if "personal_domain" not in added:  # a personal address drops the corporate variant
            assert [kind for kind in _kinds(after) if kind not in fuzzy_kinds] == _kinds(before)
    assert changed > 0


def test_the_messiest_preset_triples_the_mess_and_adds_the_fuzzy_kinds(tmp_path):
    config = SynthConfig.from_preset("messiest", tmp_path)
    assert config.mess_scale == 3.0
    for setting, rate in FUZZY_MESS_REFERENCE_RATES.items():
        assert config.effective_rate(setting) == pytest.approx(3 * rate)
    assert config.effective_rate("missing_sso_rate") == pytest.approx(
        3 * SynthConfig(tmp_path).missing_sso_rate
    )
    assert SynthConfig.from_preset("mess_3x", tmp_path).effective_rate("email_typo_rate") == 0.0
    assert set(PRESETS) == {"default", "mess_3x", "messiest"}
    with pytest.raises(SynthConfigError, match="unknown preset"):
        SynthConfig.from_preset("tidy", tmp_path)


def test_command_line_preset_is_overridden_by_explicit_options(tmp_path, capsys):
    arguments = ["--out", str(tmp_path), "--employees", "60", "--months", "1", "--preset", "messiest"]
    assert main([*arguments, "--dropped-guid-rate", "0.1"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["arguments"]["mess_scale"] == 3.0
    assert manifest["arguments"]["email_typo_rate"] == FUZZY_MESS_REFERENCE_RATES["email_typo_rate"]
    assert manifest["arguments"]["dropped_guid_rate"] == 0.1
    assert "employments" in capsys.readouterr().out


def test_typo_and_personal_domain_rates_together_cannot_exceed_one(tmp_path):
    with pytest.raises(SynthConfigError, match="email_typo_rate \\+ personal_domain_rate"):
        generate(SynthConfig(out_dir=tmp_path, email_typo_rate=0.5, personal_domain_rate=0.3, mess_scale=2.0))
