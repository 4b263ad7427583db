"""Publish a validated day: judge the whole day over every shard's report (repeated entity ids
across all files, no rows, too many bad rows) and commit it in one transaction (the pointer to
the attempt's clean files, the files read, the quarantine with every reason, the validation
result), or record why not and leave the published day as it was.

Every row read ends up in exactly one place: the clean files of the published attempt, or
``warehouse.quarantine`` with every reason.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.adapters import lake, landing, warehouse
from loopline.core import columns as own
from loopline.core import faults
from loopline.core.errors import BatchValidationError
from loopline.core.records import LakeFile, PublishedDay, ValidationOutcome
from loopline.core.spec import ModelSpec
from loopline.core.validation import DayCounts, duplicate_reason, judge_day
from loopline.steps.ingest import DayPlan, ShardResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
    """A published day: what was read, what is clean, what is quarantined, and the attempt."""

    model: str
    partition_date: dt.date
    attempt: str
    outcome: ValidationOutcome

    @property
    def rows_read(self) -> int:
        return self.outcome.rows_read

    @property
    def rows_clean(self) -> int:
        return self.outcome.rows_clean

    @property
    def rows_quarantined(self) -> int:
        return self.outcome.rows_quarantined

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "partition_date": self.partition_date.isoformat(),
            "attempt": self.attempt,
            **self.outcome.as_dict(),
        }


@dataclass
class Duplicates:
    """Rows whose entity id an earlier row of the day (file order, then row order) carries."""

    rows: pd.DataFrame  # file_index, row_number, clean, entity_id

    def clean_rows(self) -> pd.DataFrame:
        if self.rows.empty:
            return self.rows
        return self.rows[self.rows["clean"].astype(bool)]

    def keyed(self) -> set[tuple[int, int]]:
        return set(zip(self.rows["file_index"], self.rows["row_number"], strict=True))


def find_duplicates(results: list[ShardResult]) -> Duplicates:
    """Repeated entity ids across the whole day, from the shards' key files: an id seen more
    than once, at every place after its first (file, then row order).

    Memory is a few tens of bytes per row of the day, whatever the ids' length: a first pass
    keeps a 64-bit hash of each id (sorted to find the repeats), and only the rows whose hash
    repeats are read again and compared as text, so a hash collision costs a comparison, never a
    false duplicate."""
    empty = pd.DataFrame(columns=["file_index", "row_number", "clean", "entity_id"])
    per_batch = [
        _hash_ids(t) for r in results for t in lake.read_arrow_batches(r.keys_path, ["entity_id"])
    ]
    if not per_batch:
        return Duplicates(empty)
    ordered = np.sort(np.concatenate(per_batch))
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered, per_batch
    if len(repeated) == 0:
        return Duplicates(empty)
    parts = []
    for result in results:
        for table in lake.read_arrow_batches(result.keys_path):
            keep = np.isin(_hash_ids(table), repeated)
            if keep.any():
                parts.append(table.filter(pa.array(keep)).to_pandas())
    candidates = pd.concat(parts, ignore_index=True)
    ordered_rows = candidates.sort_values(["entity_id", "file_index", "row_number"])
    later = ordered_rows["entity_id"].duplicated(keep="first")
    return Duplicates(ordered_rows.loc[later, empty.columns].reset_index(drop=True))


def _hash_ids(keys: pa.Table) -> np.ndarray:
    """A 64-bit hash per entity id of a batch of keys."""
    ids = keys.column("entity_id").to_numpy()
    return pd.util.hash_array(ids.astype(object, copy=False), categorize=False)


def _drop_rows(spec: ModelSpec, result: ShardResult, drop: set[tuple[str, int]]) -> None:
    """Rewrite a clean part, batch by batch, without the rows ``(source file, row number)``."""
    batches = lake.read_arrow_batches(result.clean_path, batch_rows=spec.processing.batch_rows)
    with lake.ParquetPart(result.clean_path, lake.clean_schema(spec)) as part:
        for table in batches:
            keys = zip(
                table.column(own.SOURCE_FILE).to_pylist(),
                table.column(own.ROW_NUMBER).to_pylist(),
                strict=True,
            )
            part.write(table.filter(pa.array([k not in drop for k in keys], pa.bool_())))


def _quarantine_tables(
    spec: ModelSpec, plan: DayPlan, results: list[ShardResult], duplicates: Duplicates
) -> Iterator[pa.Table]:
    """The day's bad rows as tables for COPY: the shards' rows (with the ``unique`` reason added
    to a bad row that also repeats an id), then the clean rows that repeat an id, their records
    read again from the landing file."""
    extra = {
        (plan.files[int(f)].path, int(r)): duplicate_reason(spec, e)
        for f, r, e in duplicates.rows[["file_index", "row_number", "entity_id"]].itertuples(
            index=False
        )
    }
    for result in results:
        for table in lake.read_arrow_batches(result.quarantine_path):
            yield _with_duplicate_reasons(table, extra) if extra else table
    clean = duplicates.clean_rows()
    where = {"model": spec.name, "day": plan.day}
    for file_index, part in clean.groupby("file_index"):
        file = plan.files[int(file_index)]
        wanted = {int(r) for r in part["row_number"]}
        found = landing.read_records(file, wanted, spec.processing.batch_rows, where)
        yield pa.table(
            {
                "source_file": [file.path] * len(part),
                "row_number": part["row_number"].astype("int64").to_numpy(),
                "entity_id": part["entity_id"].astype(str).tolist(),
                "record": [found[int(r)] for r in part["row_number"]],
                "reasons": [json.dumps([extra[(file.path, int(r))]]) for r in part["row_number"]],
            },
            schema=lake.QUARANTINE_SCHEMA,
        )


def _with_duplicate_reasons(table: pa.Table, extra: dict) -> pa.Table:
    """Add the ``unique`` reason to the bad rows that also repeat an earlier row's id."""
    frame = table.to_pandas()
    keys = zip(frame["source_file"], frame["row_number"], strict=True)
    for i, (path, row) in enumerate(keys):
        if (path, int(row)) in extra:
            reasons = json.loads(frame.at[i, "reasons"]) + [extra[(path, int(row))]]
            frame.at[i, "reasons"] = json.dumps(reasons)
    return pa.Table.from_pandas(frame, schema=lake.QUARANTINE_SCHEMA, preserve_index=False)


