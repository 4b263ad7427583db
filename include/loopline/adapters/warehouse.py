"""The PostgreSQL warehouse: every SQL statement loopline runs lives in this module, all with
one placeholder style (``%(name)s``, the driver's own, through SQLAlchemy's
``exec_driver_sql`` or a raw DB-API cursor for COPY).

PostgreSQL holds what people query and what must be transactional: predictions (analysts),
quarantine, validation results, drift reports, decisions, model events, labels, and the pointer
to each published lake partition. Bulk feature data lives in the lake.

Writes that replace a (model, day) partition run in one transaction holding the partition's
advisory lock (``pg_advisory_xact_lock``, which analysts may not call), so a re-run or a
concurrent duplicate can never leave a day doubled or mixed.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pv
from sqlalchemy import Engine, create_engine

from loopline.adapters import settings
from loopline.core import faults
from loopline.core.drift import DriftResult
from loopline.core.errors import PermanentError, StoreUnavailableError
from loopline.core.records import (
    ChangeRecord,
    DriftCheck,
    EstimatedDay,
    LakeFile,
    ModelEvent,
    PendingEvent,
    PerformanceDay,
    PublishedDay,
    RetrainDecisionRecord,
    ShadowComparison,
    ValidatedDay,
    ValidationOutcome,
)

if TYPE_CHECKING:
    from psycopg2.extensions import cursor as Cursor

SCHEMA = "warehouse"
MIGRATIONS = Path(__file__).parent / "migrations"


# --- connections, schema ---------------------------------------------------------------------


def engine(url: str | None = None) -> Engine:
    """The engine of ``url``, else of the configured warehouse (resolved on every call, so a
    change of the setting takes effect; one engine and pool per URL)."""
    return _engine(url or settings.warehouse_url())


@cache
def _engine(url: str) -> Engine:
    # A server that is down is said within seconds, not after the kernel's connect timeout.
    return create_engine(url, pool_pre_ping=True, future=True, connect_args={"connect_timeout": 10})


def _unavailable(exc: Exception) -> StoreUnavailableError:
    return StoreUnavailableError(
        f"the warehouse cannot be reached: {str(exc).strip().splitlines()[0]}",
        hint="start it (`loopline db start` for the embedded one) or fix WAREHOUSE_URL; "
        "Airflow retries the task",
    )


@contextmanager
def _connection(url: str | None = None):
    from sqlalchemy.exc import OperationalError

    try:
        with engine(url).begin() as conn:
            yield conn
    except OperationalError as exc:
        if getattr(exc, "connection_invalidated", False) or "connect" in str(exc).lower():
            raise _unavailable(exc) from exc
        raise


def upgrade(url: str | None = None) -> str:
    """Bring the schema to the newest migration; return the revision now in force."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine(url).begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    return current_revision(url)


def current_revision(url: str | None = None) -> str:
    with _connection(url) as conn:
        return conn.exec_driver_sql(
            f"SELECT version_num FROM {SCHEMA}.alembic_version"
        ).scalar_one()


def query(sql: str, params: dict | None = None, url: str | None = None) -> pd.DataFrame:
    """A read-only query (``%(name)s`` placeholders) as a frame: summaries, tests, the CLI."""
    with _connection(url) as conn:
        result = conn.exec_driver_sql(sql, params or {})
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def _execute(sql: str, params: dict | None = None, url: str | None = None):
    with _connection(url) as conn:
        return conn.exec_driver_sql(sql, params or {})


def _scalar(sql: str, params: dict, url: str | None = None):
    with _connection(url) as conn:
        return conn.exec_driver_sql(sql, params).scalar()


# --- partitions, COPY -------------------------------------------------------------------------


@contextmanager
def _transaction(url: str | None = None, lock: str | None = None) -> Iterator:
    """A DB-API cursor in one transaction, holding the advisory lock ``lock`` if given."""
    import psycopg2

    try:
        raw = engine(url).raw_connection()
    except Exception as exc:  # the pool wraps the driver's OperationalError
        if isinstance(getattr(exc, "orig", exc), psycopg2.OperationalError):
            raise _unavailable(exc) from exc
        raise
    try:
        cursor = raw.cursor()
        if lock is not None:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))", {"key": lock}
            )
        yield cursor
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()


def partition_transaction(model: str, partition_date: dt.date, url: str | None = None):
    """A DB-API cursor in one transaction holding the (model, day) partition's advisory lock."""
    return _transaction(url, lock=f"{model}/{partition_date.isoformat()}")


def _csv(table: pa.Table) -> io.BytesIO:
    buffer = io.BytesIO()
    pv.write_csv(table, buffer, pv.WriteOptions(include_header=False, quoting_style="needed"))
    buffer.seek(0)
    return buffer


def copy_frame(
    cursor: Cursor, table: str, frame: pd.DataFrame | pa.Table, schema: str | None = SCHEMA
):
    """Bulk-load rows (columns named as in the table) with COPY ... FROM STDIN (CSV, written by
    Arrow's C++ writer)."""
    data = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    if data.num_rows == 0:
        return
    columns = ", ".join(f'"{c}"' for c in data.column_names)
    target = f"{schema}.{table}" if schema else table
    cursor.copy_expert(f"COPY {target} ({columns}) FROM STDIN WITH (FORMAT csv)", _csv(data))


def _replace(cursor: Cursor, table: str, model: str, day: dt.date, frame: pd.DataFrame) -> None:
    cursor.execute(
        f"DELETE FROM {SCHEMA}.{table} WHERE model = %(model)s AND partition_date = %(day)s",
        {"model": model, "day": day},
    )
    copy_frame(cursor, table, frame.assign(model=model, partition_date=day))


