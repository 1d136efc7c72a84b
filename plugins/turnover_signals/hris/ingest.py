"""Ingest one HRIS file: download, checksum, validate, then publish or quarantine.

Write-audit-publish: the file is streamed into a staging table, the Great Expectations gate
runs on it, and only then, in ONE transaction, is the staging table attached as the file's
partition of the raw table together with its manifest and validation rows. A failure at any
point leaves published data untouched. Rerunning the task for a file already recorded changes
nothing (a quarantined file fails again with its recorded reason).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.errors import BadInputError
from turnover_signals.hris.contract import FEEDS, Feed, MappedHeader, date_format_parts, map_header
from turnover_signals.load import manifest
from turnover_signals.load.csv_stage import StagedFile, drop_staged, read_header, stage_csv_file
from turnover_signals.quality.gate import RunIdentity, ValidationOutcome, record_validation, run_suite
from turnover_signals.sources.sftp_hris import HrisSftpSource, RemoteHrisFile, file_size, sha256_of_file
from turnover_signals.warehouse import sqlalchemy_url, warehouse_connection

log = logging.getLogger(__name__)

NEXT_STEP_BAD_FILE = (
    "fix the export at the source and deliver a corrected file with the same date (it supersedes this "
    "one), or fix the configuration (column mapping, encoding, date format) and release the file"
)


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
            "file_name": self.file_name, "feed": self.feed, "file_date": self.file_date,
            "status": self.status, "sha256": self.sha256, "rows_loaded": self.rows_loaded,
            "superseded": list(self.superseded), "note": self.note,
        }  # fmt: skip


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


def list_pending_files(config: Mapping[str, Any], dsn: str | None = None) -> list[dict[str, Any]]:
    """Feed files on the server not yet recorded as received (by name, size and mtime), oldest first."""
    listed = hris_source(config).list_feed_files()
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        pending = [f for f in listed if manifest.find_by_listing(conn, f.name, f.size_bytes, f.remote_mtime) is None]
    log.info("%d HRIS file(s) listed, %d pending", len(listed), len(pending))
    return [f.to_dict() for f in pending]


def wait_for_pending_files(
    config: Mapping[str, Any], waiting_since: datetime | None, dsn: str | None = None
) -> list[dict[str, Any]]:
    """Pending files, or [] while still within the wait window; past it, raise a skip.

    The window (`hris.wait_for_files_minutes`) is read at run time, so it can be changed
    through the Variable without touching the DAG.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    pending = list_pending_files(config, dsn)
    if pending:
        return pending
    window = timedelta(minutes=float(config["hris"].get("wait_for_files_minutes", 360)))
    if waiting_since is None or datetime.now(UTC) - waiting_since >= window:
        raise AirflowSkipException(f"no new HRIS files arrived within {window}; nothing to load today")
    return []


