-- one row per purge action (one target per run): what went, by which rule, and where it was archived
-- Written in the transaction of the purge it records, so a purge that rolls back leaves no row.
insert into audit.retention_purge (
    purge_target,
    retention_rule,
    cutoff_at,
    mode,
    rows_purged,
    files_purged,
    bytes_purged,
    archive_path,
    details,
    dag_id,
    run_id,
    task_id,
    try_number,
    purged_at
)
values (
    %(purge_target)s,
    %(retention_rule)s,
    %(cutoff_at)s,
    %(mode)s,
    %(rows_purged)s,
    %(files_purged)s,
    %(bytes_purged)s,
    %(archive_path)s,
    %(details)s,
    %(dag_id)s,
    %(run_id)s,
    %(task_id)s,
    %(try_number)s,
    %(purged_at)s
)
