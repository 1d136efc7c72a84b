#!/bin/bash
# Runs once, as the container's superuser, when the warehouse volume is first initialised: the DBA
# part of "Least privilege" in the README. Passwords come from the environment (.env), never from here.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pipeline_password="$WAREHOUSE_PIPELINE_PASSWORD" -v analyst_password="$WAREHOUSE_ANALYST_PASSWORD" <<'SQL'
create role turnover_loader nologin;
create role turnover_transformer nologin;
create role turnover_analyst nologin;
create role turnover_steward nologin;
-- The pipeline's login owns the bundle's schemas (it runs the migrations) but is no superuser.
create role turnover_pipeline login password :'pipeline_password' in role turnover_loader, turnover_transformer;
create role analyst login password :'analyst_password' in role turnover_analyst;
alter database turnover owner to turnover_pipeline;
alter schema public owner to turnover_pipeline;
SQL
