"""Ingest one HRIS file: download, checksum, validate, then publish or quarantine.

Write-audit-publish: the file is streamed from the SFTP server straight into a staging table
(hashed on the way; a sha256 that differs from the control file rolls the staging back), the
Great Expectations gate runs on it, and only then, in ONE transaction, is the staging table attached as the
file's partition of the raw table together with its manifest and validation rows. A failure at any
point leaves published data untouched. Rerunning the task for a file already recorded changes
nothing (a quarantined file fails again with its recorded reason).
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals import storage
from turnover_signals.errors import BadInputError, SourceUnavailableError, runbook_link
from turnover_signals.hris.contract import (
    FEEDS,
    Feed,
    MappedHeader,
    date_format_parts,
    escaped_name,
    map_header,
)
from turnover_signals.hris.job_levels import job_level_mapping
from turnover_signals.hris.release import record_release
from turnover_signals.load import manifest
from turnover_signals.load.csv_stage import (
    ByteStream,
    ChecksumMismatchError,
    StagedFile,
    drop_staged,
    file_chunks,
    header_from_bytes,
    stage_csv_stream,
)
from turnover_signals.paths import data_path
from turnover_signals.quality.gate import (
    RunIdentity,
    ValidationOutcome,
    data_docs_location,
    record_validation,
    run_suite,
)
from turnover_signals.sources.sftp_hris import HrisSftpSource, IgnoredEntry, RemoteHrisFile, sha256_of_file
from turnover_signals.warehouse import sqlalchemy_url, warehouse_connection

log = logging.getLogger(__name__)

CONTROL_UNREADABLE = "control file is unreadable"

SHA256_HEX = re.compile(r"[0-9a-f]{64}")
NEXT_STEP_BAD_FILE = (
    "fix the export at the source and deliver a corrected file with the same date (it supersedes this "
    "one), or fix the configuration (column mapping, encoding, date format, a termination type or job "
    "level mapping) and release the file"
)
# Without a control file, a file is taken once two listings this far apart see the same size and mtime.
DEFAULT_STABLE_LISTING_SECONDS = 30.0
DEFAULT_CONTROL_FILE_GRACE_MINUTES = 60.0


@dataclass
class IngestResult:
    file_name: str
    feed: str
    file_date: str
    status: str
    sha256: str | None = None
    rows_loaded: int = 0
    superseded: tuple[str, ...] = ()
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file_name": self.file_name,
            "feed": self.feed,
            "file_date": self.file_date,
            "status": self.status,
            "sha256": self.sha256,
            "rows_loaded": self.rows_loaded,
            "superseded": list(self.superseded),
            "note": self.note,
        }


def hris_source(config: Mapping[str, Any]) -> HrisSftpSource:
    hris = config["hris"]
    return HrisSftpSource(
        conn_id=config["connections"]["hris_sftp"],
        remote_dir=hris["remote_dir"],
        file_patterns=hris["file_patterns"],
        control_file_suffix=hris.get("control_file_suffix", ".ctl"),
        attempts=int(hris.get("download_attempts", 4)),
        max_backoff_seconds=float(hris.get("download_max_backoff_seconds", 30)),
    )


@dataclass(frozen=True)
class WaitingFile:
    """A new feed file not taken yet: still being written, or its required control file is missing."""

    name: str
    reason: str

    def describe(self) -> str:
        return f"{escaped_name(self.name)} ({self.reason})"


@dataclass
class FileSurvey:
    """What one look at the drop directory found: files to take now, files to wait for, names ignored."""

    pending: list[RemoteHrisFile]
    waiting: list[WaitingFile]
    ignored: list[IgnoredEntry]

    def summary(self) -> dict[str, Any]:
        """Counts and escaped names (JSON-serialisable): the run's record of what was not taken and why."""
        return {
            "pending": len(self.pending),
            "waiting": len(self.waiting),
            "ignored_names": len(self.ignored),
            "waiting_files": [item.describe() for item in self.waiting],
            "ignored": [item.describe() for item in self.ignored],
        }

    def note_lines(self) -> list[str]:
        """Lines for the DAG run's note: files not taken, so that people see them on the run."""
        lines = []
        if self.waiting:
            lines.append(
                f"{len(self.waiting)} HRIS file(s) not taken yet: "
                + "; ".join(item.describe() for item in self.waiting)
            )
        if self.ignored:
            lines.append(
                f"{len(self.ignored)} entr(ies) of the HRIS drop ignored for their names: "
                + "; ".join(item.describe() for item in self.ignored)
            )
        return lines


