-- Two things a stage login needs the owner's rights for, as narrow SECURITY DEFINER functions owned
-- by the warehouse owner (README "Least privilege"), instead of owning the tables itself:
--   * core.analyze_relation(regclass): ANALYZE of a bundle table the caller may read. PostgreSQL 15
--     lets only a table's owner analyze it; a stage login's plain ANALYZE only warns and skips,
--     leaving the planner on stale statistics after a full rebuild.
--   * raw.attach_hris_partition(text, regclass, text): publish a validated HRIS file by moving its
--     staging table into raw and attaching it as the file's partition. PostgreSQL lets only the
--     parent's owner attach a partition, and the owner keeps the HRIS raw parents (no migration
--     gives the loader a raw table or CREATE on raw): a published file belongs to the owner, which
--     retention drops and migrations alter; a loader can neither.
-- Nobody may execute them yet; governance.apply_role_privileges() (0019) grants EXECUTE to the stages.
--
-- Both functions pin search_path and validate everything they are given: they run as the owner,
-- which may be a superuser.

create or replace function core.analyze_relation(relation regclass) returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    target record;
begin
    select
        namespace.nspname as schema_name,
        class.relname as table_name,
        class.relkind,
        class.relowner
    into target
    from pg_class as class
    inner join pg_namespace as namespace on class.relnamespace = namespace.oid
    where class.oid = relation;
    if not found or target.schema_name not in ('core', 'mart', 'staging', 'raw')
        or target.relkind not in ('r', 'p', 'm') then
        raise exception 'core.analyze_relation refuses %: only tables in the schemas core, mart, staging and raw',
            coalesce(relation::text, 'null')
            using errcode = 'insufficient_privilege';
    end if;
    -- The caller's reach, not the owner's: a stage login (its group's privileges, inherited) must
    -- be able to read the table itself, e.g. no loader statistics runs on mart.
    if not (
        has_schema_privilege(session_user, target.schema_name, 'USAGE')
        and has_table_privilege(session_user, relation, 'SELECT')
    ) then
        raise exception 'core.analyze_relation refuses %.%: % may not read it', target.schema_name,
            target.table_name, session_user
            using errcode = 'insufficient_privilege';
    end if;
    if not pg_has_role(current_user, target.relowner, 'USAGE') then
        raise exception 'core.analyze_relation cannot analyze %.%: it belongs to %, and % (owner of this function) '
            'is not a member of that role', target.schema_name, target.table_name,
            pg_get_userbyid(target.relowner), current_user
            using errcode = 'insufficient_privilege',
            hint = format('grant %I to %I (README: Least privilege)', pg_get_userbyid(target.relowner), current_user);
    end if;
    execute format('analyze %I.%I', target.schema_name, target.table_name);
end
$$;

revoke all on function core.analyze_relation(regclass) from public;
comment on function core.analyze_relation(regclass) is
'ANALYZE, as the owner, of a core, mart, staging or raw table the caller may read (a stage''s own is skipped)';

-- Publishes the validated staging table `staging_table` (named `<raw_table>_<first 16 hex of sha>` by
-- load/csv_stage.py, with CHECK (source_sha256 = '<sha>')) as the partition of raw.<raw_table> for
-- source_sha256, owned by the raw table's owner and with the raw table's grants. The caller must
-- be a member of the staging table's owner (it staged the file). The table must be exactly what
-- staging makes: no trigger, rule, policy, index, statistics object, inheritance, grant, generated
-- or identity column, non-constant default, and no constraint but that CHECK; otherwise it could run
-- the caller's code as the owner later. Nor may anything else depend on it (a view, a table of its
-- row type, a sequence owned by its column), which would block retention's drop of the partition.
-- Runs in the caller's transaction (with its manifest row).
create or replace function raw.attach_hris_partition(
    raw_table text, staging_table regclass, source_sha256 text
) returns regclass
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    partition_name text;
    staged pg_class%rowtype;
    parent_owner oid;
    expected_check constant text := format('CHECK ((source_sha256 = %L::text))', source_sha256);
    grant_row record;
    dependents text;
