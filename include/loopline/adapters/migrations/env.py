"""Alembic environment for the warehouse schema; run through ``loopline db upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, text

SCHEMA = "warehouse"


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
        with engine.begin() as conn:
            _migrate(conn)
        engine.dispose()
    else:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    # The version table lives in the warehouse schema, so the schema must exist first.
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection, version_table_schema=SCHEMA, transaction_per_migration=True
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `loopline db upgrade`")
run_migrations_online()