def survey_remote_files(
    config: Mapping[str, Any], dsn: str | None = None, sleep: Callable[[float], None] = time.sleep
) -> FileSurvey:
    """Feed files on the server not yet recorded as received (by name, size and mtime), oldest first, split
    into those complete enough to take now and those to wait for.

    A file with its control file is complete (the vendor writes the control file last). A file of a feed
    with `hris.require_control_file.<feed>` waits for its control file. Any other file is taken only when its
    size and modification time are the same in a second listing `hris.stable_listing_seconds` later: a file
    still being uploaded, cut at a row boundary, would pass COPY and the volume band, and its missing
    employees would be closed as leavers.
    """
    hris = config["hris"]
    source = hris_source(config)
    listing = source.list_directory()
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        new = []
        for remote in listing.files:
            known = manifest.find_by_listing(conn, remote.name, remote.size_bytes, remote.remote_mtime)
            if known is None or (
                is_control_quarantine(known) and _control_now_agrees(source, remote, known["sha256"])
            ):
                new.append(remote)
    required = hris.get("require_control_file") or {}
    grace = timedelta(
        minutes=float(hris.get("control_file_grace_minutes", DEFAULT_CONTROL_FILE_GRACE_MINUTES))
    )
    ready: list[RemoteHrisFile] = []
    unsettled: list[RemoteHrisFile] = []
    waiting: list[WaitingFile] = []
    for remote in new:
        if remote.control_file is not None and _control_behind(remote, grace):
            waiting.append(WaitingFile(remote.name, _control_behind_reason(remote, source, grace)))
        elif remote.control_file is not None:
            ready.append(remote)
        elif required.get(remote.feed):
            waiting.append(WaitingFile(remote.name, _no_control_file_yet(remote, source)))
        else:
            unsettled.append(remote)
    stable_seconds = float(hris.get("stable_listing_seconds", DEFAULT_STABLE_LISTING_SECONDS))
    if unsettled and stable_seconds > 0:
        sleep(stable_seconds)
        relisted = {f.name: f for f in source.list_directory(warn_ignored=False).files}
        for before in unsettled:
            after = relisted.get(before.name)
            if after is None:
                waiting.append(WaitingFile(before.name, "gone from the second listing (renamed or deleted)"))
            elif after.control_file is not None and _control_behind(after, grace):
                waiting.append(WaitingFile(after.name, _control_behind_reason(after, source, grace)))
            elif after.control_file is not None or _same_listing(before, after):
                ready.append(after)
            else:
                waiting.append(WaitingFile(before.name, _still_changing(before, after, stable_seconds)))
    else:
        ready.extend(unsettled)
    ready.sort(key=lambda f: (f.file_date, f.feed, f.name))
    survey = FileSurvey(pending=ready, waiting=waiting, ignored=listing.ignored)
    log.info(
        "%d HRIS file(s) listed, %d pending, %d not taken yet, %d ignored for their names",
        len(listing.files),
        len(ready),
        len(waiting),
        len(listing.ignored),
    )
    for item in waiting:
        log.info("HRIS file not taken yet, looked at again on the next poke or run: %s", item.describe())
    return survey


def _same_listing(before: RemoteHrisFile, after: RemoteHrisFile) -> bool:
    return (before.size_bytes, before.remote_mtime) == (after.size_bytes, after.remote_mtime)


def _still_changing(before: RemoteHrisFile, after: RemoteHrisFile, seconds: float) -> str:
    return (
        f"still being written: {before.size_bytes:,} then {after.size_bytes:,} bytes, modified "
        f"{before.remote_mtime} then {after.remote_mtime}, in two listings {seconds:g} s apart"
    )


