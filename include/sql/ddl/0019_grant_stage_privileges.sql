-- original-sha256: 892a9d0bdafef43c87e2a6ee9079c1c07b14f4793eda3e8914219e222e824145
-- body-sha256: c38dc91a4a8611e097c472e0fb851ef83e126ec73238c35803171910c81f5ed4
-- Revised after release: governance.apply_role_privileges() (grants/) moved to include/sql/repeatable/ (one
-- current definition, applied after the numbered migrations); a warehouse that applied the original keeps it.

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
