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


def copy_frame(cursor, table: str, frame: pd.DataFrame, schema: str | None = SCHEMA) -> None:
    """Bulk-load ``frame`` (columns named as in the table) with COPY ... FROM STDIN (CSV)."""
    if frame.empty:
        return
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False, date_format="%Y-%m-%d %H:%M:%S%z")
    buffer.seek(0)
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    target = f"{schema}.{table}" if schema else table
    cursor.copy_expert(f"COPY {target} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)


@contextmanager
def partition_writer(
    cursor, table: str, model: str, partition_date: dt.date, constants: dict | None = None
) -> Iterator:
    """Yield ``load(frame)``, which COPYs rows into a staging table; on exit, swap the
    partition's rows in ``table`` for the staged ones (delete + insert, same transaction).
    Rows can be loaded in chunks, so memory does not grow with the size of the day; columns
    with one value for the whole partition (``constants``) are added by the insert, not copied.
    """
    stage, columns = f"stage_{table}", []
    constants = {"model": model, "partition_date": partition_date, **(constants or {})}

    def load(frame: pd.DataFrame) -> None:
        if not columns:
            columns.extend(f'"{c}"' for c in frame.columns)
            cursor.execute(
                f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS "
                f"SELECT {', '.join(columns)} FROM {SCHEMA}.{table} WITH NO DATA"
            )
        copy_frame(cursor, stage, frame, schema=None)

    yield load
    cursor.execute(
        f"DELETE FROM {SCHEMA}.{table} WHERE model = %s AND partition_date = %s",
        (model, partition_date),
    )
    if columns:
        names = ", ".join(columns + [f'"{c}"' for c in constants])
        values = ", ".join(columns + ["%s"] * len(constants))
        cursor.execute(
            f"INSERT INTO {SCHEMA}.{table} ({names}) SELECT {values} FROM {stage}",
            list(constants.values()),
        )
        cursor.execute(f"DROP TABLE {stage}")


def replace_partition(
    cursor, table: str, model: str, partition_date: dt.date, frame: pd.DataFrame
) -> None:
    """Swap the partition's rows in ``table`` for ``frame`` (see ``partition_writer``)."""
    with partition_writer(cursor, table, model, partition_date) as load:
        load(frame)


def upsert_frame(cursor, table: str, key: list[str], frame: pd.DataFrame) -> None:
    """Insert rows, replacing those with the same ``key``."""
    if frame.empty:
        return
    stage = f"stage_{table}_upsert"
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {SCHEMA}.{table} INCLUDING DEFAULTS) "
        "ON COMMIT DROP"
    )
    cursor.execute(f"TRUNCATE {stage}")
    copy_frame(cursor, stage, frame, schema=None)
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in frame.columns if c not in key)
    cursor.execute(
        f"INSERT INTO {SCHEMA}.{table} ({columns}) SELECT {columns} FROM {stage} "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


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


def copy_out(
    sql: str, params: dict, url: str | None = None, dtype: dict | None = None
) -> pd.DataFrame:
    """Run a query through COPY ... TO STDOUT (CSV): the fast way to read many rows."""
    raw = engine(url).raw_connection()
    try:
        cursor = raw.cursor()
        statement = cursor.mogrify(sql, params).decode()
        buffer = io.StringIO()
        cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv, HEADER)", buffer)
        raw.commit()
    finally:
        raw.close()
    buffer.seek(0)
    return pd.read_csv(
        buffer, keep_default_na=False, na_values=[""], dtype={"entity_id": str, **(dtype or {})}
    )


def stream_query(
    sql: str, params: dict, chunk_rows: int, url: str | None = None, dtype: dict | None = None
) -> Iterator[pd.DataFrame]:
    """Yield the result of ``sql`` as DataFrames of at most ``chunk_rows`` rows. The result is
    COPYed out as CSV into a temporary file on disk and parsed chunk by chunk, so memory is
    bounded by the chunk, not the result (and COPY + pandas' C parser beat row fetching)."""
    import tempfile

    raw = engine(url).raw_connection()
    with tempfile.TemporaryFile(
        "w+", dir=config.state_dir() if config.state_dir().is_dir() else None
    ) as spool:
        try:
            cursor = raw.cursor()
            statement = cursor.mogrify(sql, params).decode()
            cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv, HEADER)", spool)
            raw.commit()
        finally:
            raw.close()
        spool.seek(0)
        yield from pd.read_csv(
            spool,
            chunksize=chunk_rows,
            keep_default_na=False,
            na_values=[""],
            dtype={"entity_id": str, **(dtype or {})},
        )


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
