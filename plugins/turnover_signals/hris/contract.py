"""The HRIS file contract: feeds, canonical columns, file names and the vendor column mapping."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

EMPLOYEE_COLUMNS = (
    "employee_id",
    "sso_guid",
    "work_email",
    "first_name",
    "last_name",
    "hire_date",
    "termination_date",
    "termination_type",
    "termination_reason",
    "employment_status",
    "job_role",
    "job_level",
    "department",
    "location",
    "manager_id",
    "base_salary",
    "currency",
    "fte",
    "performance_rating",
    # Optional: the worker's LMS user id, where the HRIS records one (identity matching rule 3).
    "lms_user_id",
)
COMPENSATION_COLUMNS = (
    "employee_id",
    "effective_date",
    "change_type",
    "previous_base_salary",
    "new_base_salary",
    "currency",
)


@dataclass(frozen=True)
class Feed:
    """One kind of HRIS file."""

    name: str
    columns: tuple[str, ...]
    required_columns: tuple[str, ...]
    date_columns: tuple[str, ...]
    raw_table: str
    date_column_in_raw: str


FEEDS: dict[str, Feed] = {
    "employees": Feed(
        name="employees",
        columns=EMPLOYEE_COLUMNS,
        required_columns=(
            "employee_id",
            "work_email",
            "hire_date",
            "termination_date",
            "termination_type",
            "employment_status",
        ),
        date_columns=("hire_date", "termination_date"),
        raw_table="hris_employee_snapshot",
        date_column_in_raw="snapshot_date",
    ),
    "compensation": Feed(
        name="compensation",
        columns=COMPENSATION_COLUMNS,
        required_columns=("employee_id", "effective_date", "change_type", "new_base_salary"),
        date_columns=("effective_date",),
        raw_table="hris_compensation_change",
        date_column_in_raw="file_date",
    ),
}

# Names that must never be fetched, each with why: hidden files, anything that could escape the directory,
# unprintable characters (a trailing newline), and shell metacharacters (nothing here runs a shell, but a
# name like that is not an export a vendor means to send).
_UNSAFE_NAME_RULES = (
    (re.compile(r"^\."), "hidden (starts with '.')"),
    (re.compile(r"\.\."), "holds '..'"),
    (re.compile(r"[/\\]"), "holds a path separator"),
    (re.compile(r"[;&|$`<>*?!'\"(){}\[\]]"), "holds a shell metacharacter"),
)


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` must never be fetched, or None when it is safe."""
    if not name:
        return "empty name"
    if any("\udc80" <= char <= "\udcff" for char in name):  # undecodable bytes, kept as surrogate escapes
        return "not valid UTF-8"
    if not name.isprintable():
        return "holds a control or unprintable character"
    return next((reason for rule, reason in _UNSAFE_NAME_RULES if rule.search(name)), None)


@dataclass(frozen=True)
class HrisFileName:
    """A remote file name recognised as one of the feeds."""

    name: str
    feed: str
    file_date: date
    is_encrypted: bool


def is_safe_remote_name(name: str) -> bool:
    """False for names that are hidden, could traverse out of the landing directory, hold a control or
    other unprintable character (a trailing newline, say) or a shell metacharacter."""
    return unsafe_name_reason(name) is None


def escaped_name(name: str, limit: int = 120) -> str:
    """`name` quoted and escaped like Python's repr (no raw control characters), cut to `limit` characters:
    safe to put in a log line or a message."""
    text = repr(name)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def match_file_name(name: str, file_patterns: Mapping[str, str]) -> HrisFileName | None:
    """Recognise `name` as a feed file, or None (unknown names and unsafe names are ignored)."""
    return _recognise(name, file_patterns)[0]


def why_not_a_feed_file(name: str, file_patterns: Mapping[str, str]) -> str | None:
    """Why `name` is ignored (unsafe, no feed pattern, an impossible date), or None for a feed file."""
    return _recognise(name, file_patterns)[1]


