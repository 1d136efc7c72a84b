"""The course catalog (`include/course_catalog.csv`), kept by the business and read by the generator.

Columns: `course_id, title, difficulty (1-5), is_mandatory (true/false), due_within_days
(empty unless mandatory), skill_tags (semicolon-separated)`.

Assignment rules the generator derives from the catalog:
- every mandatory course is assigned to a new hire when the LMS account is provisioned;
- mandatory courses tagged `annual` are assigned again to everybody each January;
- mandatory courses tagged `semiannual` are assigned again each January and July.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

CATALOG_COLUMNS = ("course_id", "title", "difficulty", "is_mandatory", "due_within_days", "skill_tags")


class CatalogError(ValueError):
    """The course catalog file is malformed."""


@dataclass(frozen=True)
class Course:
    """One catalog row, typed."""

    course_id: str
    title: str
    difficulty: int
    is_mandatory: bool
    due_within_days: int | None
    skill_tags: tuple[str, ...]


def _parse_bool(text: str, where: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise CatalogError(f"{where}: is_mandatory must be true or false, got {text!r}")


def read_course_catalog(path: Path) -> list[Course]:
    """Read and check the catalog; the order of the file is kept (it drives random draws)."""
    courses: list[Course] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != CATALOG_COLUMNS:
            raise CatalogError(
                f"{path}: expected columns {', '.join(CATALOG_COLUMNS)}, got {reader.fieldnames}"
            )
        for line_number, row in enumerate(reader, start=2):
            where = f"{path.name} line {line_number}"
            course_id = row["course_id"].strip()
            if not course_id or course_id in seen:
                raise CatalogError(f"{where}: course_id is empty or repeated: {course_id!r}")
            seen.add(course_id)
            try:
                difficulty = int(row["difficulty"])
            except ValueError as exc:
                raise CatalogError(f"{where}: difficulty must be an integer 1-5") from exc
            if not 1 <= difficulty <= 5:
                raise CatalogError(f"{where}: difficulty must be 1-5, got {difficulty}")
            is_mandatory = _parse_bool(row["is_mandatory"], where)
            due_text = row["due_within_days"].strip()
            if is_mandatory != bool(due_text):
                raise CatalogError(
                    f"{where}: due_within_days is required for mandatory courses and only for them"
                )
            courses.append(
                Course(
                    course_id=course_id,
                    title=row["title"].strip(),
                    difficulty=difficulty,
                    is_mandatory=is_mandatory,
                    due_within_days=int(due_text) if due_text else None,
                    skill_tags=tuple(tag.strip() for tag in row["skill_tags"].split(";") if tag.strip()),
                )
            )
    if not any(course.is_mandatory for course in courses) or all(course.is_mandatory for course in courses):
        raise CatalogError(f"{path}: the catalog needs both mandatory and optional courses")
    return courses
