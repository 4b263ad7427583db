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
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv
import pyarrow.parquet as pq

from loopline.adapters import storage
from loopline.core.errors import FileChangedError, UnreadableFileError

CSV_BLOCK_BYTES = 8 << 20
# A quoted cell may hold a line break (a free-text field): it is one row, not two.
CSV_PARSE = pv.ParseOptions(newlines_in_values=True)


def nfc(names: Iterable[str]) -> list[str]:
    """Column names in Unicode NFC, as specs compare them: 'größe' typed as o + combining
    diaeresis (NFD, as some systems write file headers) is the same column as 'größe'."""
    return [unicodedata.normalize("NFC", str(n)) for n in names]


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
    rows: int | None  # Parquet: from its footer; CSV: counted once when the day is planned
    row_groups: list[int]  # rows per Parquet row group

    def as_dict(self) -> dict:
        return asdict(self)


def kind_of(path: str) -> str:
    return "parquet" if path.endswith(".parquet") else "csv"


def _csv_header(local: Path) -> list[str]:
    reader = pv.open_csv(
        local, read_options=pv.ReadOptions(block_size=1 << 16), parse_options=CSV_PARSE
    )
    return list(reader.schema.names)


def _csv_rows(local: Path, columns: list[str]) -> int:
    """Data rows of a CSV file (quoted newlines inside a cell count once): one column parsed,
    as text, block by block."""
    if not columns:
        return 0
    first = _csv_header(local)[:1]
    convert = pv.ConvertOptions(include_columns=first, column_types={first[0]: pa.string()})
    reader = pv.open_csv(
        local,
        read_options=pv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        parse_options=CSV_PARSE,
        convert_options=convert,
    )
    return sum(batch.num_rows for batch in reader)


def inspect(data_file: storage.DataFile, index: int, where: dict) -> LandingFile:
    """Columns, row counts and checksum of one landing file (Parquet: from its footer).
    ``where`` (model, day) locates the error of a file that cannot be read."""
    try:
        with storage.local_copy(data_file.path) as local:
            kind = kind_of(data_file.path)
            if kind == "parquet":
                meta = pq.ParquetFile(local).metadata
                columns = nfc(meta.schema.to_arrow_schema().names)
                groups = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
                rows = int(meta.num_rows)
            else:
                columns = nfc(_csv_header(local))
                groups, rows = [], _csv_rows(local, columns)
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


def check_unchanged(
    file: LandingFile, where: dict, *, rows: int | None = None, of: int | None = None
) -> None:
    """Fail if the file is not the one the day was planned from (its size and version), or,
    after it was read, if the rows read are not the rows planned (``rows`` of ``of``)."""
    now = storage.stat(file.path)
    changed = (now.size, now.version) != (file.size, file.version)
    if changed or (of is not None and rows is not None and rows != of):
        seen = f"; {rows} rows read of the {of} planned" if of is not None else ""
        raise FileChangedError(
            f"the file changed while the day was being processed (planned at {file.size} "
            f"bytes, now {now.size}{seen})",
            file=file.path,
            hint="write landing files whole, then move them into place; once the file is "
            "complete, re-run the whole day (`loopline run <model> --start <day> --end <day>`, "
            "or clear the run's ingest task in the UI): it plans the day again from the file",
            **where,
        )


def _csv_batches(local: Path) -> Iterator[pa.RecordBatch]:
    """Every cell as text (the header's names as written: NFC comes after)."""
    convert = pv.ConvertOptions(
        column_types={c: pa.string() for c in _csv_header(local)},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )
    reader = pv.open_csv(
        local,
        read_options=pv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        parse_options=CSV_PARSE,
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
                offset, source = 0, _csv_batches(local)
            for table in _rebatch(source, batch_rows):
                yield offset, table.rename_columns(nfc(table.column_names))
                offset += table.num_rows
    except pa.ArrowException as exc:
        raise UnreadableFileError(
            f"cannot be read as {file.kind}: {exc}",
            file=file.path,
            hint="replace the file upstream with a readable one and re-run the day",
            **where,
        ) from exc


def _json_value(value: object) -> object:
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


def records(table: pa.Table, positions: np.ndarray) -> list[str]:
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
