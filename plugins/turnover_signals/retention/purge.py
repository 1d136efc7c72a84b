"""Apply the `retention` configuration to the warehouse and to the landed HRIS files.

What goes, each step in its own transaction together with its `audit.retention_purge` row:

- `raw.lms_statement` rows stored more than `retention.raw_days` ago. Voiding statements stay (a
  late copy of the statement they void must still be marked voided); `core.lms_activity`, which
  features are built from, keeps its normalised row.
- `raw.lms_statement_rejected` rows (the LMS's quarantine) rejected more than
  `retention.quarantined_file_days` ago.
- `raw.lms_user` versions closed (`valid_to`) more than `raw_days` ago. The identity layer reads
  only each user's current version, which always stays.
- `raw.hris_*` partitions of files that were `superseded` by a correction more than `raw_days`
  ago.
- `raw.hris_*` partitions of `loaded` files, once sealed: each feed in file-date order up to its
  first file received less than `raw_days` ago. Sealing (`retention.seal`) first keeps in `core`
  what the history builds need from those files, so a rebuild yields the same rows.
- Landed copies of HRIS files (`audit.file_manifest.landed_path`) received more than `raw_days`
  ago, and of quarantined files more than `quarantined_file_days` ago. (The ingest lands only
  published files; a quarantined file stays on the SFTP server, its reason in the manifest.) The
  manifest is only a pointer, and the loader login writes it: a file goes only when its recorded path,
  symbolic links resolved, lies under `hris.landing_dir` and its bytes still have the manifest's
  sha256. Any other file is kept, counted and named (file name and hash, never the path) in a WARNING,
  the run's summary (`files_kept`) and the purge record (`details.kept`).
- Data Docs pages (`quality.data_docs_dir`) and steward review samples (`identity.review_sample_dir`)
  last written more than `retention.data_docs_days` / `review_sample_days` ago, under the same rule:
  only objects that lie in their folder (a symbolic link counts where it leads) go.
- The unexpected-value samples kept in `audit.validation_result` (`observed.sample` of each expectation
  in `failed_expectations` and `results`) of validations older than `validation_sample_days`: the
  row, its verdict and its counts stay; only the sample values go.

Nothing in `audit` is ever deleted (validation samples are cut out of their rows); in `core` and `mart`
only the seal's own tables change. With `retention.mode: archive` the purged rows are written as gzip
CSV (and the files copied) to objects under `retention.archive_dir` in storage (`storage.base_url`), and
each object is read back (size and sha256 equal to what was written) before any row or file it holds is
deleted, in the same transaction: a failed or unverified archive purges nothing.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from turnover_signals import storage
from turnover_signals.errors import BadInputError, StorageNotSharedError
from turnover_signals.paths import data_path
from turnover_signals.quality.gate import RunIdentity
from turnover_signals.retention.seal import seal_hris_files
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import warehouse_connection

log = logging.getLogger(__name__)

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
HRIS_RAW_TABLES = ("hris_employee_snapshot", "hris_compensation_change")
MODES = ("purge", "archive")


# Retention classes of what the pipeline writes for people (pages, samples); defaults in the config file.
STORED_OBJECT_DAYS = ("data_docs_days", "review_sample_days", "validation_sample_days")


@dataclass(frozen=True)
class RetentionPolicy:
    raw_days: int
    quarantined_file_days: int
    mode: str
    archive_dir: Any  # an ObjectStoragePath in archive mode, else None
    now: datetime
    data_docs_days: int
    review_sample_days: int
    validation_sample_days: int

    @property
    def raw_cutoff(self) -> datetime:
        return self.now - timedelta(days=self.raw_days)

    @property
    def quarantined_cutoff(self) -> datetime:
        return self.now - timedelta(days=self.quarantined_file_days)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], now: datetime | None = None) -> RetentionPolicy:
        settings = config.get("retention") or {}
        try:
            raw_days = int(settings["raw_days"])
            quarantined_days = int(settings["quarantined_file_days"])
            object_days = {key: int(settings[key]) for key in STORED_OBJECT_DAYS}
        except (KeyError, TypeError, ValueError) as exc:
            raise _config_error(
                f"raw_days, quarantined_file_days, {', '.join(STORED_OBJECT_DAYS)} must be whole numbers of"
                f" days ({exc})"
            ) from exc
        mode = settings.get("mode", "purge")
        if mode not in MODES or min(raw_days, quarantined_days, *object_days.values()) < 1:
            raise _config_error(f"mode must be one of {MODES} and the day counts at least 1")
        archive_dir = None
        if mode == "archive":
            archive_dir = storage.location(config, settings.get("archive_dir") or "retention_archive")
        return cls(raw_days, quarantined_days, mode, archive_dir, now or datetime.now(UTC), **object_days)

    def cutoff(self, days: int) -> datetime:
        return self.now - timedelta(days=days)


@dataclass
class PurgeRecord:
    target: str
    rule: str
    cutoff_at: datetime
    rows: int = 0
    files: int = 0
    bytes: int = 0
    archive_path: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    kept: list[dict[str, Any]] = field(default_factory=list)  # files past retention left in place, and why

    def keep(self, reason: str, **subject: Any) -> None:
        """Leave a file past retention in place: logged (names and hashes only, no path), counted and
        recorded."""
        self.kept.append({**subject, "reason": reason})
        log.warning(
            "retention: %s past retention kept, not deleted: %s: %s (docs/runbook/retention.md"
            "#runbook-retention-file-kept)",
            self.target,
            ", ".join(f"{key} {value!r}" for key, value in subject.items()),
            reason,
        )


def _config_error(problem: str) -> BadInputError:
    return BadInputError(
        "retention configuration",
        problem,
        "fix `retention` in the turnover_signals Variable",
        "warehouse_retention",
    )


def retention_as_of(logical_date: datetime | None, dag_run: Any = None) -> datetime | None:
    """The moment a retention run purges as of: its logical date (a scheduled run, or a cleared old one),
    else when the run was due (`run_after`: a manual or asset-triggered run has no logical date). None
    outside Airflow: the caller's clock."""
    return logical_date or getattr(dag_run, "run_after", None)