def _control_behind(remote: RemoteHrisFile, grace: timedelta) -> bool:
    """The control file is older than its file, modified less than `grace` ago: the vendor writes the control
    file last, so the file was written again after it (a re-delivery in progress, its new control file not
    written yet). After `grace` the file is taken, and quarantined if its control file still disagrees."""
    if remote.control_mtime is None or remote.remote_mtime is None:
        return False
    modified = datetime.fromisoformat(remote.remote_mtime)
    return datetime.fromisoformat(remote.control_mtime) < modified and datetime.now(UTC) - modified < grace


def _control_behind_reason(remote: RemoteHrisFile, source: HrisSftpSource, grace: timedelta) -> str:
    return (
        f"its control file {remote.name}{source.control_file_suffix} (modified {remote.control_mtime}) is "
        f"older than the file (modified {remote.remote_mtime}): a delivery in progress, taken once its "
        f"control file is written, or {grace.total_seconds() / 60:g} min after the file was"
    )


def _control_now_agrees(source: HrisSftpSource, remote: RemoteHrisFile, sha256: str) -> bool:
    """Whether the control file of a file quarantined for its control file now declares its bytes; a control
    file that cannot be read now is looked at again next time (the listing goes on)."""
    if remote.control_file is None:
        return False
    try:
        return control_agrees(source.read_control(remote), sha256)
    except SourceUnavailableError as exc:
        log.warning(
            "HRIS file %s: its control file could not be read again (%s); next time", remote.name, exc
        )
        return False


def is_control_quarantine(row: Mapping[str, Any]) -> bool:
    """A manifest row quarantined for its control file alone (unreadable, or a sha256 the bytes do not have),
    not for anything in the file."""
    if row["status"] != "quarantined":
        return False
    if (row.get("reason") or "").startswith(CONTROL_UNREADABLE):
        return True
    declared = str(row.get("control_sha256") or "").lower()
    return bool(declared) and declared != row["sha256"]


def control_agrees(control: Mapping[str, Any] | None, sha256: str) -> bool:
    """A readable control file that declares exactly these bytes."""
    return control is not None and not _control_unreadable(control) and _control_sha256(control) == sha256


def _no_control_file_yet(remote: RemoteHrisFile, source: HrisSftpSource) -> str:
    return (
        f"no control file {remote.name}{source.control_file_suffix} yet, and "
        f"hris.require_control_file.{remote.feed} is true"
    )


def list_pending_files(config: Mapping[str, Any], dsn: str | None = None) -> list[dict[str, Any]]:
    """The files `survey_remote_files` says to take now, oldest first (JSON-serialisable)."""
    return [f.to_dict() for f in survey_remote_files(config, dsn).pending]


