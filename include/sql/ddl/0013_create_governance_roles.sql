-- Least privilege: four group roles with their grants, a locked-down `governance` schema that holds
-- the pseudonymization key, and the `analytics` schema of pseudonymized views for analysts.
--
-- Roles are cluster-wide. They are created here when the migrating user may create roles
-- (superuser or CREATEROLE); otherwise a DBA creates them once (README "Least privilege") and the
-- owner runs `select governance.apply_role_privileges()`; the migration then only warns.

do $$
declare
    role_name text;
    may_create_roles boolean;
begin
    select rolsuper or rolcreaterole into may_create_roles from pg_roles where rolname = current_user;
    foreach role_name in array array[
        'turnover_loader', 'turnover_transformer', 'turnover_analyst', 'turnover_steward'
    ] loop
        if not exists (select from pg_roles where rolname = role_name) then
            if may_create_roles then
                begin
                    execute format('create role %I nologin', role_name);
                exception when duplicate_object then
                    null;  -- another database of this cluster migrating at the same moment
                end;
            else
                raise warning 'role % does not exist and % may not create roles: ask a DBA to run '
                    '"create role % nologin", then run "select governance.apply_role_privileges()" '
                    'as the warehouse owner (README: Least privilege)', role_name, current_user, role_name;
            end if;
        end if;
    end loop;
end
$$;

