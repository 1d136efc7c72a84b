-- LMS activity from the xAPI LRS and the LMS user directory from SCIM.

-- one row per statement id ever accepted, the full JSON as received
create table if not exists raw.lms_statement (
    statement_id text primary key,
    stored_at timestamptz not null,
    occurred_at timestamptz,
    statement jsonb not null,
    is_voided boolean not null default false,
    voided_by_statement_id text,
    source text not null,
    batch_id text not null,
    loaded_at timestamptz not null
);

create index if not exists lms_statement_stored_idx on raw.lms_statement (stored_at);

-- one row per distinct rejected payload and reason; never silently dropped
create table if not exists raw.lms_statement_rejected (
    payload_sha256 text not null,
    reason text not null,
    statement_id text,
    raw text not null,
    source text not null,
    batch_id text not null,
    rejected_at timestamptz not null,
    primary key (payload_sha256, reason)
);

-- one row per extraction batch (one task run over one watermark range)
create table if not exists audit.lms_extract_batch (
    batch_id text primary key,
    source text not null,
    endpoint text not null,
    requested_since timestamptz,
    watermark_before timestamptz,
    watermark_after timestamptz,
    consistent_through timestamptz,
    pages integer not null,
    statements_received integer not null,
    statements_new integer not null,
    statements_already_loaded integer not null,
    statements_rejected integer not null,
    voids_applied integer not null,
    reject_rate numeric(7, 6) not null,
    status text not null,
    reason text,
    validation_id text,
    dag_id text,
    run_id text,
    task_id text,
    try_number integer,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    constraint lms_extract_batch_status_check check (status in ('published', 'failed'))
);

-- one row per source: how far extraction has durably got (on the LRS's stored time)
create table if not exists audit.extract_watermark (
    source text primary key,
    watermark timestamptz not null,
    batch_id text not null,
    updated_at timestamptz not null
);

-- one row per statement a later void reached; downstream stages recompute what it touched
create table if not exists audit.lms_void_applied (
    voided_statement_id text primary key,
    voiding_statement_id text not null,
    voided_occurred_at timestamptz,
    void_stored_at timestamptz not null,
    batch_id text not null
);

-- one row per statement, normalised for analysis
create table if not exists core.lms_activity (
    statement_id text primary key,
    learner_identifier text not null,
    learner_identifier_type text not null,
    event_type text not null,
    verb_id text not null,
    course_id text,
    course_name text,
    score_normalized numeric(7, 6),
    is_success boolean,
    is_completion boolean,
    duration_seconds integer,
    occurred_at timestamptz not null,
    is_timestamp_assumed_utc boolean not null,
    stored_at timestamptz not null,
    is_voided boolean not null
);

create index if not exists lms_activity_learner_idx on core.lms_activity (learner_identifier, occurred_at);

-- one row per version of an LMS user as the directory reported it (valid_from = lastModified)
create table if not exists raw.lms_user (
    lms_user_id text not null,
    last_modified_at timestamptz not null,
    user_name text,
    external_id text,
    work_email text,
    primary_email text,
    emails jsonb,
    is_active boolean,
    created_at timestamptz,
    valid_to timestamptz,
    resource jsonb not null,
    batch_id text not null,
    extracted_at timestamptz not null,
    primary key (lms_user_id, last_modified_at)
);

-- one row per course in the business-maintained catalog
create table if not exists core.course_catalog (
    course_id text primary key,
    title text not null,
    difficulty integer not null,
    is_mandatory boolean not null,
    due_within_days integer,
    skill_tags text[] not null,
    catalog_sha256 text not null,
    constraint course_catalog_difficulty_check check (difficulty between 1 and 5)
);
