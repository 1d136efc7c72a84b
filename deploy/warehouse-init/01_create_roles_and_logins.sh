#!/bin/bash
# Runs once, as the container's superuser, when the warehouse volume is first initialised: the DBA
# part of "Least privilege" in the README. Passwords come from the environment (.env), never from here.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pipeline_password="$WAREHOUSE_PIPELINE_PASSWORD" -v analyst_password="$WAREHOUSE_ANALYST_PASSWORD" \
  -v loader_password="$WAREHOUSE_LOADER_PASSWORD" -v transformer_password="$WAREHOUSE_TRANSFORMER_PASSWORD" \
  -v quality_reader_password="$WAREHOUSE_QUALITY_READER_PASSWORD" <<'SQL'
create role turnover_loader nologin;
create role turnover_transformer nologin;
create role turnover_analyst nologin;
create role turnover_steward nologin;
create role turnover_quality_reader nologin;
-- The owner's login (warehouse_postgres) owns the bundle's schemas (it runs the migrations, installs the
-- pseudonym key, applies retention) but is no superuser; as a member of the loader and transformer roles
-- it may drop and alter what their logins create.
create role turnover_pipeline login password :'pipeline_password' in role turnover_loader, turnover_transformer;
-- One login per stage, in its group role only, taking that role for its sessions so that what it creates
-- belongs to the group (README "Least privilege", "Which login each connection uses").
create role pipeline_loader login password :'loader_password' in role turnover_loader;
alter role pipeline_loader set role = 'turnover_loader';
create role pipeline_transformer login password :'transformer_password' in role turnover_transformer;
alter role pipeline_transformer set role = 'turnover_transformer';
create role quality_reader login password :'quality_reader_password' in role turnover_quality_reader;
alter role quality_reader set role = 'turnover_quality_reader';
create role analyst login password :'analyst_password' in role turnover_analyst;
alter database turnover owner to turnover_pipeline;
alter schema public owner to turnover_pipeline;
SQL