def count_rows(
    table: str, model: str, dates: Sequence[dt.date] | None = None, url: str | None = None
) -> int:
    sql = f"SELECT count(*) FROM {SCHEMA}.{table} WHERE model = %(model)s"
    params: dict = {"model": model}
    if dates is not None:
        sql += " AND partition_date = ANY(%(days)s)"
        params["days"] = list(dates)
    return int(_scalar(sql, params, url))


def stream_copy(
    sql: str, params: dict, chunk_rows: int, dtype: dict | None = None, url: str | None = None
):
    """The result of ``sql`` as frames of at most ``chunk_rows`` rows: COPYed out as CSV into a
    temporary file, then parsed chunk by chunk, so memory is bounded by the chunk."""
    raw = engine(url).raw_connection()
    with tempfile.TemporaryFile("w+", dir=settings.scratch_dir()) as spool:
        try:
            cursor = raw.cursor()
            statement = cursor.mogrify(sql, params).decode()
            cursor.copy_expert(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv, HEADER)", spool)
            raw.commit()
        finally:
            raw.close()
        spool.seek(0)
        yield from pd.read_csv(
            spool, chunksize=chunk_rows, keep_default_na=False, na_values=[""], dtype=dtype
        )


# --- validation: published lake partitions, quarantine, results --------------------------------


def _published(row: pd.Series) -> PublishedDay:
    return PublishedDay(
        attempt=row.attempt,
        location=row.location,
        files=tuple(LakeFile(f["path"], int(f["rows"])) for f in row.files),
        rows_clean=int(row.rows_clean),
        run_id=row.run_id,
        published_at=row.published_at,
    )


POINTER_SQL = (
    f"SELECT attempt, location, files, rows_clean, run_id, published_at "
    f"FROM {SCHEMA}.lake_partitions WHERE model = %(model)s AND partition_date = %(day)s"
)


def published_partition(model: str, day: dt.date, url: str | None = None) -> PublishedDay | None:
    """The pointer to a day's published clean files: attempt, location, files, rows."""
    frame = query(POINTER_SQL, {"model": model, "day": day}, url)
    return None if frame.empty else _published(frame.iloc[0])


def published_days(
    model: str, start: dt.date, end: dt.date, url: str | None = None
) -> pd.DataFrame:
    """Pointers of the published days in ``start..end`` (one row per day, ordered)."""
    return query(
        f"SELECT partition_date, attempt, location, files, rows_clean "
        f"FROM {SCHEMA}.lake_partitions WHERE model = %(model)s "
        "AND partition_date BETWEEN %(start)s AND %(end)s ORDER BY partition_date",
        {"model": model, "start": start, "end": end},
        url,
    )


def _upsert_validation(
    cursor: Cursor, model: str, day: dt.date, outcome: ValidationOutcome
) -> None:
    row = {
        "model": model,
        "partition_date": day,
        **outcome.as_dict(),
        "failed_expectations": json.dumps([dict(f) for f in outcome.failed_expectations]),
    }
    columns = list(row)
    updates = ", ".join(
        f"{c} = EXCLUDED.{c}" for c in columns if c not in ("model", "partition_date")
    )
    cursor.execute(
        f"INSERT INTO {SCHEMA}.validation_results ({', '.join(columns)}, validated_at) "
        f"VALUES ({', '.join(f'%({c})s' for c in columns)}, now()) "
        f"ON CONFLICT (model, partition_date) DO UPDATE SET {updates}, validated_at = now()",
        row,
    )


def publish_day(
    model: str,
    day: dt.date,
    *,
    pointer: PublishedDay,
    files: pd.DataFrame,
    quarantine: Iterable[pa.Table],
    result: ValidationOutcome,
    url: str | None = None,
) -> PublishedDay | None:
    """Commit a validated day in one transaction: the pointer to its clean files, the files
    read, its quarantine and its validation result. Returns the pointer it replaced."""
    with partition_transaction(model, day, url) as cursor:
        cursor.execute(POINTER_SQL, {"model": model, "day": day})
        found = cursor.fetchone()  # under the day's lock: the pointer this commit replaces
        names = [c.name for c in cursor.description]
        previous = _published(pd.Series(dict(zip(names, found, strict=True)))) if found else None
        cursor.execute(
            f"INSERT INTO {SCHEMA}.lake_partitions (model, partition_date, attempt, location, "
            "files, rows_clean, run_id, published_at) VALUES (%(model)s, %(day)s, %(attempt)s, "
            "%(location)s, %(files)s, %(rows_clean)s, %(run_id)s, now()) "
            "ON CONFLICT (model, partition_date) DO UPDATE SET attempt = EXCLUDED.attempt, "
            "location = EXCLUDED.location, files = EXCLUDED.files, "
            "rows_clean = EXCLUDED.rows_clean, run_id = EXCLUDED.run_id, published_at = now()",
            {
                "model": model,
                "day": day,
                "attempt": pointer.attempt,
                "location": pointer.location,
                "files": json.dumps([{"path": f.path, "rows": f.rows} for f in pointer.files]),
                "rows_clean": pointer.rows_clean,
                "run_id": pointer.run_id,
            },
        )
        _replace(cursor, "ingested_files", model, day, files)
        cursor.execute(
            f"DELETE FROM {SCHEMA}.quarantine WHERE model = %(model)s AND partition_date = %(day)s",
            {"model": model, "day": day},
        )
        constants = {"model": model, "partition_date": day, "run_id": result.run_id}
        for table in quarantine:
            for name, value in constants.items():
                table = table.append_column(name, pa.array([value] * table.num_rows))
            copy_frame(cursor, "quarantine", table)
        _upsert_validation(cursor, model, day, result)
        faults.point("publish.in_transaction")
    return previous


