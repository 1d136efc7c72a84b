-- Pay changes get knowledge versions, like the employee history: a correction file that changes or
-- withdraws a change already known must not alter a feature row whose cut-off came before it.

-- one row per pay change (employee_id, effective_date, change_type) per version: what the HRIS files said
-- about the change from known_from until known_until (null: still current)
create table if not exists core.compensation_event_version (
    employee_id text not null,
    effective_date date not null,
    change_type text not null,
    previous_base_salary numeric,
    new_base_salary numeric,
    currency text,
    source_sha256 text not null,
    known_from timestamptz not null,
    change_pct numeric,
    known_until timestamptz
);

create index if not exists compensation_event_version_employee_idx
on core.compensation_event_version (employee_id, effective_date);

-- the sealed files' baseline keeps versions too (the rows sealed so far become versions known from their
-- first knowledge and still current)
alter table core.compensation_change_baseline rename column known_at to known_from;
alter table core.compensation_change_baseline add column known_until timestamptz;

select governance.apply_role_privileges();
