"""Backfill of xAPI statements by slices of stored time: extracted in parallel, published in order.

DAG `lms_statement_backfill` (manual trigger): `plan_backfill` cuts (from, to] into contiguous slices
(`since` exclusive, `until` inclusive, as xAPI filters them, so no statement falls between two slices or in
two); one mapped task per slice runs `extract_slice`: it pages through `since=slice start, until=slice end`,
checks every statement while fetching into its own checks tables (chunks of `lms.publish_chunk_statements`),
and gates each chunk with Great Expectations; one task then runs `publish_slices`, publishing the slices in
order, each in ONE transaction (raw.lms_statement, rejects, core.lms_activity, voids, audit rows, the
watermark). `audit.lms_backfill_slice` hands the slices from the extracting tasks to the publishing one.

A slice over the reject threshold records its rejects and its failed audit row, publishes nothing, and
fails its task; the publishing task publishes the slices before it and none after it, then fails naming it.
Every task can be cleared and rerun: a slice's checks tables and audit rows are named after the DAG run and
the slice, a published slice is not extracted again, and statements are inserted once by id. Whoever stages
or publishes a slice holds its lock (`lms.staging`), so a task cleared while it still runs cannot drop the
tables of the attempt before it; the hourly extraction's clean-up leaves a staged slice's tables alone.

The watermark rule (safe beside the hourly `lms_api_ingest`): a published slice moves the source's watermark
only when nothing stored before the slice is missing, i.e. the watermark (read under the publishing lock) is
at or after the slice's start (or there is none yet and the backfill starts at `lms.initial_since`); it then
moves to the slice's end, capped by the LRS's Consistent-Through and by when the slice was fetched, and
never backwards (`advance_watermark`). A backfill of an old range behind the watermark therefore leaves it
where it is, a backfill reaching past it carries it forward slice by slice, and a backfill that starts after
the watermark (a gap the hourly run has not loaded) never touches it. The rule assumes an LRS that filters
`since`/`until` on `stored`, as xAPI requires: on an LRS the conformance probe found filtering on
`timestamp` (or could not tell), a backfill loads its statements and never moves the watermark.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from turnover_signals.errors import BadInputError
from turnover_signals.lms.conformance import profile_for_extraction
from turnover_signals.lms.statements import (
    MISSING_VOID_TARGETS_SQL,
    BatchStats,
    Chunk,
    ChunkWriter,
    StatementExtraction,
    _check_counts,
    _drop_scratch,
    _initial_since,
    _record_batch,
    advance_watermark,
    lock_statement_publishing,
    note_page,
    read_watermark,
    xapi_client,
)
from turnover_signals.quality.gate import RunIdentity, record_validation
from turnover_signals.sources.xapi import StatementPage, XapiClient, parse_xapi_timestamp
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import connection_lost, warehouse_connection, warehouse_lost

log = logging.getLogger(__name__)

RUNBOOK = "lms-statement-backfill"
DEFAULT_SLICE_COUNT = 4


def plan_slices(
    start: datetime, end: datetime, slice_count: int | None = None, slice_hours: float | None = None
) -> list[dict[str, Any]]:
    """(start, end] as contiguous slices: `slice_count` equal ones, or ones of `slice_hours` (the last
    shorter).

    Each slice is `{"number", "since", "until"}` (ISO 8601 UTC); one slice's `until` is the next one's
    `since`.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("backfill bounds must carry a time zone")
    if end <= start:
        raise ValueError(
            f"the backfill range is empty: to ({end.isoformat()}) is not after from ({start.isoformat()})"
        )
    if (slice_count is None) == (slice_hours is None):
        raise ValueError("give exactly one of slice_count and slice_hours")
    if slice_hours is not None:
        if slice_hours <= 0:
            raise ValueError("slice_hours must be positive")
        slice_count = math.ceil((end - start) / timedelta(hours=slice_hours))
        bounds = [min(start + timedelta(hours=slice_hours) * n, end) for n in range(slice_count + 1)]
    else:
        if slice_count < 1:
            raise ValueError("slice_count must be at least 1")
        step = (end - start) / slice_count
        bounds = [start + step * n for n in range(slice_count)] + [end]
    return [
        {"number": n, "since": bounds[n - 1].isoformat(), "until": bounds[n].isoformat()}
        for n in range(1, len(bounds))
        if bounds[n] > bounds[n - 1]
    ]