def record_validation_failure(
    model: str, day: dt.date, *, run_id: str, error: str, failed: list[dict], url: str | None = None
) -> ValidationOutcome:
    """A failed attempt: recorded against the day, whose published rows stay as they were (the
    counts are those of the published day, so read = clean + quarantined still holds)."""
    with partition_transaction(model, day, url) as cursor:
        cursor.execute(
            f"SELECT rows_read, rows_clean, rows_quarantined, published_run_id "
            f"FROM {SCHEMA}.validation_results "
            ""
            "WHERE model = %(model)s AND partition_date = %(day)s",
            {"model": model, "day": day},
        )
        kept = cursor.fetchone() or (0, 0, 0, None)
        outcome = ValidationOutcome(
            run_id=run_id,
            published_run_id=kept[3],
            rows_read=kept[0],
            rows_clean=kept[1],
            rows_quarantined=kept[2],
            success=False,
            failed_expectations=failed,
            error=error,
        )
        _upsert_validation(cursor, model, day, outcome)
    return outcome


def validation_results(model: str, url: str | None = None) -> pd.DataFrame:
    return query(
        f"SELECT partition_date, rows_read, rows_clean, rows_quarantined, success, error "
        f"FROM {SCHEMA}.validation_results WHERE model = %(model)s ORDER BY partition_date",
        {"model": model},
        url,
    )


# --- predictions ------------------------------------------------------------------------------


ANALYST_ROLE = "loopline_analyst"


def end_overlong_analyst_work(url: str | None = None) -> int:
    """End analyst sessions whose statement has run longer than the limit, or that sat idle in
    an open transaction longer than theirs (``settings.analyst_limits``): the role's timeouts
    are defaults its sessions may lift; these limits hold. Returns how many were ended."""
    statement, idle = settings.analyst_limits()
    ended = query(
        "SELECT pid, pg_terminate_backend(pid) AS ended FROM pg_stat_activity "
        "WHERE usename = %(role)s AND pid <> pg_backend_pid() AND ("
        "(state = 'active' AND now() - query_start > make_interval(secs => %(statement)s)) OR "
        "(state LIKE 'idle in transaction%%' AND now() - state_change > "
        "make_interval(secs => %(idle)s)))",
        {"role": ANALYST_ROLE, "statement": statement, "idle": idle},
        url,
    )
    return int(ended["ended"].sum()) if len(ended) else 0


def stage_predictions(
    model: str,
    day: dt.date,
    attempt: str,
    shard: int,
    tables: Iterable[pa.Table],
    url: str | None = None,
) -> int:
    """COPY one shard's scored rows into the staging table (replacing an earlier try of the
    same shard); they reach ``predictions`` only in :func:`swap_predictions`."""
    rows = 0
    with _transaction(url) as cursor:
        cursor.execute(
            f"DELETE FROM {SCHEMA}.predictions_staging WHERE attempt = %(attempt)s "
            "AND shard = %(shard)s",
            {"attempt": attempt, "shard": shard},
        )
        for table in tables:
            n = table.num_rows
            table = (
                table.append_column("attempt", pa.array([attempt] * n))
                .append_column("shard", pa.array([shard] * n, pa.int32()))
                .append_column("model", pa.array([model] * n))
                .append_column("partition_date", pa.array([day] * n, pa.date32()))
            )
            copy_frame(cursor, "predictions_staging", table)
            rows += table.num_rows
    return rows


PREDICTION_TABLES = ("predictions", "shadow_predictions")


def swap_predictions(
    model: str,
    day: dt.date,
    attempt: str,
    expected: dict[int, int],
    constants: dict,
    table: str = "predictions",
    url: str | None = None,
    *,
    published_attempt: str | None = None,
) -> int:
    """Replace the day's rows of ``table`` (the champion's ``predictions``, or the challenger's
    ``shadow_predictions``) by the staged rows of ``attempt`` in one transaction, after checking
    that the day still points at ``published_attempt`` (the lake files that were scored: a day
    published again since then is another day's rows) and that every shard staged the rows it
    should have (``{shard: rows}``)."""
    if table not in PREDICTION_TABLES:
        raise ValueError(f"not a predictions table: {table}")
    with partition_transaction(model, day, url) as cursor:
        if published_attempt is not None:
            cursor.execute(
                f"SELECT attempt, run_id FROM {SCHEMA}.lake_partitions "
                "WHERE model = %(model)s AND partition_date = %(day)s",
                {"model": model, "day": day},
            )
            now = cursor.fetchone()
            if now is None or now[0] != published_attempt:
                newer = f"attempt {now[0]} of run {now[1]}" if now else "no published rows"
                raise PermanentError(
                    f"this run scored the day's lake attempt {published_attempt}, but the day "
                    f"now points at {newer}: its predictions would not be the day's rows, so "
                    "they are not swapped in",
                    model=model,
                    day=day,
                    hint="nothing: the run that published the day scores it (re-run this "
                    "day's predict tasks to score the current rows yourself)",
                )
        cursor.execute(
            f"SELECT shard, count(*) FROM {SCHEMA}.predictions_staging "
            "WHERE attempt = %(attempt)s GROUP BY shard",
            {"attempt": attempt},
        )
        staged = {int(shard): int(n) for shard, n in cursor.fetchall()}
        if staged != expected:
            raise PermanentError(
                f"staged predictions {staged} do not match the published rows {expected} "
                f"(shard: rows) of attempt {attempt}",
                model=model,
                day=day,
                hint="re-run the day's predict tasks",
            )
        cursor.execute(
            f"DELETE FROM {SCHEMA}.{table} WHERE model = %(model)s AND partition_date = %(day)s",
            {"model": model, "day": day},
        )
        cursor.execute(
            f"INSERT INTO {SCHEMA}.{table} (model, partition_date, entity_id, score, "
            "predicted_label, model_version, mlflow_run_id, dag_run_id, scored_at) "
            "SELECT %(model)s, %(day)s, entity_id, score, predicted_label, %(model_version)s, "
            f"%(mlflow_run_id)s, %(dag_run_id)s, %(scored_at)s FROM {SCHEMA}.predictions_staging "
            "WHERE attempt = %(attempt)s",
            {**constants, "model": model, "day": day, "attempt": attempt},
        )
        rows = cursor.rowcount
        if table == "predictions":
            _swap_reasons(cursor, model, day, attempt, constants["model_version"])
        faults.point("swap.in_transaction")
        cursor.execute(
            f"DELETE FROM {SCHEMA}.predictions_staging WHERE attempt = %(attempt)s "
            "OR (model = %(model)s AND partition_date = %(day)s "
            "AND staged_at < now() - interval '1 day')",
            {"attempt": attempt, "model": model, "day": day},
        )
    return rows


