"""The HRIS side of the output: weekly employee snapshots and compensation files with `.ctl` sidecars.

File contract (what the SFTP ingest loads):
- `employees_YYYYMMDD.csv`: a full snapshot as of that date of every active worker and every
  worker terminated in the previous 90 days (0 <= snapshot date - termination_date <= 90).
- `compensation_YYYYMMDD.csv`: every pay change with effective_date after the previous file's
  date, up to and including this date. The first file also carries the pay history (hire and
  annual merit records) of the workers employed when the simulated period starts.
- Both are UTF-8 without BOM, CRLF line ends, RFC 4180 quoting (csv module, minimal quoting),
  ISO dates and empty strings for nulls. Each has `<name>.ctl`: `{"rows": N, "sha256": "<hex>"}`
  with N the data rows (header excluded) and the digest of the CSV file's bytes.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from turnover_demo.synth.clock import iso_date
from turnover_signals.hris import contract

if TYPE_CHECKING:
    from turnover_demo.synth.population import Employment

# The file contract's columns (turnover_signals.hris.contract); the generated HRIS records no LMS user id.
EMPLOYEE_COLUMNS = tuple(column for column in contract.EMPLOYEE_COLUMNS if column != "lms_user_id")
COMPENSATION_COLUMNS = contract.COMPENSATION_COLUMNS
CHANGE_TYPES = ("hire", "merit_increase", "promotion", "market_adjustment", "pay_freeze")
SNAPSHOT_LOOKBACK_DAYS = 90


class _LastLine:
    """A write target for csv.writer that keeps the one line it was given."""

    __slots__ = ("line",)

    def __init__(self) -> None:
        self.line = ""

    def write(self, text: str) -> None:
        self.line = text


_captured = _LastLine()
# csv's default dialect: minimal quoting, doubled quotes, CRLF - RFC 4180 as most HRIS exports write it.
_row_writer = csv.writer(_captured)


def csv_line(values: Sequence[object]) -> str:
    """One RFC 4180 line (with its CRLF) for a row of values; None is written as an empty string."""
    _row_writer.writerow(["" if value is None else value for value in values])
    return _captured.line


def format_cents(cents: int | None) -> str:
    """A salary held in integer cents as a decimal with two places (`91234.50`)."""
    if cents is None:
        return ""
    return f"{cents // 100}.{cents % 100:02d}"


def employee_csv_line(employment: Employment) -> bytes:
    """The snapshot row of one employment, encoded; cached by the caller until the record changes."""
    terminated = employment.termination_day is not None
    return csv_line(
        (
            employment.employee_id,
            employment.sso_guid,
            employment.work_email,
            employment.person.first_name,
            employment.person.last_name,
            iso_date(employment.hire_day),
            iso_date(employment.termination_day) if terminated else "",
            employment.termination_type,
            employment.termination_reason,
            "Terminated" if terminated else "Active",
            employment.job_role,
            employment.job_level,
            employment.department,
            employment.location,
            employment.manager_id,
            format_cents(employment.salary_cents),
            employment.currency,
            employment.fte,
            employment.performance_rating,
        )
    ).encode("utf-8")


class ControlledCsvFile:
    """A CSV file written row by row, hashed as written, closed with its `.ctl` sidecar."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = path
        self.rows = 0
        self._digest = hashlib.sha256()
        self._handle = open(path, "wb")  # noqa: SIM115 - closed in close(); rows stream in over time
        self._write(csv_line(columns).encode("utf-8"))

    def _write(self, data: bytes) -> None:
        self._digest.update(data)
        self._handle.write(data)

    def write_encoded_rows(self, encoded_rows: Iterable[bytes], chunk_rows: int = 5000) -> None:
        """Append already-encoded rows (each ending with CRLF), a chunk at a time to bound memory."""
        chunk: list[bytes] = []
        for row in encoded_rows:
            chunk.append(row)
            if len(chunk) >= chunk_rows:
                self._write(b"".join(chunk))
                self.rows += len(chunk)
                chunk.clear()
        if chunk:
            self._write(b"".join(chunk))
            self.rows += len(chunk)

    def write_row(self, values: Sequence[object]) -> None:
        """Append one row of values."""
        self.rows += 1
        self._write(csv_line(values).encode("utf-8"))

    def close(self) -> dict[str, object]:
        """Close the CSV, write the sidecar and return its facts for the manifest."""
        self._handle.close()
        sha256 = self._digest.hexdigest()
        control = {"rows": self.rows, "sha256": sha256}
        Path(f"{self.path}.ctl").write_text(json.dumps(control) + "\n", encoding="utf-8")
        return {
            "file": self.path.name,
            "rows": self.rows,
            "sha256": sha256,
            "bytes": self.path.stat().st_size,
        }


class HrisExportWriter:
    """Writes the HRIS feed: snapshots on the snapshot days and a compensation file per window.

    Pay changes stream into the open compensation file as they happen; at each snapshot day the
    file is closed and the next window's file opened, so no rows are held in memory.
    """

    def __init__(self, hris_dir: Path, snapshot_days: Sequence[int]) -> None:
        self.hris_dir = hris_dir
        self.snapshot_days = list(snapshot_days)
        self._next_window = 0
        self.files: list[dict[str, object]] = []
        self.compensation_rows = 0
        self.snapshot_rows = 0
        self._compensation = self._open_compensation_window()

    def _open_compensation_window(self) -> ControlledCsvFile | None:
        if self._next_window >= len(self.snapshot_days):
            return None
        day = self.snapshot_days[self._next_window]
        path = self.hris_dir / f"compensation_{iso_date(day).replace('-', '')}.csv"
        return ControlledCsvFile(path, COMPENSATION_COLUMNS)

    def write_pay_change(
        self,
        employee_id: str,
        effective_day: int,
        change_type: str,
        previous_cents: int | None,
        new_cents: int,
        currency: str,
    ) -> None:
        """Record a pay change in the current window's compensation file."""
        if self._compensation is None:
            raise RuntimeError("pay change after the last snapshot day")
        self.compensation_rows += 1
        self._compensation.write_row(
            (
                employee_id,
                iso_date(effective_day),
                change_type,
                format_cents(previous_cents),
                format_cents(new_cents),
                currency,
            )
        )

    def write_snapshot(self, day: int, employments: Iterable[Employment]) -> None:
        """Write `employees_YYYYMMDD.csv` for `day`, then close that day's compensation window."""
        snapshot = ControlledCsvFile(
            self.hris_dir / f"employees_{iso_date(day).replace('-', '')}.csv", EMPLOYEE_COLUMNS
        )
        snapshot.write_encoded_rows(employment.snapshot_line() for employment in employments)
        self.snapshot_rows += snapshot.rows
        self.files.append(snapshot.close())
        if self._compensation is not None:
            self.files.append(self._compensation.close())
        self._next_window += 1
        self._compensation = self._open_compensation_window()

    def close(self) -> None:
        """Close a window that no snapshot closed (only when the run stops early)."""
        if self._compensation is not None:
            self._compensation._handle.close()
            self._compensation = None