-- Only the owner (the pipeline's login) can see this schema: it holds the pseudonym key.
create schema if not exists governance;
revoke all on schema governance from public;
comment on schema governance is 'Pipeline-only: the pseudonymization key; no other role has any access';

-- one row at most: the HMAC-SHA256 pads derived from the key in the Airflow connection
-- analytics_pseudonym (key XOR ipad / opad), so that SQL computes HMAC with the built-in sha256()
-- and without pgcrypto. The pads are as secret as the key; the fingerprint is not.
create table if not exists governance.pseudonym_key (
    key_slot text primary key default 'current',
    inner_pad bytea not null,
    outer_pad bytea not null,
    key_fingerprint text not null,
    installed_at timestamptz not null,
    constraint pseudonym_key_single_slot_check check (key_slot = 'current')
);

-- one row per employee_key ever issued: its pseudonym under the current key (none without a key)
create or replace view governance.person_pseudonym as
select
    registry.employee_key,
    encode(
        sha256(
            pseudonym_key.outer_pad
            || sha256(pseudonym_key.inner_pad || convert_to(registry.employee_key::text, 'UTF8'))
        ),
        'hex'
    ) as person_pseudonym
from core.employee_key_registry as registry
cross join governance.pseudonym_key;

create schema if not exists analytics;
comment on schema analytics is
'Pseudonymized views for model training and analysis: no names, emails, ids or salaries';

-- one row per salary band; analysts see the band of a salary, never the salary
create table if not exists analytics.salary_band (
    band_label text primary key,
    lower_bound numeric(14, 2) not null,
    upper_bound numeric(14, 2),
    constraint salary_band_bounds_check check (upper_bound is null or upper_bound > lower_bound)
);

insert into analytics.salary_band (band_label, lower_bound, upper_bound) values
('under 40k', 0, 40000),
('40k-60k', 40000, 60000),
('60k-80k', 60000, 80000),
('80k-100k', 80000, 100000),
('100k-130k', 100000, 130000),
('130k-170k', 130000, 170000),
('170k and over', 170000, null)
on conflict (band_label) do nothing;

-- one row per person_pseudonym per reference_date per feature_set_version
create or replace view analytics.employee_features as
with pay_as_of as (
    select
        features.employee_key,
        features.reference_date,
        features.feature_set_version,
        history.base_salary,
        history.currency
    from mart.employee_features as features
    inner join core.employee_history as history
        on
            features.hris_employee_id = history.employee_id
            and features.reference_date >= history.valid_from
            and (history.valid_to is null or features.reference_date < history.valid_to)
)

select
    pseudonym.person_pseudonym,
    features.reference_date,
    features.feature_set_version,
    features.enrolments_30d,
    features.enrolments_90d,
    features.enrolments_180d,
    features.completions_30d,
    features.completions_90d,
    features.completions_180d,
    features.completion_rate_30d,
    features.completion_rate_90d,
    features.completion_rate_180d,
    features.mean_score_30d,
    features.mean_score_90d,
    features.mean_score_180d,
    features.learning_minutes_30d,
    features.learning_minutes_90d,
    features.learning_minutes_180d,
    features.distinct_courses_30d,
    features.distinct_courses_90d,
    features.distinct_courses_180d,
    features.mandatory_courses_overdue,
    features.days_since_last_activity,
    features.engagement_trend,
    features.skill_tag_breadth_180d,
    features.difficulty_weighted_completions_180d,
    features.tenure_days,
    features.job_level,
    features.department,
    features.location,
    features.time_in_role_days,
    features.days_since_last_promotion,
    features.manager_changes_12m,
    features.manager_tenure_days,
    features.last_pay_change_pct,
    features.months_since_last_raise,
    features.is_pay_frozen,
    features.performance_rating,
    features.team_size,
    features.team_leavers_90d,
    band.band_label as salary_band,
    pay_as_of.currency as salary_currency,
    features.lms_cutoff_date
from mart.employee_features as features
inner join governance.person_pseudonym as pseudonym on features.employee_key = pseudonym.employee_key
left join pay_as_of
    on
        features.employee_key = pay_as_of.employee_key
        and features.reference_date = pay_as_of.reference_date
        and features.feature_set_version = pay_as_of.feature_set_version
left join analytics.salary_band as band
    on
        pay_as_of.base_salary >= band.lower_bound
        and (band.upper_bound is null or pay_as_of.base_salary < band.upper_bound);

-- one row per person_pseudonym per reference_date per horizon_days; exits to the month only
create or replace view analytics.turnover_label as
select
    pseudonym.person_pseudonym,
    label.reference_date,
    label.horizon_days,
    label.label,
    label.label_status,
    label.exit_category,
    label.is_censored,
    date_trunc('month', label.exit_date)::date as exit_month
from mart.turnover_label as label
inner join governance.person_pseudonym as pseudonym on label.employee_key = pseudonym.employee_key;

-- one row per person_pseudonym per reference_date per feature_set_version per horizon with a known label
create or replace view analytics.training_set as
select
    features.person_pseudonym,
    features.reference_date,
    features.feature_set_version,
    features.enrolments_30d,
    features.enrolments_90d,
    features.enrolments_180d,
    features.completions_30d,
    features.completions_90d,
    features.completions_180d,
    features.completion_rate_30d,
    features.completion_rate_90d,
    features.completion_rate_180d,
    features.mean_score_30d,
    features.mean_score_90d,
    features.mean_score_180d,
    features.learning_minutes_30d,
    features.learning_minutes_90d,
    features.learning_minutes_180d,
    features.distinct_courses_30d,
    features.distinct_courses_90d,
    features.distinct_courses_180d,
    features.mandatory_courses_overdue,
    features.days_since_last_activity,
    features.engagement_trend,
    features.skill_tag_breadth_180d,
    features.difficulty_weighted_completions_180d,
    features.tenure_days,
    features.job_level,
    features.department,
    features.location,
    features.time_in_role_days,
    features.days_since_last_promotion,
    features.manager_changes_12m,
    features.manager_tenure_days,
    features.last_pay_change_pct,
    features.months_since_last_raise,
    features.is_pay_frozen,
    features.performance_rating,
    features.team_size,
    features.team_leavers_90d,
    features.salary_band,
    features.salary_currency,
    features.lms_cutoff_date,
    label.horizon_days,
    label.label,
    label.exit_category
from analytics.employee_features as features
inner join analytics.turnover_label as label
    on
        features.person_pseudonym = label.person_pseudonym
        and features.reference_date = label.reference_date
where label.label is not null;

-- Grants every role that exists its privileges, now and (default privileges) on every table the
-- calling owner creates later in these schemas. Safe to run again; a DBA-created role gets its
-- grants the next time the owner runs it.
create or replace function governance.apply_role_privileges() returns text[]
language plpgsql
as $$
declare
    granted text[] := '{}';
    statement_text text;
    privileges constant jsonb := jsonb_build_object(
        'turnover_loader', jsonb_build_array(
            'grant usage on schema raw, audit, staging to %1$I',
            'grant create on schema staging to %1$I',
            'grant select, insert, update on all tables in schema raw, audit to %1$I',
            'alter default privileges in schema raw, audit grant select, insert, update on tables to %1$I'
        ),
        'turnover_transformer', jsonb_build_array(
            'grant usage on schema raw, audit, core, mart, staging to %1$I',
            'grant create on schema staging to %1$I',
            'grant select on all tables in schema raw to %1$I',
            'grant select, insert on all tables in schema audit to %1$I',
            'grant select, insert, update, delete, truncate on all tables in schema core, mart to %1$I',
            'alter default privileges in schema raw grant select on tables to %1$I',
            'alter default privileges in schema audit grant select, insert on tables to %1$I',
            'alter default privileges in schema core, mart grant select, insert, update, delete, truncate'
            || ' on tables to %1$I'
        ),
        'turnover_steward', jsonb_build_array(
            'grant usage on schema core, audit to %1$I',
            'grant select on core.employee_identity, core.lms_account_match, core.hris_employee_key,'
            || ' core.employee_key_registry, audit.identity_exception, audit.identity_override,'
            || ' audit.identity_override_current to %1$I',
            'grant insert, update (is_active) on audit.identity_override to %1$I',
            'grant update (status, resolved_at, resolution) on audit.identity_exception to %1$I'
        ),
        'turnover_analyst', jsonb_build_array(
            'grant usage on schema analytics to %1$I',
            'grant select on all tables in schema analytics to %1$I',
            'alter default privileges in schema analytics grant select on tables to %1$I'
        )
    );
    role_name text;
begin
    for role_name in select jsonb_object_keys(privileges) loop
        if not exists (select from pg_roles where rolname = role_name) then
            raise warning 'role % does not exist: its privileges were not granted (README: Least privilege)',
                role_name;
            continue;
        end if;
        for statement_text in select jsonb_array_elements_text(privileges -> role_name) loop
            execute format(statement_text, role_name);
        end loop;
        granted := granted || role_name;
    end loop;
    return granted;
end
$$;

revoke all on function governance.apply_role_privileges() from public;

select governance.apply_role_privileges();