begin
    if raw_table is null or raw_table not in ('hris_employee_snapshot', 'hris_compensation_change') then
        raise exception 'raw.attach_hris_partition: % is not an HRIS raw table (hris_employee_snapshot, '
            'hris_compensation_change)', coalesce(quote_literal(raw_table), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    if source_sha256 is null or source_sha256 !~ '^[0-9a-f]{64}$' then
        raise exception 'raw.attach_hris_partition: % is not a sha256 (64 lowercase hex digits)',
            coalesce(quote_literal(source_sha256), 'null')
            using errcode = 'invalid_parameter_value';
    end if;
    partition_name := raw_table || '_' || left(source_sha256, 16);
    if staging_table is null or not exists (
        select from pg_class
        where oid = staging_table and relnamespace = 'staging'::regnamespace and relname = partition_name
    ) then
        raise exception 'raw.attach_hris_partition refuses %: the file''s staging table must be staging.%',
            coalesce(staging_table::text, 'null'), partition_name
            using errcode = 'insufficient_privilege';
    end if;
    -- From here until commit nobody else can change the table between these checks and the attach.
    execute format('lock table staging.%I in access exclusive mode', partition_name);
    select * into staged from pg_class
    where oid = staging_table and relnamespace = 'staging'::regnamespace and relname = partition_name;
    if not found then
        raise exception 'raw.attach_hris_partition: staging.% changed while it was being published', partition_name
            using errcode = 'object_not_in_prerequisite_state';
    end if;
    if not pg_has_role(session_user, staged.relowner, 'MEMBER') then
        raise exception 'raw.attach_hris_partition refuses staging.%: it belongs to %, not to %',
            partition_name, pg_get_userbyid(staged.relowner), session_user
            using errcode = 'insufficient_privilege';
    end if;
    if not pg_has_role(current_user, staged.relowner, 'USAGE') then
        raise exception 'raw.attach_hris_partition cannot publish staging.%: it belongs to %, and % (owner of '
            'this function) is not a member of that role', partition_name, pg_get_userbyid(staged.relowner),
            current_user
            using errcode = 'insufficient_privilege',
            hint = format('grant %I to %I (README: Least privilege)', pg_get_userbyid(staged.relowner), current_user);
    end if;
    if staged.relkind <> 'r' or staged.relpersistence <> 'p' or staged.relispartition or staged.relrowsecurity
        or staged.relacl is not null
        or exists (select from pg_trigger where tgrelid = staging_table)
        or exists (select from pg_rewrite where ev_class = staging_table)
        or exists (select from pg_policy where polrelid = staging_table)
        or exists (select from pg_index where indrelid = staging_table)
        or exists (select from pg_statistic_ext where stxrelid = staging_table)
        or exists (select from pg_inherits where inhrelid = staging_table or inhparent = staging_table)
        or exists (
            select from pg_attribute
            where
                attrelid = staging_table and attnum > 0
                and (attacl is not null or attgenerated <> '' or attidentity <> '')
        )
        or exists (
            select from pg_attrdef
            where adrelid = staging_table and pg_get_expr(adbin, adrelid) !~ '^''[^'']*''::(text|date)$'
        )
        or exists (
            select from pg_constraint
            where conrelid = staging_table and (contype <> 'c' or pg_get_constraintdef(oid) <> expected_check)
        )
        or not exists (
            select from pg_constraint
            where conrelid = staging_table and convalidated and pg_get_constraintdef(oid) = expected_check
        ) then
        raise exception 'raw.attach_hris_partition refuses staging.%: it is not a plain staged file (a permanent '
            'table whose only constraint is %, with constant defaults and no trigger, rule, policy, index, '
            'statistics object, inheritance, grant, generated or identity column)', partition_name, expected_check
            using errcode = 'insufficient_privilege';
    end if;
    -- Nothing else may depend on the table or its row type: a view, a table of that type or a sequence
    -- owned by one of its columns would survive the attach and make retention's drop of the partition
    -- fail ("other objects depend on it"), keeping its rows past their retention.
    select string_agg(pg_describe_object(depend.classid, depend.objid, depend.objsubid), ', ')
    into dependents
    from pg_depend as depend
    where
        (
            (depend.refclassid = 'pg_class'::regclass and depend.refobjid = staging_table)
            or (depend.refclassid = 'pg_type'::regclass and depend.refobjid in (staged.reltype, (
                select typarray from pg_type where oid = staged.reltype
            )))
        )
        and not (depend.classid = 'pg_constraint'::regclass and depend.objid in (
            select oid from pg_constraint where conrelid = staging_table
        ))
        and not (depend.classid = 'pg_attrdef'::regclass and depend.objid in (
            select oid from pg_attrdef where adrelid = staging_table
        ))
        and not (depend.classid = 'pg_class'::regclass and depend.objid = staged.reltoastrelid)
        and not (depend.classid = 'pg_type'::regclass and depend.objid in (staged.reltype, (
            select typarray from pg_type where oid = staged.reltype
        )));
    if dependents is not null then
        raise exception 'raw.attach_hris_partition refuses staging.%: other objects depend on it (%), which would '
            'keep its partition from being dropped at retention', partition_name, dependents
            using errcode = 'dependent_objects_still_exist',
            hint = 'drop them, then publish the file again';
    end if;

    select relowner into parent_owner from pg_class
    where oid = format('raw.%I', raw_table)::regclass;
    execute format('alter table staging.%I set schema raw', partition_name);
    execute format('alter table raw.%I owner to %I', partition_name, pg_get_userbyid(parent_owner));
    for grant_row in
        select
            acl.privilege_type,
            case when acl.grantee = 0 then 'public' else quote_ident(pg_get_userbyid(acl.grantee)) end as grantee
        from pg_class as parent, aclexplode(parent.relacl) as acl
        where parent.oid = format('raw.%I', raw_table)::regclass and acl.grantee <> parent.relowner
    loop
        execute format('grant %s on raw.%I to %s', grant_row.privilege_type, partition_name, grant_row.grantee);
    end loop;
    execute format(
        'alter table raw.%I attach partition raw.%I for values in (%L)', raw_table, partition_name, source_sha256
    );
    return format('raw.%I', partition_name)::regclass;
end
$$;

revoke all on function raw.attach_hris_partition(text, regclass, text) from public;
comment on function raw.attach_hris_partition(text, regclass, text) is
'Publish a validated HRIS staging table as its file''s raw partition, as the owner (the loader owns no raw table)';
