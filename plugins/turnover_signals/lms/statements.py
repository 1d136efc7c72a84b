"""Incremental, exactly-once extraction of xAPI statements into the warehouse.

Write-audit-publish per extraction batch: pages stream by COPY into a staging table as they
arrive (memory stays flat), the batch is checked in SQL and gated by Great Expectations, then
ONE transaction publishes the accepted statements (`raw.lms_statement`, idempotent on the
statement id), the rejects with their reasons, `core.lms_activity`, the voids, the batch's
audit row and the advanced watermark. The watermark never moves ahead of the data it covers,
and a batch whose reject rate exceeds the threshold publishes nothing and keeps it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import great_expectations.expectations as gxe
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from turnover_signals.errors import BadInputError
from turnover_signals.quality.gate import (
    RunIdentity,
    SuiteDefinition,
    described,
    record_validation,
    run_suite,
)
from turnover_signals.sources.http_base import RetryPolicy
from turnover_signals.sources.xapi import (
    TimezoneMissingError,
    XapiClient,
    XapiTimestampError,
    parse_xapi_timestamp,
)
from turnover_signals.sqlfiles import read_sql
from turnover_signals.warehouse import sqlalchemy_url, warehouse_connection

log = logging.getLogger(__name__)

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SUITE_VERSION = "1"
STAGING_COLUMNS = (
    "received_order", "statement_id", "occurred_at", "timestamp_problem", "is_timestamp_assumed_utc",
    "stored_at", "statement", "payload_sha256", "raw_text",
)  # fmt: skip


@dataclass
class BatchStats:
    batch_id: str
    source: str
    endpoint: str
    requested_since: datetime
    watermark_before: datetime | None
    started_at: datetime
    pages: int = 0
    received: int = 0
    max_stored: datetime | None = None
    consistent_through: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def batch_id_for(run: RunIdentity) -> str:
    """One batch per task instance of a DAG run (a rerun replaces its audit row); random outside Airflow."""
    if run.dag_id and run.run_id and run.task_id:
        return hashlib.sha256(f"{run.dag_id}|{run.run_id}|{run.task_id}".encode()).hexdigest()[:20]
    return uuid.uuid4().hex[:20]


def staging_row(order: int, statement: Any) -> tuple:
    """The staging row of one received statement; problems are recorded, never raised."""
    raw_text = json.dumps(statement, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    payload_sha256 = hashlib.sha256(raw_text.encode("utf-8")).hexdigest()
    if not isinstance(statement, dict):
        return (order, f"payload:{payload_sha256}", None, "not a JSON object", False, None,
                Jsonb(statement), payload_sha256, raw_text)  # fmt: skip
    statement_id = str(statement.get("id") or f"payload:{payload_sha256}")
    problem, assumed_utc, occurred_at = None, False, None
    # The experience time; an LRS sets timestamp = stored when the statement carried none.
    occurred_text = statement.get("timestamp") or statement.get("stored")
    try:
        occurred_at = parse_xapi_timestamp(occurred_text)
    except TimezoneMissingError:
        # xAPI timestamps SHOULD carry a zone; one without is read as UTC and flagged, not dropped.
        occurred_at = datetime.fromisoformat(str(occurred_text).strip()).replace(tzinfo=UTC)
        assumed_utc = True
    except (XapiTimestampError, ValueError):
        problem = "timestamp is not an ISO 8601 time"
    try:
        stored_at = parse_xapi_timestamp(statement.get("stored"))
    except (XapiTimestampError, ValueError):
        stored_at = None
        problem = problem or "stored is missing or not an ISO 8601 time with a zone"
    return (order, statement_id, occurred_at, problem, assumed_utc, stored_at, Jsonb(statement),
            payload_sha256, raw_text)  # fmt: skip


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
            described(gxe.ExpectColumnValuesToBeInSet(column="is_id_uuid", value_set=[True], mostly=mostly),
                      "statement ids are UUIDs"),
            described(gxe.ExpectColumnValuesToBeNull(column="timestamp_problem", mostly=mostly),
                      "timestamps parse"),
            described(gxe.ExpectColumnValuesToBeInSet(column="is_in_future", value_set=[False], mostly=mostly),
                      "timestamps are not in the future beyond the tolerance"),
            described(gxe.ExpectColumnValuesToBeInSet(column="is_verb_iri", value_set=[True], mostly=mostly),
                      "verb ids are IRIs"),
            described(gxe.ExpectColumnValuesToBeBetween(column="actor_identifier_count", min_value=1, max_value=1,
                                                        mostly=mostly),
                      "the actor has exactly one identifier"),
            # Row-level booleans, not the raw values: GX measures `mostly` over non-null values only.
            described(gxe.ExpectColumnValuesToBeInSet(column="is_score_in_range", value_set=[True], mostly=mostly),
                      "scaled scores are within [-1, 1]"),
        ],
    )  # fmt: skip


class StatementExtraction:
    """One extraction batch: stage, gate, then publish or fail."""

    def __init__(self, config: Mapping[str, Any], run: RunIdentity, dsn: str | None, client: XapiClient):
        self.config = config
        self.lms = config["lms"]
        self.run = run
        self.dsn = dsn
        self.client = client
        self.batch_id = batch_id_for(run)
        self.staging = sql.Identifier("staging", f"lms_batch_{self.batch_id}")
        self.checks = sql.Identifier("staging", f"lms_batch_{self.batch_id}__checks")

    # -- staging -----------------------------------------------------------------------------

    def _stage(self, conn: psycopg.Connection, stats: BatchStats) -> None:
        with conn.transaction():
            conn.execute(sql.SQL("drop table if exists {}").format(self.staging))
            conn.execute(
                sql.SQL(
                    "create unlogged table {} (received_order bigint, statement_id text, occurred_at timestamptz,"
                    " timestamp_problem text, is_timestamp_assumed_utc boolean, stored_at timestamptz,"
                    " statement jsonb, payload_sha256 text, raw_text text)"
                ).format(self.staging)
            )
        copy = sql.SQL("copy {} ({}) from stdin").format(
            self.staging, sql.SQL(", ").join(map(sql.Identifier, STAGING_COLUMNS))
        )
        limit = int(self.lms["statements_page_limit"])
        for page in self.client.iter_statement_pages(stats.requested_since, limit=limit, ascending=True):
            stats.pages += 1
            if page.consistent_through is not None:
                stats.consistent_through = min(filter(None, [stats.consistent_through, page.consistent_through]))
            if not page.statements:
                continue
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy) as stream:
                for statement in page.statements:
                    row = staging_row(stats.received, statement)
                    stats.received += 1
                    if row[5] is not None and (stats.max_stored is None or row[5] > stats.max_stored):
                        stats.max_stored = row[5]
                    stream.write_row(row)
        log.info("xAPI batch %s: %d statement(s) received in %d page(s)", self.batch_id, stats.received, stats.pages)

    def _build_checks(self, conn: psycopg.Connection, future_limit: datetime) -> None:
        with conn.transaction():
            conn.execute(sql.SQL("drop table if exists {}").format(self.checks))
            conn.execute(sql.SQL("create temp view staging_batch as select * from {}").format(self.staging))
            conn.execute(
                sql.SQL("create unlogged table {} as {}").format(
                    self.checks, sql.SQL(read_sql("staging", "lms_statement_checks"))
                ),
                {"future_limit": future_limit},
            )
            conn.execute("drop view staging_batch")

    def _drop_scratch(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute(sql.SQL("drop table if exists {}").format(self.checks))
            conn.execute(sql.SQL("drop table if exists {}").format(self.staging))

    # -- the run -----------------------------------------------------------------------------

    def run_batch(self) -> dict[str, Any]:
        # Keyed by connection id, not URL: the watermark survives a host move behind the same
        # connection (pointing it at a different LRS needs a watermark reset, see the runbook).
        source = f"xapi:{self.client.conn_id or self.client.base_url}"
        conn_id = self.config["connections"]["warehouse"]
        with warehouse_connection(conn_id, self.dsn) as conn:
            watermark = read_watermark(conn, source)
            overlap = timedelta(days=float(self.lms["since_overlap_days"]))
            since = (watermark - overlap) if watermark else _initial_since(self.lms)
            stats = BatchStats(self.batch_id, source, self.client.statements_url, since, watermark, datetime.now(UTC))
            try:
                self._stage(conn, stats)
                tolerance = timedelta(minutes=float(self.lms["future_timestamp_tolerance_minutes"]))
                self._build_checks(conn, datetime.now(UTC) + tolerance)
                return self._gate_and_publish(conn, stats)
            finally:
                self._drop_scratch(conn)

    def _gate_and_publish(self, conn: psycopg.Connection, stats: BatchStats) -> dict[str, Any]:
        max_reject_rate = float(self.lms["max_reject_rate"])
        distinct, rejected, top_reasons = _check_counts(conn, self.checks)
        outcome = None
        if distinct:
            outcome = run_suite(
                sqlalchemy_url(self.config["connections"]["warehouse"], self.dsn),
                lms_batch_suite(max_reject_rate),
                data_asset="lms_statement_batch",
                batch_identifier=f"{stats.source} stored>{stats.requested_since.isoformat()} batch {self.batch_id}",
                table=("staging", f"lms_batch_{self.batch_id}__checks"),
                pii_columns=self.config["quality"]["pii_columns"],
            )
        reject_rate = rejected / distinct if distinct else 0.0
        passed = outcome is None or outcome.success
        with conn.transaction():
            self._record_rejects(conn, stats)
            new = voids = 0
            watermark_after = stats.watermark_before
            if passed:
                new, voids = self._publish(conn, stats)
                watermark_after = self._advance_watermark(conn, stats)
            if outcome is not None:
                record_validation(conn, outcome, self.run)
            reason = None if passed else (
                f"reject rate {reject_rate:.1%} exceeds {max_reject_rate:.1%}; top reasons: {top_reasons}"
            )
            self._record_batch(conn, stats, distinct, new, rejected, voids, reject_rate, watermark_after,
                               "published" if passed else "failed", reason, outcome)  # fmt: skip
        summary = {
            "batch_id": self.batch_id, "pages": stats.pages, "received": stats.received, "distinct": distinct,
            "new": new, "rejected": rejected, "voids_applied": voids, "reject_rate": round(reject_rate, 6),
            "watermark_before": _iso(stats.watermark_before), "watermark_after": _iso(watermark_after),
            "status": "published" if passed else "failed",
        }  # fmt: skip
        log.info("xAPI batch summary: %s", summary)
        if not passed:
            raise BadInputError(
                f"xAPI batch {self.batch_id} from {stats.endpoint} (stored after {stats.requested_since:%Y-%m-%d %H:%M}Z)",
                f"{rejected} of {distinct} statements rejected ({reject_rate:.1%} > {max_reject_rate:.1%}): {top_reasons}",
                "nothing was published and the watermark did not move; inspect raw.lms_statement_rejected for "
                "this batch, get the LMS vendor to fix the statements (or raise lms.max_reject_rate if they are "
                "acceptable), then clear the task",
                "lms-batch-rejected",
            )
        return summary

    def _record_rejects(self, conn: psycopg.Connection, stats: BatchStats) -> None:
        conn.execute(
            sql.SQL(
                "insert into raw.lms_statement_rejected"
                " (payload_sha256, reason, statement_id, raw, source, batch_id, rejected_at)"
                " select payload_sha256, reject_reason, nullif(declared_id, ''), raw_text, %(source)s, %(batch)s, now()"
                " from {} where reject_reason is not null"
                " on conflict (payload_sha256, reason) do nothing"
            ).format(self.checks),
            {"source": stats.source, "batch": self.batch_id},
        )

    def _publish(self, conn: psycopg.Connection, stats: BatchStats) -> tuple[int, int]:
        inserted = conn.execute(
            sql.SQL(
                "insert into raw.lms_statement"
                " (statement_id, stored_at, occurred_at, statement, source, batch_id, loaded_at)"
                " select statement_id, stored_at, occurred_at, statement, %(source)s, %(batch)s, now()"
                " from {} where reject_reason is null"
                " on conflict (statement_id) do nothing"
            ).format(self.checks),
            {"source": stats.source, "batch": self.batch_id},
        ).rowcount
        conn.execute(
            sql.SQL("insert into core.lms_activity ({cols}) select {cols} from ({select}) as built"
                    " on conflict (statement_id) do nothing").format(
                cols=sql.SQL(", ").join(map(sql.Identifier, LMS_ACTIVITY_COLUMNS)),
                select=sql.SQL(read_sql("core", "lms_activity")),
            ),
            {"batch_id": self.batch_id, "verb_event_types": Jsonb(self.lms["verb_event_types"])},
        )  # fmt: skip
        voids = apply_voids(conn, self.batch_id)
        return inserted, voids

    def _advance_watermark(self, conn: psycopg.Connection, stats: BatchStats) -> datetime | None:
        candidate = stats.max_stored
        if candidate is not None and stats.consistent_through is not None:
            # Statements stored after the LRS's consistency point may still be incomplete.
            candidate = min(candidate, stats.consistent_through)
        if candidate is None or (stats.watermark_before is not None and candidate <= stats.watermark_before):
            return stats.watermark_before
        advance_watermark(conn, stats.source, candidate, self.batch_id)
        return candidate

    def _record_batch(self, conn, stats, distinct, new, rejected, voids, reject_rate, watermark_after, status,
                      reason, outcome) -> None:  # fmt: skip
        conn.execute(
            """
            insert into audit.lms_extract_batch (
                batch_id, source, endpoint, requested_since, watermark_before, watermark_after,
                consistent_through, pages, statements_received, statements_new, statements_already_loaded,
                statements_rejected, voids_applied, reject_rate, status, reason, validation_id, dag_id, run_id,
                task_id, try_number, started_at, finished_at
            ) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
            on conflict (batch_id) do update set
                requested_since = excluded.requested_since, watermark_before = excluded.watermark_before,
                watermark_after = excluded.watermark_after, consistent_through = excluded.consistent_through,
                pages = excluded.pages, statements_received = excluded.statements_received,
                statements_new = excluded.statements_new,
                statements_already_loaded = excluded.statements_already_loaded,
                statements_rejected = excluded.statements_rejected, voids_applied = excluded.voids_applied,
                reject_rate = excluded.reject_rate, status = excluded.status, reason = excluded.reason,
                validation_id = excluded.validation_id, try_number = excluded.try_number,
                started_at = excluded.started_at, finished_at = excluded.finished_at
            """,
            (
                self.batch_id, stats.source, stats.endpoint, stats.requested_since, stats.watermark_before,
                watermark_after, stats.consistent_through, stats.pages, stats.received, new,
                distinct - rejected - new, rejected, voids, reject_rate, status, reason,
                outcome.validation_id if outcome else None, self.run.dag_id, self.run.run_id, self.run.task_id,
                self.run.try_number, stats.started_at,
            ),
        )  # fmt: skip


LMS_ACTIVITY_COLUMNS = (
    "statement_id", "learner_identifier", "learner_identifier_type", "event_type", "verb_id", "course_id",
    "course_name", "score_normalized", "is_success", "is_completion", "duration_seconds", "occurred_at",
    "is_timestamp_assumed_utc", "stored_at", "is_voided",
)  # fmt: skip


def apply_voids(conn: psycopg.Connection, batch_id: str) -> int:
    """Mark as voided every statement targeted by a voiding statement, where either side is in
    this batch (a void may arrive before or after its target); record each in the audit table."""
    voided = conn.execute(
        """
        with voids as (
            select v.statement_id as voiding_id, v.statement #>> '{object,id}' as target_id, v.stored_at
            from raw.lms_statement as v
            where v.statement #>> '{verb,id}' = %(voided)s
              and v.statement #>> '{object,objectType}' = 'StatementRef'
              and (v.batch_id = %(batch)s
                   or v.statement #>> '{object,id}' in (select statement_id from raw.lms_statement where batch_id = %(batch)s))
        ),
        marked as (
            update raw.lms_statement as t
            set is_voided = true, voided_by_statement_id = voids.voiding_id
            from voids
            where t.statement_id = voids.target_id and not t.is_voided
              and t.statement #>> '{verb,id}' <> %(voided)s
            returning t.statement_id, t.occurred_at, voids.voiding_id, voids.stored_at
        ),
        recorded as (
            insert into audit.lms_void_applied
                (voided_statement_id, voiding_statement_id, voided_occurred_at, void_stored_at, batch_id)
            select statement_id, voiding_id, occurred_at, stored_at, %(batch)s from marked
            on conflict (voided_statement_id) do nothing
        )
        update core.lms_activity as a set is_voided = true
        from marked where a.statement_id = marked.statement_id
        """,
        {"voided": VOIDED_VERB, "batch": batch_id},
    ).rowcount
    return voided


def _check_counts(conn: psycopg.Connection, checks: sql.Composed) -> tuple[int, int, str]:
    distinct, rejected = conn.execute(
        sql.SQL("select count(*), count(reject_reason) from {}").format(checks)
    ).fetchone()
    reasons = conn.execute(
        sql.SQL(
            "select reject_reason, count(*) from {} where reject_reason is not null"
            " group by 1 order by 2 desc, 1 limit 3"
        ).format(checks)
    ).fetchall()
    return distinct, rejected, "; ".join(f"{reason} ({count})" for reason, count in reasons) or "none"


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
    row = conn.execute("select watermark from audit.extract_watermark where source = %s", (source,)).fetchone()
    return row[0] if row else None


def advance_watermark(conn: psycopg.Connection, source: str, watermark: datetime, batch_id: str) -> None:
    """Move the source's watermark forward (never back), inside the caller's publishing transaction."""
    conn.execute(
        """
        insert into audit.extract_watermark (source, watermark, batch_id, updated_at)
        values (%s, %s, %s, now())
        on conflict (source) do update
        set watermark = greatest(audit.extract_watermark.watermark, excluded.watermark),
            batch_id = excluded.batch_id, updated_at = excluded.updated_at
        """,
        (source, watermark, batch_id),
    )


def xapi_client(config: Mapping[str, Any]) -> XapiClient:
    lms = config["lms"]
    return XapiClient(
        config["connections"]["lms_api"], timeout=float(lms["request_timeout_seconds"]), retry=retry_policy(lms)
    )


def extract_statements(
    config: Mapping[str, Any], run: RunIdentity | None = None, dsn: str | None = None,
    client: XapiClient | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Extract every statement stored since the watermark (minus the overlap) and publish it once."""
    client = client or xapi_client(config)
    with client:
        return StatementExtraction(config, run or RunIdentity(), dsn, client).run_batch()
