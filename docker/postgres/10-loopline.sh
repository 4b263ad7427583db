#!/usr/bin/env bash
# Creates loopline's roles and databases on the first start of compose's postgres service.
#
# The postgres image runs /docker-entrypoint-initdb.d/* once, on an empty data volume, as the
# superuser, while the server still listens on its Unix socket only. include/sql/roles.sql (mounted
# at /loopline/roles.sql) creates the roles airflow, mlflow, loopline_writer and loopline_analyst
# and the databases airflow, mlflow and warehouse; the passwords come from this service's
# environment (.env), never from the repository.
#
# roles.sql is safe to run again: after changing a password in .env, apply it with
#   docker compose exec postgres bash /docker-entrypoint-initdb.d/10-loopline.sh
set -e

: "${POSTGRES_USER:?POSTGRES_USER is not set}"
: "${AIRFLOW_DB_PASSWORD:?AIRFLOW_DB_PASSWORD is not set: see .env.example}"
: "${MLFLOW_DB_PASSWORD:?MLFLOW_DB_PASSWORD is not set: see .env.example}"
: "${WAREHOUSE_WRITER_PASSWORD:?WAREHOUSE_WRITER_PASSWORD is not set: see .env.example}"
: "${WAREHOUSE_ANALYST_PASSWORD:?WAREHOUSE_ANALYST_PASSWORD is not set: see .env.example}"

echo "loopline: creating roles and databases from ${LOOPLINE_ROLES_SQL:-/loopline/roles.sql}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" \
    -v mlflow_password="$MLFLOW_DB_PASSWORD" \
    -v writer_password="$WAREHOUSE_WRITER_PASSWORD" \
    -v analyst_password="$WAREHOUSE_ANALYST_PASSWORD" \
    -f "${LOOPLINE_ROLES_SQL:-/loopline/roles.sql}"
