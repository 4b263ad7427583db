"""The lake: clean rows as typed Parquet, one column per spec feature (named as the spec names
it) beside loopline's own columns (``loopline.core.columns``: entity id, event time, lineage;
names no spec column can have), under
``<lake>/clean/<model>/date=YYYY-MM-DD/attempt=<id>/part-NNNNN.parquet``.

Write-audit-publish: a run writes its files under its own attempt folder, nobody reads them
until the publish step commits the pointer to them in ``warehouse.lake_partitions`` (with the
day's quarantine and validation results, in one transaction). Readers only ever read the files
a pointer names, so a killed run, a failed validation or two concurrent runs of one day never
show a half-written or mixed day. Work files of a shard (its bad rows, its entity-id keys) live
in the attempt's ``_work/`` folder and are deleted after publishing.

A day's re-run retires the attempt it replaced rather than deleting it: a task that read the
pointer before (a scoring of the day, a training's window, a drift check) reads those files
whole, and the attempt is removed by the first publish of the model's days after
``RETIRED_SECONDS`` (its note under ``<lake>/clean/<model>/_retired/`` says since when).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from types import TracebackType

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopline.adapters import settings, storage
from loopline.core import columns as own
from loopline.core.spec import ModelSpec

LINEAGE = own.LINEAGE
# An attempt whose writer has not renewed its lease for this long was left by a killed run (a
# live shard renews it every LEASE_RENEW_SECONDS at most, as its batches go). Attempts from
# before leases: nobody wrote to them for STALE_SECONDS.
LEASE_SECONDS = 15 * 60
LEASE_RENEW_SECONDS = 30
STALE_SECONDS = 6 * 3600
# A replaced attempt stays readable this long for the tasks that resolved the day before the
# re-run published (the longest: a training reading its window, minutes at 10M rows a day).
RETIRED_SECONDS = 2 * 3600
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("row_number", pa.int64()),
        ("entity_id", pa.string()),
        ("record", pa.string()),
        ("reasons", pa.string()),
    ]
)
KEYS_SCHEMA = pa.schema(
    [
        ("file_index", pa.int32()),
        ("row_number", pa.int64()),
        ("clean", pa.bool_()),
        ("entity_id", pa.string()),
    ]
)


def clean_schema(spec: ModelSpec) -> pa.Schema:
    """Typed columns of the clean Parquet files of a model."""
    types = {"numeric": pa.float64(), "categorical": pa.string()}
    return pa.schema(
        [
            (own.ENTITY_ID, pa.string()),
            (own.EVENT_TS, pa.timestamp("us", tz="UTC")),
            *[(f.name, types[f.type]) for f in spec.features],
            (own.SOURCE_FILE, pa.string()),
            (own.ROW_NUMBER, pa.int64()),
            (own.RUN_ID, pa.string()),
        ]
    )


def day_folder(model: str, day: dt.date) -> str:
    return storage.join(settings.lake_root(), "clean", model, f"date={day.isoformat()}")


def new_attempt() -> str:
    """A fresh attempt id: two runs of one day never write to the same folder."""
    return uuid.uuid4().hex[:16]


def attempt_folder(model: str, day: dt.date, attempt: str) -> str:
    return storage.join(day_folder(model, day), f"attempt={attempt}")


def part_path(folder: str, shard: int) -> str:
    return storage.join(folder, f"part-{shard:05d}.parquet")


def work_path(folder: str, kind: str, shard: int) -> str:
    return storage.join(folder, "_work", f"{kind}-{shard:05d}.parquet")


def lease_path(model: str, day: dt.date, attempt: str) -> str:
    return storage.join(attempt_folder(model, day, attempt), "_work", "lease")


def renew_lease(model: str, day: dt.date, attempt: str) -> None:
    """Say the attempt is being written now (its shards renew this as they go)."""
    storage.write_bytes(lease_path(model, day, attempt), str(time.time()).encode())


def lease_age(model: str, day: dt.date, attempt: str, now: float) -> float | None:
    """Seconds since the attempt's writer last said it was alive; None if it never did."""
    found = storage.read_bytes_if_any(lease_path(model, day, attempt))
    try:
        return None if found is None else now - float(found.decode())
    except ValueError:
        return None


def attempts_of_day(model: str, day: dt.date) -> list[str]:
    """Attempt folders present for a day (published, superseded, or left by a killed run)."""
    prefix = "attempt="
    return [
        name.removeprefix(prefix)
        for name in storage.list_folders(day_folder(model, day))
        if name.startswith(prefix)
    ]


def discard_attempt(model: str, day: dt.date, attempt: str) -> None:
    """Remove an attempt that will not be published (its day failed validation)."""
    storage.delete_tree(attempt_folder(model, day, attempt))