def summarize_ingest(results: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts per status and rows loaded, for the run's log and the demo summary."""
    summary: dict[str, Any] = {"files": len(results), "rows_loaded": 0, "by_status": {}}
    for result in results:
        summary["by_status"][result["status"]] = summary["by_status"].get(result["status"], 0) + 1
        summary["rows_loaded"] += int(result.get("rows_loaded") or 0)
    log.info("HRIS ingest summary: %s", summary)
    return summary


def _quarantine_error(name: str, reason: str) -> BadInputError:
    return BadInputError(f"HRIS file {name}", f"quarantined: {reason}", NEXT_STEP_BAD_FILE, "hris-quarantined-file")


def _landing_path(config: Mapping[str, Any], remote: RemoteHrisFile, sha256: str) -> Path | None:
    landing_dir = config["hris"].get("landing_dir")
    if not landing_dir:
        return None
    return Path(landing_dir) / remote.feed / remote.file_date / f"{sha256}__{remote.name}"


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
        if known is not None:
            return _already_recorded(remote, known)

    with tempfile.TemporaryDirectory(prefix="hris-") as tmp:
        local_path, control = hris_source(config).download(remote, Path(tmp))
        received_at = datetime.now(UTC)
        sha256 = sha256_of_file(local_path)
        record: dict[str, Any] = {
            "file_name": remote.name, "sha256": sha256, "feed": remote.feed, "file_date": remote.file_date,
            "size_bytes": file_size(local_path), "remote_mtime": remote.remote_mtime, "received_at": received_at,
            "dag_id": run.dag_id, "run_id": run.run_id, "task_id": run.task_id, "map_index": run.map_index,
            "try_number": run.try_number,
        }  # fmt: skip
        with warehouse_connection(conn_id, dsn) as conn:
            known = manifest.find(conn, remote.name, sha256)
            if known is not None:
                return _already_recorded(remote, known)
            copy = manifest.find_published_copy(conn, remote.feed, sha256)
            if copy is not None:
                with conn.transaction():
                    manifest.insert(
                        conn,
                        record | {
                            "status": "duplicate", "duplicate_of_sha256": sha256, "rows_read": 0, "rows_loaded": 0,
                            "reason": f"same bytes as {copy['file_name']} (received {copy['received_at']:%Y-%m-%d}); not loaded again",
                        },  # fmt: skip
                    )
                log.info("HRIS file %s is a duplicate of %s: recorded, nothing loaded", remote.name, copy["file_name"])
                return IngestResult(remote.name, remote.feed, remote.file_date, "duplicate", sha256).to_dict()
            if remote.is_encrypted:
                from turnover_signals.hris.decrypt import decrypt_file

                try:
                    local_path = decrypt_file(local_path, config, Path(tmp))
                except BadInputError as exc:
                    raise _quarantine(conn, record, exc.problem, None, run, None) from exc
            return _validate_and_publish(conn, config, run, remote, feed, local_path, control, record, dsn)


def _already_recorded(remote: RemoteHrisFile, known: Mapping[str, Any]) -> dict[str, Any]:
    """A rerun for a file already recorded: change nothing; a quarantined file fails again."""
    if known["status"] == "quarantined":
        raise _quarantine_error(remote.name, known["reason"] or "see audit.file_manifest")
    log.info("HRIS file %s already recorded as %s: nothing to do", remote.name, known["status"])
    return IngestResult(
        remote.name, remote.feed, remote.file_date, known["status"], known["sha256"],
        rows_loaded=0, note="already recorded",
    ).to_dict()  # fmt: skip


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
            record | {
                "status": "quarantined", "reason": reason, "rows_read": rows_read, "rows_loaded": 0,
                "rows_rejected": rows_read, "validation_id": outcome.validation_id if outcome else None,
            },  # fmt: skip
        )
    log.error("HRIS file %s quarantined: %s", record["file_name"], reason)
    return _quarantine_error(record["file_name"], reason)


