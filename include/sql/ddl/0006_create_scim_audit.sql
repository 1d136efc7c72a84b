-- one row per SCIM directory pull (one task run)
create table if not exists audit.scim_extract_batch (
    batch_id text primary key,
    source text not null,
    mode text not null,
    watermark_before timestamptz,
    watermark_after timestamptz,
    users_received integer not null,
    versions_new integer not null,
    status text not null,
    reason text,
    validation_id text,
    dag_id text,
    run_id text,
    task_id text,
    try_number integer,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    constraint scim_extract_batch_mode_check check (mode in ('incremental', 'full')),
    constraint scim_extract_batch_status_check check (status in ('published', 'failed'))
);

-- one row per course id seen in learning activity but missing from the catalog, until it is added
create table if not exists audit.unknown_course (
    course_id text primary key,
    statements integer not null,
    first_seen_at timestamptz not null
);
