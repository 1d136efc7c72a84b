-- one row per SCIM pull of the LMS user directory (per task instance), as it was published or failed
-- A rerun of the task replaces its row.
insert into audit.scim_extract_batch (
    batch_id, source, mode, watermark_before, watermark_after, users_received, versions_new, status,
    reason, validation_id, dag_id, run_id, task_id, try_number, started_at, finished_at
) values (
    %(batch_id)s, %(source)s, %(mode)s, %(watermark_before)s, %(watermark_after)s, %(users_received)s,
    %(versions_new)s, %(status)s, %(reason)s, %(validation_id)s, %(dag_id)s, %(run_id)s, %(task_id)s,
    %(try_number)s, %(started_at)s, now()
)
on conflict (batch_id) do update set
    mode = excluded.mode,
    watermark_before = excluded.watermark_before,
    watermark_after = excluded.watermark_after,
    users_received = excluded.users_received,
    versions_new = excluded.versions_new,
    status = excluded.status,
    reason = excluded.reason,
    validation_id = excluded.validation_id,
    try_number = excluded.try_number,
    started_at = excluded.started_at,
    finished_at = excluded.finished_at
