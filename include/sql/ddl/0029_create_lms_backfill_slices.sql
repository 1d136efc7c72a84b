-- A backfill of xAPI statements by slices of stored time (DAG lms_statement_backfill): each slice is
-- extracted, checked and gated by its own mapped task, and one task publishes them in slice order. This
-- table is how those tasks hand slices to each other, and the audit trail of what each slice did.

-- one row per slice of a backfill run
create table if not exists audit.lms_backfill_slice (
    backfill_id text not null,
    slice_number integer not null,
    source text not null,
    since_at timestamptz not null,
    until_at timestamptz not null,
    status text not null,
    chunk_tables text[] not null default '{}',
    chunk_batch_ids text[] not null default '{}',
    statements_received integer not null default 0,
    statements_rejected integer not null default 0,
    max_stored_at timestamptz,
    consistent_through timestamptz,
    reason text,
    staged_at timestamptz,
    published_at timestamptz,
    primary key (backfill_id, slice_number),
    constraint lms_backfill_slice_range_check check (since_at < until_at),
    constraint lms_backfill_slice_status_check check (status in ('staged', 'rejected', 'published'))
);

-- The loader keeps each slice's row current (staged, then published), like its batches and watermarks.
insert into governance.role_privilege (role_name, statement_template, added_in) values
('turnover_loader', 'grant update on audit.lms_backfill_slice to %1$I', '0029'),
('turnover_quality_reader', 'grant select on audit.lms_backfill_slice to %1$I', '0029')
on conflict do nothing;

select governance.apply_role_privileges();
