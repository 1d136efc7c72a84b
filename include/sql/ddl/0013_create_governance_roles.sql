-- original-sha256: 82bf78348943359fb9a0295d9ab8ba303c91ebf5f531db119c21ea33cfa1356e
-- body-sha256: 2cc2dc58ca7adb2854a010cc87b634e580a7cf995cd4f3369e6163a9872eaf03
-- Revised after release: the analytics views and governance.person_pseudonym (views/) and
-- governance.apply_role_privileges() (grants/) moved to include/sql/repeatable/ (one current definition, applied
-- after the numbered migrations); a warehouse that applied the original keeps it.

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

-- A placeholder that grants nothing, so that a numbered migration may call it: the runner replaces it with
-- grants/governance.apply_role_privileges.sql, and applies the grants, once every numbered migration has run.
create or replace function governance.apply_role_privileges() returns text[]
language sql
as $$ select '{}'::text[] $$;
