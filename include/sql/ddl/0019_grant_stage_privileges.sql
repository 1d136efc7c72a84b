-- Least privilege per pipeline stage (README "Least privilege"): every task connects as a login in
-- the one group role its stage needs (warehouse_loader, warehouse_transformer; the owner's
-- warehouse_postgres only for migrations, the pseudonym key and retention). This migration
--   * creates a fifth group role, turnover_quality_reader, for the read-only Data quality page;
--   * redefines governance.apply_role_privileges() (0013) as the one list of every role's privileges:
--     what the stages need beyond 0013, UPDATE on audit for the loader only where it keeps a row
--     current (manifest, batches, watermarks) instead of on every audit table, and EXECUTE on the
--     owner's functions of 0018 (the loader both, the transformer core.analyze_relation).
-- The loader owns no raw table and may not create one: the owner keeps the HRIS raw parents, and a
-- validated HRIS file is published through the owner's raw.attach_hris_partition (0018).
--
-- Stage logins set their group role for the session (`alter role <login> set role <group>`), so
-- what they create (staging tables) is owned by the group: the owner, a member of turnover_loader
-- and turnover_transformer, can still move it (publishing), drop it or alter it.

do $$
begin
    if not exists (select from pg_roles where rolname = 'turnover_quality_reader') then
        if (select rolsuper or rolcreaterole from pg_roles where rolname = current_user) then
            create role turnover_quality_reader nologin;
        else
            raise warning 'role turnover_quality_reader does not exist and % may not create roles: ask a DBA to '
                'run "create role turnover_quality_reader nologin", then run "select '
                'governance.apply_role_privileges()" as the warehouse owner (README: Least privilege)', current_user;
        end if;
    end if;
exception when duplicate_object then
    null;  -- another database of this cluster migrating at the same moment
end
$$;

-- Grants every role that exists its privileges, now and (default privileges) on every table the
-- calling owner creates later in these schemas; gives no role a table. Safe to run again; a
-- DBA-created role gets its grants the next time the owner runs it.
create or replace function governance.apply_role_privileges() returns text[]
language plpgsql
as $$
declare
    granted text[] := '{}';
    statement_text text;
    privileges constant jsonb := jsonb_build_object(
        'turnover_loader', jsonb_build_array(
            'grant usage on schema raw, audit, staging, core to %1$I',
            -- staging: the files and batches before their gate; a validated HRIS file reaches raw
            -- through raw.attach_hris_partition, so no CREATE on raw (revoked should anyone grant it)
            'grant create on schema staging to %1$I',
            'revoke create on schema raw from %1$I',
            'grant execute on function raw.attach_hris_partition(text, regclass, text),'
            || ' core.analyze_relation(regclass) to %1$I',
            'grant select, insert, update on all tables in schema raw to %1$I',
            'alter default privileges in schema raw grant select, insert, update on tables to %1$I',
            'grant select, insert on all tables in schema audit to %1$I',
            'alter default privileges in schema audit grant select, insert on tables to %1$I',
            -- UPDATE on audit only where the loader keeps a row current; never on an audit trail
            'revoke update on all tables in schema audit from %1$I',
            'alter default privileges in schema audit revoke update on tables from %1$I',
            'grant update on audit.file_manifest, audit.lms_extract_batch, audit.scim_extract_batch,'
            || ' audit.extract_watermark to %1$I',
            -- an xAPI batch publishes its activity rows (and voids) with the raw statements, atomically
            'grant insert, select (statement_id), update (is_voided) on core.lms_activity to %1$I'
        ),
        'turnover_transformer', jsonb_build_array(
            'grant usage on schema raw, audit, core, mart, staging to %1$I',
            'grant create on schema staging to %1$I',
            'grant execute on function core.analyze_relation(regclass) to %1$I',
            'grant select on all tables in schema raw to %1$I',
            'grant select, insert on all tables in schema audit to %1$I',
            'grant select, insert, update, delete, truncate on all tables in schema core, mart to %1$I',
            'alter default privileges in schema raw grant select on tables to %1$I',
            'alter default privileges in schema audit grant select, insert on tables to %1$I',
            'alter default privileges in schema core, mart grant select, insert, update, delete, truncate'
            || ' on tables to %1$I',
            -- rows a stage keeps current: open exceptions, a run's reconciliation, the feature
            -- watermark, a model's status; unknown courses leave the list once catalogued
            'grant update on audit.identity_exception, audit.identity_reconciliation, audit.extract_watermark,'
            || ' audit.model_registry, audit.unknown_course to %1$I',
            'grant delete on audit.unknown_course to %1$I'
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
        ),
        'turnover_quality_reader', jsonb_build_array(
            'grant usage on schema audit to %1$I',
            'grant select on audit.validation_result, audit.model_registry to %1$I'
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
    if 'turnover_loader' = any(granted) and not pg_has_role(current_user, 'turnover_loader', 'USAGE') then
        raise warning '% is not a member of turnover_loader, so HRIS files a loader login stages cannot be '
            'published: ask a DBA to run "grant turnover_loader to %" (README: Least privilege)',
            current_user, current_user;
    end if;
    return granted;
end
$$;

revoke all on function governance.apply_role_privileges() from public;

select governance.apply_role_privileges();
