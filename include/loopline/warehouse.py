"""The PostgreSQL warehouse adapter: schema migrations, bulk writes, partition reads.

Writes replace a (model, partition_date) partition in one transaction: delete, then COPY.
A transaction-scoped advisory lock on the partition serialises two copies of the same task,
so a re-run or a concurrent duplicate can never leave a day doubled.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, create_engine, text

from loopline import config

SCHEMA = "warehouse"
MIGRATIONS = Path(__file__).parent / "migrations"


@cache
def engine(url: str | None = None) -> Engine:
    return create_engine(url or config.warehouse_url(), pool_pre_ping=True, future=True)


def upgrade(url: str | None = None) -> str:
    """Bring the schema to the newest migration; return the revision now in force."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    eng = engine(url)
    with eng.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    return current_revision(url)


def current_revision(url: str | None = None) -> str:
    with engine(url).connect() as conn:
        return conn.execute(text(f"SELECT version_num FROM {SCHEMA}.alembic_version")).scalar_one()


@contextmanager
def partition_transaction(model: str, partition_date: dt.date, url: str | None = None) -> Iterator:
    """A DB-API cursor in one transaction holding the partition's advisory lock."""
    raw = engine(url).raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"{model}/{partition_date.isoformat()}",),
        )
        yield cursor
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def copy_frame(cursor, table: str, frame: pd.DataFrame) -> None:
    """Bulk-load ``frame`` (columns named as in the table) with COPY ... FROM STDIN (CSV)."""
    if frame.empty:
        return
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S%z")
    buffer.seek(0)
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    cursor.copy_expert(f"COPY {SCHEMA}.{table} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)


def replace_partition(
    cursor, table: str, model: str, partition_date: dt.date, frame: pd.DataFrame
) -> None:
    """Delete the partition's rows in ``table`` and load ``frame`` in their place."""
    cursor.execute(
        f"DELETE FROM {SCHEMA}.{table} WHERE model = %s AND partition_date = %s",
        (model, partition_date),
    )
    copy_frame(cursor, table, frame.assign(model=model, partition_date=partition_date))


def count_partition(cursor, table: str, model: str, partition_date: dt.date) -> int:
    cursor.execute(
        f"SELECT count(*) FROM {SCHEMA}.{table} WHERE model = %s AND partition_date = %s",
        (model, partition_date),
    )
    return int(cursor.fetchone()[0])


def upsert_validation_result(cursor, row: dict) -> None:
    columns = list(row)
    cursor.execute(
        f"INSERT INTO {SCHEMA}.validation_results ({', '.join(columns)}, validated_at) "
        f"VALUES ({', '.join(['%s'] * len(columns))}, now()) "
        "ON CONFLICT (model, partition_date) DO UPDATE SET "
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in ("model", "partition_date"))
        + ", validated_at = now()",
        [json.dumps(v) if isinstance(v, list | dict) else v for v in row.values()],
    )


def read_raw(
    model: str, partition_date: dt.date, url: str | None = None
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """A day's raw rows (record columns plus ``__source_file``, ``__row_number``, ``__record``)
    and the columns each of its files carried."""
    with engine(url).connect() as conn:
        rows = conn.execute(
            text(
                f"SELECT source_file, row_number, record::text FROM {SCHEMA}.raw_rows "
                "WHERE model = :m AND partition_date = :d ORDER BY source_file, row_number"
            ),
            {"m": model, "d": partition_date},
        ).all()
        files = conn.execute(
            text(
                f"SELECT source_file, columns FROM {SCHEMA}.ingested_files "
                "WHERE model = :m AND partition_date = :d ORDER BY source_file"
            ),
            {"m": model, "d": partition_date},
        ).all()
    frame = pd.DataFrame.from_records([json.loads(r[2]) for r in rows], index=range(len(rows)))
    frame["__source_file"] = [r[0] for r in rows]
    frame["__row_number"] = [r[1] for r in rows]
    frame["__record"] = [r[2] for r in rows]
    return frame, {f[0]: list(f[1]) for f in files}


def query(sql: str, params: dict | None = None, url: str | None = None) -> pd.DataFrame:
    """Run a read-only query and return a frame (small results: summaries, tests)."""
    with engine(url).connect() as conn:
        result = conn.execute(text(sql), params or {})
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def count_rows(table: str, model: str, dates: Sequence[dt.date] | None = None, url=None) -> int:
    sql = f"SELECT count(*) FROM {SCHEMA}.{table} WHERE model = :m"
    params: dict = {"m": model}
    if dates is not None:
        sql += " AND partition_date = ANY(:d)"
        params["d"] = list(dates)
    with engine(url).connect() as conn:
        return int(conn.execute(text(sql), params).scalar_one())
