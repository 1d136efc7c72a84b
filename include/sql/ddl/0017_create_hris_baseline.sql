-- Retention compaction of HRIS raw data. Once every loaded file of a feed up to some file date
-- was received more than retention.raw_days ago, retention seals those files: it keeps what
-- core.employee_history and core.compensation_event need from them here and drops their raw
-- partitions. The history builds read these tables in place of the sealed files, so a rebuild
-- after the purge yields the same rows as one before it.

-- one row per sealed HRIS file: its snapshot date stays in the history's snapshot sequence
create table if not exists core.hris_sealed_file (
    feed text not null,
    sha256 text not null,
    file_name text not null,
    file_date date not null,
    received_at timestamptz not null,
    rows_sealed bigint not null,
    sealed_at timestamptz not null,
    primary key (feed, sha256)
);

create index if not exists hris_sealed_file_date_idx on core.hris_sealed_file (feed, file_date);

-- one row per employee_id per run of consecutive sealed snapshots showing the same attributes.
-- The values are those the history computes from the raw text (numerics unrounded), so an interval
-- spanning the seal compares equal to the live snapshots that continue it.
create table if not exists core.employee_snapshot_baseline (
    employee_id text not null,
    first_snapshot_date date not null,
    last_snapshot_date date not null,
    known_at timestamptz not null,
    source_sha256 text not null,
    sso_guid text,
    work_email text,
    first_name text,
    last_name text,
    hire_date date,
    termination_date date,
    termination_type text,
    termination_reason text,
    employment_status text,
    job_role text,
    job_level integer,
    department text,
    location text,
    manager_id text,
    base_salary numeric,
    currency text,
    fte numeric,
    performance_rating integer,
    lms_user_id text,
    primary key (employee_id, first_snapshot_date)
);

-- one row per pay change (employee_id, effective_date, change_type): the version that wins among the
-- sealed compensation files (a later file can still replace it)
create table if not exists core.compensation_change_baseline (
    employee_id text,
    effective_date date,
    change_type text,
    previous_base_salary numeric,
    new_base_salary numeric,
    currency text,
    source_sha256 text not null,
    known_at timestamptz not null,
    change_pct numeric
);