def apply_retention(
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Purge (or archive, then purge) everything past retention; returns counts per target."""
    policy = RetentionPolicy.from_config(config, now)
    run = run or RunIdentity()
    summary: dict[str, Any] = {
        "mode": policy.mode,
        "as_of": policy.now.isoformat(),
        "raw_cutoff": policy.raw_cutoff.isoformat(),
        "purges": {},
    }
    log.info(
        "retention as of %s (the run's logical date, or when it was due): raw data before %s goes",
        policy.now.isoformat(),
        policy.raw_cutoff.isoformat(),
    )
    with warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        steps = (
            lambda: _purge_rows(
                conn, policy, run, "raw.lms_statement", "stored_at", _not_a_void(), policy.raw_days
            ),
            lambda: _purge_rows(
                conn,
                policy,
                run,
                "raw.lms_statement_rejected",
                "rejected_at",
                sql.SQL("true"),
                policy.quarantined_file_days,
            ),
            lambda: _purge_rows(
                conn, policy, run, "raw.lms_user", "valid_to", sql.SQL("true"), policy.raw_days
            ),
            lambda: _purge_superseded_partitions(conn, policy, run),
            lambda: _purge_loaded_partitions(conn, config, policy, run),
            lambda: _purge_landed_files(conn, config, policy, run, quarantined=False),
            lambda: _purge_landed_files(conn, config, policy, run, quarantined=True),
            lambda: _purge_stored_objects(
                conn, config, policy, run, "data_docs_pages", ("quality", "data_docs_dir"), ".html"
            ),
            lambda: _purge_stored_objects(
                conn,
                config,
                policy,
                run,
                "identity_review_samples",
                ("identity", "review_sample_dir"),
                ".csv",
            ),
            lambda: _purge_validation_samples(conn, policy, run),
        )
        kept: dict[str, int] = {}
        for step in steps:
            record = step()
            summary["purges"][record.target] = {"rows": record.rows, "files": record.files}
            if record.kept:
                kept[record.target] = len(record.kept)
        # files past retention that failed the safety checks: nothing deleted them, someone must look
        summary["files_kept"] = kept
    log.info("retention applied: %s", summary)
    return summary


def _not_a_void() -> sql.Composable:
    return sql.SQL("statement #>> '{{verb,id}}' is distinct from {}").format(sql.Literal(VOIDED_VERB))


def _record(conn: psycopg.Connection, policy: RetentionPolicy, run: RunIdentity, record: PurgeRecord) -> None:
    conn.execute(
        read_sql("audit", "retention_purge"),
        {
            "purge_target": record.target,
            "retention_rule": record.rule,
            "cutoff_at": record.cutoff_at,
            "mode": policy.mode,
            "rows_purged": record.rows,
            "files_purged": record.files,
            "bytes_purged": record.bytes,
            "archive_path": record.archive_path,
            "details": Jsonb({**record.details, "kept": record.kept} if record.kept else record.details),
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "task_id": run.task_id,
            "try_number": run.try_number,
            "purged_at": datetime.now(UTC),
        },
    )


def _archive_file(policy: RetentionPolicy, target: str) -> Any:
    assert policy.archive_dir is not None
    stamp = policy.now.strftime("%Y%m%dT%H%M%SZ")
    return policy.archive_dir / target / f"{target}__{stamp}.csv.gz"


def _copy_out(conn: psycopg.Connection, relation: sql.Composable, target: Any) -> storage.StoredObject:
    """Write a relation as gzip CSV with a header to the archive object `target`, verified by reading it
    back (inside the caller's transaction: a failure raises before the caller's delete commits)."""
    with tempfile.TemporaryDirectory(prefix="retention-archive-") as scratch:
        local = Path(scratch) / "archive.csv.gz"
        with gzip.open(local, "wb") as handle, conn.cursor() as cur:
            query = sql.SQL("copy (select * from {}) to stdout with (format csv, header)").format(relation)
            with cur.copy(query) as copy:
                for chunk in copy:
                    handle.write(chunk)
        return storage.publish_verified(local, target)


def _purge_rows(
    conn: psycopg.Connection,
    policy: RetentionPolicy,
    run: RunIdentity,
    table: str,
    age_column: str,
    keep_unless: sql.Composable,
    days: int,
) -> PurgeRecord:
    """Delete rows older than `days`; archive exactly the deleted rows first in archive mode."""
    schema, name = table.split(".")
    record = PurgeRecord(table, f"{age_column} older than {days} days", policy.now - timedelta(days=days))
    purged = sql.Identifier(f"retention_{name}")
    with conn.transaction():
        conn.execute(
            sql.SQL(
                "create temporary table {purged} on commit drop as"
                " with deleted as (delete from {table} where {age} < %s and {keep} returning *)"
                " select * from deleted"
            ).format(
                purged=purged,
                table=sql.Identifier(schema, name),
                age=sql.Identifier(age_column),
                keep=keep_unless,
            ),
            (record.cutoff_at,),
        )
        record.rows = conn.execute(sql.SQL("select count(*) from {}").format(purged)).fetchone()[0]
        if record.rows and policy.archive_dir is not None:
            archived = _copy_out(conn, purged, _archive_file(policy, name))
            record.archive_path = archived.url
            record.details = {"archive": {"sha256": archived.sha256, "size_bytes": archived.size_bytes}}
        _record(conn, policy, run, record)
    return record


def _partitions_of_files(
    conn: psycopg.Connection, file_filter: sql.Composable, cutoff: datetime
) -> list[tuple]:
    """(raw table, partition, file name, sha256, feed, file date) of the manifest's files matching
    `file_filter` (a condition on `manifest`, its values bound) whose raw partitions still exist."""
    return conn.execute(
        sql.SQL(
            """
            select parent.relname, child.relname, manifest.file_name, manifest.sha256, manifest.feed,
                   manifest.file_date
            from audit.file_manifest as manifest
            inner join pg_inherits as inheritance on true
            inner join pg_class as parent on inheritance.inhparent = parent.oid
            inner join pg_class as child on inheritance.inhrelid = child.oid
            inner join pg_namespace as parent_schema on parent.relnamespace = parent_schema.oid
            where ({file_filter}) and manifest.received_at < %(cutoff)s
              and parent_schema.nspname = 'raw' and parent.relname = any(%(raw_tables)s)
              and pg_get_expr(child.relpartbound, child.oid) = format('FOR VALUES IN (%%L)', manifest.sha256)
            order by manifest.file_date, manifest.received_at, child.relname
            """
        ).format(file_filter=file_filter),
        {"cutoff": cutoff, "raw_tables": list(HRIS_RAW_TABLES)},
    ).fetchall()


def _objects_pinning(conn: psycopg.Connection, relation: sql.Composable) -> list[str]:
    """Objects that would stop a plain DROP of `relation`: normal dependencies on it, its row type or that
    type's array type."""
    rows = conn.execute(
        sql.SQL(
            """
            with target as (select {rel}::regclass as oid)
            select distinct
                case
                    when rule.oid is not null then pg_describe_object('pg_class'::regclass, rule.ev_class, 0)
                    else pg_describe_object(dep.classid, dep.objid, dep.objsubid)
                end
            from pg_depend as dep
            cross join target
            inner join pg_class as relation on relation.oid = target.oid
            inner join pg_type as row_type on relation.reltype = row_type.oid
            left join pg_rewrite as rule on dep.classid = 'pg_rewrite'::regclass and rule.oid = dep.objid
            left join pg_constraint as own on dep.classid = 'pg_constraint'::regclass and own.oid = dep.objid
            where dep.deptype = 'n'
              and ((dep.refclassid = 'pg_class'::regclass and dep.refobjid = target.oid)
                   or (dep.refclassid = 'pg_type'::regclass and dep.refobjid in (row_type.oid,
                       row_type.typarray)))
              and not (dep.classid = 'pg_class'::regclass and dep.objid = target.oid)
              and own.conrelid is distinct from target.oid
            order by 1
            """
        ).format(rel=sql.Literal(relation.as_string(conn)))
    ).fetchall()
    return [description for (description,) in rows]


def _drop_partitions(
    conn: psycopg.Connection, policy: RetentionPolicy, record: PurgeRecord, partitions
) -> list:
    """Archive (in archive mode) and drop the given raw partitions, in the caller's transaction."""
    files = []
    for parent, partition, file_name, sha256, feed, file_date in partitions:
        relation = sql.Identifier("raw", partition)
        rows = conn.execute(sql.SQL("select count(*) from {}").format(relation)).fetchone()[0]
        if policy.archive_dir is not None:
            _copy_out(conn, relation, _archive_file(policy, f"{parent}__{sha256[:12]}"))
        pins = _objects_pinning(conn, relation)
        if pins:
            # Nothing the pipeline builds depends on a file's partition: a view or a row-typed column
            # over it (which any role with USAGE on raw can create) must not keep the file past its
            # retention. They go with it, named in the log and in the purge record.
            log.warning(
                "retention: dropping %s also drops what depends on it: %s", partition, "; ".join(pins)
            )
        conn.execute(sql.SQL("drop table {} cascade" if pins else "drop table {}").format(relation))
        record.rows += rows
        files.append(
            {
                "file_name": file_name,
                "sha256": sha256,
                "feed": feed,
                "file_date": file_date.isoformat(),
                "table": parent,
                "rows": rows,
                **({"dropped_dependents": pins} if pins else {}),
            }
        )
    record.archive_path = storage.object_url(policy.archive_dir) if files and policy.archive_dir else None
    return files


def _purge_superseded_partitions(
    conn: psycopg.Connection, policy: RetentionPolicy, run: RunIdentity
) -> PurgeRecord:
    record = PurgeRecord(
        "raw.hris_superseded_partitions",
        f"files superseded by a correction, received more than {policy.raw_days} days ago",
        policy.raw_cutoff,
    )
    with conn.transaction():
        partitions = _partitions_of_files(conn, sql.SQL("manifest.status = 'superseded'"), policy.raw_cutoff)
        record.details = {"files": _drop_partitions(conn, policy, record, partitions)}
        _record(conn, policy, run, record)
    return record


def _purge_loaded_partitions(
    conn: psycopg.Connection, config: Mapping[str, Any], policy: RetentionPolicy, run: RunIdentity
) -> PurgeRecord:
    """Seal each HRIS feed up to the files received before the cutoff (see `retention.seal`), then drop
    the raw partitions of loaded files dated inside a sealed period, all in one transaction."""
    record = PurgeRecord(
        "raw.hris_loaded_partitions",
        f"loaded files sealed into the core baselines: each feed in date order up to its first file received"
        f" less than {policy.raw_days} days ago",
        policy.raw_cutoff,
    )
    with conn.transaction():
        sealed = seal_hris_files(conn, config, policy.raw_cutoff, policy.now)
        sealed_period = sql.SQL(
            "manifest.status = 'loaded' and exists (select 1 from core.hris_sealed_through as seal"
            " where seal.feed = manifest.feed and seal.sealed_through_date >= manifest.file_date)"
        )
        partitions = _partitions_of_files(conn, sealed_period, policy.raw_cutoff)
        sealed_now = {f["sha256"] for files in sealed.values() for f in files}
        files = _drop_partitions(conn, policy, record, partitions)
        for file in files:
            # A loaded file that is not sealed arrived after its period was sealed; no build uses it.
            file["sealed_by_this_run"] = file["sha256"] in sealed_now
        record.details = {
            "files": files,
            "sealed_through": dict(
                conn.execute(
                    "select feed, sealed_through_date::text from core.hris_sealed_through"
                ).fetchall()
            ),
            "files_sealed": {
                feed: [f["file_name"] for f in feed_files] for feed, feed_files in sealed.items()
            },
        }
        _record(conn, policy, run, record)
    return record


def landing_base(config: Mapping[str, Any]) -> Path | None:
    """The landing directory HRIS files are copied to (`hris.landing_dir`), symlinks resolved; None when
    unset."""
    configured = (config.get("hris") or {}).get("landing_dir")
    return Path(os.path.realpath(data_path(configured))) if configured else None


def _sha256_no_follow(path: Path) -> str:
    """The sha256 of a regular file, opened without following a symbolic link in its last component."""
    digest = hashlib.sha256()
    with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as handle:
        for chunk in iter(lambda: handle.read(storage.CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def deletable_landed_file(recorded: str, sha256: str, base: Path | None) -> tuple[Path | None, str | None]:
    """(the file to delete, None), or (None, why it must stay) for a manifest's `landed_path`.

    The manifest is only a pointer, and the loader login writes it: only a regular file that lies under
    the landing base once symbolic links are resolved, and whose bytes have the manifest's sha256, is the
    landed copy this retention may delete. The reasons name no path.
    """
    if base is None:
        return None, "hris.landing_dir is not set, so no file is known to be a landed copy"
    recorded_path = Path(recorded)
    if not recorded_path.is_absolute():
        return None, "the recorded path is not absolute"
    resolved = Path(os.path.realpath(recorded_path))
    if resolved == base or not resolved.is_relative_to(base):
        return None, "the recorded path lies outside hris.landing_dir (symbolic links resolved)"
    if recorded_path.is_symlink():
        # even one leading inside: deleting it would leave the file, deleting its target another's file
        return None, "the recorded path is a symbolic link"
    if not resolved.is_file():
        return None, "the recorded path is not a regular file"
    try:
        actual = _sha256_no_follow(resolved)
    except OSError as exc:
        return None, f"the file could not be read ({exc.strerror or type(exc).__name__})"
    if actual != sha256:
        return None, f"its content changed: sha256 {actual[:12]}…, the manifest says {sha256[:12]}…"
    return resolved, None


def _purge_landed_files(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    policy: RetentionPolicy,
    run: RunIdentity,
    quarantined: bool,
) -> PurgeRecord:
    if quarantined:
        target, days, cutoff = (
            "landed_quarantined_files",
            policy.quarantined_file_days,
            policy.quarantined_cutoff,
        )
    else:
        target, days, cutoff = "landed_hris_files", policy.raw_days, policy.raw_cutoff
    record = PurgeRecord(target, f"landed copies received more than {days} days ago", cutoff)
    candidates = conn.execute(
        """
        select file_name, sha256, landed_path from audit.file_manifest
        where landed_path is not null and received_at < %(cutoff)s
          and (status = 'quarantined') = %(quarantined)s
        order by received_at, file_name
        """,
        {"cutoff": cutoff, "quarantined": quarantined},
    ).fetchall()
    base = landing_base(config)
    files = []
    with conn.transaction():
        for file_name, sha256, landed_path in candidates:
            if not os.path.lexists(landed_path):
                continue  # gone already (an earlier run, or by hand)
            path, refusal = deletable_landed_file(landed_path, sha256, base)
            if path is None:
                record.keep(refusal, file_name=file_name, sha256=sha256[:12])
                continue
            size = path.stat().st_size
            if policy.archive_dir is not None:
                # the copy is read back and verified before the landed file goes
                storage.publish_verified(path, policy.archive_dir / target / path.name)
            path.unlink()
            record.files += 1
            record.bytes += size
            files.append({"file_name": file_name, "sha256": sha256})
        record.details = {"files": files}
        if files and policy.archive_dir is not None:
            record.archive_path = storage.object_url(policy.archive_dir / target)
        _record(conn, policy, run, record)
    return record


def _archive_object(source: Any, target: Any) -> None:
    """Copy a stored object to the archive, read back and verified (through a local scratch copy)."""
    with tempfile.TemporaryDirectory(prefix="retention-archive-") as scratch:
        local = Path(scratch) / "object"
        with source.open("rb") as handle, open(local, "wb") as copy:
            for chunk in iter(lambda: handle.read(storage.CHUNK_BYTES), b""):
                copy.write(chunk)
        storage.publish_verified(local, target)


def _purge_stored_objects(
    conn: psycopg.Connection,
    config: Mapping[str, Any],
    policy: RetentionPolicy,
    run: RunIdentity,
    target: str,
    setting: tuple[str, str],
    suffix: str,
) -> PurgeRecord:
    """Delete (or archive, then delete) the `suffix` objects in a configured folder last written before
    the class's cutoff. An object that leads out of the folder (a symbolic link) is kept and reported;
    the retention archive is never touched, even when it lies inside the folder."""
    days = {
        "data_docs_pages": policy.data_docs_days,
        "identity_review_samples": policy.review_sample_days,
    }[target]
    section, key = setting
    record = PurgeRecord(
        target,
        f"{suffix} objects under {section}.{key} last written more than {days} days ago",
        policy.cutoff(days),
    )
    try:
        folder = storage.location(config, config[section][key])
    except StorageNotSharedError:
        # no shared store, so no task could have written one: nothing to purge
        folder = None
    archive_roots = [policy.archive_dir] if policy.archive_dir is not None else []
    files = []
    with conn.transaction():
        for path, relative, info in storage.objects_under(folder) if folder is not None else ():
            if not path.name.endswith(suffix) or (archive_roots and storage.contained(path, archive_roots)):
                continue
            written = storage.modified_at(info)
            if written is not None and written >= record.cutoff_at:
                continue
            if written is None:
                record.keep("the store gives no time it was written", object=relative)
                continue
            if not storage.contained(path, [folder]):
                record.keep(f"it leads out of {section}.{key} (symbolic links resolved)", object=relative)
                continue
            if policy.archive_dir is not None:
                _archive_object(path, policy.archive_dir.joinpath(target, *relative.split("/")))
            path.unlink()
            record.files += 1
            record.bytes += int(info.get("size") or 0)
            files.append(relative)
        record.details = {"files": files}
        if files and policy.archive_dir is not None:
            record.archive_path = storage.object_url(policy.archive_dir / target)
        _record(conn, policy, run, record)
    return record


def _without_samples(column: str) -> sql.Composable:
    """The jsonb array `column` with `observed.sample` removed from each expectation summary."""
    return sql.SQL(
        """case when jsonb_typeof({column}) = 'array' then (
            select coalesce(jsonb_agg(
                case when jsonb_typeof(item -> 'observed') = 'object'
                     then jsonb_set(item, '{{observed}}', (item -> 'observed') - 'sample')
                     else item end
                order by position), '[]'::jsonb)
            from jsonb_array_elements({column}) with ordinality as element (item, position)
        ) else {column} end"""
    ).format(column=sql.Identifier("validation", column))


def _purge_validation_samples(
    conn: psycopg.Connection, policy: RetentionPolicy, run: RunIdentity
) -> PurgeRecord:
    """Cut the unexpected-value samples out of validation runs older than `validation_sample_days`; the
    rows, verdicts and counts stay (audit rows are never deleted). Archive mode archives the rows as they
    were first."""
    days = policy.validation_sample_days
    record = PurgeRecord(
        "audit.validation_result.samples",
        f"unexpected-value samples of validations more than {days} days old",
        policy.cutoff(days),
    )
    purged = sql.Identifier("retention_validation_sample")
    with conn.transaction():
        conn.execute(
            sql.SQL("create temporary table {} on commit drop as select * from ({}) as sampled").format(
                purged, sql.SQL(read_sql("staging", "retention_validation_sample"))
            ),
            {"cutoff": record.cutoff_at},
        )
        validations = [
            validation_id
            for (validation_id,) in conn.execute(
                sql.SQL("select validation_id from {} order by validated_at, validation_id").format(purged)
            ).fetchall()
        ]
        record.rows = len(validations)
        record.details = {"validations": validations}
        if record.rows and policy.archive_dir is not None:
            archived = _copy_out(conn, purged, _archive_file(policy, "validation_samples"))
            record.archive_path = archived.url
            record.details["archive"] = {"sha256": archived.sha256, "size_bytes": archived.size_bytes}
        conn.execute(
            sql.SQL(
                "update audit.validation_result as validation"
                " set failed_expectations = {failed}, results = {results}"
                " from {purged} as purged where validation.validation_id = purged.validation_id"
            ).format(
                failed=_without_samples("failed_expectations"),
                results=_without_samples("results"),
                purged=purged,
            )
        )
        _record(conn, policy, run, record)
    return record


def retention_lines(conn: psycopg.Connection) -> list[str]:
    """What the latest retention run purged, per target, and whether the analytics key is installed."""
    rows = conn.execute(
        """
        select distinct on (purge_target) purge_target, retention_rule, mode, rows_purged,
            files_purged, cutoff_at, jsonb_array_length(coalesce(details -> 'kept', '[]'::jsonb))
        from audit.retention_purge order by purge_target, purged_at desc, purge_id desc
        """
    ).fetchall()
    lines = [
        f"  {target:<32} {rows_purged:>9,} rows {files:>4} "
        f"files purged ({mode}; {rule}; cutoff {cutoff:%Y-%m-%d})"
        + (f"; {kept} KEPT, failing the safety checks (audit.retention_purge.details)" if kept else "")
        for target, rule, mode, rows_purged, files, cutoff, kept in rows
    ]
    key = conn.execute("select key_fingerprint from governance.pseudonym_key").fetchone()
    lines.append(
        f"  analytics pseudonym key: {'installed, fingerprint ' + key[0] if key else 'NOT installed'}"
    )
    return lines
