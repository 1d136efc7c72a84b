-- governance.apply_role_privileges(): every group role's privileges, the one current list (README "Least
-- privilege"). The migration runner applies this file after every run that applied anything else, once the
-- relations it names exist, so a numbered migration neither copies this function nor needs to call it.
-- Privileges a numbered migration adds go into the list below (this file is then re-applied) or, as 0027
-- and 0029 did, into governance.role_privilege. Roles are cluster-wide: a DBA creates those the owner may not
-- (0013, 0019), then the owner runs `select governance.apply_role_privileges()`.

-- Grants every role that exists its privileges, now and (default privileges) on every table the
-- calling owner creates later in these schemas; gives no role a table. Safe to run again; a
-- DBA-created role gets its grants the next time the owner runs it.
create or replace function governance.apply_role_privileges() returns text[]
language plpgsql
as $$
declare
    granted text[] := '{}';
    statement_text text;
    added record;
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
    -- privileges numbered migrations 0027 and later added as rows
    for added in
        select privilege.role_name, privilege.statement_template
        from governance.role_privilege as privilege
        order by privilege.added_in, privilege.role_name
    loop
        if added.role_name = any(granted) then
            execute format(added.statement_template, added.role_name);
        end if;
    end loop;
    return granted;
end
$$;

revoke all on function governance.apply_role_privileges() from public;

-- 0027 kept 0019's function under this name and wrapped it; the list above is that function's, so it goes.
drop function if exists governance.apply_role_privileges_0019();

select governance.apply_role_privileges();