def _day_counts(results: list[ShardResult], duplicates: Duplicates, spec: ModelSpec) -> DayCounts:
    counts = DayCounts()
    for r in results:
        counts.rows_read += r.rows_read
        counts.rows_bad += r.rows_bad
        counts.bad_files.update(r.bad_files)
        for key, n in r.failed.items():
            column, check = key.rsplit("|", 1)
            counts.failed[(column, check)] += n
    if len(duplicates.rows):
        counts.failed[(spec.entity_id.column, "unique")] += len(duplicates.rows)
        counts.rows_bad += len(duplicates.clean_rows())
    return counts


def publish_day(
    spec: ModelSpec, plan: DayPlan, results: list[ShardResult], *, run_id: str
) -> PublishResult:
    """Judge the whole day and publish it atomically, or record why not."""
    day, folder = plan.day, lake.attempt_folder(spec.name, plan.day, plan.attempt)
    results = sorted(results, key=lambda r: r.index)
    if [r.index for r in results] != [s.index for s in plan.shards]:
        raise BatchValidationError(
            f"shards {[r.index for r in results]} reported, the plan has "
            f"{[s.index for s in plan.shards]}",
            model=spec.name,
            day=day,
            hint="re-run the day",
        )
    duplicates = find_duplicates(results)
    counts = _day_counts(results, duplicates, spec)
    try:
        judge_day(spec, day, counts, [f.path for f in plan.files])
    except BatchValidationError as exc:
        warehouse.record_validation_failure(
            spec.name, day, run_id=run_id, error=str(exc), failed=exc.failed
        )
        lake.discard_attempt(spec.name, day, plan.attempt)
        raise
    _drop_clean_duplicates(spec, plan, results, duplicates)
    files = tuple(LakeFile(r.clean_path, lake.file_rows(r.clean_path)) for r in results)
    rows_clean = sum(f.rows for f in files)
    outcome = ValidationOutcome(
        run_id=run_id,
        published_run_id=run_id,
        rows_read=counts.rows_read,
        rows_clean=rows_clean,
        rows_quarantined=counts.rows_read - rows_clean,
        success=True,
        failed_expectations=counts.failed_expectations(),
    )
    previous = warehouse.publish_day(
        spec.name,
        day,
        pointer=PublishedDay(plan.attempt, folder, files, rows_clean, run_id),
        files=_ingested_files(plan, results, run_id),
        quarantine=_quarantine_tables(spec, plan, results, duplicates),
        result=outcome,
    )
    faults.point("publish.committed")
    superseded = previous.location if previous is not None else None
    lake.after_publish(spec.name, day, plan.attempt, superseded, time.time())
    log.info(
        "model %s, date %s: published attempt %s: %d read, %d clean, %d quarantined",
        spec.name,
        day,
        plan.attempt,
        counts.rows_read,
        rows_clean,
        outcome.rows_quarantined,
    )
    return PublishResult(spec.name, day, plan.attempt, outcome)


def _drop_clean_duplicates(
    spec: ModelSpec, plan: DayPlan, results: list[ShardResult], duplicates: Duplicates
) -> None:
    clean = duplicates.clean_rows()
    if clean.empty:
        return
    drop = {
        (plan.files[int(f)].path, int(r))
        for f, r in zip(clean["file_index"], clean["row_number"], strict=True)
    }
    touched = {plan.files[int(f)].path for f in clean["file_index"]}
    for result, shard in zip(results, plan.shards, strict=True):
        if touched & {p.file.path for p in shard.pieces}:
            _drop_rows(spec, result, drop)


def _ingested_files(plan: DayPlan, results: list[ShardResult], run_id: str) -> pd.DataFrame:
    read = Counter()
    for result in results:
        read.update(result.rows_by_file)
    return pd.DataFrame(
        {
            "source_file": [f.path for f in plan.files],
            "sha256": [f.sha256 for f in plan.files],
            "size_bytes": [f.size for f in plan.files],
            "rows": [read[f.path] for f in plan.files],
            "columns": [json.dumps(f.columns) for f in plan.files],
            "run_id": run_id,
        }
    )
