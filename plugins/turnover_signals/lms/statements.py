"""Incremental, exactly-once extraction of xAPI statements into the warehouse.

Write-audit-publish per chunk of an extraction: each statement of a page is checked as it arrives
(`lms.statement_checks`: the gate's check columns and the normalised `core.lms_activity` columns, as
`include/sql/staging/lms_statement_checks.sql` defines them) and COPYed, with its JSON as received, into the
chunk's checks table (memory stays flat); every `lms.publish_chunk_statements` statements (page-aligned) the
chunk is handed on while the next pages are being fetched, to two threads with a connection each
(`ChunkPublisher`). The checking thread checks in SQL the few statements of unusual shape and gates the chunk
with Great Expectations; the publishing thread, meanwhile publishing the chunk before, then publishes it in
ONE transaction under the publishing lock: the accepted statements (`raw.lms_statement`, idempotent on the
statement id), the rejects with their reasons, `core.lms_activity`, the voids, the chunk's audit row and the
advanced watermark. Fetching stays at most one chunk ahead of publishing (`MAX_CHUNKS_IN_FLIGHT`).

Each chunk is its own gated batch (audit row `batch_id`, `batch_id-2`, ...). Chunks publish in
order, so the watermark never moves ahead of the data it covers; a chunk whose reject rate exceeds
the threshold publishes nothing, stops the extraction and fails the task, leaving the chunks before
it published and the watermark at their end. A rerun starts from that watermark (minus the
overlap) and converges to the same tables.

An extraction holds its advisory lock (`lms.staging`) while its staging tables exist: a second attempt of
the same task instance waits for it or fails clearly instead of dropping them, and an extraction first drops
the tables that interrupted ones left behind. A warehouse session lost mid-chunk (a server restart) fails
the task with the batch and what was published (`warehouse.warehouse_lost`): the chunk's transaction was
rolled back whole, and a rerun converges.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import queue
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import great_expectations.expectations as gxe
import psycopg
import requests
from psycopg import postgres, pq, sql
from psycopg.adapt import Dumper
from psycopg.copy import QueuedLibpqWriter
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from turnover_signals.errors import BadInputError, SourceRefusedError, runbook_link
from turnover_signals.lms.conformance import LrsProfile, extraction_window, profile_for_extraction
from turnover_signals.lms.staging import (
    DEFAULT_LOCK_WAIT_SECONDS,
    checks_table_name,
    drop_orphan_staging_tables,
    extraction_lock,
)
from turnover_signals.lms.statement_checks import (
    CHECK_COLUMNS,
    REFUSED_REASONS,
    StatementChecker,
    refused_row,
    split_page,
)
from turnover_signals.notify import LogNotifier, configured_notifier
from turnover_signals.quality.gate import (
    RunIdentity,
    SuiteDefinition,
    ValidationOutcome,
    data_docs_location,
    described,
    discard_data_docs_page,
    record_validation,
    run_suite,
)
from turnover_signals.sources.http_base import RetryPolicy
from turnover_signals.sources.xapi import (
    DEFAULT_MAX_STATEMENT_BYTES,
    DEFAULT_MAX_STATEMENT_DEPTH,
    DEFAULT_REFUSED_EXCERPT_BYTES,
    StatementBounds,
    StatementPage,
    XapiClient,
    parse_xapi_timestamp,
)
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import connection_lost, sqlalchemy_url, warehouse_connection, warehouse_lost

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SUITE_VERSION = "1"
DEFAULT_PUBLISH_CHUNK_STATEMENTS = 100_000


@dataclass
class BatchStats:
    """Running totals of one extraction (the task's batch), over all of its chunks."""

    batch_id: str
    source: str
    endpoint: str
    requested_since: datetime
    watermark_before: datetime | None
    started_at: datetime
    pages: int = 0
    received: int = 0
    distinct: int = 0
    new: int = 0
    rejected: int = 0
    voids: int = 0
    chunks_published: int = 0
    max_stored: datetime | None = None
    consistent_through: datetime | None = None
    watermark: datetime | None = None
    # how the LRS's conformance profile made this batch start where it did (lms.conformance)
    strategy: str = "stored_overlap"
    kind: str = "incremental"
    since_field: str = "stored"
    late: int = 0
    rejects_accepted_before: int = 0  # rejects re-read after a published chunk accepted them
    orphan_tables_dropped: int = 0  # staging tables of interrupted extractions dropped at the start
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    """A page-aligned slice of an extraction, staged and then published as its own gated batch."""

    number: int
    batch_id: str
    checks: sql.Identifier
    checks_name: str
    checker: StatementChecker | None  # None for a chunk checked earlier (a backfill slice being published)
    pages: int = 0
    received: int = 0
    checked_in_sql: int = 0  # statements of unusual shape, left to lms_statement_checks.sql
    rejected_while_fetching: int = 0  # statements the fetching thread's checks rejected (refused included)
    consistent_through: datetime | None = None  # the smallest seen up to the end of this chunk
    late: int = 0  # new statements a plain `since = watermark` query would have missed
    max_lateness_seconds: int | None = None  # the longest stored - timestamp among its accepted statements
    committing: bool = False  # its publishing transaction reached its commit
    rejects_accepted_before: int = 0  # rejects an earlier published chunk accepted: not gated again


@dataclass
class ChunkCounts:
    distinct: int
    rejected: int
    max_stored: datetime | None  # the newest stored time short of the future limit: the watermark's candidate
    top_reasons: str
    stored_in_future: int = 0  # statements stored beyond now + lms.future_timestamp_tolerance_minutes
    newest_stored: datetime | None = None  # the newest stored time of all, those included
    max_lateness_seconds: int | None = None  # the longest stored - timestamp among the accepted statements
    min_accepted_stored: datetime | None = None  # the oldest stored time among the accepted statements


def batch_id_for(run: RunIdentity) -> str:
    """One batch per task instance of a DAG run (a rerun replaces its audit row); random outside Airflow."""
    if run.dag_id and run.run_id and run.task_id:
        return hashlib.sha256(f"{run.dag_id}|{run.run_id}|{run.task_id}".encode()).hexdigest()[:20]
    return uuid.uuid4().hex[:20]


def chunk_batch_id(batch_id: str, number: int) -> str:
    """The audit id of chunk `number` (1-based): the task's batch id, then `-2`, `-3`, ..."""
    return batch_id if number == 1 else f"{batch_id}-{number}"


def page_statement_texts(page: StatementPage) -> list[bytes]:
    """Each statement of a page as the JSON text received (UTF-8), for raw.lms_statement as received.

    JSON is UTF-8 on the wire (RFC 8259); a body in another encoding that the client could still
    read is re-serialised from what it parsed. The client split the page already (`statement_texts`); a
    page built from parsed statements (the voided ones fetched one by one) is split here.
    """
    if page.statement_texts is not None:
        return page.statement_texts
    body = page.raw_body.removeprefix(b"\xef\xbb\xbf")
    try:
        body.decode("utf-8")  # the slices below are then valid UTF-8 too
        statements = split_page(body)
    except UnicodeDecodeError:
        statements = None
    if statements is None or len(statements) != len(page.statements):
        return [json.dumps(statement, ensure_ascii=False).encode("utf-8") for statement in page.statements]
    return statements


def lms_batch_suite(max_reject_rate: float) -> SuiteDefinition:
    """Row checks hold for all but `max_reject_rate` of the batch; failing rows are rejected."""
    mostly = max(0.0, 1.0 - max_reject_rate)

    return SuiteDefinition(
        name="lms_statement_batch",
        version=SUITE_VERSION,
        expectations=[
            described(gxe.ExpectColumnValuesToBeUnique(column="statement_id"), "statement ids are unique"),
            described(
                gxe.ExpectColumnValuesToBeNull(column="reject_reason", mostly=mostly),
                f"at most {max_reject_rate:.1%} of the batch is rejected",
            ),
            described(
                gxe.ExpectColumnValuesToBeInSet(column="is_id_uuid", value_set=[True], mostly=mostly),
                "statement ids are UUIDs",
            ),
            described(
                gxe.ExpectColumnValuesToBeNull(column="timestamp_problem", mostly=mostly), "timestamps parse"
            ),
            described(
                gxe.ExpectColumnValuesToBeInSet(column="is_in_future", value_set=[False], mostly=mostly),
                "timestamps are not in the future beyond the tolerance",
            ),
            described(
                gxe.ExpectColumnValuesToBeInSet(column="is_verb_iri", value_set=[True], mostly=mostly),
                "verb ids are IRIs",
            ),
            described(
                gxe.ExpectColumnValuesToBeBetween(
                    column="actor_identifier_count", min_value=1, max_value=1, mostly=mostly
                ),
                "the actor has exactly one identifier",
            ),
            # Row-level booleans, not the raw values: GX measures `mostly` over non-null values only.
            described(
                gxe.ExpectColumnValuesToBeInSet(column="is_score_in_range", value_set=[True], mostly=mostly),
                "scaled scores are within [-1, 1]",
            ),
        ],
    )


class StatementExtraction:
    """One extraction (the task's batch): stage pages by chunk, and gate and publish each chunk."""

    def __init__(self, config: Mapping[str, Any], run: RunIdentity, dsn: str | None, client: XapiClient):
        self.config = config
        self.lms = config["lms"]
        self.run = run
        self.dsn = dsn
        self.client = client
        self.batch_id = batch_id_for(run)
        self.profile: LrsProfile | None = None  # what the LRS does, read at the start of the run
        self.chunk_statements = max(
            1, int(self.lms.get("publish_chunk_statements", DEFAULT_PUBLISH_CHUNK_STATEMENTS))
        )

    def new_chunk(self, number: int) -> Chunk:
        name = checks_table_name(self.batch_id, number)
        tolerance = timedelta(minutes=float(self.lms["future_timestamp_tolerance_minutes"]))
        return Chunk(
            number,
            chunk_batch_id(self.batch_id, number),
            sql.Identifier("staging", name),
            name,
            # "in the future" as of when the chunk starts arriving: its statements are checked as they come
            StatementChecker(datetime.now(UTC) + tolerance, self.lms["verb_event_types"]),
        )

    # -- the run -----------------------------------------------------------------------------

    def run_batch(self) -> dict[str, Any]:
        # Keyed by connection id, not URL: the watermark survives a host move behind the same
        # connection (pointing it at a different LRS needs a watermark reset, see the runbook).
        source = f"xapi:{self.client.conn_id or self.client.base_url}"
        conn_id = self.config["connections"]["warehouse"]
        with warehouse_connection(conn_id, self.dsn) as conn:
            try:
                with self.extraction_lock(conn, rerun="clear the task"):
                    stats = self._extract(conn, source, orphans=drop_orphan_staging_tables(conn))
            except psycopg.OperationalError as exc:
                if not connection_lost(exc, conn):
                    raise
                raise warehouse_lost(
                    subject=f"xAPI batch {self.batch_id}",
                    exc=exc,
                    next_step=(
                        "rerun the task once the warehouse is back (Airflow retries it): chunks published "
                        "before stay published, nothing of the chunk being staged was, and the rerun resumes "
                        "from the watermark; the next extraction drops the staging tables left behind"
                    ),
                    runbook_section="lms-publish-interrupted",
                ) from exc
        summary = {
            "batch_id": self.batch_id,
            "chunks": stats.chunks_published,
            "pages": stats.pages,
            "received": stats.received,
            "distinct": stats.distinct,
            "new": stats.new,
            "rejected": stats.rejected,
            "rejects_accepted_before": stats.rejects_accepted_before,  # re-read, not gated again
            "voids_applied": stats.voids,
            "late": stats.late,
            "strategy": stats.strategy,
            "extraction_kind": stats.kind,
            "reject_rate": round(stats.rejected / stats.distinct, 6) if stats.distinct else 0.0,
            "watermark_before": _iso(stats.watermark_before),
            "watermark_after": _iso(stats.watermark),
            "orphan_staging_tables_dropped": stats.orphan_tables_dropped,
            "clock_warning": stats.extra.get("clock_warning"),  # the LRS's clock ahead of ours, if it was
            "status": "published",
        }
        log.info("xAPI batch summary: %s", summary)
        return summary

    def extraction_lock(
        self, conn: psycopg.Connection, rerun: str, subject: str | None = None
    ) -> AbstractContextManager[None]:
        """Hold this extraction's lock (its staging tables are this session's), or wait for the attempt that
        holds it (`lms.staging`)."""
        return extraction_lock(
            conn,
            self.batch_id,
            subject=subject or f"xAPI batch {self.batch_id}",
            wait_seconds=float(self.lms.get("extraction_lock_wait_seconds", DEFAULT_LOCK_WAIT_SECONDS)),
            rerun=rerun,
        )

    def _extract(self, conn: psycopg.Connection, source: str, orphans: int) -> BatchStats:
        """Stage, gate and publish everything from the watermark on (under the extraction's lock); `orphans`:
        the staging tables of interrupted extractions dropped before, for the first chunk's audit row."""
        watermark = read_watermark(conn, source)
        self.profile = profile_for_extraction(conn, self.client, source, self.lms)
        window = extraction_window(conn, source, self.profile, watermark, self.lms, _initial_since(self.lms))
        stats = BatchStats(
            self.batch_id, source, self.client.statements_url, window.since, watermark, datetime.now(UTC)
        )
        stats.watermark = watermark
        stats.orphan_tables_dropped = orphans
        stats.strategy, stats.kind = window.strategy, window.kind
        stats.since_field = "stored" if window.strategy == "stored_overlap" else "timestamp"
        log.info(
            "xAPI batch %s: %s extraction from %s (strategy %s, look-back %s)",
            self.batch_id,
            window.kind,
            window.since.isoformat(),
            window.strategy,
            window.lookback,
        )
        publisher = ChunkPublisher(self, stats)
        staged: list[Chunk] = []
        try:
            publisher.start()
            self._stage(conn, stats, publisher, staged)
        finally:
            # Chunks already handed over are complete and are published even if fetching
            # failed after them: the watermark then covers exactly what was published.
            publisher.finish()
            _drop_scratch(conn, staged)
            if publisher.error is not None:
                # The first failure, and the one that names its chunk: fetching stopped because of it, or
                # failed after it (the warehouse lost by both threads at once).
                raise publisher.error
        self._recover_voided_targets(conn, stats, staged)
        return stats

    # -- staging (main thread) ---------------------------------------------------------------

    def _stage(
        self, conn: psycopg.Connection, stats: BatchStats, publisher: ChunkPublisher, staged: list[Chunk]
    ) -> None:
        """Fetch every page; COPY each body into the current chunk; hand full chunks to the publisher."""
        limit = int(self.lms["statements_page_limit"])
        writer: ChunkWriter | None = None
        try:
            for page in self.client.iter_statement_pages(
                stats.requested_since, limit=limit, ascending=True, parse_statements=False
            ):
                if publisher.error is not None:
                    break  # a chunk failed its gate: fetching more would publish nothing
                note_page(stats, page)
                if not page.received:
                    continue
                if writer is None:
                    if not publisher.reserve():
                        break  # a chunk failed: nothing after it is published
                    writer = ChunkWriter(conn, self.new_chunk(len(staged) + 1))
                    staged.append(writer.chunk)
                writer.write(page)
                stats.received += page.received
                if writer.chunk.received >= self.chunk_statements:
                    publisher.submit(writer.close(stats))
                    writer = None
            else:
                if writer is None and not staged and publisher.reserve():
                    # Nothing received: an empty chunk still records the batch (and its audit row).
                    writer = ChunkWriter(conn, self.new_chunk(1))
                    staged.append(writer.chunk)
                if writer is not None:
                    publisher.submit(writer.close(stats))
                    writer = None
        finally:
            if writer is not None:
                writer.abandon()  # an incomplete chunk (fetch failed or gate failed) is never published
        log.info(
            "xAPI batch %s: %d statement(s) received in %d page(s), %d chunk(s)",
            self.batch_id,
            stats.received,
            stats.pages,
            len(staged),
        )

    def _recover_voided_targets(
        self, conn: psycopg.Connection, stats: BatchStats, staged: list[Chunk]
    ) -> None:
        """Publish, as one more chunk, the statements this batch's voids target that the warehouse never saw.

        An LRS leaves a voided statement out of every listing, so a first install, or a run after a
        statement was voided within a day of being stored, receives only the voiding statement. Fetched by
        `voidedStatementId`, the target is loaded with its own stored time and marked voided: dates whose
        cut-off came between the two count it, as the day-by-day run did.
        """
        # This attempt's chunks, and those an earlier attempt of the same task published before it failed (a
        # cleared task starts at the watermark they carried, so it may stage fewer chunks than they were).
        earlier = conn.execute(
            "select batch_id from audit.lms_extract_batch where batch_id like %s and status = 'published'",
            (f"{self.batch_id}-%",),
        ).fetchall()
        batch_ids = sorted({*self._batch_ids(staged), *(row[0] for row in earlier)})
        missing = [row[0] for row in conn.execute(MISSING_VOID_TARGETS_SQL, {"batch_ids": batch_ids})]
        if missing:
            log.info(
                "xAPI batch %s: %d voided statement(s) never received, fetching them by voidedStatementId",
                self.batch_id,
                len(missing),
            )
        statements = self.fetch_voided_statements(missing)
        if missing:
            log.info(
                "xAPI batch %s: %d of %d voided statement(s) fetched",
                self.batch_id,
                len(statements),
                len(missing),
            )
        if not statements:
            return
        body = json.dumps({"statements": statements, "more": ""}, ensure_ascii=False)
        page = StatementPage(
            page_number=stats.pages + 1,
            request_url=self.client.statements_url,
            statements=statements,
            more="",
            next_url=None,
            consistent_through=None,
            xapi_version=None,
            already_seen_ids=frozenset(),
            raw_body=body.encode("utf-8"),
        )
        writer = ChunkWriter(conn, self.new_chunk(len(staged) + 1))
        staged.append(writer.chunk)
        writer.write(page)
        stats.received += len(statements)
        self.publish_chunk(conn, writer.close(stats), stats)

    def _batch_ids(self, staged: list[Chunk]) -> list[str]:
        return [chunk.batch_id for chunk in staged]

    def fetch_voided_statements(self, statement_ids: list[str]) -> list[dict[str, Any]]:
        """The statements with these ids from the LRS's voided ones, in order, fetched a few at a time.

        Each is one request (xAPI has no bulk form), so a first install with thousands of voids would wait on
        round trips one after another; `lms.void_fetch_concurrency` requests run at once instead, each
        worker on a session of its own. An LRS that refuses the query (some do not implement
        voidedStatementId) costs only the recovery: the first refusal stops it, the voids are kept, and the
        statements stay unknown as before.
        """
        if not statement_ids:
            return []
        if self.profile is not None and self.profile.voided_query_supported is False:
            # the conformance probe saw voidedStatementId answered with something else (Ralph: a listing)
            log.info(
                "xAPI LRS does not answer voidedStatementId (conformance probe): %d voided statement(s) "
                "never received stay unknown",
                len(statement_ids),
            )
            return []
        refused = threading.Event()
        local = threading.local()

        def fetch(statement_id: str) -> dict[str, Any] | None:
            if refused.is_set():
                return None
            if not hasattr(local, "client"):
                local.client = copy.copy(self.client)
                local.client.session = requests.Session()
            try:
                return local.client.voided_statement(statement_id)
            except SourceRefusedError as exc:
                if not refused.is_set():
                    refused.set()
                    log.warning(
                        "xAPI LRS refused voidedStatementId (%s); voided statements never received stay "
                        "unknown",
                        exc.problem,
                    )
                return None

        workers = max(1, int(self.lms.get("void_fetch_concurrency", 8)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="xapi-voided") as pool:
            found = list(pool.map(fetch, statement_ids))
        return [statement for statement in found if statement is not None]

    # -- checking and publishing (ChunkPublisher's threads) -----------------------------------

    def check_chunk(self, conn: psycopg.Connection, chunk: Chunk, stats: BatchStats) -> CheckedChunk:
        """Finish a staged chunk's checks, count them and gate it (checking thread); nothing is published."""
        self._finish_checks(conn, chunk)
        counts = _check_counts(conn, chunk.checks)
        return CheckedChunk(chunk, counts, self.gate_chunk(chunk, counts, stats))

    def check_failed(self, failed: CheckFailed, stats: BatchStats) -> BaseException:
        """The error to raise, in chunk order, for a chunk whose checks or gate failed (publishing thread:
        what it says was published is known only once the chunks before it are)."""
        if failed.session_lost:
            return self._publish_interrupted(failed.chunk, stats, failed.error)
        return failed.error

    def publish_checked(self, conn: psycopg.Connection, checked: CheckedChunk, stats: BatchStats) -> None:
        """Publish a gated chunk (publishing thread, in chunk order); raise BadInputError if it failed its
        gate."""
        chunk = checked.chunk
        try:
            with self._interruptible(conn, chunk, stats):
                counts, outcome = checked.counts, checked.outcome
                if counts.rejected and self._drop_rejects_accepted_since_check(conn, chunk):
                    # Only now exact: the chunk before was published after this one was checked. Gated again
                    # on what is left, so the gate's report and the batch row describe the same statements.
                    counts = _check_counts(conn, chunk.checks)
                    superseded, outcome = outcome, self.gate_chunk(chunk, counts, stats)
                    discard_data_docs_page(self.config, superseded)
                self._gate_and_publish(conn, chunk, counts, outcome, stats)
        finally:
            _drop_scratch(conn, [chunk])

    def publish_chunk(self, conn: psycopg.Connection, chunk: Chunk, stats: BatchStats) -> None:
        """Check, gate and publish one chunk on this connection, in turn (the recovered voided targets)."""
        try:
            with self._interruptible(conn, chunk, stats):
                checked = self.check_chunk(conn, chunk, stats)
        except BaseException:
            _drop_scratch(conn, [chunk])
            raise
        self.publish_checked(conn, checked, stats)

    @contextmanager
    def _interruptible(self, conn: psycopg.Connection, chunk: Chunk, stats: BatchStats) -> Iterator[None]:
        """Raise a lost warehouse session as the error that says what of the chunk was published."""
        try:
            yield
        except psycopg.OperationalError as exc:
            if not connection_lost(exc, conn):
                raise
            raise self._publish_interrupted(chunk, stats, exc) from exc

    def _publish_interrupted(self, chunk: Chunk, stats: BatchStats, exc: BaseException) -> Exception:
        """The error for a chunk whose warehouse session ended while it was checked, gated or published.

        Everything a chunk publishes is one transaction, which the server rolls back when the session ends
        before its commit; only a session lost during the commit itself leaves the outcome unknown.
        """
        if chunk.committing:
            outcome = (
                f"the session ended during the commit of chunk {chunk.number}: it may or may not be published"
            )
        else:
            outcome = f"nothing was published from the interrupted chunk {chunk.number} (rolled back whole)"
        return warehouse_lost(
            subject=f"xAPI batch {chunk.batch_id} from {stats.endpoint} (chunk {chunk.number})",
            exc=exc,
            next_step=(
                f"rerun the task once the warehouse is back (Airflow retries it); {outcome}, "
                f"{stats.chunks_published} earlier chunk(s) of this run are, and the rerun resumes from the "
                "watermark, inserting each statement once"
            ),
            runbook_section="lms-publish-interrupted",
        )

    def _finish_checks(self, conn: psycopg.Connection, chunk: Chunk) -> None:
        """Check in SQL the statements the fetching thread left to the definition, then drop repeats."""
        with conn.transaction():
            if chunk.checked_in_sql:
                _check_in_sql(conn, chunk)
                # Repeats of a page: the first copy of a statement id received wins (the fetching thread
                # already dropped the repeats it could name; these are the ones only SQL can). Grouping
                # the ids alone is cheap; sorting whole statements to rank copies is not.
                conn.execute(
                    sql.SQL(
                        "delete from {checks} as later using ( select statement_id, min(received_order) as "
                        "first_order from {checks} group by statement_id having count(*) > 1) as repeated "
                        "where later.statement_id = repeated.statement_id and later.received_order > "
                        "repeated.first_order"
                    ).format(checks=chunk.checks)
                )
            if chunk.rejected_while_fetching or chunk.checked_in_sql:
                # (a scan of the whole chunk for its rejects: only where there can be any)
                chunk.rejects_accepted_before = _drop_accepted_rejects(conn, chunk)
            # A table this fresh has no statistics: the planner guesses a few hundred rows and joins the
            # chunk's 100,000 ids to the raw voids in a nested loop (13-23 s a chunk in the demo, 54 ms with
            # statistics), so analyze it before anything joins it: the columns joins and filters read, not the
            # statement's jsonb, whose statistics cost most of an analyze and serve no query.
            conn.execute(
                sql.SQL("analyze {} (statement_id, reject_reason, verb_id, object_type, object_id)").format(
                    chunk.checks
                )
            )

    def _drop_rejects_accepted_since_check(self, conn: psycopg.Connection, chunk: Chunk) -> int:
        """Drop the rejects a chunk published after this one was checked accepted (how many)."""
        with conn.transaction():
            dropped = _drop_accepted_rejects(conn, chunk)
        chunk.rejects_accepted_before += dropped
        return dropped

    def gate_chunk(self, chunk: Chunk, counts: ChunkCounts, stats: BatchStats) -> ValidationOutcome | None:
        """Run the Great Expectations suite on a checked chunk (None for an empty one)."""
        if not counts.distinct:
            return None
        return run_suite(
            sqlalchemy_url(self.config["connections"]["warehouse"], self.dsn),
            lms_batch_suite(float(self.lms["max_reject_rate"])),
            data_asset="lms_statement_batch",
            # the watermark range this batch covers: from the request's since to its newest stored time
            batch_identifier=(
                f"{stats.source} stored {stats.requested_since.isoformat()} .. "
                f"{counts.max_stored.isoformat() if counts.max_stored else '?'} batch {chunk.batch_id}"
            ),
            table=("staging", chunk.checks_name),
            pii_columns=self.config["quality"]["pii_columns"],
            data_docs_dir=data_docs_location(self.config),
        )

    def _gate_and_publish(
        self,
        conn: psycopg.Connection,
        chunk: Chunk,
        counts: ChunkCounts,
        outcome: ValidationOutcome | None,
        stats: BatchStats,
    ) -> None:
        """Publish a chunk whose gate passed (`outcome`), or record why it failed and raise."""
        max_reject_rate = float(self.lms["max_reject_rate"])
        reject_rate = counts.rejected / counts.distinct if counts.distinct else 0.0
        passed = outcome is None or outcome.success
        watermark_before = stats.watermark
        with conn.transaction():
            lock_statement_publishing(conn)
            self._record_rejects(conn, chunk, stats, counts)
            new = voids = 0
            watermark_after = watermark_before
            if passed:
                count_late(conn, chunk, stats, counts)
                new, voids = self._publish(conn, chunk, stats, counts)
                watermark_after = self._advance_watermark(conn, chunk, counts, stats)
            if outcome is not None:
                record_validation(conn, outcome, self.run)
            reason = (
                None
                if passed
                else (
                    f"reject rate {reject_rate:.1%} exceeds "
                    f"{max_reject_rate:.1%}; top reasons: {counts.top_reasons}"
                )
            )
            _record_batch(
                conn,
                self.run,
                chunk,
                stats,
                counts,
                new,
                voids,
                reject_rate,
                watermark_before,
                watermark_after,
                reason,
                outcome,
            )
            warning = clock_warning(chunk.consistent_through, counts, datetime.now(UTC), self.lms)
            _record_clock_warning(conn, chunk.batch_id, warning)
            chunk.committing = True
        # Only once committed: the totals describe what is durably in the warehouse.
        stats.distinct += counts.distinct
        stats.rejected += counts.rejected
        self._alert_clock(chunk, stats, warning)
        if not passed:
            raise BadInputError(
                f"xAPI batch {chunk.batch_id} from {stats.endpoint} (chunk {chunk.number}, stored after "
                f"{stats.requested_since:%Y-%m-%d %H:%M}Z)",
                f"{counts.rejected} of {counts.distinct} statements rejected ({reject_rate:.1%} > "
                f"{max_reject_rate:.1%}): {counts.top_reasons}",
                f"nothing of this chunk was published, {stats.chunks_published} earlier chunk(s) were, and "
                f"the watermark stays at {_iso(stats.watermark) or 'its previous value'}; inspect "
                "raw.lms_statement_rejected for this batch, get the LMS vendor to fix the statements (or "
                "raise lms.max_reject_rate if they are acceptable), then clear the task",
                "lms-batch-rejected",
            )
        stats.new += new
        stats.late += chunk.late
        stats.rejects_accepted_before += chunk.rejects_accepted_before
        stats.voids += voids
        stats.chunks_published += 1
        stats.watermark = watermark_after
        if counts.max_stored is not None and (
            stats.max_stored is None or counts.max_stored > stats.max_stored
        ):
            stats.max_stored = counts.max_stored

    def _alert_clock(self, chunk: Chunk, stats: BatchStats, warning: str | None) -> None:
        """The standard alert (once per batch) when the LRS's clock runs ahead of ours; never raises."""
        if warning is None or stats.extra.get("clock_warning"):
            return
        stats.extra["clock_warning"] = warning
        message = (
            f"TURNOVER-SIGNALS ALERT {self.run.dag_id or 'lms_api_ingest'} run {self.run.run_id or '?'}: "
            f"xAPI batch {chunk.batch_id} from {stats.endpoint}: {warning}. Next step: ask the LMS vendor to "
            "correct the LRS's clock (NTP) and to void the statements it stored in the future (listed in "
            "raw.lms_statement_rejected); the extraction goes on without them "
            f"(runbook: {runbook_link('lms-clock-skew')})"
        )
        try:
            notifier = configured_notifier(self.config, message)
            if not isinstance(notifier, LogNotifier):  # which logs it itself
                log.warning("%s", message)
            notifier.notify({})
        except Exception:  # noqa: BLE001 - a broken notifier must not fail a published batch
            log.exception("the configured notifier failed; the alert was: %s", message)

    # The reject steps scan the whole checks table (every statement's JSON with it): only where there are any.
    def _record_rejects(
        self, conn: psycopg.Connection, chunk: Chunk, stats: BatchStats, counts: ChunkCounts
    ) -> None:
        if not counts.rejected:
            return
        conn.execute(
            sql.SQL(read_sql("raw", "lms_statement_rejected")).format(checks=chunk.checks),
            {"source": stats.source, "batch": chunk.batch_id, "refused": list(REFUSED_REASONS)},
        )

    def _accept_rejects(self, conn: psycopg.Connection, chunk: Chunk, counts: ChunkCounts) -> None:
        if not counts.rejected:
            return
        conn.execute(
            sql.SQL(ACCEPT_REJECTS_SQL).format(checks=chunk.checks, reject_sha256=sql.SQL(_REJECT_SHA256)),
            {"batch": chunk.batch_id, "refused": list(REFUSED_REASONS)},
        )

    def _publish(
        self, conn: psycopg.Connection, chunk: Chunk, stats: BatchStats, counts: ChunkCounts
    ) -> tuple[int, int]:
        """Publish a chunk that passed its gate (after its rejects were recorded; `counts` as of now): its
        rejects are accepted, its new statements inserted and its voids applied."""
        self._accept_rejects(conn, chunk, counts)
        conn.execute(sql.SQL("create temp view checked_batch as select * from {}").format(chunk.checks))
        # New to the warehouse unless the LRS serves a statement again under a later stored time or the
        # watermark was held back (the LRS's consistency point): `insert_new_statements` probes then.
        expect_all_new = is_stored_after(counts, stats.watermark)
        with probing_published_statements_by_index(conn):
            inserted = insert_new_statements(
                conn,
                sql.SQL(read_sql("raw", "lms_statement")).format(checks=chunk.checks),
                {"source": stats.source, "batch": chunk.batch_id},
                expect_all_new,
                f"raw.lms_statement, chunk {chunk.batch_id}",
            )
            insert_new_statements(
                conn,
                sql.SQL(
                    "insert into core.lms_activity ({cols}) select {cols} from ({select}) as built where not "
                    "exists (select from core.lms_activity as a where %(probe_published)s and a.statement_id "
                    "= built.statement_id)"
                ).format(
                    cols=sql.SQL(", ").join(map(sql.Identifier, LMS_ACTIVITY_COLUMNS)),
                    select=sql.SQL(read_sql("core", "lms_activity")),
                ),
                {},
                expect_all_new,
                f"core.lms_activity, chunk {chunk.batch_id}",
            )
        conn.execute("drop view checked_batch")
        voids = apply_voids(conn, chunk.checks, chunk.batch_id)
        return inserted, voids

    def _advance_watermark(
        self, conn: psycopg.Connection, chunk: Chunk, counts: ChunkCounts, stats: BatchStats
    ) -> datetime | None:
        candidate = max(filter(None, [stats.max_stored, counts.max_stored]), default=None)
        if candidate is not None and chunk.consistent_through is not None:
            # Statements stored after the LRS's consistency point may still be incomplete.
            candidate = min(candidate, chunk.consistent_through)
        if candidate is not None:
            # Never beyond our own clock (+ the tolerance): a watermark in the future asks every later run for
            # statements stored after it, and the LRS has none to give (counts.max_stored leaves out the
            # statements stored in the future already; this holds whatever else the candidate came from).
            candidate = min(candidate, datetime.now(UTC) + _future_tolerance(self.lms))
        if candidate is None or (stats.watermark is not None and candidate <= stats.watermark):
            return stats.watermark
        advance_watermark(conn, stats.source, candidate, chunk.batch_id)
        return candidate


class ChunkWriter:
    """The checks table of one chunk, filled by one COPY in one transaction: a row per statement as received.

    Each statement is checked here, in the fetching thread, by the chunk's `StatementChecker`; PostgreSQL
    parses its JSON once, into the checks table's jsonb (on this connection's backend, beside the
    publisher's). Statements of unusual shape go in with only their JSON and `is_checked_in_sql`, and the
    checking thread checks them with lms_statement_checks.sql. Repeats of a statement id already in the chunk
    are dropped here: the first copy received wins.
    """

    def __init__(self, conn: psycopg.Connection, chunk: Chunk):
        self.chunk = chunk
        self._seen: set[str] = set()
        self._stack = ExitStack()
        self._stack.enter_context(conn.transaction())
        try:
            self._stream = self._start(conn, chunk)
        except BaseException:
            # Roll back now: a session left inside the failed transaction would fail the caller's cleanup
            # (dropping the chunks staged before this one) and hide this error behind its own.
            self._stack.__exit__(*sys.exc_info())
            raise

    def _start(self, conn: psycopg.Connection, chunk: Chunk) -> Any:
        """Create the chunk's checks table and open the COPY into it (inside the chunk's transaction)."""
        conn.execute(sql.SQL("drop table if exists {}").format(chunk.checks))
        # The definition's own columns and types: nothing to keep in step by hand.
        conn.execute(_RECEIVED_STATEMENTS_NONE)
        conn.execute(
            sql.SQL(
                "create unlogged table {} as select {}, true as is_checked_in_sql "
                "from ({}) as checks with no data"
            ).format(chunk.checks, _CHECK_COLUMN_LIST, sql.SQL(read_sql("staging", "lms_statement_checks"))),
            _definition_parameters(chunk.checker),
        )
        conn.execute("drop view received_statements")
        column_types = [
            oid
            for (oid,) in conn.execute(
                "select atttypid from pg_attribute where attrelid = %s::regclass and attnum > 0"
                " and not attisdropped order by attnum",
                (chunk.checks.as_string(conn),),
            )
        ]
        cursor = self._stack.enter_context(conn.cursor())
        # The statement's JSON goes as the text received (jsonb's binary form is a version byte and the text)
        cursor.adapters.register_dumper(None, _JsonTextBinaryDumper)
        stream = self._stack.enter_context(
            cursor.copy(
                # Binary: the times, numbers and booleans the checker computed go as values, not as text for
                # PostgreSQL to parse again (half its CPU for the COPY of a chunk, and a third of ours).
                sql.SQL("copy {} ({}, is_checked_in_sql) from stdin (format binary)").format(
                    chunk.checks, _CHECK_COLUMN_LIST
                ),
                # PostgreSQL parses the rows (the statement's jsonb most of all) while this thread checks
                # the next ones, instead of this thread waiting on the socket.
                writer=QueuedLibpqWriter(cursor),
            )
        )
        stream.set_types(column_types)
        return stream

    def write(self, page: StatementPage) -> None:
        self.chunk.pages += 1
        self.chunk.received += page.received
        check = self.chunk.checker.check
        write_row = self._stream.write_row
        seen = self._seen
        first_order = page.page_number * 4294967296
        # Statements refused for their size or depth keep their place on the page (received_order)
        refused_at = {refusal.position for refusal in page.refused}
        positions = (n for n in range(1, page.received + 1) if n not in refused_at)
        rejected = 0
        for refusal in page.refused:
            row = refused_row(first_order + refusal.position, refusal, self.chunk.checker.future_limit)
            if row[2] in seen:
                continue
            seen.add(row[2])
            write_row((*row, False))
            rejected += 1
        for position, statement in zip(positions, page_statement_texts(page), strict=False):
            row = check(first_order + position, statement)
            if row is None:
                self.chunk.checked_in_sql += 1
                write_row(_unchecked_row(first_order + position, statement.decode("utf-8")))
                continue
            statement_id = row[2]
            if statement_id in seen:
                continue
            seen.add(statement_id)
            write_row((*row, False))
            if row[_REJECT_REASON] is not None:
                rejected += 1
        self.chunk.rejected_while_fetching += rejected

    def close(self, stats: BatchStats) -> Chunk:
        """Commit the checked statements; the chunk is then complete and can be published."""
        self._stack.close()
        self.chunk.consistent_through = stats.consistent_through
        return self.chunk

    def abandon(self) -> None:
        self._stack.__exit__(RuntimeError, RuntimeError("chunk abandoned"), None)


class _JsonTextBinaryDumper(Dumper):
    """jsonb in binary COPY from JSON text: the format's version byte, then the text as received."""

    format = pq.Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode("utf-8")


_RECEIVED_STATEMENTS_NONE = (
    "create or replace temp view received_statements as"
    " select null::bigint as received_order, null::jsonb as statement where false"
)
_CHECK_COLUMN_LIST = sql.SQL(", ").join(map(sql.Identifier, CHECK_COLUMNS))
_REJECT_REASON = CHECK_COLUMNS.index("reject_reason")
_UNCHECKED_NONES = (None,) * (len(CHECK_COLUMNS) - 2)


def _unchecked_row(received_order: int, statement: str) -> tuple[Any, ...]:
    return (received_order, statement, *_UNCHECKED_NONES, True)


def _definition_parameters(checker: StatementChecker) -> dict[str, Any]:
    return {"future_limit": checker.future_limit, "verb_event_types": Jsonb(checker.verb_event_types)}


def _check_in_sql(conn: psycopg.Connection, chunk: Chunk) -> None:
    """Fill the columns of the statements marked `is_checked_in_sql` from lms_statement_checks.sql."""
    filled = [column for column in CHECK_COLUMNS if column not in ("received_order", "statement")]
    conn.execute(
        sql.SQL(
            "create or replace temp view received_statements as"
            " select received_order, statement from {} where is_checked_in_sql"
        ).format(chunk.checks)
    )
    conn.execute(
        sql.SQL(
            "update {checks} as c set ({columns}) = ({values}) from ({definition}) as s"
            " where c.is_checked_in_sql and c.received_order = s.received_order"
        ).format(
            checks=chunk.checks,
            columns=sql.SQL(", ").join(map(sql.Identifier, filled)),
            values=sql.SQL(", ").join(sql.Identifier("s", column) for column in filled),
            definition=sql.SQL(read_sql("staging", "lms_statement_checks")),
        ),
        _definition_parameters(chunk.checker),
    )
    conn.execute("drop view received_statements")


@dataclass
class CheckedChunk:
    """A chunk whose checks are finished and counted, and its gate's outcome (None for an empty chunk)."""

    chunk: Chunk
    counts: ChunkCounts
    outcome: ValidationOutcome | None
    handled: threading.Event = field(default_factory=threading.Event)  # by the publishing thread

    @property
    def failed_gate(self) -> bool:
        return self.outcome is not None and not self.outcome.success


@dataclass
class CheckFailed:
    """A chunk whose checks or gate raised, handed on to be raised in chunk order."""

    chunk: Chunk
    error: BaseException
    session_lost: bool  # the checking thread's warehouse session ended under it


# Chunks staged and not yet published: the one being published and the next, fetched and gated meanwhile.
# Fetching further ahead only takes CPU from the publishing thread, the loader's critical path: 1M
# statements on 2 cores took 28.5 s with 2 against 32.5 s with no limit (benchmarks/HISTORY.md, 2026-12-07).
MAX_CHUNKS_IN_FLIGHT = 2


class ChunkPublisher:
    """Two threads, each with its own warehouse connection: one finishes the checks of each staged chunk and
    gates it, the other publishes the gated chunks in order.

    The gate of a chunk (its SQL checks, counts and Great Expectations suite) runs while the chunk before it
    is published: publishing is the loader's longest step, and the two share nothing but the rejects a
    published chunk accepts, which the publishing thread drops again before it publishes (and re-gates the
    chunk if there were any). Fetching a chunk waits until the chunk two before it is published
    (`reserve`, MAX_CHUNKS_IN_FLIGHT), so it runs ahead of publishing by one chunk: memory and staging
    space stay flat, and the publisher is not starved of CPU. After the first error no further chunk is gated
    or published; the error is kept for the caller to raise.
    """

    def __init__(self, extraction: StatementExtraction, stats: BatchStats):
        self.extraction = extraction
        self.stats = stats
        self.error: BaseException | None = None
        self._staged: queue.Queue[Chunk | None] = queue.Queue(maxsize=1)
        self._checked: queue.Queue[CheckedChunk | CheckFailed | None] = queue.Queue(maxsize=1)
        self._in_flight = threading.BoundedSemaphore(MAX_CHUNKS_IN_FLIGHT)  # released as each is handled
        name = extraction.batch_id
        self._threads = [
            threading.Thread(target=self._check_staged, name=f"xapi-check-{name}", daemon=True),
            threading.Thread(target=self._publish_checked, name=f"xapi-publish-{name}", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def reserve(self) -> bool:
        """Wait until a new chunk may be staged (fewer than MAX_CHUNKS_IN_FLIGHT unpublished); False once a
        chunk failed, since nothing after it is published."""
        while not self._in_flight.acquire(timeout=0.5):
            if self.error is not None or not self._threads[1].is_alive():
                return False
        return self.error is None

    def submit(self, chunk: Chunk) -> None:
        self._staged.put(chunk)

    def finish(self) -> None:
        """Wait until every submitted chunk is published (or skipped after an error)."""
        if self._threads[0].is_alive():
            self._staged.put(None)
        for thread in self._threads:
            if thread.ident is not None:  # started
                thread.join()

    def _connection(self, stack: ExitStack) -> psycopg.Connection:
        extraction = self.extraction
        return stack.enter_context(
            warehouse_connection(extraction.config["connections"]["warehouse"], extraction.dsn)
        )

    def _check_staged(self) -> None:
        try:
            with ExitStack() as stack:
                conn = None
                failed = False
                while (chunk := self._staged.get()) is not None:
                    if failed or self.error is not None:
                        continue  # keep draining, so the fetching thread never blocks on a dead publisher
                    try:
                        conn = conn or self._connection(stack)
                        checked: CheckedChunk | CheckFailed = self.extraction.check_chunk(
                            conn, chunk, self.stats
                        )
                    except BaseException as exc:  # noqa: BLE001 - raised in order by the publishing thread
                        lost = isinstance(exc, psycopg.OperationalError) and connection_lost(exc, conn)
                        checked, failed = CheckFailed(chunk, exc, lost), True
                    self._checked.put(checked)
                    if isinstance(checked, CheckedChunk) and checked.failed_gate:
                        # Most likely the extraction stops here: gate nothing more (a Data Docs page for a
                        # chunk never published) until the publishing thread has had it. Re-gated, with the
                        # rejects the chunk before accepted dropped, it may still pass and publish.
                        while not checked.handled.wait(1) and self._threads[1].is_alive():
                            pass
        finally:
            self._checked.put(None)

    def _publish_checked(self) -> None:
        with ExitStack() as stack:
            conn = None
            while (checked := self._checked.get()) is not None:
                try:
                    if self.error is not None:
                        continue
                    if isinstance(checked, CheckFailed):
                        self.error = self.extraction.check_failed(checked, self.stats)
                        continue
                    conn = conn or self._connection(stack)
                    self.extraction.publish_checked(conn, checked, self.stats)
                except BaseException as exc:  # noqa: BLE001 - re-raised by the caller's thread
                    self.error = exc
                finally:
                    if isinstance(checked, CheckedChunk):
                        checked.handled.set()
                    self._in_flight.release()


# The sha256 a reject is recorded under (include/sql/raw/lms_statement_rejected.sql): of what was received for
# a refused statement, of its JSON otherwise.
_REJECT_SHA256 = (
    "case when c.reject_reason = any(%(refused)s) then c.statement #>> '{refused_statement,sha256}'"
    " else encode(sha256(convert_to(c.statement::text, 'UTF8')), 'hex') end"
)
# Before the gate: rejects an earlier published chunk accepted leave the chunk (counted, not gated again).
DROP_ACCEPTED_REJECTS_SQL = """
delete from {checks} as c
using raw.lms_statement_rejected as r
where c.reject_reason is not null and r.accepted_in_batch is not null
    and r.reason = c.reject_reason and r.payload_sha256 = {reject_sha256}
"""


def _drop_accepted_rejects(conn: psycopg.Connection, chunk: Chunk) -> int:
    return conn.execute(
        sql.SQL(DROP_ACCEPTED_REJECTS_SQL).format(checks=chunk.checks, reject_sha256=sql.SQL(_REJECT_SHA256)),
        {"refused": list(REFUSED_REASONS)},
    ).rowcount


# A passed chunk accepts its rejects (first acceptance kept).
ACCEPT_REJECTS_SQL = """
update raw.lms_statement_rejected as r set accepted_in_batch = %(batch)s
from {checks} as c
where c.reject_reason is not null and r.accepted_in_batch is null
    and r.reason = c.reject_reason and r.payload_sha256 = {reject_sha256}
"""


LMS_ACTIVITY_COLUMNS = (
    "statement_id",
    "learner_identifier",
    "learner_identifier_type",
    "event_type",
    "verb_id",
    "course_id",
    "course_name",
    "score_normalized",
    "is_success",
    "is_completion",
    "duration_seconds",
    "occurred_at",
    "is_timestamp_assumed_utc",
    "stored_at",
    "is_voided",
)


# The targets of the voiding statements published by these chunks that no statement in the warehouse is
# (through the partial index on voiding statements).
MISSING_VOID_TARGETS_SQL = """
select distinct void.statement #>> '{object,id}'
from raw.lms_statement as void
where void.batch_id = any(%(batch_ids)s)
  and void.statement #>> '{verb,id}' = 'http://adlnet.gov/expapi/verbs/voided'
  and void.statement #>> '{object,objectType}' = 'StatementRef'
  and not exists (select from raw.lms_statement as target
      where target.statement_id = void.statement #>> '{object,id}')
order by 1
"""


def apply_voids(conn: psycopg.Connection, checks: sql.Identifier, batch_id: str) -> int:
    """Mark as voided every statement targeted by a voiding statement where either side is in this
    chunk (a void may arrive before or after its target); record each in the audit table.

    The chunk's own voids come from its checks table; earlier voids of its statements are found
    through the partial index on voiding statements, so the cost does not grow with the raw history.
    """
    return conn.execute(
        sql.SQL(read_sql("audit", "lms_void_applied")).format(checks=checks), {"batch": batch_id}
    ).rowcount


def _check_counts(conn: psycopg.Connection, checks: sql.Identifier) -> ChunkCounts:
    # Statements stored in the future (rejected) do not count towards the watermark: it would pass our clock.
    distinct, rejected, max_stored, stored_in_future, newest_stored, lateness, min_accepted_stored = (
        conn.execute(
            sql.SQL(
                "select count(*), count(reject_reason),"
                " max(stored_at) filter (where not is_stored_in_future),"
                " count(*) filter (where is_stored_in_future), max(stored_at),"
                " extract(epoch from max(stored_at - occurred_at) filter (where reject_reason is null))"
                "::bigint, min(stored_at) filter (where reject_reason is null)"
                " from {}"
            ).format(checks)
        ).fetchone()
    )
    reasons = (
        conn.execute(
            sql.SQL(
                "select reject_reason, count(*) from {} where reject_reason is not null"
                " group by 1 order by 2 desc, 1 limit 3"
            ).format(checks)
        ).fetchall()
        if rejected
        else []
    )
    top = "; ".join(f"{reason} ({count})" for reason, count in reasons) or "none"
    return ChunkCounts(
        distinct, rejected, max_stored, top, stored_in_future, newest_stored, lateness, min_accepted_stored
    )


def note_page(stats: BatchStats, page: StatementPage) -> None:
    """Count a received page and keep the smallest Consistent-Through seen (the watermark's cap)."""
    stats.pages += 1
    if page.consistent_through is not None:
        stats.consistent_through = min(filter(None, [stats.consistent_through, page.consistent_through]))


def count_late(conn: psycopg.Connection, chunk: Chunk, stats: BatchStats, counts: ChunkCounts) -> None:
    """Count, before publishing, the chunk's new statements that a plain `since = watermark` query would have
    missed (their filtered time at or before the watermark the batch started from: found by the overlap,
    the look-back or a sweep); note the longest stored - timestamp among its accepted statements (how far a
    timestamp look-back must reach), counted with the chunk's checks."""
    chunk.max_lateness_seconds = counts.max_lateness_seconds
    if stats.watermark_before is None:
        chunk.late = 0  # the first extraction: nothing is late, and no need to scan the chunk to say so
        return
    if stats.since_field == "stored" and is_stored_after(counts, stats.watermark_before):
        chunk.late = 0  # every accepted statement was stored after the watermark: none can be late
        return
    filtered = sql.Identifier("stored_at" if stats.since_field == "stored" else "occurred_at")
    with probing_published_statements_by_index(conn):
        (chunk.late,) = conn.execute(
            sql.SQL(
                "select count(*) from {checks} as c where c.reject_reason is null and c.{filtered} <= "
                "%(watermark)s and not exists (select from raw.lms_statement as r where r.statement_id = "
                "c.statement_id)"
            ).format(filtered=filtered, checks=chunk.checks),
            {"watermark": stats.watermark_before},
        ).fetchone()


# Every writer of raw.lms_statement and core.lms_activity publishes under this lock (the hourly extraction,
# a backfill's slices, the voided statements it recovers): one publish at a time, so a plain insert of the
# ids not there yet cannot meet a concurrent insert of the same id. `on conflict do nothing` would not need
# it, but its speculative insertion cost 2.3 times a plain insert into raw.lms_statement (0.84 s -> 1.91 s
# per 100,000 statements measured with benchmarks/lms_load.py's statements).
STATEMENT_PUBLISH_LOCK = "turnover-signals: publish xAPI statements"


def lock_statement_publishing(conn: psycopg.Connection) -> None:
    """Wait for, and hold until the caller's transaction ends, the right to publish statements."""
    conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (STATEMENT_PUBLISH_LOCK,))


def is_stored_after(counts: ChunkCounts, watermark: datetime | None) -> bool:
    """Whether the chunk has accepted statements and every one was stored after `watermark` (None: there
    is no watermark yet)."""
    return counts.min_accepted_stored is not None and (
        watermark is None or counts.min_accepted_stored > watermark
    )


def insert_new_statements(
    conn: psycopg.Connection,
    statement: sql.Composable,
    params: dict[str, Any],
    expect_all_new: bool,
    target: str,
) -> int:
    """Run an insert of a chunk's statements not published yet (`statement`, with the parameter
    `probe_published`); how many rows it inserted.

    Probing the target's primary key for every id before inserting it is a second descent of that index
    per statement (benchmarks/lms_publish_costs.py: 2.5 µs a statement for raw and core together). A
    chunk expected to be all new is inserted without the probe, the primary key alone meeting each id, in
    a savepoint: should a statement be there already after all, the key refuses it, the attempt is undone
    and the insert runs again with the probe. Under the publish lock no one else inserts meanwhile.
    """
    if expect_all_new:
        try:
            with conn.transaction():
                return conn.execute(statement, {**params, "probe_published": False}).rowcount
        except psycopg.errors.UniqueViolation:
            log.info(
                "%s: a statement stored after the watermark was published already; inserting again, "
                "leaving out those published",
                target,
            )
    return conn.execute(statement, {**params, "probe_published": True}).rowcount


@contextmanager
def probing_published_statements_by_index(conn: psycopg.Connection) -> Iterator[None]:
    """Inside the block, join a chunk to the published statements by index lookups only.

    A chunk (about `lms.publish_chunk_statements`) is checked against raw.lms_statement and core.lms_activity,
    which grow without bound. With a hash or merge join the planner reads the whole published table once per
    chunk (it prices a sequential read below 100,000 random index probes, and with stale statistics it
    thinks the table small): a 1,000,000-statement load turned quadratic, each chunk slower than the one
    before. Index probes keep a chunk's cost proportional to the chunk. Only inside the block: elsewhere a
    hash join of two chunk-sized sets is the right plan.
    """
    conn.execute("set local enable_hashjoin = off")
    conn.execute("set local enable_mergejoin = off")
    try:
        yield
    finally:
        if not conn.closed and conn.info.transaction_status == TransactionStatus.INTRANS:
            conn.execute("reset enable_hashjoin")
            conn.execute("reset enable_mergejoin")


def _drop_scratch(conn: psycopg.Connection, chunks: list[Chunk]) -> None:
    """Drop the chunks' checks tables; on a lost session, leave them to the next extraction (`lms.staging`)
    rather than hide the error being raised."""
    if not chunks:
        return
    try:
        with conn.transaction():
            for chunk in chunks:
                conn.execute(sql.SQL("drop table if exists {}").format(chunk.checks))
    except psycopg.OperationalError as exc:
        if not connection_lost(exc, conn):
            raise
        log.warning(
            "warehouse session lost: %d staging table(s) of batch %s left for the next extraction to drop",
            len(chunks),
            chunks[0].batch_id,
        )


def _record_batch(
    conn: psycopg.Connection,
    run: RunIdentity,
    chunk: Chunk,
    stats: BatchStats,
    counts: ChunkCounts,
    new: int,
    voids: int,
    reject_rate: float,
    watermark_before: datetime | None,
    watermark_after: datetime | None,
    reason: str | None,
    outcome: ValidationOutcome | None,
) -> None:
    conn.execute(
        read_sql("audit", "lms_extract_batch"),
        {
            "batch_id": chunk.batch_id,
            "source": stats.source,
            "endpoint": stats.endpoint,
            "requested_since": stats.requested_since,
            "watermark_before": watermark_before,
            "watermark_after": watermark_after,
            "consistent_through": chunk.consistent_through,
            "pages": chunk.pages,
            "statements_received": chunk.received,
            "statements_new": new,
            "statements_already_loaded": counts.distinct - counts.rejected - new,
            "statements_rejected": counts.rejected,
            "voids_applied": voids,
            "reject_rate": reject_rate,
            "status": "published" if reason is None else "failed",
            "reason": reason,
            "validation_id": outcome.validation_id if outcome else None,
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "task_id": run.task_id,
            "try_number": run.try_number,
            "started_at": stats.started_at,
            "strategy": stats.strategy,
            "extraction_kind": stats.kind,
            "statements_late": chunk.late,
            "max_lateness_seconds": chunk.max_lateness_seconds,
            # counted once, on the first chunk's row (the task's batch id)
            "orphan_tables_dropped": stats.orphan_tables_dropped if chunk.number == 1 else 0,
        },
    )


def _future_tolerance(lms: Mapping[str, Any]) -> timedelta:
    return timedelta(minutes=float(lms["future_timestamp_tolerance_minutes"]))


def clock_warning(
    consistent_through: datetime | None, counts: ChunkCounts, now: datetime, lms: Mapping[str, Any]
) -> str | None:
    """What says the LRS's clock runs ahead of ours by more than the tolerance, or None.

    Its stored times (rejected, and kept out of the watermark) or its X-Experience-API-Consistent-Through
    header beyond now + lms.future_timestamp_tolerance_minutes.
    """
    limit = now + _future_tolerance(lms)
    signs = []
    if counts.stored_in_future:
        signs.append(
            f"{counts.stored_in_future} statement(s) stored as late as {_iso(counts.newest_stored)} "
            "(rejected: 'stored is in the future beyond the tolerance')"
        )
    if consistent_through is not None and consistent_through > limit:
        signs.append(f"X-Experience-API-Consistent-Through {_iso(consistent_through)}")
    if not signs:
        return None
    return (
        f"the LRS's clock is ahead of ours ({_iso(now)}) by more than "
        f"lms.future_timestamp_tolerance_minutes ({lms['future_timestamp_tolerance_minutes']}): "
        f"{'; '.join(signs)}; the watermark stays at or before our clock"
    )


def _record_clock_warning(conn: psycopg.Connection, batch_id: str, warning: str | None) -> None:
    conn.execute(
        "update audit.lms_extract_batch set clock_warning = %s where batch_id = %s", (warning, batch_id)
    )


def _initial_since(lms: Mapping[str, Any]) -> datetime:
    initial = lms.get("initial_since")
    return parse_xapi_timestamp(initial) if initial else EPOCH


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def retry_policy(lms: Mapping[str, Any]) -> RetryPolicy:
    """The LMS clients' retry settings from the `lms` config section."""
    return RetryPolicy(
        attempts=int(lms["max_retries"]),
        initial_backoff_seconds=float(lms.get("initial_backoff_seconds", 1.0)),
        max_backoff_seconds=float(lms.get("max_backoff_seconds", 30.0)),
        max_retry_after_seconds=float(lms.get("max_retry_after_seconds", 120.0)),
    )


def read_watermark(conn: psycopg.Connection, source: str) -> datetime | None:
    row = conn.execute(
        "select watermark from audit.extract_watermark where source = %s", (source,)
    ).fetchone()
    return row[0] if row else None


def advance_watermark(conn: psycopg.Connection, source: str, watermark: datetime, batch_id: str) -> None:
    """Move the source's watermark forward (never back), inside the caller's publishing transaction."""
    conn.execute(
        read_sql("audit", "extract_watermark"),
        {"source": source, "watermark": watermark, "batch_id": batch_id},
    )


def xapi_client(config: Mapping[str, Any]) -> XapiClient:
    lms = config["lms"]
    return XapiClient(
        config["connections"]["lms_api"],
        timeout=float(lms["request_timeout_seconds"]),
        retry=retry_policy(lms),
        statement_bounds=statement_bounds(lms),
    )


def statement_bounds(lms: Mapping[str, Any]) -> StatementBounds:
    """The largest statement the client parses, from the `lms` config section."""
    return StatementBounds(
        max_depth=int(lms.get("max_statement_depth", DEFAULT_MAX_STATEMENT_DEPTH)),
        max_bytes=int(lms.get("max_statement_bytes", DEFAULT_MAX_STATEMENT_BYTES)),
        excerpt_bytes=int(lms.get("rejected_excerpt_bytes", DEFAULT_REFUSED_EXCERPT_BYTES)),
    )


def extract_statements(
    config: Mapping[str, Any],
    run: RunIdentity | None = None,
    dsn: str | None = None,
    client: XapiClient | None = None,
) -> dict[str, Any]:
    """Extract every statement stored since the watermark (minus the overlap) and publish it once."""
    client = client or xapi_client(config)
    with client:
        return StatementExtraction(config, run or RunIdentity(), dsn, client).run_batch()
