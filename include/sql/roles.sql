-- Databases and roles of a loopline PostgreSQL server. Run by a superuser with psql, the psql
-- variables airflow_password, mlflow_password, writer_password and analyst_password set
-- (`-v name=...`, or `\set name '...'` lines on stdin before this file, which keeps them out of
-- the process list). The embedded server (`loopline db start`, tests) and compose's postgres
-- service both run it; passwords come from the caller, never from this file. Safe to run again.
--
--   airflow           owns database airflow   (Airflow metadata)
--   mlflow            owns database mlflow    (MLflow tracking store)
--   loopline_writer   owns database warehouse (the pipeline: migrations, loads, predictions)
--   loopline_analyst  read-only: CONNECT to warehouse; the SELECT grants on the predictions
--                     tables and views are made by the warehouse migrations (0004_analyst_access)

SELECT format('CREATE ROLE %I LOGIN', name)
FROM (VALUES ('airflow'), ('mlflow'), ('loopline_writer'), ('loopline_analyst')) AS r(name)
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.name)
\gexec

ALTER ROLE airflow PASSWORD :'airflow_password';
ALTER ROLE mlflow PASSWORD :'mlflow_password';
ALTER ROLE loopline_writer PASSWORD :'writer_password';
ALTER ROLE loopline_analyst PASSWORD :'analyst_password';
-- Analysts' sessions cannot write even where a grant slipped through. Their connections are
-- limited by the server (CONNECTION LIMIT), and the server keeps `reserved_connections` slots
-- (set where it starts: 20 of 200) for the roles that hold pg_use_reserved_connections: the
-- pipeline, Airflow and MLflow, so analysts can never take the slots the pipeline needs. The
-- timeouts are the analysts' defaults; the pipeline ends analyst work that outlives the limits
-- (loopline.adapters.warehouse.end_overlong_analyst_work, through pg_signal_backend).
ALTER ROLE loopline_analyst CONNECTION LIMIT 40;
ALTER ROLE loopline_analyst SET default_transaction_read_only = on;
ALTER ROLE loopline_analyst SET statement_timeout = '5min';
ALTER ROLE loopline_analyst SET idle_in_transaction_session_timeout = '10min';
GRANT pg_use_reserved_connections TO airflow, mlflow, loopline_writer;
GRANT pg_signal_backend, pg_read_all_stats TO loopline_writer;

SELECT format('CREATE DATABASE %I OWNER %I', db, owner)
FROM (VALUES ('airflow', 'airflow'), ('mlflow', 'mlflow'), ('warehouse', 'loopline_writer'))
     AS d(db, owner)
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d.db)
\gexec

-- Only each database's owner may connect (PUBLIC may by default), plus the analysts to the
-- warehouse; superusers keep the maintenance database.
REVOKE CONNECT, TEMPORARY ON DATABASE postgres, airflow, mlflow, warehouse FROM PUBLIC;
GRANT CONNECT ON DATABASE airflow TO airflow;
GRANT CONNECT ON DATABASE mlflow TO mlflow;
GRANT CONNECT, TEMPORARY ON DATABASE warehouse TO loopline_writer;
GRANT CONNECT ON DATABASE warehouse TO loopline_analyst;

-- PostgreSQL 15+ no longer lets PUBLIC create in schema public; the owners need it there.
\connect airflow
ALTER SCHEMA public OWNER TO airflow;
\connect mlflow
ALTER SCHEMA public OWNER TO mlflow;
\connect warehouse
ALTER SCHEMA public OWNER TO loopline_writer;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
-- Only the pipeline may take advisory locks in the warehouse: an analyst holding a day's lock
-- (pg_advisory_lock(hashtextextended('churn/2026-11-19', 0))) would stall its writes.
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure)
FROM pg_proc p WHERE p.proname LIKE 'pg\_%advisory%'
\gexec
SELECT format('GRANT EXECUTE ON FUNCTION %s TO loopline_writer', p.oid::regprocedure)
FROM pg_proc p WHERE p.proname LIKE 'pg\_%advisory%'
\gexec
