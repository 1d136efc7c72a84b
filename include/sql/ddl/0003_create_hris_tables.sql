-- HRIS files as received (raw, one partition per file) and their point-in-time history (core).

-- Scratch space for files being validated; never read by anything downstream.
create schema if not exists staging;

-- one row per employee per employees file; text exactly as delivered (after the column mapping)
create table if not exists raw.hris_employee_snapshot (
    source_sha256 text not null,
    snapshot_date date not null,
    employee_id text,
    sso_guid text,
    work_email text,
    first_name text,
    last_name text,
    hire_date text,
    termination_date text,
    termination_type text,
    termination_reason text,
    employment_status text,
    job_role text,
    job_level text,
    department text,
    location text,
    manager_id text,
    base_salary text,
    currency text,
    fte text,
    performance_rating text
) partition by list (source_sha256);

-- one row per pay change line per compensation file, as delivered
create table if not exists raw.hris_compensation_change (
    source_sha256 text not null,
    file_date date not null,
    employee_id text,
    effective_date text,
    change_type text,
    previous_base_salary text,
    new_base_salary text,
    currency text
) partition by list (source_sha256);

-- one row per employee per validity interval (SCD type 2 over the snapshot dates)
create table if not exists core.employee_history (
    employee_id text not null,
    valid_from date not null,
    valid_to date,
    is_current boolean not null,
    closed_by text,
    known_at timestamptz not null,
    source_sha256 text not null,
    sso_guid text,
    work_email text,
    first_name text,
    last_name text,
    hire_date date,
    termination_date date,
    termination_type text,
    termination_category text,
    termination_reason text,
    employment_status text,
    job_role text,
    job_level integer,
    department text,
    location text,
    manager_id text,
    base_salary numeric(14, 2),
    currency text,
    fte numeric(4, 2),
    performance_rating integer,
    primary key (employee_id, valid_from),
    constraint employee_history_closed_by_check
    check (closed_by in ('attribute_change', 'absent_from_snapshot'))
);

create index if not exists employee_history_as_of_idx
on core.employee_history (valid_from, valid_to);

-- one row per pay change, on its natural key
create table if not exists core.compensation_event (
    employee_id text not null,
    effective_date date not null,
    change_type text not null,
    previous_base_salary numeric(14, 2),
    new_base_salary numeric(14, 2),
    currency text,
    change_pct numeric(9, 4),
    source_sha256 text not null,
    known_at timestamptz not null,
    primary key (employee_id, effective_date, change_type)
);