def _validate_and_publish(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    run: RunIdentity,
    remote: RemoteHrisFile,
    feed: Feed,
    local_path: Path,
    control: dict[str, Any] | None,
    record: dict[str, Any],
    dsn: str | None,
) -> dict[str, Any]:
    # Imported here: it pulls in Great Expectations (5 s, 250 MB), which listing files never needs.
    from turnover_signals.quality.hris_suites import (
        FileChecks,
        allowed_termination_types,
        create_check_table,
        hris_file_suite,
    )

    hris = config["hris"]
    encoding = hris.get("encoding", "utf-8")
    date_format = hris.get("date_formats", {}).get(feed.name) or hris.get("date_format", "%Y-%m-%d")
    pattern, _template, groups = date_format_parts(date_format)
    subject = f"HRIS file {remote.name}"
    record |= {"encoding": encoding, "date_format": date_format, "date_pattern": pattern, "date_groups": list(groups)}

    if control is not None:
        record["control_rows"] = control.get("rows") if isinstance(control.get("rows"), int) else None
        record["control_sha256"] = control.get("sha256")
        if "unreadable" in control or record["control_rows"] is None:
            raise _quarantine(conn, record, f"control file is unreadable or has no integer 'rows' ({control.get('unreadable', '')})", None, run, None)
        if record["control_sha256"] and str(record["control_sha256"]).lower() != record["sha256"]:
            raise _quarantine(
                conn, record,
                f"sha256 of the delivered file ({record['sha256'][:12]}…) differs from the control file "
                f"({str(record['control_sha256'])[:12]}…): the transfer or the export is incomplete",
                None, run, None,
            )  # fmt: skip

    try:
        raw_header = read_header(local_path, encoding, subject)
    except BadInputError as exc:
        raise _quarantine(conn, record, exc.problem, None, run, 0) from exc
    header = map_header(raw_header, feed, hris.get("column_mapping", {}).get(feed.name, {}))
    record["extra_columns"] = list(header.extra_columns) or None
    if header.duplicate_columns:
        raise _quarantine(conn, record, f"columns appear twice in the header: {', '.join(header.duplicate_columns)}", None, run, 0)

    staged: StagedFile | None = None
    checks_table: StagedFile | None = None
    try:
        try:
            staged = stage_csv_file(
                conn, local_path, feed, header, record["sha256"], remote.file_date, encoding, subject
            )
        except BadInputError as exc:
            raise _quarantine(conn, record, exc.problem, None, run, None) from exc
        checks = FileChecks(
            control_rows=record.get("control_rows"),
            previous_good_rows=manifest.previous_good_rows(conn, feed.name, remote.file_date),
            volume_min_ratio=float(hris["volume_guard"]["min_ratio"]),
            volume_max_ratio=float(hris["volume_guard"]["max_ratio"]),
            allowed_termination_types=allowed_termination_types(hris["termination_type_mapping"]),
        )
        suite = hris_file_suite(feed, header, checks, date_format)
        checks_table = create_check_table(conn, staged, feed, header, date_format)
        outcome = run_suite(
            sqlalchemy_url(config["connections"]["warehouse"], dsn),
            suite,
            data_asset=f"hris_{feed.name}_file",
            batch_identifier=f"{remote.name}@{record['sha256']}",
            table=(checks_table.schema, checks_table.table),
            parameters=checks.parameters(),
            pii_columns=config["quality"]["pii_columns"],
        )
        if not outcome.success:
            raise _quarantine(
                conn, record,
                f"{len(outcome.failed)} expectation(s) failed in suite {suite.name}: {outcome.failure_summary()}",
                outcome, run, staged.rows_copied,
            )  # fmt: skip
        superseded = _publish(conn, staged, feed, header, record, outcome, run, config, local_path, remote)
        staged = None  # now a partition of the raw table
    finally:
        for scratch in (checks_table, staged):
            if scratch is not None:
                drop_staged(conn, scratch)
    return IngestResult(
        remote.name, remote.feed, remote.file_date, "loaded", record["sha256"],
        rows_loaded=int(record["rows_loaded"]), superseded=tuple(superseded),
    ).to_dict()  # fmt: skip


def _publish(
    conn: psycopg.Connection,
    staged: StagedFile,
    feed: Feed,
    header: MappedHeader,
    record: dict[str, Any],
    outcome: ValidationOutcome,
    run: RunIdentity,
    config: Mapping[str, Any],
    local_path: Path,
    remote: RemoteHrisFile,
) -> list[str]:
    """Attach the validated staging table as the file's raw partition, in one transaction with
    its manifest row, its validation row and the superseding of an earlier file for that date."""
    partition = sql.SQL("raw.{}").format(sql.Identifier(staged.table))
    landing = _landing_path(config, remote, record["sha256"])
    with conn.transaction():
        for column in header.staging_columns:
            if column not in feed.columns:
                conn.execute(sql.SQL("alter table {} drop column {}").format(staged.qualified, sql.Identifier(column)))
        for column in feed.columns:
            if column not in header.canonical_present:
                conn.execute(sql.SQL("alter table {} add column {} text").format(staged.qualified, sql.Identifier(column)))
        conn.execute(sql.SQL("alter table {} set schema raw").format(staged.qualified))
        conn.execute(
            sql.SQL("alter table {parent} attach partition {partition} for values in ({sha})").format(
                parent=sql.SQL("raw.{}").format(sql.Identifier(feed.raw_table)),
                partition=partition,
                sha=sql.Literal(record["sha256"]),
            )
        )
        superseded = manifest.supersede_loaded(conn, feed.name, remote.file_date, record["sha256"])
        record |= {
            "status": "loaded", "rows_read": staged.rows_copied, "rows_loaded": staged.rows_copied,
            "rows_rejected": 0, "validation_id": outcome.validation_id,
            "landed_path": str(landing) if landing else None,
            "reason": f"correction: supersedes {', '.join(superseded)}" if superseded else None,
        }  # fmt: skip
        record_validation(conn, outcome, run)
        manifest.insert(conn, record)
        if landing is not None:
            landing.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local_path, landing)
    log.info(
        "HRIS file %s loaded: %d rows into raw.%s%s", remote.name, staged.rows_copied, feed.raw_table,
        f" (supersedes {len(superseded)} earlier file(s))" if superseded else "",
    )  # fmt: skip
    return superseded