def discard_parts(*paths: str) -> None:
    """Remove a shard's files (a shard that could not finish writing them)."""
    for path in paths:
        storage.delete(path)


def retired_folder(model: str) -> str:
    return storage.join(settings.lake_root(), "clean", model, "_retired")


def _note_name(day: dt.date, folder: str) -> str:
    return f"{day.isoformat()}-{storage.name_of(folder)}"


def retire(model: str, day: dt.date, folder: str) -> None:
    """Note that ``folder`` (an attempt of ``day``) is no longer published; the note's own
    time says since when, so a sweep lists the notes and reads only those it removes."""
    storage.write_bytes(
        storage.join(retired_folder(model), _note_name(day, folder)), folder.encode()
    )


def sweep_retired(model: str, now: float) -> set[str]:
    """Remove the model's attempts retired more than ``RETIRED_SECONDS`` ago (folder first, then
    its note: a sweep killed in between finds the note again); returns the notes still kept."""
    kept = set()
    for note in storage.list_tree(retired_folder(model)):
        if now - note.modified <= RETIRED_SECONDS:
            kept.add(storage.name_of(note.path))
            continue
        folder = storage.read_bytes_if_any(note.path)
        if folder is not None:  # else removed by a concurrent sweep
            storage.delete_tree(folder.decode())
            storage.delete(note.path)
    return kept


def after_publish(
    model: str, day: dt.date, attempt: str, superseded: str | None, now: float
) -> None:
    """The lake's garbage collection once ``attempt`` is the day's published one: its work
    files; the attempt it superseded (folder ``superseded``) is retired, and so stays readable
    for ``RETIRED_SECONDS``; attempts retired longer ago, of any day of the model, are removed,
    and so are attempts left by killed runs (lease not renewed for ``LEASE_SECONDS``; older
    ones without a lease: untouched for ``STALE_SECONDS``). New readers never see any of these:
    they read the pointer's files only."""
    published = attempt_folder(model, day, attempt)
    storage.delete_tree(storage.join(published, "_work"))
    if superseded is not None and superseded != published:
        retire(model, day, superseded)
    kept = sweep_retired(model, now)
    for other in attempts_of_day(model, day):
        folder = attempt_folder(model, day, other)
        if other == attempt or _note_name(day, folder) in kept:
            continue
        age = lease_age(model, day, other, now)
        if age is not None:
            stale = age > LEASE_SECONDS
        else:
            stale = all(now - f.modified > STALE_SECONDS for f in storage.list_tree(folder))
        if stale:
            storage.delete_tree(folder)


class ParquetPart:
    """A Parquet file written batch by batch (each batch a row group) to a local temporary
    file, and published at ``path`` in one step when closed without error."""

    def __init__(self, path: str, schema: pa.Schema):
        self.path, self.schema, self.rows = path, schema, 0
        self._writing = storage.writing(path)
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ParquetPart:
        local = self._writing.__enter__()
        self._writer = pq.ParquetWriter(local, self.schema, compression="zstd")
        return self

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.cast(self.schema))
            self.rows += table.num_rows

    def write_frame(self, frame: pd.DataFrame) -> None:
        self.write(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._writer.close()
        self._writing.__exit__(kind, error, trace)


def read_arrow_batches(
    path: str, columns: list[str] | None = None, batch_rows: int = 250_000
) -> Iterator[pa.Table]:
    """The file's rows as Arrow tables of at most ``batch_rows`` rows, only ``columns``, with
    loopline's current column names (a file of the first layout is renamed as it is read)."""
    with storage.local_copy(path) as local:
        parquet = pq.ParquetFile(local)
        wanted, renames = own.reading_plan(columns, parquet.schema_arrow.names)
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
            table = pa.Table.from_batches([batch])
            if renames:
                table = table.rename_columns([renames.get(n, n) for n in table.column_names])
            yield table


def read_batches(
    path: str, columns: list[str] | None = None, batch_rows: int = 250_000
) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of at most ``batch_rows`` rows, only ``columns``."""
    for table in read_arrow_batches(path, columns, batch_rows):
        yield table.to_pandas()


def read_table(
    path: str, columns: list[str] | None = None, filters: list[tuple] | None = None
) -> pa.Table:
    """A whole (small) file, or the rows matching pyarrow ``filters``."""
    with storage.local_copy(path) as local:
        return pq.read_table(local, columns=columns, filters=filters)


def file_rows(path: str) -> int:
    with storage.local_copy(path) as local:
        return pq.ParquetFile(local).metadata.num_rows


def clean_columns(path: str) -> list[str]:
    """Column names of a clean Parquet file, from its footer (current names, whatever the
    file's layout)."""
    with storage.local_copy(path) as local:
        names = list(pq.ParquetFile(local).schema_arrow.names)
    return [own.OLD_NAMES.get(n, n) for n in names] if own.old_clean_file(names) else names