def _recognise(name: str, file_patterns: Mapping[str, str]) -> tuple[HrisFileName | None, str | None]:
    unsafe = unsafe_name_reason(name)
    if unsafe is not None:
        return None, f"unsafe name: {unsafe}"
    for feed, pattern in file_patterns.items():
        if feed not in FEEDS:
            continue
        match = re.fullmatch(pattern, name)
        if match:
            try:
                file_date = datetime.strptime(match["date"], "%Y%m%d").date()
            except ValueError:
                return None, f"matches the {feed} pattern but {match['date']!r} is not a date (YYYYMMDD)"
            return HrisFileName(name, feed, file_date, name.endswith((".pgp", ".gpg"))), None
    return None, "matches no pattern of hris.file_patterns"


def normalize_header_name(raw: str) -> str:
    """Trim, lowercase and turn spaces and dashes into underscores."""
    return re.sub(r"[\s\-]+", "_", raw.strip().lstrip("\ufeff")).lower()


@dataclass(frozen=True)
class MappedHeader:
    """The file's columns in file order, as staging column names, and what was found."""

    staging_columns: tuple[str, ...]
    canonical_present: tuple[str, ...]
    missing_required: tuple[str, ...]
    missing_optional: tuple[str, ...]
    extra_columns: tuple[str, ...]
    duplicate_columns: tuple[str, ...]


def map_header(header: list[str], feed: Feed, column_mapping: Mapping[str, Any]) -> MappedHeader:
    """Map a vendor header onto canonical names through the configured mapping.

    The mapping is applied to the exact vendor name first, then to its normalized form; a
    column that maps to no canonical name is an extra column, kept in staging as
    `extra_<n>_<name>` and recorded, but never published.
    """
    normalized_mapping = {normalize_header_name(k): v for k, v in column_mapping.items()}
    staging: list[str] = []
    seen: dict[str, int] = {}
    extras: list[str] = []
    for position, raw_name in enumerate(header):
        stripped = raw_name.strip().lstrip("\ufeff")
        canonical = column_mapping.get(stripped) or normalized_mapping.get(normalize_header_name(stripped))
        canonical = canonical or normalize_header_name(stripped)
        if canonical in feed.columns:
            seen[canonical] = seen.get(canonical, 0) + 1
            staging.append(canonical if seen[canonical] == 1 else f"duplicate_{position}_{canonical}")
        else:
            extras.append(stripped)
            safe = re.sub(r"[^a-z0-9_]", "_", normalize_header_name(stripped))[:40]
            staging.append(f"extra_{position}_{safe}")
    present = tuple(c for c in feed.columns if c in seen)
    return MappedHeader(
        staging_columns=tuple(staging),
        canonical_present=present,
        missing_required=tuple(c for c in feed.required_columns if c not in seen),
        missing_optional=tuple(c for c in feed.columns if c not in seen and c not in feed.required_columns),
        extra_columns=tuple(extras),
        duplicate_columns=tuple(sorted(c for c, n in seen.items() if n > 1)),
    )


_STRFTIME_TO_REGEX = {"%Y": r"(\d{4})", "%m": r"(\d{2})", "%d": r"(\d{2})"}
_STRFTIME_TO_POSTGRES = {"%Y": "YYYY", "%m": "MM", "%d": "DD"}


def date_format_parts(date_format: str) -> tuple[str, str, tuple[int, int, int]]:
    """For a strftime format made of %Y, %m, %d and literal separators, return
    (anchored regex, PostgreSQL to_date template, capture positions of year, month, day).

    Only these directives are supported because they are the ones that can be checked and
    parsed identically in SQL; anything else is a configuration error.
    """
    tokens = re.findall(r"%.|[^%]+", date_format)
    regex, template, order = "^", "", []
    for token in tokens:
        if token in _STRFTIME_TO_REGEX:
            regex += _STRFTIME_TO_REGEX[token]
            template += _STRFTIME_TO_POSTGRES[token]
            order.append(token)
        elif token.startswith("%"):
            raise ValueError(
                f"date format {date_format!r}: directive {token} is not supported; use %Y, %m and %d"
            )
        else:
            regex += re.escape(token)
            template += '"' + token.replace('"', "") + '"' if token.isalpha() else token
    if sorted(order) != ["%Y", "%d", "%m"]:
        raise ValueError(f"date format {date_format!r} must contain %Y, %m and %d exactly once")
    positions = (order.index("%Y") + 1, order.index("%m") + 1, order.index("%d") + 1)
    return regex + "$", template, positions
