-- Retention: every purge the warehouse_retention DAG applies, and every pseudonym key installed.
-- Audit rows are never purged; no role but the owner may delete them.

-- one row per purge action (one target per run): what went, by which rule, and where it was archived
create table if not exists audit.retention_purge (
    purge_id bigint generated always as identity primary key,
    purge_target text not null,
    retention_rule text not null,
    cutoff_at timestamptz not null,
    mode text not null,
    rows_purged bigint not null,
    files_purged integer not null,
    bytes_purged bigint not null,
    archive_path text,
    details jsonb not null,
    dag_id text,
    run_id text,
    task_id text,
    try_number integer,
    purged_at timestamptz not null,
    constraint retention_purge_mode_check check (mode in ('purge', 'archive'))
);

create index if not exists retention_purge_target_idx on audit.retention_purge (purge_target, purged_at);

-- one row per pseudonym key installed (a rotation changes every pseudonym); never the key itself
create table if not exists audit.pseudonym_key_rotation (
    key_fingerprint text not null,
    previous_key_fingerprint text,
    installed_at timestamptz not null,
    dag_id text,
    run_id text,
    primary key (key_fingerprint, installed_at)
);
