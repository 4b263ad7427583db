"""Input rows leave PostgreSQL: every day of ``clean_rows`` moves to the lake as typed Parquet
(published, with its pointer in ``lake_partitions``), ``raw_rows`` is archived to the lake as
Parquet (``<lake>/archive/raw_rows/<model>/date=D/raw_rows.parquet``: the landing files stay the
raw record from now on), and both JSONB tables are dropped. Nothing is lost; a day at a time, so
memory stays bounded by the largest day.

Feature types come from the model's spec when it loads, else from the values (numbers as
float64, anything else as text).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import json

import pyarrow as pa
from alembic import op
from sqlalchemy import Connection

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

S = "warehouse"
RUN = "migration-0007"


def _feature_types(model: str, records: list[dict]) -> dict[str, pa.DataType]:
    from loopline.adapters.specs import get_spec
    from loopline.core.errors import SpecError, UnknownModelError

    try:
        spec = get_spec(model)
        return {f.name: pa.float64() if f.type == "numeric" else pa.string() for f in spec.features}
    except (SpecError, UnknownModelError):
        keys = sorted({k for r in records for k in r})
        numeric = {k: all(isinstance(r.get(k), int | float | None) for r in records) for k in keys}
        return {k: pa.float64() if numeric[k] else pa.string() for k in keys}


def _clean_table(model: str, rows: list) -> pa.Table:
    records = [json.loads(r[2]) for r in rows]
    types = _feature_types(model, records)
    columns = {
        "entity_id": pa.array([r[0] for r in rows], pa.string()),
        "event_ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
    }
    for name, kind in types.items():
        values = [rec.get(name) for rec in records]
        if kind == pa.string():
            values = [None if v is None else str(v) for v in values]
        columns[name] = pa.array(values, kind)
    columns["_source_file"] = pa.array([r[3] for r in rows], pa.string())
    columns["_row_number"] = pa.array([r[4] for r in rows], pa.int64())
    columns["_run_id"] = pa.array([r[5] for r in rows], pa.string())
    return pa.table(columns)


def _write(table: pa.Table, path: str) -> None:
    import pyarrow.parquet as pq
    from loopline.adapters import storage

    with storage.writing(path) as local:
        pq.write_table(table, local, compression="zstd")


def _move_clean_rows(conn: Connection) -> None:
    from loopline.adapters import lake

    days = conn.exec_driver_sql(
        f"SELECT DISTINCT model, partition_date FROM {S}.clean_rows ORDER BY 1, 2"
    ).all()
    for model, day in days:
        rows = conn.exec_driver_sql(
            f"SELECT entity_id, event_ts, features::text, source_file, row_number, run_id "
            f"FROM {S}.clean_rows WHERE model = %(m)s AND partition_date = %(d)s "
            "ORDER BY source_file, row_number",
            {"m": model, "d": day},
        ).all()
        attempt = f"migrated-{lake.new_attempt()}"
        folder = lake.attempt_folder(model, day, attempt)
        path = lake.part_path(folder, 0)
        _write(_clean_table(model, rows), path)
        conn.exec_driver_sql(
            f"INSERT INTO {S}.lake_partitions (model, partition_date, attempt, location, files, "
            "rows_clean, run_id) VALUES (%(m)s, %(d)s, %(a)s, %(l)s, %(f)s, %(n)s, %(r)s)",
            {
                "m": model,
                "d": day,
                "a": attempt,
                "l": folder,
                "f": json.dumps([{"path": path, "rows": len(rows)}]),
                "n": len(rows),
                "r": RUN,
            },
        )


def _archive_raw_rows(conn: Connection) -> None:
    from loopline.adapters import settings, storage

    days = conn.exec_driver_sql(
        f"SELECT DISTINCT model, partition_date FROM {S}.raw_rows ORDER BY 1, 2"
    ).all()
    for model, day in days:
        rows = conn.exec_driver_sql(
            f"SELECT source_file, row_number, record::text FROM {S}.raw_rows "
            "WHERE model = %(m)s AND partition_date = %(d)s ORDER BY source_file, row_number",
            {"m": model, "d": day},
        ).all()
        table = pa.table(
            {
                "source_file": pa.array([r[0] for r in rows], pa.string()),
                "row_number": pa.array([r[1] for r in rows], pa.int64()),
                "record": pa.array([r[2] for r in rows], pa.string()),
            }
        )
        root = storage.join(settings.lake_root(), "archive", "raw_rows", model)
        _write(table, storage.join(root, f"date={day.isoformat()}", "raw_rows.parquet"))


def upgrade() -> None:
    conn = op.get_bind()
    _move_clean_rows(conn)
    _archive_raw_rows(conn)
    op.execute(f"DROP TABLE {S}.clean_rows")
    op.execute(f"DROP TABLE {S}.raw_rows")


def downgrade() -> None:
    raise NotImplementedError(
        "0007 moved clean rows to the lake and archived raw rows there; it cannot be undone"
    )
