-- original-sha256: e0b5bff28ecf8c24fd043002bf0787156d3d39936c9b7b64ad2cffadea0e4e74
-- body-sha256: 1d81f7b83c7ddebe248bb8893e67a605329d64365357ca95a6825f83873a89e3
-- Revised after release: audit.identity_override_current (views/) moved to include/sql/repeatable/ (one
-- current definition, applied after the numbered migrations); a warehouse that applied the original keeps it.
-- The canonical identity layer: stable employee keys, the identifier map, stewardship and KPIs.

-- Work email as matched: the domain is always case-insensitive; the local part is lowercased and
-- stripped of a +tag only for configured corporate domains (elsewhere the mail server decides);
-- alias domains map onto their corporate domain. The raw value is always kept beside it.
create or replace function core.normalize_work_email(
    raw_email text, corporate_domains text[], domain_aliases jsonb, strip_plus_aliases boolean
) returns text
language sql
immutable
parallel safe
as $$
    with parts as (
        select
            split_part(address, '@', 1) as local_part,
            lower(split_part(address, '@', 2)) as domain
        from (select regexp_replace(btrim(raw_email), '^mailto:', '', 'i') as address) as trimmed
        where address like '_%@_%' and address not like '%@%@%'
    ),

    mapped as (
        select local_part, coalesce(domain_aliases ->> domain, domain) as domain from parts
    )

    select
        case
            when domain = any(corporate_domains)
                then
                    (
                        case
                            when strip_plus_aliases then split_part(lower(local_part), '+', 1)
                            else lower(local_part)
                        end
                    )
                    || '@' || domain
            else local_part || '@' || domain
        end
    from mapped
$$;

-- one row per employee_key ever issued; a key is never reused (merged keys stay, pointing on)
create table if not exists core.employee_key_registry (
    employee_key bigint primary key,
    issued_for_hris_employee_id text not null,
    issued_at timestamptz not null,
    issued_by_run_id text,
    merged_into_employee_key bigint,
    merged_at timestamptz
);

-- one row per HRIS employee_id: the employee_key it belongs to (stable across runs and rebuilds)
create table if not exists core.hris_employee_key (
    hris_employee_id text primary key,
    employee_key bigint not null references core.employee_key_registry (employee_key),
    match_method text not null,
    rule_version integer not null,
    linked_to_hris_employee_id text,
    assigned_at timestamptz not null
);

create index if not exists hris_employee_key_key_idx on core.hris_employee_key (employee_key);

-- one row per HRIS employee_id: the identity-relevant facts of that employment
create table if not exists core.identity_employment (
    hris_employee_id text primary key,
    sso_guid text,
    employment_start_date date not null,
    employment_end_date date,
    termination_category text,
    is_current boolean not null,
    known_at timestamptz not null
);

create index if not exists identity_employment_sso_idx on core.identity_employment (sso_guid);

-- one row per HRIS employee_id per normalized work email per interval it held the address
create table if not exists core.identity_work_email (
    hris_employee_id text not null,
    email_normalized text not null,
    valid_from date not null,
    valid_to date,
    work_email_raw text not null,
    -- sha1 of mailto:<address>, for xAPI mbox_sha1sum actors; filled by the resolver, because
    -- PostgreSQL has no built-in sha1 and pgcrypto is not available everywhere
    mbox_sha1sum text,
    primary key (hris_employee_id, email_normalized, valid_from)
);

create index if not exists identity_work_email_email_idx on core.identity_work_email (email_normalized);
create index if not exists identity_work_email_sha1_idx on core.identity_work_email (mbox_sha1sum);

