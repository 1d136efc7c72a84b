-- one row per chunk of an xAPI extraction (the task's batch id, then -2, -3, ...), as it was published or failed
-- A rerun of the task replaces its chunks' rows. Written in the chunk's publishing transaction; the clock
-- warning is set just after, in the same transaction (lms/statements.py).
insert into audit.lms_extract_batch (
    batch_id, source, endpoint, requested_since, watermark_before, watermark_after,
    consistent_through, pages, statements_received, statements_new, statements_already_loaded,
    statements_rejected, voids_applied, reject_rate, status, reason, validation_id, dag_id, run_id,
    task_id, try_number, started_at, finished_at, strategy, extraction_kind, statements_late,
    max_lateness_seconds, orphan_tables_dropped
) values (
    %(batch_id)s, %(source)s, %(endpoint)s, %(requested_since)s, %(watermark_before)s, %(watermark_after)s,
    %(consistent_through)s, %(pages)s, %(statements_received)s, %(statements_new)s,
    %(statements_already_loaded)s, %(statements_rejected)s, %(voids_applied)s, %(reject_rate)s, %(status)s,
    %(reason)s, %(validation_id)s, %(dag_id)s, %(run_id)s, %(task_id)s, %(try_number)s, %(started_at)s,
    now(), %(strategy)s, %(extraction_kind)s, %(statements_late)s, %(max_lateness_seconds)s,
    %(orphan_tables_dropped)s
)
on conflict (batch_id) do update set
    requested_since = excluded.requested_since,
    watermark_before = excluded.watermark_before,
    watermark_after = excluded.watermark_after,
    consistent_through = excluded.consistent_through,
    pages = excluded.pages,
    statements_received = excluded.statements_received,
    statements_new = excluded.statements_new,
    statements_already_loaded = excluded.statements_already_loaded,
    statements_rejected = excluded.statements_rejected,
    voids_applied = excluded.voids_applied,
    reject_rate = excluded.reject_rate,
    status = excluded.status,
    reason = excluded.reason,
    validation_id = excluded.validation_id,
    try_number = excluded.try_number,
    started_at = excluded.started_at,
    finished_at = excluded.finished_at,
    strategy = excluded.strategy,
    extraction_kind = excluded.extraction_kind,
    statements_late = excluded.statements_late,
    max_lateness_seconds = excluded.max_lateness_seconds,
    orphan_tables_dropped = excluded.orphan_tables_dropped