REASON_COLUMNS = ", ".join(f"feature_{i}, contribution_{i}" for i in (1, 2, 3))


def _swap_reasons(cursor: Cursor, model: str, day: dt.date, attempt: str, version: int) -> None:
    """The day's prediction reasons, replaced with the attempt's (none when its spec asks for
    none: the reasons always belong to the day's predictions)."""
    where = {"model": model, "day": day, "attempt": attempt, "version": version}
    cursor.execute(
        f"DELETE FROM {SCHEMA}.prediction_reasons "
        "WHERE model = %(model)s AND partition_date = %(day)s",
        where,
    )
    cursor.execute(
        f"INSERT INTO {SCHEMA}.prediction_reasons (model, partition_date, entity_id, "
        f"model_version, {REASON_COLUMNS}) SELECT %(model)s, %(day)s, entity_id, %(version)s, "
        f"{REASON_COLUMNS} FROM {SCHEMA}.predictions_staging "
        "WHERE attempt = %(attempt)s AND feature_1 IS NOT NULL",
        where,
    )


def prediction_reasons(model: str, day: dt.date, url: str | None = None) -> pd.DataFrame:
    return query(
        f"SELECT entity_id, model_version, {REASON_COLUMNS} FROM {SCHEMA}.prediction_reasons "
        "WHERE model = %(model)s AND partition_date = %(day)s ORDER BY entity_id",
        {"model": model, "day": day},
        url,
    )


def predictions(
    model: str, day: dt.date, url: str | None = None, table: str = "predictions"
) -> pd.DataFrame:
    if table not in PREDICTION_TABLES:
        raise ValueError(f"not a predictions table: {table}")
    return query(
        f"SELECT * FROM {SCHEMA}.{table} WHERE model = %(model)s AND partition_date = %(day)s "
        "ORDER BY entity_id",
        {"model": model, "day": day},
        url,
    )


def shadow_pairs(
    model: str, start: dt.date, end: dt.date, champion: int, challenger: int, url: str | None = None
) -> pd.DataFrame:
    """Labelled rows of ``start..end`` scored by both the champion (served) and the challenger
    (shadow): ``partition_date, label, champion, challenger`` (the scores)."""
    return query(
        f"SELECT p.partition_date, l.label, p.score AS champion, s.score AS challenger "
        f"FROM {SCHEMA}.predictions p "
        f"JOIN {SCHEMA}.shadow_predictions s USING (model, partition_date, entity_id) "
        f"JOIN {SCHEMA}.labels l USING (model, partition_date, entity_id) "
        "WHERE p.model = %(model)s AND p.partition_date BETWEEN %(start)s AND %(end)s "
        "AND p.model_version = %(champion)s AND s.model_version = %(challenger)s",
        {
            "model": model,
            "start": start,
            "end": end,
            "champion": champion,
            "challenger": challenger,
        },
        url,
    )


def record_shadow_comparison(comparison: ShadowComparison, url: str | None = None) -> None:
    row = asdict(comparison)
    columns = list(row)
    updates = ", ".join(
        f"{c} = EXCLUDED.{c}" for c in columns if c not in ("model", "partition_date")
    )
    _execute(
        f"INSERT INTO {SCHEMA}.shadow_comparisons ({', '.join(columns)}) "
        f"VALUES ({', '.join(f'%({c})s' for c in columns)}) "
        "ON CONFLICT (model, partition_date, challenger_version) DO UPDATE SET "
        f"{updates}, computed_at = now()",
        row,
        url,
    )


def shadow_comparisons(
    model: str, challenger: int | None = None, url: str | None = None
) -> pd.DataFrame:
    sql = f"SELECT * FROM {SCHEMA}.shadow_comparisons WHERE model = %(model)s"
    params: dict = {"model": model}
    if challenger is not None:
        sql += " AND challenger_version = %(challenger)s"
        params["challenger"] = challenger
    return query(sql + " ORDER BY partition_date", params, url)


def window_scores(
    model: str, start: dt.date, end: dt.date, chunk_rows: int, url: str | None = None
):
    """The scores of days ``start..end``, in chunks (for the prediction-drift sketch)."""
    sql = (
        f"SELECT score FROM {SCHEMA}.predictions WHERE model = %(model)s "
        "AND partition_date BETWEEN %(start)s AND %(end)s"
    )
    params = {"model": model, "start": start, "end": end}
    yield from stream_copy(sql, params, chunk_rows, {"score": float}, url)