def wait_for_pending_files(
    config: Mapping[str, Any],
    waiting_since: datetime | None,
    dsn: str | None = None,
    note: Callable[[list[str]], object] | None = None,
) -> tuple[list[dict[str, Any]], FileSurvey]:
    """Pending files and the survey that found them; [] while still within the wait window; past it, raise a
    skip that names the files not taken and the names ignored. `note` (e.g. `note_on_this_run`) is given
    the survey's note lines each time, so the run shows what was not taken.

    The window (`hris.wait_for_files_minutes`) is read at run time, so it can be changed
    through the Variable without touching the DAG.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    survey = survey_remote_files(config, dsn)
    if note is not None:
        note(survey.note_lines())
    pending = [f.to_dict() for f in survey.pending]
    if pending:
        return pending, survey
    window = timedelta(minutes=float(config["hris"].get("wait_for_files_minutes", 360)))
    if waiting_since is None or datetime.now(UTC) - waiting_since >= window:
        not_taken = " ".join(f"{line}." for line in survey.note_lines())
        raise AirflowSkipException(
            f"no new HRIS files arrived within {window}; nothing to load today"
            + (f". {not_taken} See {runbook_link('hris-files-not-taken')}" if not_taken else "")
        )
    return [], survey


def batch_pending_files(pending: list[dict[str, Any]], files_per_task: int) -> list[list[dict[str, Any]]]:
    """The pending files (oldest first) cut into consecutive batches of at most `files_per_task`, one task
    each.

    Every task process pays its imports (Great Expectations alone ≈ 4 s) before any work, which is most of
    the time a small daily file takes: a first install's backlog of a few hundred files loads in batches
    instead of a few hundred task processes. Each file still gets its own gate and manifest row.
    """
    size = max(int(files_per_task), 1)
    return [pending[start : start + size] for start in range(0, len(pending), size)]


def ingest_files(
    remote_files: Iterable[Mapping[str, Any]],
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
) -> list[dict[str, Any]]:
    """`ingest_file` for each file of a batch, in order. A quarantined file does not stop the others; the
    batch then fails naming every quarantined file. A transient fault stops the batch at once: its retry
    skips the files already recorded and goes on from there."""
    results: list[dict[str, Any]] = []
    quarantined: list[BadInputError] = []
    for remote_file in remote_files:
        try:
            results.append(ingest_file(remote_file, config, run, dsn))
        except BadInputError as bad_file:
            quarantined.append(bad_file)
            results.append({"file_name": remote_file.get("name"), "status": "quarantined"})
    if len(quarantined) == 1:
        raise quarantined[0]
    if quarantined:
        raise BadInputError(
            f"HRIS batch of {len(results)} file(s)",
            f"{len(quarantined)} file(s) quarantined: "
            + "; ".join(f"{error.subject}: {error.problem}" for error in quarantined),
            NEXT_STEP_BAD_FILE,
            "hris-quarantined-file",
        )
    return results


def summarize_ingest(
    results: list[Mapping[str, Any]] | list[list[Mapping[str, Any]]],
    listing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Counts per status and rows loaded, for the run's log and the demo summary (per file; batches are
    flattened), with what the listing did not take (`FileSurvey.summary`): files still waiting and entries
    ignored for their names, counted and named (escaped)."""
    results = [item for entry in results for item in (entry if isinstance(entry, list) else [entry])]
    summary: dict[str, Any] = {"files": len(results), "rows_loaded": 0, "by_status": {}}
    for result in results:
        summary["by_status"][result["status"]] = summary["by_status"].get(result["status"], 0) + 1
        summary["rows_loaded"] += int(result.get("rows_loaded") or 0)
    listing = listing or {}
    summary["not_taken_yet"] = int(listing.get("waiting") or 0)
    summary["ignored_names"] = int(listing.get("ignored_names") or 0)
    if listing.get("waiting_files"):
        summary["waiting_files"] = list(listing["waiting_files"])
    if listing.get("ignored"):
        summary["ignored"] = list(listing["ignored"])
    if summary["ignored_names"] or summary["not_taken_yet"]:
        log.warning(
            "HRIS ingest summary: %s (%d file(s) not taken yet, %d entr(ies) ignored for their names: "
            "docs/runbook/hris.md#runbook-hris-files-not-taken)",
            summary,
            summary["not_taken_yet"],
            summary["ignored_names"],
        )
    else:
        log.info("HRIS ingest summary: %s", summary)
    return summary


def _quarantine_error(name: str, reason: str) -> BadInputError:
    return BadInputError(
        f"HRIS file {name}", f"quarantined: {reason}", NEXT_STEP_BAD_FILE, "hris-quarantined-file"
    )


def landing_path(config: Mapping[str, Any], remote: RemoteHrisFile, sha256: str) -> Path | None:
    landing_dir = config["hris"].get("landing_dir")
    if not landing_dir:
        return None
    return data_path(landing_dir) / remote.feed / remote.file_date / f"{sha256}__{remote.name}"


@dataclass
class Delivery:
    """What arrived: its hash and size, and how far staging got (a table, or the problem)."""

    sha256: str
    size_bytes: int
    received_at: datetime
    landed_copy: Path | None
    header: MappedHeader | None = None
    staged: StagedFile | None = None
    problem: BadInputError | None = None
    rows_read: int | None = None


