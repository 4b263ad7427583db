"""Landing files as upstream sent them: the raw record of every row is the file itself.

Files are read in record batches (Parquet row groups or CSV blocks, re-cut to ``batch_rows``),
so memory depends on the batch, never on the file. CSV cells are read as text (validation
types them); only an empty cell is null. A bad row's original record is kept as JSON exactly as
sent: null stays null, and NaN and ±infinity, which JSON cannot spell, become the strings
"NaN", "Infinity" and "-Infinity" (the same for every format).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from loopline.adapters import storage
from loopline.core.errors import FileChangedError, UnreadableFileError

CSV_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class LandingFile:
    """What the plan knows of a file before any shard reads it."""

    index: int  # position in the day's sorted file list (orders rows across files)
    path: str
    size: int
    version: str
    sha256: str
    kind: str  # parquet | csv
    columns: list[str]
    rows: int | None  # known for Parquet (footer), None for CSV until read
    row_groups: list[int]  # rows per Parquet row group

    def as_dict(self) -> dict:
        return asdict(self)


def kind_of(path: str) -> str:
    return "parquet" if path.endswith(".parquet") else "csv"


def _csv_header(local: Path) -> list[str]:
    reader = pv.open_csv(local, read_options=pv.ReadOptions(block_size=1 << 16))
    return list(reader.schema.names)


def inspect(data_file: storage.DataFile, index: int, where: dict) -> LandingFile:
    """Columns, row counts and checksum of one landing file (Parquet: from its footer).
    ``where`` (model, day) locates the error of a file that cannot be read."""
    try:
        with storage.local_copy(data_file.path) as local:
            kind = kind_of(data_file.path)
            if kind == "parquet":
                meta = pq.ParquetFile(local).metadata
                columns = list(meta.schema.to_arrow_schema().names)
                groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
                rows = int(meta.num_rows)
            else:
                columns, groups, rows = _csv_header(local), [], None
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise UnreadableFileError(
            f"cannot be read as {kind_of(data_file.path)}: {exc}",
            file=data_file.path,
            hint="replace the file upstream with a readable one and re-run the day",
            **where,
        ) from exc
    checksum = storage.sha256(data_file.path)
    return LandingFile(
        index,
        data_file.path,
        data_file.size,
        data_file.version,
        checksum,
        kind,
        columns,
        rows,
        groups,
    )


def check_unchanged(file: LandingFile, where: dict) -> None:
    """Fail (transiently) if the file was replaced since the day was planned."""
    now = storage.stat(file.path)
    if (now.size, now.version) != (file.size, file.version):
        raise FileChangedError(
            "the file was replaced while the day was being processed",
            file=file.path,
            hint="nothing: the retry plans the day again from the new file",
            **where,
        )


def _csv_batches(local: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    convert = pv.ConvertOptions(
        column_types={c: pa.string() for c in columns},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    reader = pv.open_csv(
        local,
        read_options=pv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=convert,
    )
    yield from reader


def _rebatch(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Tables of ``rows`` rows (the last one shorter) from batches of any size."""
    pending, count = [], 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == rows:
                yield pa.Table.from_batches(pending)
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending)


def iter_batches(
    file: LandingFile,
    batch_rows: int,
    where: dict,
    row_groups: tuple[int, int] | None = None,
) -> Iterator[tuple[int, pa.Table]]:
    """``(row number of the first row, table)`` for each record batch of the file (Parquet:
    of row groups ``[start, stop)`` only). Row numbers count data rows from 0 in the file."""
    try:
        with storage.local_copy(file.path) as local:
            if file.kind == "parquet":
                start, stop = row_groups or (0, len(file.row_groups))
                offset = sum(file.row_groups[:start])
                source = pq.ParquetFile(local).iter_batches(
                    batch_size=batch_rows, row_groups=list(range(start, stop))
                )
            else:
                offset, source = 0, _csv_batches(local, file.columns)
            for table in _rebatch(source, batch_rows):
                yield offset, table
                offset += table.num_rows
    except pa.ArrowException as exc:
        raise UnreadableFileError(
            f"cannot be read as {file.kind}: {exc}",
            file=file.path,
            hint="replace the file upstream with a readable one and re-run the day",
            **where,
        ) from exc


def _json_value(value):
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def records(table: pa.Table, positions) -> list[str]:
    """The rows at ``positions`` as JSON objects, exactly as sent (see the module docstring)."""
    if len(positions) == 0:
        return []
    rows = table.take(pa.array(positions, type=pa.int64())).to_pylist()
    return [json.dumps({k: _json_value(v) for k, v in row.items()}) for row in rows]


def read_records(file: LandingFile, row_numbers: set[int], batch_rows: int, where: dict) -> dict:
    """``{row number: JSON record}`` of a few rows of a file, read again from the file."""
    found: dict[int, str] = {}
    for offset, table in iter_batches(file, batch_rows, where):
        wanted = sorted(r - offset for r in row_numbers if offset <= r < offset + table.num_rows)
        found.update(zip((offset + w for w in wanted), records(table, wanted), strict=True))
        if len(found) == len(row_numbers):
            break
    return found