def labelled_predictions(
    model: str,
    start: dt.date,
    end: dt.date,
    version: int | None = None,
    url: str | None = None,
    *,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Predictions of days ``start..end`` joined to their labels (optionally one version).
    With ``max_rows``, a sample of about that many rows, the same share of every day, chosen
    by a hash of the entity id (so the same rows are chosen on every read)."""
    sql = (
        f"SELECT p.partition_date, p.model_version, p.score, l.label FROM {SCHEMA}.predictions p "
        f"JOIN {SCHEMA}.labels l USING (model, partition_date, entity_id) "
        "WHERE p.model = %(model)s AND p.partition_date BETWEEN %(start)s AND %(end)s"
    )
    params: dict = {"model": model, "start": start, "end": end}
    if version is not None:
        sql += " AND p.model_version = %(version)s"
        params["version"] = int(version)
    if max_rows is not None:
        total = _scalar(
            f"SELECT coalesce(sum(rows), 0) FROM {SCHEMA}.model_performance "
            "WHERE model = %(model)s AND partition_date BETWEEN %(start)s AND %(end)s",
            params,
            url,
        )
        share = min(1.0, max_rows / max(float(total or 0), 1.0))
        if share < 1.0:
            sql += " AND (hashtext(p.entity_id) & 1023) < %(cut)s"
            params["cut"] = max(1, int(share * 1024))
    return query(sql, params, url)


# --- labels -----------------------------------------------------------------------------------


def replace_label_file(
    model: str,
    arrival: dt.date,
    source_file: str,
    batches: Iterable[tuple[pd.DataFrame, pd.DataFrame]],
    run_id: str,
    url: str | None = None,
) -> tuple[int, int]:
    """Load one label file, batch by batch: its labels (``row_number, partition_date,
    entity_id, label``; within the file the last row of a key wins, and a label re-delivered
    later replaces the earlier one) and its bad rows (``labels_quarantine``), replacing what an
    earlier load of the file wrote. Returns (labels loaded, rows quarantined)."""
    params = {"model": model, "file": source_file}
    quarantined = 0
    with partition_transaction(model, arrival, url) as cursor:
        cursor.execute(
            "CREATE TEMP TABLE stage_labels (row_number bigint, partition_date date, "
            "entity_id text, label double precision) ON COMMIT DROP"
        )
        cursor.execute(
            f"DELETE FROM {SCHEMA}.labels_quarantine WHERE model = %(model)s "
            "AND source_file = %(file)s",
            params,
        )
        for labels, bad in batches:
            copy_frame(cursor, "stage_labels", labels, schema=None)
            copy_frame(
                cursor,
                "labels_quarantine",
                bad.assign(
                    model=model, partition_date=arrival, source_file=source_file, run_id=run_id
                ),
            )
            quarantined += len(bad)
        cursor.execute(
            f"DELETE FROM {SCHEMA}.labels WHERE model = %(model)s AND source_file = %(file)s",
            params,
        )
        cursor.execute(
            f"INSERT INTO {SCHEMA}.labels (model, partition_date, entity_id, label, arrival_date, "
            "source_file, run_id) SELECT DISTINCT ON (partition_date, entity_id) %(model)s, "
            "partition_date, entity_id, label, %(arrival)s, %(file)s, %(run_id)s "
            "FROM stage_labels ORDER BY partition_date, entity_id, row_number DESC "
            "ON CONFLICT (model, partition_date, entity_id) DO UPDATE SET "
            "label = EXCLUDED.label, arrival_date = EXCLUDED.arrival_date, "
            "source_file = EXCLUDED.source_file, run_id = EXCLUDED.run_id, loaded_at = now()",
            {**params, "arrival": arrival, "run_id": run_id},
        )
        loaded = cursor.rowcount
    return loaded, quarantined


def labels_of_day(
    model: str, day: dt.date, chunk_rows: int, url: str | None = None
) -> Iterator[pd.DataFrame]:
    """``entity_id, label`` of the rows of one feature day that have their label, in frames of
    at most ``chunk_rows`` rows: memory is bounded by the chunk, not by the day."""
    yield from stream_copy(
        f"SELECT entity_id, label FROM {SCHEMA}.labels "
        "WHERE model = %(model)s AND partition_date = %(day)s",
        {"model": model, "day": day},
        chunk_rows,
        {"entity_id": str, "label": float},
        url,
    )


def labelled_days(model: str, start: dt.date, end: dt.date, url: str | None = None) -> pd.DataFrame:
    """Per feature day in ``start..end``: how many labels have arrived."""
    return query(
        f"SELECT partition_date, count(*) AS labels FROM {SCHEMA}.labels "
        "WHERE model = %(model)s AND partition_date BETWEEN %(start)s AND %(end)s "
        "GROUP BY partition_date ORDER BY partition_date",
        {"model": model, "start": start, "end": end},
        url,
    )


def window_labels(model: str, start: dt.date, end: dt.date, url: str | None = None) -> pd.Series:
    frame = query(
        f"SELECT label FROM {SCHEMA}.labels WHERE model = %(model)s "
        "AND partition_date BETWEEN %(start)s AND %(end)s",
        {"model": model, "start": start, "end": end},
        url,
    )
    return frame["label"].astype(float)


def count_labels_after(model: str, since: dt.date, until: dt.date, url: str | None = None) -> int:
    """Labels of feature days after ``since`` up to ``until``."""
    return int(
        _scalar(
            f"SELECT count(*) FROM {SCHEMA}.labels WHERE model = %(model)s "
            "AND partition_date > %(since)s AND partition_date <= %(until)s",
            {"model": model, "since": since, "until": until},
            url,
        )
    )


# --- monitoring -------------------------------------------------------------------------------


def save_drift_report(
    model: str,
    day: dt.date,
    result: DriftResult,
    *,
    window_start: dt.date,
    model_version: int,
    reference_run_id: str,
    dag_run_id: str | None,
    url: str | None = None,
) -> int:
    """Replace the day's drift report (a re-run of the check) with ``result``, its verdict and
    every feature's evidence; return the new report's id."""
    report = {
        "window_start": window_start,
        "model_version": model_version,
        "reference_run_id": reference_run_id,
        "rows": result.rows,
        "drifted_share": result.drifted_share,
        "dataset_drift": result.dataset_drift,
        "drifted_features": result.drifted_features,
        "prediction_drift": asdict(result.prediction) if result.prediction else None,
        "label_rate": result.label_rate,
        "label_drift": asdict(result.label) if result.label else None,
        "dag_run_id": dag_run_id,
    }
    features = pd.DataFrame([asdict(f) for f in result.features])
    with partition_transaction(model, day, url) as cursor:
        cursor.execute(
            f"DELETE FROM {SCHEMA}.drift_reports "
            "WHERE model = %(model)s AND partition_date = %(day)s",
            {"model": model, "day": day},
        )
        faults.point("drift.in_transaction")
        row = {
            **report,
            "model": model,
            "partition_date": day,
            **{k: json.dumps(v) for k, v in report.items() if isinstance(v, list | dict)},
        }
        columns = list(row)
        cursor.execute(
            f"INSERT INTO {SCHEMA}.drift_reports ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'%({c})s' for c in columns)}) RETURNING id",
            row,
        )
        report_id = int(cursor.fetchone()[0])
        copy_frame(cursor, "drift_features", features.assign(report_id=report_id))
    return report_id


def set_report_uri(report_id: int, uri: str, url: str | None = None) -> None:
    _execute(
        f"UPDATE {SCHEMA}.drift_reports SET report_uri = %(uri)s WHERE id = %(id)s",
        {"uri": uri, "id": report_id},
        url,
    )


def drift_reports(model: str, url: str | None = None) -> pd.DataFrame:
    return query(
        f"SELECT id, partition_date, dataset_drift, drifted_share, drifted_features, report_uri, "
        f"model_version FROM {SCHEMA}.drift_reports WHERE model = %(model)s "
        "ORDER BY partition_date",
        {"model": model},
        url,
    )


def recent_drift_flags(model: str, day: dt.date, m: int, url: str | None = None) -> list[bool]:
    """The newest ``m`` dataset-drift verdicts up to ``day``, newest first, without their days."""
    return [drifted for _, drifted in drift_verdicts(model, day, m, url)]


def days_since_last_trigger(model: str, day: dt.date, url: str | None = None) -> int | None:
    """Data days since the last triggered retraining strictly before ``day`` (any source), not
    counting follow-ups: those are bounded per change, and must not delay a newer change."""
    last = _scalar(
        f"SELECT max(partition_date) FROM {SCHEMA}.retrain_decisions "
        "WHERE model = %(model)s AND triggered AND NOT follow_up AND partition_date < %(day)s",
        {"model": model, "day": day},
        url,
    )
    return None if last is None else (day - last).days


def record_retrain_decision(decision: RetrainDecisionRecord, url: str | None = None) -> None:
    _execute(
        f"INSERT INTO {SCHEMA}.retrain_decisions (model, partition_date, source, triggered, "
        "reason, report_id, train_run_id, dag_run_id, change_date, follow_up) VALUES (%(model)s, "
        "%(partition_date)s, %(source)s, %(triggered)s, %(reason)s, %(report_id)s, "
        "%(train_run_id)s, %(dag_run_id)s, %(change_date)s, %(follow_up)s) "
        "ON CONFLICT (model, partition_date, source) DO UPDATE SET "
        "triggered = EXCLUDED.triggered, reason = EXCLUDED.reason, "
        "report_id = EXCLUDED.report_id, train_run_id = EXCLUDED.train_run_id, "
        "dag_run_id = EXCLUDED.dag_run_id, change_date = EXCLUDED.change_date, "
        "follow_up = EXCLUDED.follow_up, created_at = now()",
        asdict(decision),
        url,
    )


def retrain_decisions(model: str, url: str | None = None) -> pd.DataFrame:
    return query(
        f"SELECT partition_date, source, triggered, reason, change_date, follow_up "
        f"FROM {SCHEMA}.retrain_decisions WHERE model = %(model)s ORDER BY partition_date, source",
        {"model": model},
        url,
    )


def open_change(
    model: str, day: dt.date, since: dt.date, url: str | None = None
) -> ChangeRecord | None:
    """The newest change a retraining was triggered for on a day in ``since``..before ``day``:
    ``first_day``, ``retrainings`` (every one triggered for it before ``day``, however long
    ago: the bound per change counts them all), ``last_trigger``; or None."""
    frame = query(
        f"WITH newest AS (SELECT change_date FROM {SCHEMA}.retrain_decisions "
        "WHERE model = %(model)s AND triggered AND change_date IS NOT NULL "
        "AND partition_date < %(day)s AND partition_date >= %(since)s "
        "ORDER BY change_date DESC LIMIT 1) "
        "SELECT d.change_date AS first_day, count(*) AS retrainings, "
        f"max(d.partition_date) AS last_trigger FROM {SCHEMA}.retrain_decisions d "
        "JOIN newest USING (change_date) WHERE d.model = %(model)s AND d.triggered "
        "AND d.partition_date < %(day)s GROUP BY d.change_date",
        {"model": model, "day": day, "since": since},
        url,
    )
    if frame.empty:
        return None
    row = frame.iloc[0]
    return ChangeRecord(row.first_day, int(row.retrainings), row.last_trigger)


def drift_verdicts(
    model: str, day: dt.date, limit: int, url: str | None = None
) -> list[tuple[dt.date, bool]]:
    """The newest ``limit`` dataset-drift verdicts up to ``day``, newest first."""
    frame = query(
        f"SELECT partition_date, dataset_drift FROM {SCHEMA}.drift_reports "
        "WHERE model = %(model)s AND partition_date <= %(day)s "
        "ORDER BY partition_date DESC LIMIT %(limit)s",
        {"model": model, "day": day, "limit": limit},
        url,
    )
    return [(d, bool(v)) for d, v in zip(frame.partition_date, frame.dataset_drift, strict=True)]


def replace_performance(
    model: str, day: dt.date, measured: Sequence[PerformanceDay], url: str | None = None
) -> None:
    """The scored day's realized performance, one row per version (replacing a re-run's)."""
    rows = pd.DataFrame(
        [{**asdict(m), "metrics": json.dumps(dict(m.metrics))} for m in measured],
        columns=[f.name for f in fields(PerformanceDay)],
    ).drop(columns="partition_date")
    with partition_transaction(model, day, url) as cursor:
        _replace(cursor, "model_performance", model, day, rows)


def performance(
    model: str, start: dt.date | None = None, end: dt.date | None = None, url: str | None = None
) -> pd.DataFrame:
    """Realized performance per scored day and version (optionally of days ``start..end``)."""
    sql = (
        f"SELECT partition_date, model_version, rows, primary_metric, value, reference, "
        f"live_reference, degraded, metrics FROM {SCHEMA}.model_performance "
        "WHERE model = %(model)s"
    )
    params: dict = {"model": model}
    if start is not None:
        sql += " AND partition_date BETWEEN %(start)s AND %(end)s"
        params |= {"start": start, "end": end}
    return query(sql + " ORDER BY partition_date, model_version", params, url)


# --- model history ------------------------------------------------------------------------------


def record_model_event(event: ModelEvent, url: str | None = None) -> int:
    """Append to the promotion / rejection / rollback history (``model_events``); returns the
    event's id (see loopline.steps.aliases for the events written ahead, ``pending``)."""
    row = {
        **asdict(event),
        "reasons": json.dumps(list(event.reasons)),
        "metrics": json.dumps(dict(event.metrics)),
    }
    return int(
        _scalar(
            f"INSERT INTO {SCHEMA}.model_events (model, event, version, previous_champion, "
            "reasons, metrics, mlflow_run_id, dag_run_id, state, alias, removes_alias, "
            "decided_by) VALUES (%(model)s, %(event)s, %(version)s, %(previous_champion)s, "
            "CAST(%(reasons)s AS jsonb), CAST(%(metrics)s AS jsonb), %(mlflow_run_id)s, "
            "%(dag_run_id)s, %(state)s, %(alias)s, %(removes_alias)s, %(decided_by)s) "
            "RETURNING id",
            row,
            url,
        )
    )


