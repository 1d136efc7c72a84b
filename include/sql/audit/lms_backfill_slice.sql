-- one row per slice of an xAPI backfill (its DAG run's backfill id, slice number): staged, rejected or published
-- How the extracting tasks hand a slice's checks tables to the publishing task. A slice extracted again (its
-- task cleared) replaces its row and is to be published again; publishing sets the status to published
-- (lms/backfill.py).
insert into audit.lms_backfill_slice (
    backfill_id, slice_number, source, since_at, until_at, status, chunk_tables, chunk_batch_ids,
    statements_received, statements_rejected, max_stored_at, consistent_through, reason, staged_at
) values (
    %(backfill_id)s, %(slice_number)s, %(source)s, %(since_at)s, %(until_at)s, %(status)s, %(chunk_tables)s,
    %(chunk_batch_ids)s, %(statements_received)s, %(statements_rejected)s, %(max_stored_at)s,
    %(consistent_through)s, %(reason)s, %(staged_at)s
)
on conflict (backfill_id, slice_number) do update set
    status = excluded.status,
    chunk_tables = excluded.chunk_tables,
    chunk_batch_ids = excluded.chunk_batch_ids,
    statements_received = excluded.statements_received,
    statements_rejected = excluded.statements_rejected,
    max_stored_at = excluded.max_stored_at,
    consistent_through = excluded.consistent_through,
    reason = excluded.reason,
    staged_at = excluded.staged_at,
    published_at = null
