"""Small, deterministic sample data for the sample servers (tests and demo).

- `build_sftp_root(root, files)`: lay out an SFTP root (``outbound/hris/...``) from a mapping of
  remote path to content; `sample_hris_files()` is a default set of two feeds with sidecars.
- `sample_statements(...)` / `sample_users(...)`: xAPI statements and SCIM users that exercise
  paging ties (several statements share one `stored` time), voiding, and the agent / verb /
  activity filters; `write_lms_data(data_dir, statements, users)` writes them where
  `LmsSampleServer` reads them (``DATA_DIR/lms/*.jsonl``).

The HRIS CSVs use the canonical columns of `turnover_signals.hris.contract` and pass the ingest's gate.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from turnover_signals.hris.contract import COMPENSATION_COLUMNS, EMPLOYEE_COLUMNS

CORPORATE_DOMAIN = "northwind.example"
LMS_HOME_PAGE = "https://lms.northwind.example"
COURSE_BASE = "https://lms.northwind.example/courses/"
VERBS = {
    "completed": "http://adlnet.gov/expapi/verbs/completed",
    "attempted": "http://adlnet.gov/expapi/verbs/attempted",
    "passed": "http://adlnet.gov/expapi/verbs/passed",
    "failed": "http://adlnet.gov/expapi/verbs/failed",
    "voided": "http://adlnet.gov/expapi/verbs/voided",
}
_NAMESPACE = uuid.UUID("6f1c2b8e-3a55-4c1e-9d7a-1f0e2d3c4b5a")
_FIRST_NAMES = ["Ada", "Bo", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivan", "Jun", "Kemal", "Lena"]
_LAST_NAMES = ["Okafor", "Lindqvist", "Moreau", "Nakamura", "Oliveira", "Petrov", "Quinn", "Rossi"]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _csv_file(header: tuple[str, ...], rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([row.get(column, "") for column in header] for row in rows)
    return buffer.getvalue().encode("utf-8")


def _control_file(content: bytes, rows: int) -> bytes:
    return json.dumps({"rows": rows, "sha256": hashlib.sha256(content).hexdigest()}).encode("utf-8")


def sample_hris_files(snapshot_date: str = "20240131", employees: int = 6) -> dict[str, bytes]:
    """Remote path -> content: an employees and a compensation snapshot, each with a `.ctl` sidecar.

    Both follow the HRIS file contract (`hris.contract`, canonical column names) and pass its gate:
    the last employee left (a resignation); everyone had a pay review on 2024-01-01. Employee
    `E1000+n` has the work e-mail of sample LMS user n (`user_email`), so identity matching finds them.
    """
    employee_rows = []
    compensation_rows = []
    for number in range(1, employees + 1):
        first, last = _person(number)
        terminated = number == employees
        employee_rows.append(
            {
                "employee_id": f"E{1000 + number}",
                "sso_guid": str(uuid.uuid5(_NAMESPACE, f"sso-{number}")),
                "work_email": user_email(number),
                "first_name": first,
                "last_name": last,
                "hire_date": f"2020-{(number % 12) + 1:02d}-01",
                "termination_date": "2024-01-15" if terminated else "",
                "termination_type": "resignation" if terminated else "",
                "termination_reason": "Resignation" if terminated else "",
                "employment_status": "Terminated" if terminated else "Active",
                "job_role": "Analyst",
                "job_level": str(2 + number % 3),
                "department": ["Sales", "Engineering", "Finance"][number % 3],
                "location": "Berlin",
                "manager_id": f"E{1000 + (number // 3) + 1}" if number > 1 else "",
                "base_salary": f"{50000 + 2500 * number}.00",
                "currency": "EUR",
                "fte": "1.0",
                "performance_rating": str(1 + number % 5),
            }
        )
        compensation_rows.append(
            {
                "employee_id": f"E{1000 + number}",
                "effective_date": "2024-01-01",
                "change_type": "annual_review",
                "previous_base_salary": f"{48000 + 2500 * number}.00",
                "new_base_salary": f"{50000 + 2500 * number}.00",
                "currency": "EUR",
            }
        )
    employees_csv = _csv_file(EMPLOYEE_COLUMNS, employee_rows)
    compensation_csv = _csv_file(COMPENSATION_COLUMNS, compensation_rows)
    base = "/outbound/hris"
    return {
        f"{base}/employees_{snapshot_date}.csv": employees_csv,
        f"{base}/employees_{snapshot_date}.csv.ctl": _control_file(employees_csv, len(employee_rows)),
        f"{base}/compensation_{snapshot_date}.csv": compensation_csv,
        f"{base}/compensation_{snapshot_date}.csv.ctl": _control_file(
            compensation_csv, len(compensation_rows)
        ),
    }


def build_sftp_root(root: str | os.PathLike[str], files: Mapping[str, bytes | str] | None = None) -> Path:
    """Create `root` laid out as the vendor's SFTP tree: remote path ``/a/b.csv`` -> ``root/a/b.csv``.

    Directories are created 0755 so the tree also works as (or bind-mounted onto) an sshd chroot.
    """
    root_path = Path(root)
    root_path.mkdir(parents=True, exist_ok=True)
    os.chmod(root_path, 0o755)
    for remote_path, content in (sample_hris_files() if files is None else files).items():
        target = root_path / remote_path.lstrip("/")
        target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        target.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return root_path


def _person(number: int) -> tuple[str, str]:
    return _FIRST_NAMES[number % len(_FIRST_NAMES)], _LAST_NAMES[number % len(_LAST_NAMES)]


def user_email(number: int) -> str:
    """The LMS e-mail of sample user `number` (the number keeps the addresses unique)."""
    first, last = _person(number)
    return f"{first.lower()}.{last.lower()}{number}@{CORPORATE_DOMAIN}"


def sample_users(count: int = 25, first_modified: str = "2024-01-01T09:00:00Z") -> list[dict[str, Any]]:
    """SCIM Users `u0001`..., lastModified one hour apart, every seventh one inactive."""
    start = datetime.fromisoformat(first_modified)
    users = []
    for number in range(1, count + 1):
        email = user_email(number)
        modified = start + timedelta(hours=number)
        users.append(
            {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": f"u{number:04d}",
                "externalId": f"E{1000 + number}",
                "userName": email,
                "name": {"givenName": _person(number)[0], "familyName": _person(number)[1]},
                "emails": [{"value": email, "type": "work", "primary": True}],
                "active": number % 7 != 0,
                "meta": {"resourceType": "User", "created": _iso(start), "lastModified": _iso(modified)},
            }
        )
    return users


def statement_id(number: int) -> str:
    """The deterministic id of sample statement `number`."""
    return str(uuid.uuid5(_NAMESPACE, f"statement-{number}"))


def sample_statements(
    count: int = 120,
    first_stored: str = "2024-03-01T08:00:00Z",
    learners: int = 25,
    courses: int = 5,
    voided: Iterable[int] = (5, 17, 42),
) -> list[dict[str, Any]]:
    """`count` statements plus one voiding statement per number in `voided`.

    Statement n (0-based) is stored at `first_stored` + 30 s * (n // 3): three statements share
    each stored time, so paging must break ties by id. The voiding statements are stored after
    all the others. `timestamp` is a day before `stored`, as with late-synced mobile clients.
    """
    start = datetime.fromisoformat(first_stored)
    verbs = ["completed", "attempted", "passed", "failed"]
    statements = []
    for number in range(count):
        stored = start + timedelta(seconds=30 * (number // 3))
        learner = number % learners + 1
        verb = verbs[number % len(verbs)]
        statement: dict[str, Any] = {
            "id": statement_id(number),
            "actor": {"objectType": "Agent", "mbox": f"mailto:{user_email(learner)}"},
            "verb": {"id": VERBS[verb], "display": {"en-US": verb}},
            "object": {
                "objectType": "Activity",
                "id": f"{COURSE_BASE}C{number % courses + 1:03d}",
                "definition": {"name": {"en-US": f"Course {number % courses + 1}"}},
            },
            "timestamp": _iso(stored - timedelta(days=1)),
            "stored": _iso(stored),
            "authority": {"objectType": "Agent", "account": {"homePage": LMS_HOME_PAGE, "name": "lms-sync"}},
            "version": "1.0.3",
        }
        if verb in ("completed", "passed", "failed"):
            statement["result"] = {
                "score": {"scaled": round((number % 10) / 10, 2), "raw": number % 10, "min": 0, "max": 10},
                "completion": verb != "failed",
                "success": verb != "failed",
                "duration": f"PT{5 + number % 50}M",
            }
        statements.append(statement)
    last_stored = start + timedelta(seconds=30 * ((count - 1) // 3))
    for offset, target in enumerate(voided, start=1):
        statements.append(
            {
                "id": str(uuid.uuid5(_NAMESPACE, f"void-{target}")),
                "actor": {"objectType": "Agent", "account": {"homePage": LMS_HOME_PAGE, "name": "admin"}},
                "verb": {"id": VERBS["voided"], "display": {"en-US": "voided"}},
                "object": {"objectType": "StatementRef", "id": statement_id(target)},
                "timestamp": _iso(last_stored + timedelta(minutes=offset)),
                "stored": _iso(last_stored + timedelta(minutes=offset)),
                "version": "1.0.3",
            }
        )
    return statements


def write_lms_data(
    data_dir: str | os.PathLike[str],
    statements: Iterable[Mapping[str, Any]] | None = None,
    users: Iterable[Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``data_dir/lms/statements.jsonl`` and ``users.jsonl`` (defaults: the samples above)."""
    lms_dir = Path(data_dir) / "lms"
    lms_dir.mkdir(parents=True, exist_ok=True)
    with open(lms_dir / "statements.jsonl", "w", encoding="utf-8") as handle:
        for statement in sample_statements() if statements is None else statements:
            handle.write(json.dumps(statement, separators=(",", ":")) + "\n")
    with open(lms_dir / "users.jsonl", "w", encoding="utf-8") as handle:
        for user in sample_users() if users is None else users:
            handle.write(json.dumps(user, separators=(",", ":")) + "\n")
    return Path(data_dir)
