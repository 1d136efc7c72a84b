import re
from datetime import date

import pytest

from turnover_signals.config import load_config
from turnover_signals.hris.contract import (
    FEEDS,
    date_format_parts,
    escaped_name,
    is_safe_remote_name,
    map_header,
    match_file_name,
    why_not_a_feed_file,
)

PATTERNS = load_config(use_variable=False)["hris"]["file_patterns"]


@pytest.mark.parametrize(
    ("name", "feed", "day", "encrypted"),
    [
        ("employees_20260105.csv", "employees", date(2026, 1, 5), False),
        ("compensation_20251231.csv", "compensation", date(2025, 12, 31), False),
        ("employees_20260105.csv.pgp", "employees", date(2026, 1, 5), True),
        ("employees_20260105.csv.gpg", "employees", date(2026, 1, 5), True),
    ],
)
def test_feed_files_are_recognised(name, feed, day, encrypted):
    matched = match_file_name(name, PATTERNS)
    assert (matched.feed, matched.file_date, matched.is_encrypted) == (feed, day, encrypted)


@pytest.mark.parametrize(
    "name",
    [
        "employees_20260105.csv.ctl",
        "employees_20261305.csv",
        "employees_2026015.csv",
        "notes.txt",
        "../employees_20260105.csv",
        "..employees_20260105.csv",
        ".employees_20260105.csv",
        "sub/employees_20260105.csv",
        "employees_20260105.csv\x00",
        "EMPLOYEES_20260105.CSV",
        "employees_20260105.csv\n",
        "employees_20260105.csv\u202e",
    ],
)
def test_other_and_unsafe_names_are_ignored(name):
    assert match_file_name(name, PATTERNS) is None


def test_unsafe_names():
    assert not is_safe_remote_name("..\\x.csv")
    assert not is_safe_remote_name("")
    assert is_safe_remote_name("employees_20260105.csv")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("employees_20260105.csv;rm -rf ~", "unsafe name: holds a shell metacharacter"),
        ("employees_$(reboot)_20260105.csv", "unsafe name: holds a shell metacharacter"),
        ("..employees_20260105.csv", "unsafe name: hidden (starts with '.')"),
        ("x..employees_20260105.csv", "unsafe name: holds '..'"),
        ("employees_20260105.csv\n", "unsafe name: holds a control or unprintable character"),
        ("employees_20261305.csv", "matches the employees pattern but '20261305' is not a date (YYYYMMDD)"),
        ("Employees 2026-01-05.csv", "matches no pattern of hris.file_patterns"),
        ("employees_20260105.csv", None),
    ],
)
def test_why_a_name_is_not_a_feed_file(name, reason):
    assert why_not_a_feed_file(name, PATTERNS) == reason


def test_a_wide_pattern_still_never_takes_a_name_with_shell_metacharacters():
    wide = {"employees": r"employees_(?P<date>\d{8}).*\.csv"}
    assert match_file_name("employees_20260105 backup.csv", wide) is not None
    assert match_file_name("employees_20260105`reboot`.csv", wide) is None


def test_escaped_names_hold_no_raw_control_characters():
    assert escaped_name("employees_20260105.csv\n") == "'employees_20260105.csv\\n'"
    assert escaped_name("a\x1b[31mred") == "'a\\x1b[31mred'"
    assert escaped_name("\u202eevil.csv") == "'\\u202eevil.csv'"
    long = escaped_name("x" * 500)
    assert len(long) == 120 and long.endswith("…")


def test_header_mapping_reports_missing_extra_and_duplicates():
    header = ["\ufeffEmployee ID", "Work Email", "hire_date", "Badge Colour", "work_email"]
    mapped = map_header(header, FEEDS["employees"], {"Employee ID": "employee_id"})
    assert mapped.staging_columns[:3] == ("employee_id", "work_email", "hire_date")
    assert mapped.extra_columns == ("Badge Colour",)
    assert mapped.duplicate_columns == ("work_email",)
    assert "termination_date" in mapped.missing_required
    assert "sso_guid" in mapped.missing_optional
    # every staging column name is a safe identifier
    assert all(re.fullmatch(r"[a-z0-9_]+", c) for c in mapped.staging_columns)


def test_vendor_mapping_is_matched_after_normalisation():
    mapped = map_header(["EMPLOYEE-ID", "Hire Date"], FEEDS["employees"], {"employee id": "employee_id"})
    assert mapped.canonical_present == ("employee_id", "hire_date")


@pytest.mark.parametrize(
    ("fmt", "regex", "template", "groups"),
    [
        ("%Y-%m-%d", r"^(\d{4})\-(\d{2})\-(\d{2})$", "YYYY-MM-DD", (1, 2, 3)),
        ("%m/%d/%Y", r"^(\d{2})/(\d{2})/(\d{4})$", "MM/DD/YYYY", (3, 1, 2)),
        ("%d.%m.%Y", r"^(\d{2})\.(\d{2})\.(\d{4})$", "DD.MM.YYYY", (3, 2, 1)),
    ],
)
def test_date_formats_translate_to_sql_checks(fmt, regex, template, groups):
    assert date_format_parts(fmt) == (regex, template, groups)


@pytest.mark.parametrize("fmt", ["%Y-%m", "%d %b %Y", "%Y-%m-%d %H:%M"])
def test_unsupported_date_formats_are_refused(fmt):
    with pytest.raises(ValueError, match="date format"):
        date_format_parts(fmt)


def test_a_name_with_undecodable_bytes_is_unsafe_and_escaped():
    name = b"employ\xe9s_20260105.csv".decode("utf-8", "surrogateescape")
    assert why_not_a_feed_file(name, PATTERNS) == "unsafe name: not valid UTF-8"
    assert escaped_name(name) == "'employ\\udce9s_20260105.csv'"