def ingest_file(
    remote_file: Mapping[str, Any],
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
) -> dict[str, Any]:
    """Download, validate and publish (or quarantine) one HRIS file; see the module docstring."""
    run = run or RunIdentity()
    remote = RemoteHrisFile.from_dict(remote_file)
    feed = FEEDS[remote.feed]
    conn_id = config["connections"]["warehouse"]
    with warehouse_connection(conn_id, dsn) as conn:
        known = manifest.find_by_listing(conn, remote.name, remote.size_bytes, remote.remote_mtime)
        if known is not None and not is_control_quarantine(known):
            return _already_recorded(remote, known)

    source = hris_source(config)
    with tempfile.TemporaryDirectory(prefix="hris-") as tmp, warehouse_connection(conn_id, dsn) as conn:
        work_dir = Path(tmp)
        if remote.is_encrypted:
            delivery, control = _receive_encrypted(conn, config, source, remote, feed, work_dir)
        else:
            control = source.read_control(remote)
            landed = work_dir / remote.name if config["hris"].get("landing_dir") else None
            delivery = source.stream(
                remote, lambda chunks: _receive(conn, config, remote, feed, chunks, control, landed)
            )
        try:
            return _decide(FileTask(conn, config, run, remote, feed, dsn), delivery, control)
        finally:
            if delivery.staged is not None:
                drop_staged(conn, delivery.staged)


def _receive(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    remote: RemoteHrisFile,
    feed: Feed,
    chunks: Iterable[bytes],
    control: dict[str, Any] | None,
    landed: Path | None,
    sha256: str | None = None,
) -> Delivery:
    """Read the delivery once: header, then COPY into staging while hashing (and landing) the bytes.

    A problem with the file is returned, not raised, after the rest of the bytes are read, so
    the manifest can record the file's sha256; faults of the transfer itself propagate (the
    caller retries). `sha256` is the delivery's hash when the bytes read here are not the
    delivered ones (a decrypted file).
    """
    hris = config["hris"]
    encoding = hris.get("encoding", "utf-8")
    subject = f"HRIS file {remote.name}"
    with open(landed, "wb") if landed else nullcontext() as tee:
        stream = ByteStream(chunks, tee)
        header: MappedHeader | None = None
        staged: StagedFile | None = None
        problem: BadInputError | None = None
        rows_read: int | None = None
        expected = _control_sha256(control)
        try:
            if control is not None and (
                _control_unreadable(control) or (expected is None and control.get("sha256"))
            ):
                pass  # condemned by its control file; only the hash is needed
            else:
                try:
                    data, _at_eof = stream.first_record(subject)
                    raw_header = header_from_bytes(data, encoding, subject)
                except BadInputError:
                    rows_read = 0
                    raise
                header = map_header(raw_header, feed, hris.get("column_mapping", {}).get(feed.name, {}))
                if header.duplicate_columns:
                    rows_read = 0
                    raise BadInputError(
                        subject,
                        f"columns appear twice in the header: {', '.join(header.duplicate_columns)}",
                        NEXT_STEP_BAD_FILE,
                        "hris-quarantined-file",
                    )
                staged = stage_csv_stream(
                    conn,
                    stream,
                    feed,
                    header,
                    remote.file_date,
                    encoding,
                    subject,
                    sha256=sha256,
                    expected_sha256=None if sha256 else expected,
                )
        except ChecksumMismatchError:
            pass  # decided from the control file once the hash is known
        except BadInputError as exc:
            problem = exc
        stream.drain()
    return Delivery(
        sha256=sha256 or stream.sha256,
        size_bytes=stream.size_bytes,
        received_at=datetime.now(UTC),
        landed_copy=landed,
        header=header,
        staged=staged,
        problem=problem,
        rows_read=rows_read,
    )


def _receive_encrypted(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    source: HrisSftpSource,
    remote: RemoteHrisFile,
    feed: Feed,
    work_dir: Path,
) -> tuple[Delivery, dict[str, Any] | None]:
    """An OpenPGP delivery: download it whole (decryption needs the file), decrypt in the task's
    temp space, then stage the clear text under the delivered file's sha256."""
    from turnover_signals.hris.decrypt import decrypt_file

    local_path, control = source.download(remote, work_dir)
    sha256 = sha256_of_file(local_path)
    try:
        clear_path = decrypt_file(local_path, config, work_dir)
    except BadInputError as exc:
        size = local_path.stat().st_size
        return Delivery(sha256, size, datetime.now(UTC), local_path, problem=exc), control
    delivery = _receive(conn, config, remote, feed, file_chunks(clear_path), control, None, sha256=sha256)
    delivery.size_bytes = local_path.stat().st_size
    delivery.landed_copy = local_path  # the delivered (encrypted) bytes, never the clear text
    return delivery, control