-- one row per LMS user (the SCIM directory's current version), with its identifiers normalized
create table if not exists core.identity_lms_account (
    lms_user_id text primary key,
    external_id_normalized text,
    email_normalized text,
    primary_email_normalized text,
    is_corporate_email boolean not null,
    is_active boolean not null,
    created_at timestamptz not null,
    last_modified_at timestamptz not null
);

create index if not exists identity_lms_account_external_idx on core.identity_lms_account (external_id_normalized);
create index if not exists identity_lms_account_email_idx on core.identity_lms_account (email_normalized);

-- one row per distinct xAPI actor identifier seen in learning activity
create table if not exists core.identity_learner (
    learner_identifier text primary key,
    learner_identifier_type text not null,
    account_name text,
    email_normalized text,
    mbox_sha1sum text
);

create index if not exists identity_learner_account_idx on core.identity_learner (account_name);
create index if not exists identity_learner_email_idx on core.identity_learner (email_normalized);

-- one row per LMS user: which employee it belongs to and why, or why it is unmatched
create table if not exists core.lms_account_match (
    lms_user_id text primary key,
    employee_key bigint,
    hris_employee_id text,
    match_method text,
    unmatched_reason text,
    rule_version integer not null,
    valid_from date,
    valid_to date,
    is_active boolean not null,
    is_corporate_email boolean not null,
    sso_employee_key bigint,
    email_employee_key bigint,
    candidate_employee_keys bigint[] not null,
    constraint lms_account_match_method_check
    check (match_method in ('steward_override', 'sso_guid', 'hris_lms_user_id', 'work_email')),
    constraint lms_account_match_outcome_check check ((employee_key is null) = (unmatched_reason is not null))
);

create index if not exists lms_account_match_key_idx on core.lms_account_match (employee_key);

-- one row per employee_key per source identifier per validity interval [valid_from, valid_to)
create table if not exists core.employee_identity (
    employee_key bigint not null,
    identifier_type text not null,
    identifier_value text not null,
    hris_employee_id text not null,
    lms_user_id text,
    sso_guid text,
    work_email_normalized text,
    match_method text not null,
    rule_version integer not null,
    valid_from date not null,
    valid_to date,
    primary key (identifier_type, identifier_value, hris_employee_id, valid_from),
    constraint employee_identity_type_check check (
        identifier_type in ('hris_employee_id', 'sso_guid', 'work_email', 'lms_user_id', 'xapi_actor')
    )
);

create index if not exists employee_identity_key_idx on core.employee_identity (employee_key);
create index if not exists employee_identity_employee_idx on core.employee_identity (hris_employee_id);
create index if not exists employee_identity_lms_idx on core.employee_identity (lms_user_id);

-- one row per steward decision; the latest active decision per identifier applies on every run
create table if not exists audit.identity_override (
    override_id bigint generated always as identity primary key,
    identifier_type text not null,
    identifier_value text not null,
    decision text not null,
    employee_key bigint,
    decided_by text not null,
    decided_at timestamptz not null default now(),
    reason text not null,
    is_active boolean not null default true,
    constraint identity_override_type_check check (identifier_type in ('lms_user_id', 'hris_employee_id')),
    constraint identity_override_decision_check check (
        (decision = 'match' and employee_key is not null) or (decision = 'not_a_match')
    )
);

create index if not exists identity_override_identifier_idx
on audit.identity_override (identifier_type, identifier_value, decided_at);

-- one row per detected identity conflict, kept (and closed, never deleted) across runs
create table if not exists audit.identity_exception (
    exception_id text primary key,
    kind text not null,
    status text not null,
    hris_employee_ids text[] not null,
    lms_user_ids text[] not null,
    employee_keys bigint[] not null,
    evidence jsonb not null,
    first_seen_at timestamptz not null,
    first_seen_run_id text,
    resolved_at timestamptz,
    resolution text,
    constraint identity_exception_status_check check (status in ('open', 'resolved'))
);

create index if not exists identity_exception_open_idx on audit.identity_exception (status, kind);

-- one row per identity_resolution run: what was resolved, the KPIs and the gate's verdict
create table if not exists audit.identity_reconciliation (
    run_id text primary key,
    mode text not null,
    rule_version integer not null,
    hris_headcount integer not null,
    canonical_headcount integer not null,
    employee_keys integer not null,
    lms_users integer not null,
    lms_users_matched integer not null,
    lms_users_unmatched_by_reason jsonb not null,
    lms_users_matched_by_method jsonb not null,
    active_lms_users integer not null,
    active_match_rate numeric(7, 6),
    active_corporate_lms_users integer not null,
    active_corporate_match_rate numeric(7, 6),
    statements integer not null,
    statements_attributable integer not null,
    open_exceptions_by_kind jsonb not null,
    scope_employees integer not null,
    scope_lms_users integer not null,
    scope_learners integer not null,
    hris_known_at_high_water timestamptz,
    hris_snapshot_date_high_water date,
    lms_user_extracted_high_water timestamptz,
    lms_activity_stored_high_water timestamptz,
    validation_id text,
    success boolean not null,
    finished_at timestamptz not null
);

-- Incremental runs find what changed since the last one by these times.
create index if not exists lms_user_extracted_idx on raw.lms_user (extracted_at);
create index if not exists lms_activity_stored_idx on core.lms_activity (stored_at);
create index if not exists employee_history_known_idx on core.employee_history (known_at);
