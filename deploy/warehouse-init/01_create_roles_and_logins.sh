#!/bin/bash
# Runs once, as the container's superuser, when the warehouse volume is first initialised: the DBA part of
# docs/deploy/warehouse-roles.md, with the SQL of roles_and_logins.psql beside it (the one copy).
# Passwords come from the environment (.env), never from here.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pipeline_password="$WAREHOUSE_PIPELINE_PASSWORD" -v analyst_password="$WAREHOUSE_ANALYST_PASSWORD" \
  -v loader_password="$WAREHOUSE_LOADER_PASSWORD" -v transformer_password="$WAREHOUSE_TRANSFORMER_PASSWORD" \
  -v quality_reader_password="$WAREHOUSE_QUALITY_READER_PASSWORD" \
  -f /docker-entrypoint-initdb.d/roles_and_logins.psql
