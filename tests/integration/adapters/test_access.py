"""Roles: the pipeline writes as loopline_writer; analysts read predictions as loopline_analyst
and can do nothing else. The roles come from include/sql/roles.sql, the grants from the
migrations: the same on the embedded server as on compose's postgres."""

from __future__ import annotations

import datetime as dt
import re

import psycopg2
import pytest
from loopline.adapters import warehouse
from psycopg2 import errors
from sqlalchemy.engine import make_url

from ...conftest import REPO, SESSION_DIR

ANALYST = "loopline_analyst"
DAY = dt.date(2026, 3, 1)


def password(user: str) -> str:
    from loopline.dev.pgserver import LocalPostgres

    return LocalPostgres(SESSION_DIR / "postgres").passwords()[user]


def connect(warehouse_url: str, user: str, database: str = "warehouse"):
    url = make_url(warehouse_url)
    connection = psycopg2.connect(
        host=url.host,
        port=url.port,
        user=user,
        password=password(user),
        dbname=database,
        connect_timeout=10,
    )
    connection.autocommit = True
    return connection


@pytest.fixture
def analyst(empty_warehouse):
    with warehouse.engine(empty_warehouse).begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO warehouse.predictions (model, partition_date, entity_id, model_version, "
            "mlflow_run_id, score, predicted_label, dag_run_id, scored_at) VALUES "
            f"('churn', '{DAY}', 'c1', 3, 'r3', 0.9, 1, 'run', now()), "
            f"('churn', '{DAY}', 'c2', 3, 'r3', 0.1, 0, 'run', now())"
        )
        conn.exec_driver_sql(
            "INSERT INTO warehouse.labels (model, partition_date, entity_id, label, "
            f"arrival_date, source_file) VALUES ('churn', '{DAY}', 'c1', 1, '{DAY}', 'f')"
        )
    connection = connect(empty_warehouse, ANALYST)
    yield connection.cursor()
    connection.close()


def test_the_pipeline_writes_as_the_writer_role_which_is_no_superuser(warehouse_url):
    assert make_url(warehouse_url).username == "loopline_writer"
    owner, superuser, createrole = warehouse.query(
        "SELECT r.rolname, r.rolsuper, r.rolcreaterole FROM pg_tables t "
        "JOIN pg_roles r ON r.rolname = t.tableowner WHERE t.tablename = 'predictions'"
    ).iloc[0]
    assert (owner, superuser, createrole) == ("loopline_writer", False, False)


def test_analysts_read_the_predictions_tables_and_views(analyst):
    analyst.execute("SELECT entity_id, score FROM warehouse.predictions ORDER BY entity_id")
    assert analyst.fetchall() == [("c1", 0.9), ("c2", 0.1)]
    analyst.execute("SELECT count(*) FROM warehouse.predictions_latest")
    assert analyst.fetchone() == (2,)
    analyst.execute("SELECT model_version, rows, positive_share FROM warehouse.predictions_daily")
    assert analyst.fetchall() == [(3, 2, 0.5)]
    analyst.execute("SELECT count(*) FROM warehouse.prediction_reasons")  # opt-in per spec
    assert analyst.fetchone() == (0,)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM warehouse.labels",
        "SELECT * FROM warehouse.lake_partitions",
        "SELECT * FROM warehouse.predictions_staging",
        "SELECT * FROM warehouse.quarantine",
        "SELECT * FROM warehouse.model_events",
        "SELECT * FROM warehouse.alembic_version",
        "INSERT INTO warehouse.predictions (model, partition_date, entity_id, model_version, "
        "mlflow_run_id, score, dag_run_id, scored_at) "
        "VALUES ('churn', '2026-03-02', 'x', 1, 'r', 0.5, 'd', now())",
        "UPDATE warehouse.predictions SET score = 0",
        "DELETE FROM warehouse.predictions",
        "TRUNCATE warehouse.predictions",
        "DROP TABLE warehouse.predictions",
        "DROP VIEW warehouse.predictions_latest",
        "ALTER TABLE warehouse.predictions ADD COLUMN x int",
        "CREATE TABLE warehouse.mine (x int)",
        "CREATE TABLE public.mine (x int)",
        "CREATE TEMP TABLE mine (x int)",
        "CREATE SCHEMA mine",
        "CREATE ROLE sneaky LOGIN",
    ],
)
def test_analysts_cannot_read_anything_else_or_change_anything(analyst, statement):
    # Sessions are read-only by default; switch that off to prove the grants themselves hold.
    analyst.execute("SET default_transaction_read_only = off")
    with pytest.raises(errors.InsufficientPrivilege):
        analyst.execute(statement)
    analyst.execute("SELECT count(*) FROM warehouse.predictions")
    assert analyst.fetchone() == (2,)


def test_analyst_sessions_are_read_only_by_default(analyst):
    analyst.execute("SHOW default_transaction_read_only")
    assert analyst.fetchone() == ("on",)
    with pytest.raises(errors.ReadOnlySqlTransaction):
        analyst.execute("DELETE FROM warehouse.predictions")


@pytest.mark.parametrize("database", ["airflow", "mlflow", "postgres"])
def test_analysts_cannot_connect_to_the_other_databases(warehouse_url, database):
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        connect(warehouse_url, ANALYST, database).close()


def readme_analyst_queries() -> list[str]:
    """The SQL examples of README's analysts' section, one statement each."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## For analysts", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, flags=re.S)
    return [q.strip() for block in blocks for q in block.split(";") if q.strip()]


def test_readme_queries_run_as_analyst_and_answer(analyst):
    queries = readme_analyst_queries()
    assert len(queries) >= 3
    for query in queries:
        analyst.execute(query)
        rows = analyst.fetchall()
        assert rows, f"README query returned nothing on two predictions:\n{query}"