def _control_unreadable(control: Mapping[str, Any]) -> bool:
    return "unreadable" in control or not isinstance(control.get("rows"), int)


def _control_sha256(control: Mapping[str, Any] | None) -> str | None:
    """The control file's sha256 when it is well formed (lowercase hex), else None."""
    value = str((control or {}).get("sha256") or "").lower()
    return value if SHA256_HEX.fullmatch(value) else None


@dataclass(frozen=True)
class FileTask:
    """One file being ingested: where it came from, where it goes, and which task does it."""

    conn: psycopg.Connection
    config: Mapping[str, Any]
    run: RunIdentity
    remote: RemoteHrisFile
    feed: Feed
    dsn: str | None


def _decide(task: FileTask, delivery: Delivery, control: dict[str, Any] | None) -> dict[str, Any]:
    """Already recorded, duplicate, quarantined or validated and published, in that order."""
    conn, config, run, remote, feed = task.conn, task.config, task.run, task.remote, task.feed
    sha256 = delivery.sha256
    record: dict[str, Any] = {
        "file_name": remote.name,
        "sha256": sha256,
        "feed": remote.feed,
        "file_date": remote.file_date,
        "size_bytes": delivery.size_bytes,
        "remote_mtime": remote.remote_mtime,
        "received_at": delivery.received_at,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "task_id": run.task_id,
        "map_index": run.map_index,
        "try_number": run.try_number,
    }
    known = manifest.find(conn, remote.name, sha256)
    if known is not None and is_control_quarantine(known) and control_agrees(control, sha256):
        _release_for_corrected_control(conn, known)
    elif known is not None:
        return _already_recorded(remote, known)
    copy = manifest.find_published_copy(conn, remote.feed, sha256)
    if copy is not None:
        with conn.transaction():
            manifest.insert(
                conn,
                record
                | {
                    "status": "duplicate",
                    "duplicate_of_sha256": sha256,
                    "rows_read": 0,
                    "rows_loaded": 0,
                    "reason": f"same bytes as {copy['file_name']} (received {copy['received_at']:%Y-%m-%d}); "
                    "not loaded again",
                },
            )
        log.info(
            "HRIS file %s is a duplicate of %s: recorded, nothing loaded", remote.name, copy["file_name"]
        )
        return IngestResult(remote.name, remote.feed, remote.file_date, "duplicate", sha256).to_dict()

    hris = config["hris"]
    date_format = hris.get("date_formats", {}).get(feed.name) or hris.get("date_format", "%Y-%m-%d")
    pattern, _template, groups = date_format_parts(date_format)
    record |= {
        "encoding": hris.get("encoding", "utf-8"),
        "date_format": date_format,
        "date_pattern": pattern,
        "date_groups": list(groups),
    }
    if control is not None:
        record["control_rows"] = control.get("rows") if isinstance(control.get("rows"), int) else None
        record["control_sha256"] = control.get("sha256")
        if _control_unreadable(control):
            raise _quarantine(
                conn,
                record,
                f"{CONTROL_UNREADABLE} or has no integer 'rows' ({control.get('unreadable', '')})",
                None,
                run,
                None,
            )
        if record["control_sha256"] and str(record["control_sha256"]).lower() != sha256:
            mismatch = ChecksumMismatchError(
                f"HRIS file {remote.name}", sha256, str(record["control_sha256"])
            )
            raise _quarantine(conn, record, mismatch.problem, None, run, None)
    extra_columns = list(delivery.header.extra_columns) if delivery.header else []
    record["extra_columns"] = extra_columns or None
    if delivery.problem is not None:
        raise _quarantine(conn, record, delivery.problem.problem, None, run, delivery.rows_read)
    assert delivery.staged is not None and delivery.header is not None
    return _validate_and_publish(task, delivery, record, date_format)