def set_model_event_state(event_id: int, state: str, url: str | None = None) -> None:
    _execute(
        f"UPDATE {SCHEMA}.model_events SET state = %(state)s WHERE id = %(id)s",
        {"state": state, "id": int(event_id)},
        url,
    )


def pending_model_events(model: str, url: str | None = None) -> list[PendingEvent]:
    """Events written ahead of an alias move that a crash left unsettled, oldest first."""
    frame = query(
        f"SELECT id, event, version, alias, removes_alias FROM {SCHEMA}.model_events "
        "WHERE model = %(model)s AND state = 'pending' ORDER BY id",
        {"model": model},
        url,
    )
    return [
        PendingEvent(int(r.id), r.event, int(r.version), r.alias, bool(r.removes_alias))
        for r in frame.itertuples(index=False)
    ]


@contextmanager
def model_lock(model: str, url: str | None = None) -> Iterator[None]:
    """The model's lock (a session advisory lock on a connection of its own), held while its
    aliases and history change: one change at a time, whichever process makes it."""
    key = {"key": f"model:{model}"}
    with _connection(url) as conn:
        conn.exec_driver_sql("SELECT pg_advisory_lock(hashtext(%(key)s))", key)
        try:
            yield
        finally:
            conn.exec_driver_sql("SELECT pg_advisory_unlock(hashtext(%(key)s))", key)


