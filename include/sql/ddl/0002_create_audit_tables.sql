-- Audit trail of every file received and every validation run; written by the loader role.

-- one row per distinct (file_name, sha256) ever received
create table if not exists audit.file_manifest (
    file_name text not null,
    sha256 text not null,
    feed text not null,
    file_date date not null,
    size_bytes bigint not null,
    remote_mtime timestamptz,
    received_at timestamptz not null,
    status text not null,
    reason text,
    encoding text,
    date_format text,
    date_pattern text,
    date_groups integer[],
    control_rows bigint,
    control_sha256 text,
    rows_read bigint,
    rows_loaded bigint,
    rows_rejected bigint,
    extra_columns text[],
    duplicate_of_sha256 text,
    superseded_by_sha256 text,
    landed_path text,
    validation_id text,
    dag_id text,
    run_id text,
    task_id text,
    map_index integer,
    try_number integer,
    primary key (file_name, sha256),
    constraint file_manifest_status_check
    check (status in ('loaded', 'duplicate', 'quarantined', 'superseded'))
);

create index if not exists file_manifest_feed_date_idx
on audit.file_manifest (feed, file_date, status);

-- one row per validation run of a Great Expectations suite
create table if not exists audit.validation_result (
    validation_id text primary key,
    suite_name text not null,
    suite_version text not null,
    data_asset text not null,
    batch_identifier text not null,
    success boolean not null,
    evaluated_expectations integer not null,
    failed_expectation_count integer not null,
    statistics jsonb not null,
    failed_expectations jsonb not null,
    results jsonb not null,
    dag_id text,
    run_id text,
    task_id text,
    map_index integer,
    try_number integer,
    data_docs_path text,
    validated_at timestamptz not null
);

create index if not exists validation_result_suite_idx
on audit.validation_result (suite_name, validated_at);