def _release_for_corrected_control(conn: psycopg.Connection, known: Mapping[str, Any]) -> None:
    """Release a file quarantined for its control file alone, now that its control file declares its bytes
    (re-delivered, or caught half-written before): recorded in audit.file_release like a person's release."""
    with conn.transaction():
        record_release(
            conn,
            known["file_name"],
            known["sha256"],
            known["reason"],
            released_by="turnover_signals",
            reason="its control file now declares the file's sha256",
        )
    log.info(
        "HRIS file %s: its control file now agrees with it; released from quarantine", known["file_name"]
    )


def _already_recorded(remote: RemoteHrisFile, known: Mapping[str, Any]) -> dict[str, Any]:
    """A rerun for a file already recorded: change nothing; a quarantined file fails again."""
    if known["status"] == "quarantined":
        raise _quarantine_error(remote.name, known["reason"] or "see audit.file_manifest")
    log.info("HRIS file %s already recorded as %s: nothing to do", remote.name, known["status"])
    return IngestResult(
        remote.name,
        remote.feed,
        remote.file_date,
        known["status"],
        known["sha256"],
        rows_loaded=0,
        note="already recorded",
    ).to_dict()


def _quarantine(
    conn: psycopg.Connection,
    record: dict[str, Any],
    reason: str,
    outcome: ValidationOutcome | None,
    run: RunIdentity,
    rows_read: int | None,
) -> BadInputError:
    with conn.transaction():
        if outcome is not None:
            record_validation(conn, outcome, run)
        manifest.insert(
            conn,
            record
            | {
                "status": "quarantined",
                "reason": reason,
                "rows_read": rows_read,
                "rows_loaded": 0,
                "rows_rejected": rows_read,
                "validation_id": outcome.validation_id if outcome else None,
            },
        )
    log.error("HRIS file %s quarantined: %s", record["file_name"], reason)
    return _quarantine_error(record["file_name"], reason)


def _validate_and_publish(
    task: FileTask, delivery: Delivery, record: dict[str, Any], date_format: str
) -> dict[str, Any]:
    conn, config, run, remote, feed, dsn = task.conn, task.config, task.run, task.remote, task.feed, task.dsn
    # Imported here: it pulls in Great Expectations (5 s, 250 MB), which listing files never needs.
    from turnover_signals.quality.hris_suites import (
        FileChecks,
        allowed_termination_types,
        create_check_relation,
        create_metrics_table,
        drop_check_relation,
        drop_metrics_table,
        hris_file_suite,
        hris_metrics_suite,
    )

    hris = config["hris"]
    staged, header = delivery.staged, delivery.header
    checks = FileChecks(
        control_rows=record.get("control_rows"),
        previous_good_rows=manifest.previous_good_rows(conn, feed.name, remote.file_date),
        volume_min_ratio=float(hris["volume_guard"]["min_ratio"]),
        volume_max_ratio=float(hris["volume_guard"]["max_ratio"]),
        allowed_termination_types=allowed_termination_types(hris["termination_type_mapping"]),
    )
    gate = {
        "sqlalchemy_url": sqlalchemy_url(config["connections"]["warehouse"], dsn),
        "data_asset": f"hris_{feed.name}_file",
        "batch_identifier": f"{remote.name}@{record['sha256']}",
        "parameters": checks.parameters(),
        "pii_columns": config["quality"]["pii_columns"],
    }
    # Fast gate: GX validates one row of counts (how many rows fail each check), computed in one
    # aggregate pass. Its Data Docs page goes to temp space and joins the others only if it is the verdict.
    levels = job_level_mapping(config)
    metrics = create_metrics_table(
        conn, staged, feed, header, date_format, checks.allowed_termination_types, job_level_mapping=levels
    )
    try:
        with tempfile.TemporaryDirectory(prefix="hris-gate-") as pages:
            outcome = run_suite(
                suite=hris_metrics_suite(feed, header, checks, date_format),
                table=(metrics.schema, metrics.table),
                data_docs_dir=pages,
                **gate,
            )
            if outcome.success:
                outcome.data_docs_path = _keep_data_docs_page(outcome.data_docs_path, pages, config)
    finally:
        drop_metrics_table(conn, metrics)
    if not outcome.success:
        # The row-level suite says which values failed (masked), for the quarantine reason and its page.
        suite = hris_file_suite(feed, header, checks, date_format)
        check_relation = create_check_relation(
            conn, staged, feed, header, date_format, job_level_mapping=levels
        )
        try:
            outcome = run_suite(
                suite=suite,
                table=(check_relation.schema, check_relation.table),
                data_docs_dir=data_docs_location(config),
                **gate,
            )
        finally:
            drop_check_relation(conn, check_relation)
    if not outcome.success:
        raise _quarantine(
            conn,
            record,
            f"{len(outcome.failed)} expectation(s) failed in suite {outcome.suite_name}: "
            f"{outcome.failure_summary()}",
            outcome,
            run,
            staged.rows_copied,
        )
    superseded = _publish(
        conn, staged, feed, header, record, outcome, run, config, delivery.landed_copy, remote
    )
    delivery.staged = None  # now a partition of the raw table
    return IngestResult(
        remote.name,
        remote.feed,
        remote.file_date,
        "loaded",
        record["sha256"],
        rows_loaded=int(record["rows_loaded"]),
        superseded=tuple(superseded),
    ).to_dict()