def model_events(model: str, url: str | None = None) -> pd.DataFrame:
    """The append-only history, oldest first (``previous_champion`` is None or an int)."""
    frame = query(
        f"SELECT id, created_at, event, version, previous_champion, reasons, metrics, "
        f"mlflow_run_id, dag_run_id, state, decided_by FROM {SCHEMA}.model_events "
        "WHERE model = %(model)s "
        "ORDER BY id",
        {"model": model},
        url,
    )
    # An object column: a list of ints and None would become floats and NaN ("v1.0", "vnan").
    frame["previous_champion"] = pd.Series(
        [None if pd.isna(v) else int(v) for v in frame["previous_champion"]],
        index=frame.index,
        dtype=object,
    )
    return frame


def day_table(model: str, url: str | None = None) -> pd.DataFrame:
    """Per day: rows read / clean / quarantined, the validation status, and predictions with
    the model version(s) that scored them."""
    return query(
        f"""
        SELECT v.partition_date, v.rows_read, v.rows_clean, v.rows_quarantined, v.success,
               v.error, count(p.entity_id) AS predicted, max(p.model_version) AS version
        FROM {SCHEMA}.validation_results v
        LEFT JOIN {SCHEMA}.predictions p
          ON p.model = v.model AND p.partition_date = v.partition_date
        WHERE v.model = %(model)s
        GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1
        """,
        {"model": model},
        url,
    )