def plan_backfill(config: Mapping[str, Any], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The slices of a backfill run from its params: `from_stored`, `to_stored`, `slice_count` or
    `slice_hours`."""
    try:
        start = parse_xapi_timestamp(params["from_stored"])
        end = parse_xapi_timestamp(params["to_stored"])
        slice_hours = params.get("slice_hours")
        slice_count = None if slice_hours else int(params.get("slice_count") or DEFAULT_SLICE_COUNT)
        slices = plan_slices(start, end, slice_count, float(slice_hours) if slice_hours else None)
    except (KeyError, ValueError) as exc:
        raise BadInputError(
            "lms_statement_backfill params",
            f"cannot plan the backfill: {exc}",
            "trigger the DAG again with from_stored and to_stored as ISO 8601 times with a zone (from before "
            "to) and either slice_count (at least 1) or slice_hours",
            RUNBOOK,
        ) from exc
    log.info(
        "xAPI backfill of stored (%s, %s] in %d slice(s)",
        slices[0]["since"],
        slices[-1]["until"],
        len(slices),
    )
    return slices


def backfill_id_for(run: RunIdentity) -> str:
    """One backfill per DAG run: every task of the run (and every rerun of one) names the same slices."""
    if not (run.dag_id and run.run_id):
        raise ValueError("a backfill needs the DAG run's identity (dag_id and run_id)")
    return hashlib.sha256(f"{run.dag_id}|{run.run_id}".encode()).hexdigest()[:16]


def slice_batch_id(backfill_id: str, number: int) -> str:
    """The audit batch id of slice `number` (its chunks add `-2`, `-3`, ...)."""
    return f"bf{backfill_id}s{number}"


def _source(client: XapiClient) -> str:
    return f"xapi:{client.conn_id or client.base_url}"


def _slice_row(conn: psycopg.Connection, backfill_id: str, number: int) -> dict[str, Any] | None:
    cursor = conn.execute(
        "select * from audit.lms_backfill_slice where backfill_id = %s and slice_number = %s",
        (backfill_id, number),
    )
    row = cursor.fetchone()
    return dict(zip([column.name for column in cursor.description], row, strict=True)) if row else None


class SliceExtraction:
    """One slice of a backfill: fetch, check and gate into its own checks tables; or publish them later."""

    def __init__(
        self,
        config: Mapping[str, Any],
        run: RunIdentity,
        dsn: str | None,
        client: XapiClient,
        slice_: Mapping[str, Any],
    ):
        self.run = run
        self.dsn = dsn
        self.client = client
        self.number = int(slice_["number"])
        self.since = parse_xapi_timestamp(slice_["since"])
        self.until = parse_xapi_timestamp(slice_["until"])
        self.backfill_id = backfill_id_for(run)
        self.extraction = StatementExtraction(config, run, dsn, client)
        self.extraction.batch_id = slice_batch_id(self.backfill_id, self.number)
        self.conn_id = config["connections"]["warehouse"]
        self.source = _source(client)

    @property
    def subject(self) -> str:
        return f"xAPI backfill slice {self.number} (batch {self.extraction.batch_id})"

    def stats(self, watermark: datetime | None, started_at: datetime) -> BatchStats:
        stats = BatchStats(
            self.extraction.batch_id,
            self.source,
            self.client.statements_url,
            self.since,
            watermark,
            started_at,
        )
        stats.watermark = watermark
        stats.kind = "backfill"
        return stats

    def stage_and_gate(self) -> dict[str, Any]:
        """Extract the slice into checks tables and gate every chunk; raise BadInputError if one fails."""
        with warehouse_connection(self.conn_id, self.dsn) as conn:
            try:
                with self.extraction.extraction_lock(conn, "clear this slice's task", self.subject):
                    return self._stage_and_gate(conn)
            except psycopg.OperationalError as exc:
                if not connection_lost(exc, conn):
                    raise
                raise warehouse_lost(
                    subject=self.subject,
                    exc=exc,
                    next_step=(
                        "clear this slice's task once the warehouse is back: nothing of a slice is published "
                        "before publish_statement_slices, and the rerun replaces its staging tables"
                    ),
                    runbook_section="lms-publish-interrupted",
                ) from exc

    def _stage_and_gate(self, conn: psycopg.Connection) -> dict[str, Any]:
        lms = self.extraction.lms
        previous = _slice_row(conn, self.backfill_id, self.number)
        if previous is not None and previous["status"] == "published":
            log.info("xAPI backfill slice %d was published already: nothing to do", self.number)
            return self._summary(previous)
        if previous is not None:  # a rerun: its earlier checks tables are replaced
            _forget_extraction(conn, self.backfill_id, self.number, previous["chunk_tables"])
        stats = self.stats(read_watermark(conn, self.source), datetime.now(UTC))
        chunks = self._stage(conn, stats, int(lms["statements_page_limit"]))
        try:
            failed = self._gate(conn, chunks, stats)
        except BaseException:
            _drop_scratch(conn, chunks)
            raise
        if failed is not None:
            _drop_scratch(conn, chunks)
            raise failed
        row = self._record_slice(conn, "staged", chunks, stats, None)
        log.info(
            "xAPI backfill slice %d (%s, %s]: %d statement(s) in %d chunk(s) checked and gated",
            self.number,
            self.since.isoformat(),
            self.until.isoformat(),
            stats.received,
            len(chunks),
        )
        return self._summary(row)

    def _stage(self, conn: psycopg.Connection, stats: BatchStats, limit: int) -> list[Chunk]:
        chunks: list[Chunk] = []
        writer: ChunkWriter | None = None
        try:
            for page in self.client.iter_statement_pages(
                self.since, self.until, limit=limit, ascending=True, parse_statements=False
            ):
                note_page(stats, page)
                if not page.received:
                    continue
                if writer is None:
                    writer = ChunkWriter(conn, self.extraction.new_chunk(len(chunks) + 1))
                    chunks.append(writer.chunk)
                writer.write(page)
                stats.received += page.received
                if writer.chunk.received >= self.extraction.chunk_statements:
                    writer.close(stats)
                    writer = None
            if writer is not None:
                writer.close(stats)
                writer = None
        except BaseException:
            if writer is not None:
                writer.abandon()
            _drop_scratch(conn, chunks)
            raise
        return chunks

    def _gate(self, conn: psycopg.Connection, chunks: list[Chunk], stats: BatchStats) -> BadInputError | None:
        """Gate each chunk; the first failing one records its rejects and failed audit row, and is
        returned."""
        max_reject_rate = float(self.extraction.lms["max_reject_rate"])
        for chunk in chunks:
            self.extraction._finish_checks(conn, chunk)  # noqa: SLF001 - the loader's own step, shared
            counts = _check_counts(conn, chunk.checks)
            outcome = self.extraction.gate_chunk(chunk, counts, stats)
            stats.distinct += counts.distinct
            stats.rejected += counts.rejected
            stats.max_stored = max(filter(None, [stats.max_stored, counts.max_stored]), default=None)
            if outcome is None or outcome.success:
                with conn.transaction():
                    if outcome is not None:
                        record_validation(conn, outcome, self.run)
                continue
            reject_rate = counts.rejected / counts.distinct
            reason = (
                f"reject rate {reject_rate:.1%} exceeds "
                f"{max_reject_rate:.1%}; top reasons: {counts.top_reasons}"
            )
            with conn.transaction():
                # As the hourly run does: the rejects keep their reasons, nothing else is published.
                self.extraction._record_rejects(conn, chunk, stats, counts)  # noqa: SLF001
                record_validation(conn, outcome, self.run)
                _record_batch(
                    conn,
                    self.run,
                    chunk,
                    stats,
                    counts,
                    new=0,
                    voids=0,
                    reject_rate=reject_rate,
                    watermark_before=stats.watermark,
                    watermark_after=stats.watermark,
                    reason=reason,
                    outcome=outcome,
                )
                self._record_slice(conn, "rejected", chunks, stats, reason)
            return BadInputError(
                f"xAPI backfill slice {self.number} (stored {self.since.isoformat()} .. "
                f"{self.until.isoformat()}, batch {chunk.batch_id})",
                f"{counts.rejected} of {counts.distinct} statements rejected ({reject_rate:.1%} > "
                f"{max_reject_rate:.1%}): {counts.top_reasons}",
                "nothing of this slice is published, nor of any slice after it; inspect "
                "raw.lms_statement_rejected for this batch, get the LMS vendor to fix the statements (or "
                "raise lms.max_reject_rate if they are acceptable), then clear this slice's task and "
                "publish_statement_slices",
                RUNBOOK,
            )
        return None

    def _record_slice(
        self,
        conn: psycopg.Connection,
        status: str,
        chunks: list[Chunk],
        stats: BatchStats,
        reason: str | None,
    ) -> dict[str, Any]:
        conn.execute(
            read_sql("audit", "lms_backfill_slice"),
            {
                "backfill_id": self.backfill_id,
                "slice_number": self.number,
                "source": self.source,
                "since_at": self.since,
                "until_at": self.until,
                "status": status,
                "chunk_tables": [chunk.checks_name for chunk in chunks],
                "chunk_batch_ids": [chunk.batch_id for chunk in chunks],
                "statements_received": stats.received,
                "statements_rejected": stats.rejected,
                "max_stored_at": stats.max_stored,
                "consistent_through": stats.consistent_through,
                "reason": reason,
                "staged_at": stats.started_at,
            },
        )
        return _slice_row(conn, self.backfill_id, self.number) or {}

    def publish(
        self, conn: psycopg.Connection, row: Mapping[str, Any], starts_at_initial: bool
    ) -> dict[str, Any]:
        """Publish a gated slice in ONE transaction, and move the watermark if the rule allows (module
        doc)."""
        chunks = [
            Chunk(number, batch_id, sql.Identifier("staging", name), name, None)
            for number, (name, batch_id) in enumerate(
                zip(row["chunk_tables"], row["chunk_batch_ids"], strict=True), 1
            )
        ]
        new = voids = 0
        # Slices are ranges of what the LRS filters since/until on. Only on an LRS that filters on stored does
        # a published slice mean "everything stored up to its end is loaded"; on one filtering on timestamp, a
        # statement stored before the slice's end may sit in a later slice or come later still, so the
        # watermark is left to the hourly run's look-back (lms.conformance).
        profile = profile_for_extraction(conn, self.client, self.source, self.extraction.lms)
        with conn.transaction():
            lock_statement_publishing(conn)
            watermark = read_watermark(conn, self.source)  # under the lock: no other publisher moves it now
            stats = self.stats(watermark, row["staged_at"])
            for chunk in chunks:
                counts = _check_counts(conn, chunk.checks)
                self.extraction._record_rejects(conn, chunk, stats, counts)  # noqa: SLF001
                chunk_new, chunk_voids = self.extraction._publish(conn, chunk, stats, counts)  # noqa: SLF001
                new, voids = new + chunk_new, voids + chunk_voids
                reject_rate = counts.rejected / counts.distinct if counts.distinct else 0.0
                _record_batch(
                    conn,
                    self.run,
                    chunk,
                    stats,
                    counts,
                    new=chunk_new,
                    voids=chunk_voids,
                    reject_rate=reject_rate,
                    watermark_before=watermark,
                    watermark_after=watermark,
                    reason=None,
                    outcome=None,
                )
            contiguous = (watermark is not None and self.since <= watermark) or (
                watermark is None and starts_at_initial
            )
            if contiguous and profile.strategy == "stored_overlap":
                # Everything stored up to the slice's end is now loaded, as far as the LRS could tell when
                # asked.
                candidate = min(filter(None, [self.until, row["consistent_through"], row["staged_at"]]))
                advance_watermark(conn, self.source, candidate, self.extraction.batch_id)
            conn.execute(
                "update audit.lms_backfill_slice set status = 'published', published_at = now()"
                " where backfill_id = %s and slice_number = %s",
                (self.backfill_id, self.number),
            )
            published = _slice_row(conn, self.backfill_id, self.number) or {}
        _drop_scratch(conn, chunks)
        log.info("xAPI backfill slice %d published: %d new statement(s), %d void(s)", self.number, new, voids)
        return {**self._summary(published), "new": new, "voids_applied": voids}

    def publish_interruptible(
        self, conn: psycopg.Connection, row: Mapping[str, Any], starts_at_initial: bool, slices: int
    ) -> dict[str, Any]:
        """`publish`, a lost warehouse session raised as the error that says what was published."""
        try:
            return self.publish(conn, row, starts_at_initial)
        except psycopg.OperationalError as exc:
            if not connection_lost(exc, conn):
                raise
            raise warehouse_lost(
                subject=f"xAPI backfill slice {self.number} of {slices} (batch {self.extraction.batch_id})",
                exc=exc,
                next_step=(
                    "clear publish_statement_slices once the warehouse is back: slices before this one are "
                    f"published, nothing of slice {self.number} was (its transaction rolled back, its "
                    "staging tables are kept), and the rerun publishes it and the slices after it"
                ),
                runbook_section="lms-publish-interrupted",
            ) from exc

    def _summary(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "slice": self.number,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "status": row.get("status"),
            "received": row.get("statements_received"),
            "rejected": row.get("statements_rejected"),
            "chunks": len(row.get("chunk_tables") or []),
        }


def _forget_extraction(conn: psycopg.Connection, backfill_id: str, number: int, tables: list[str]) -> None:
    """Drop an earlier attempt's checks tables and the row that handed them over, together: until this
    attempt is gated and recorded, the publish finds the slice not extracted, never a row naming tables that
    are gone, or that this attempt has re-created and not gated yet (its worker killed in between)."""
    with conn.transaction():
        for name in tables:
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier("staging", name)))
        conn.execute(
            "delete from audit.lms_backfill_slice where backfill_id = %s and slice_number = %s",
            (backfill_id, number),
        )


def extract_slice(
    config: Mapping[str, Any],
    run: RunIdentity,
    slice_: Mapping[str, Any],
    dsn: str | None = None,
    client: XapiClient | None = None,
) -> dict[str, Any]:
    """Fetch, check and gate one slice of a backfill into its own checks tables (published later, in
    order)."""
    client = client or xapi_client(config)
    with client:
        return SliceExtraction(config, run, dsn, client, slice_).stage_and_gate()


def publish_slices(
    config: Mapping[str, Any],
    run: RunIdentity,
    slices: list[Mapping[str, Any]],
    dsn: str | None = None,
    client: XapiClient | None = None,
) -> dict[str, Any]:
    """Publish the gated slices in slice order, up to the first one that is not gated (rejected or
    missing)."""
    client = client or xapi_client(config)
    ordered = sorted(slices, key=lambda item: int(item["number"]))
    published: list[dict[str, Any]] = []
    blocked: tuple[int, str] | None = None
    with client, warehouse_connection(config["connections"]["warehouse"], dsn) as conn:
        initial = _initial_since(config["lms"])
        starts_at_initial = parse_xapi_timestamp(ordered[0]["since"]) <= initial if ordered else False
        for item in ordered:
            part = SliceExtraction(config, run, dsn, client, item)
            # The slice's lock: a slice being extracted again (its task cleared) is waited for, and its row is
            # read once its tables are complete.
            with part.extraction.extraction_lock(conn, "clear publish_statement_slices", part.subject):
                row = _slice_row(conn, part.backfill_id, part.number)
                if row is None or row["status"] == "rejected":
                    why = "failed its gate" if row else "was not extracted (its task failed)"
                    blocked = (part.number, why)
                    break
                if row["status"] == "published":
                    published.append(part._summary(row))  # noqa: SLF001
                    continue
                published.append(part.publish_interruptible(conn, row, starts_at_initial, len(ordered)))
        recovered = _recover_voided_targets(config, run, dsn, client, conn, ordered)
    summary = {
        "slices": len(ordered),
        "published": len(published),
        "voided_statements_recovered": recovered,
        "details": published,
    }
    log.info("xAPI backfill: %d of %d slice(s) published", len(published), len(ordered))
    if blocked is not None:
        number, why = blocked
        raise BadInputError(
            f"xAPI backfill slice {number} of {len(ordered)}",
            f"the slice {why}; slices 1..{number - 1} are published, {number}..{len(ordered)} are not",
            f"fix the cause in the log of slice {number}'s task (extract_statement_slice, map index "
            f"{number - 1}), clear that task, then clear publish_statement_slices",
            RUNBOOK,
        )
    return summary


def _recover_voided_targets(
    config: Mapping[str, Any],
    run: RunIdentity,
    dsn: str | None,
    client: XapiClient,
    conn: psycopg.Connection,
    slices: list[Mapping[str, Any]],
) -> int:
    """Publish the statements the published slices' voids target that the warehouse never saw.

    An LRS leaves a voided statement out of every listing (the hourly run does the same, see
    `StatementExtraction._recover_voided_targets`): fetched by voidedStatementId, checked, gated and published
    as one more batch of the backfill. It never moves the watermark: these statements are old, and the slices
    already carried the watermark as far as the rule allows.
    """
    if not slices:
        return 0
    backfill_id = backfill_id_for(run)
    batch_ids = [
        batch_id
        for (chunk_batch_ids,) in conn.execute(
            "select chunk_batch_ids from audit.lms_backfill_slice "
            "where backfill_id = %s and status = 'published'",
            (backfill_id,),
        ).fetchall()
        for batch_id in chunk_batch_ids
    ]
    missing = [row[0] for row in conn.execute(MISSING_VOID_TARGETS_SQL, {"batch_ids": batch_ids})]
    extraction = StatementExtraction(config, run, dsn, client)
    extraction.batch_id = f"bf{backfill_id}voided"
    statements = extraction.fetch_voided_statements(missing)
    if not statements:
        return 0
    page = StatementPage(
        page_number=1,
        request_url=client.statements_url,
        statements=statements,
        more="",
        next_url=None,
        consistent_through=None,
        xapi_version=None,
        already_seen_ids=frozenset(),
        raw_body=json.dumps({"statements": statements, "more": ""}, ensure_ascii=False).encode("utf-8"),
    )
    first_since = parse_xapi_timestamp(slices[0]["since"])
    stats = BatchStats(
        extraction.batch_id, _source(client), client.statements_url, first_since, None, datetime.now(UTC)
    )
    stats.kind = "backfill"
    with extraction.extraction_lock(conn, rerun="clear publish_statement_slices"):
        writer = ChunkWriter(conn, extraction.new_chunk(1))
        writer.write(page)
        chunk = writer.close(stats)
        try:
            extraction._finish_checks(conn, chunk)  # noqa: SLF001
            counts = _check_counts(conn, chunk.checks)
            outcome = extraction.gate_chunk(chunk, counts, stats)
            passed = outcome is None or outcome.success
            with conn.transaction():
                lock_statement_publishing(conn)
                stats.watermark = stats.watermark_before = read_watermark(conn, stats.source)
                extraction._record_rejects(conn, chunk, stats, counts)  # noqa: SLF001
                new = voids = 0
                if passed:
                    new, voids = extraction._publish(conn, chunk, stats, counts)  # noqa: SLF001
                if outcome is not None:
                    record_validation(conn, outcome, run)
                reject_rate = counts.rejected / counts.distinct if counts.distinct else 0.0
                _record_batch(
                    conn,
                    run,
                    chunk,
                    stats,
                    counts,
                    new=new,
                    voids=voids,
                    reject_rate=reject_rate,
                    watermark_before=stats.watermark,
                    watermark_after=stats.watermark,
                    reason=None if passed else f"reject rate {reject_rate:.1%}: {counts.top_reasons}",
                    outcome=outcome,
                )
            if not passed:
                max_reject_rate = float(extraction.lms["max_reject_rate"])
                raise BadInputError(
                    f"xAPI backfill {backfill_id}: the {len(statements)} voided statement(s) fetched by "
                    f"voidedStatementId (batch {chunk.batch_id})",
                    f"{counts.rejected} of {counts.distinct} statements rejected ({reject_rate:.1%} > "
                    f"{max_reject_rate:.1%}): {counts.top_reasons}",
                    "the slices are published, these statements are not; inspect "
                    "raw.lms_statement_rejected for this batch, get the LMS vendor to fix them (or raise "
                    "lms.max_reject_rate if they are acceptable), then clear publish_statement_slices",
                    RUNBOOK,
                )
        finally:
            _drop_scratch(conn, [chunk])
    log.info("xAPI backfill: %d of %d voided statement(s) never received recovered", new, len(missing))
    return new