def _keep_data_docs_page(page: str | None, pages: str, config: Mapping[str, Any]) -> str | None:
    """Publish a Data Docs page rendered under the local temp folder `pages` to the same place under the
    configured Data Docs folder in storage; returns the object's URL."""
    if page is None:
        return None
    local = Path(storage.stored_path(config, page).path)
    target = data_docs_location(config).joinpath(*local.relative_to(pages).parts)
    return storage.publish_file(local, target, overwrite=False)  # a page is never overwritten


def _publish(
    conn: psycopg.Connection,
    staged: StagedFile,
    feed: Feed,
    header: MappedHeader,
    record: dict[str, Any],
    outcome: ValidationOutcome,
    run: RunIdentity,
    config: Mapping[str, Any],
    landed_copy: Path | None,
    remote: RemoteHrisFile,
) -> list[str]:
    """Attach the validated staging table as the file's raw partition, in one transaction with
    its manifest row, its validation row and the superseding of an earlier file for that date.

    Only the raw table's owner may attach a partition: `raw.attach_hris_partition` (migration 0018)
    moves and attaches the staging table as the owner, after checking it is this file's, so that a
    loader login owns no raw table. The partition then belongs to the owner too.
    """
    landing = landing_path(config, remote, record["sha256"])
    with conn.transaction():
        for column in header.staging_columns:
            if column not in feed.columns:
                conn.execute(
                    sql.SQL("alter table {} drop column {}").format(staged.qualified, sql.Identifier(column))
                )
        for column in feed.columns:
            if column not in header.canonical_present:
                conn.execute(
                    sql.SQL("alter table {} add column {} text").format(
                        staged.qualified, sql.Identifier(column)
                    )
                )
        conn.execute(
            "select raw.attach_hris_partition(%s, %s::regclass, %s)",
            (feed.raw_table, staged.qualified.as_string(conn), record["sha256"]),
        )
        superseded = manifest.supersede_loaded(conn, feed.name, remote.file_date, record["sha256"])
        record |= {
            "status": "loaded",
            "rows_read": staged.rows_copied,
            "rows_loaded": staged.rows_copied,
            "rows_rejected": 0,
            "validation_id": outcome.validation_id,
            "landed_path": str(landing) if landing else None,
            "reason": f"correction: supersedes {', '.join(superseded)}" if superseded else None,
        }
        record_validation(conn, outcome, run)
        manifest.insert(conn, record)
        if landing is not None and landed_copy is not None:
            landing.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(landed_copy, landing)
    log.info(
        "HRIS file %s loaded: %d rows into raw.%s%s",
        remote.name,
        staged.rows_copied,
        feed.raw_table,
        f" (supersedes {len(superseded)} earlier file(s))" if superseded else "",
    )
    return superseded