# --- typed reads for the Models view and the terminal ------------------------------------------
# The one place where these tables' column names meet the records the view and the CLI show.


def _optional(value: object) -> object | None:
    return None if value is None or (isinstance(value, float) and value != value) else value


def _int(value: object) -> int | None:
    value = _optional(value)
    return None if value is None else int(value)


def _float(value: object) -> float | None:
    value = _optional(value)
    return None if value is None else float(value)


def drift_checks(model: str, url: str | None = None) -> list[DriftCheck]:
    """Every drift check of the model, oldest day first."""
    return [
        DriftCheck(
            id=int(r.id),
            partition_date=r.partition_date,
            dataset_drift=bool(r.dataset_drift),
            drifted_share=_float(r.drifted_share),
            drifted_features=tuple(r.drifted_features or ()),
            report_uri=_optional(r.report_uri),
            model_version=_int(r.model_version),
        )
        for r in drift_reports(model, url).itertuples(index=False)
    ]


def decision_records(model: str, url: str | None = None) -> list[RetrainDecisionRecord]:
    """Every retraining decision of the model, oldest day first."""
    return [
        RetrainDecisionRecord(
            model=model,
            partition_date=r.partition_date,
            source=r.source,
            triggered=bool(r.triggered),
            reason=r.reason,
            change_date=_optional(r.change_date),
            follow_up=bool(r.follow_up),
        )
        for r in retrain_decisions(model, url).itertuples(index=False)
    ]


def performance_days(model: str, url: str | None = None) -> list[PerformanceDay]:
    """Realized performance per scored day and version, oldest first."""
    return [
        PerformanceDay(
            partition_date=r.partition_date,
            model_version=int(r.model_version),
            rows=int(r.rows),
            primary_metric=r.primary_metric,
            value=_float(r.value),
            reference=_float(r.reference),
            live_reference=_float(r.live_reference),
            degraded=bool(_optional(r.degraded)),
            metrics=r.metrics,
        )
        for r in performance(model, url=url).itertuples(index=False)
    ]


def validated_days(model: str, url: str | None = None) -> list[ValidatedDay]:
    """Every validated day with its counts, status and predictions, oldest first."""
    return [
        ValidatedDay(
            partition_date=r.partition_date,
            rows_read=int(r.rows_read or 0),
            rows_clean=int(r.rows_clean or 0),
            rows_quarantined=int(r.rows_quarantined or 0),
            success=None if _optional(r.success) is None else bool(r.success),
            error=_optional(r.error),
            predicted=int(r.predicted or 0),
            scored_by=_int(r.version),
        )
        for r in day_table(model, url).itertuples(index=False)
    ]


def history(model: str, url: str | None = None) -> list[ModelEvent]:
    """The model's history as events, oldest first."""
    return [
        ModelEvent(
            model=model,
            event=r.event,
            version=int(r.version),
            previous_champion=_int(r.previous_champion),
            reasons=tuple(r.reasons or ()),
            metrics=dict(r.metrics or {}),
            mlflow_run_id=_optional(r.mlflow_run_id),
            dag_run_id=_optional(r.dag_run_id),
            state=r.state,
            decided_by=_optional(r.decided_by),
            id=int(r.id),
            created_at=r.created_at,
        )
        for r in model_events(model, url).itertuples(index=False)
    ]


def replace_estimate(model: str, day: EstimatedDay, url: str | None = None) -> None:
    """The day's estimate of one served version (replacing a re-run's)."""
    row = {**asdict(day), "model": model}
    columns = list(row)
    with partition_transaction(model, day.partition_date, url) as cursor:
        cursor.execute(
            f"DELETE FROM {SCHEMA}.estimated_performance WHERE model = %(model)s "
            "AND partition_date = %(partition_date)s AND model_version = %(model_version)s",
            row,
        )
        cursor.execute(
            f"INSERT INTO {SCHEMA}.estimated_performance ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'%({c})s' for c in columns)})",
            row,
        )


def estimated_days(
    model: str, start: dt.date | None = None, end: dt.date | None = None, url: str | None = None
) -> list[EstimatedDay]:
    """Estimated performance per scored day and version, oldest first (of ``start..end``)."""
    sql = (
        f"SELECT partition_date, model_version, rows, metric, value, low, high, reference, "
        f"accuracy, accuracy_low, accuracy_high, threshold FROM {SCHEMA}.estimated_performance "
        "WHERE model = %(model)s"
    )
    params: dict = {"model": model}
    if start is not None:
        sql += " AND partition_date BETWEEN %(start)s AND %(end)s"
        params |= {"start": start, "end": end}
    frame = query(sql + " ORDER BY partition_date, model_version", params, url)
    return [
        EstimatedDay(
            partition_date=r.partition_date,
            model_version=int(r.model_version),
            rows=int(r.rows),
            metric=r.metric,
            value=_float(r.value),
            low=_float(r.low),
            high=_float(r.high),
            reference=_float(r.reference),
            accuracy=_float(r.accuracy),
            accuracy_low=_float(r.accuracy_low),
            accuracy_high=_float(r.accuracy_high),
            threshold=float(r.threshold),
        )
        for r in frame.itertuples(index=False)
    ]


def day_scores(
    model: str, day: dt.date, chunk_rows: int, url: str | None = None
) -> Iterator[pd.DataFrame]:
    """``model_version, score`` of a day's served predictions, in chunks."""
    sql = (
        f"SELECT model_version, score FROM {SCHEMA}.predictions "
        "WHERE model = %(model)s AND partition_date = %(day)s"
    )
    dtype = {"model_version": int, "score": float}
    yield from stream_copy(sql, {"model": model, "day": day}, chunk_rows, dtype, url)
