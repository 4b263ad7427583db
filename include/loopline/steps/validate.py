"""Validate a day: each shard streams its landing files in record batches through the spec's
rules and writes typed clean rows, bad rows and entity-id keys under the run's own attempt
folder in the lake; then one publish step judges the whole day (repeated ids across all shards,
no rows, too many bad rows) and commits it in one transaction, or records the failure and
leaves the published day as it was.

Every row read ends up in exactly one place: the clean files of the published attempt, or
``warehouse.quarantine`` with every reason. Memory depends on ``processing.batch_rows``, not on
the size of the day.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.adapters import lake, landing, storage, warehouse
from loopline.core import columns as own
from loopline.core import faults
from loopline.core.errors import BatchValidationError, DiskFullError
from loopline.core.spec import ModelSpec
from loopline.core.validation import (
    ENTITY,
    DayCounts,
    RowValidator,
    duplicate_reason,
    judge_day,
    validate_batch,
)
from loopline.steps.ingest import DayPlan, Shard

log = logging.getLogger(__name__)
# An attempt whose writer has not renewed its lease for this long was left by a killed run (a
# live shard renews it every LEASE_RENEW_SECONDS at most, as its batches go). Attempts from
# before leases: nobody wrote to them for STALE_SECONDS.
LEASE_SECONDS = 15 * 60
LEASE_RENEW_SECONDS = 30
STALE_SECONDS = 6 * 3600


@dataclass
class ShardResult:
    index: int
    clean_path: str
    quarantine_path: str
    keys_path: str
    rows_read: int = 0
    rows_clean: int = 0
    rows_bad: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # "column|check" -> rows
    bad_files: list[str] = field(default_factory=list)
    rows_by_file: dict[str, int] = field(default_factory=dict)
    truncated: bool = False  # stopped writing bad rows' records (the day fails anyway)

    def as_dict(self) -> dict:
        return asdict(self)


def _clean_table(spec: ModelSpec, typed: pd.DataFrame, rows, source: str, run_id: str):
    frame = typed.assign(
        **{
            own.EVENT_TS: typed[own.EVENT_TS].dt.floor("us"),
            own.SOURCE_FILE: source,
            own.ROW_NUMBER: rows,
            own.RUN_ID: run_id,
        }
    )
    return pa.Table.from_pandas(frame, schema=lake.clean_schema(spec), preserve_index=False)


def _keys_table(file_index: int, ids: pd.Series, rows: np.ndarray, clean: np.ndarray):
    """The entity ids of a batch with where they came from, for the day-level uniqueness check."""
    present = ids.notna().to_numpy()
    return pa.table(
        {
            "file_index": np.full(int(present.sum()), file_index, dtype=np.int32),
            "row_number": rows[present],
            "clean": clean[present],
            "entity_id": pa.Array.from_pandas(ids[present].astype("str")),
        },
        schema=lake.KEYS_SCHEMA,
    )


def validate_shard(spec: ModelSpec, shard: Shard, *, run_id: str) -> ShardResult:
    """Stream one shard's record batches through the rules into the attempt's folder. A disk
    that fills up is said as such (model, day, folder, what to do), and the shard's files are
    removed: nothing half written stays behind."""
    day, folder = shard.day, lake.attempt_folder(spec.name, shard.day, shard.attempt)
    result = ShardResult(
        shard.index,
        lake.part_path(folder, shard.index),
        lake.work_path(folder, "quarantine", shard.index),
        lake.work_path(folder, "keys", shard.index),
    )
    try:
        return _write_shard(spec, shard, result, run_id)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        for path in (result.clean_path, result.quarantine_path, result.keys_path):
            storage.delete(path)
        raise DiskFullError(
            f"no space left on the disk while writing the day's clean rows under {folder} "
            f"({exc.strerror})",
            model=spec.name,
            day=day,
            hint="free space on the lake's disk (or grow it), then re-run the day: nothing of "
            "this attempt was published and its files are removed",
        ) from exc


def _write_shard(spec: ModelSpec, shard: Shard, result: ShardResult, run_id: str) -> ShardResult:
    day = shard.day
    where = {"model": spec.name, "day": day}
    renewed = _renew(spec, shard, 0.0)
    validator, failed, started = RowValidator(spec), Counter(), time.monotonic()
    with (
        lake.ParquetPart(result.clean_path, lake.clean_schema(spec)) as clean,
        lake.ParquetPart(result.quarantine_path, lake.QUARANTINE_SCHEMA) as quarantine,
        lake.ParquetPart(result.keys_path, lake.KEYS_SCHEMA) as keys,
    ):
        for piece in shard.pieces:
            file, read_before = piece.file, result.rows_read
            landing.check_unchanged(file, where)
            batches = landing.iter_batches(
                file, spec.processing.batch_rows, where, piece.row_groups
            )
            for offset, table in batches:
                renewed = _renew(spec, shard, renewed)
                outcome = validate_batch(spec, day, table.to_pandas(), validator)
                rows = np.arange(offset, offset + table.num_rows, dtype=np.int64)
                bad = outcome.bad
                clean.write(_clean_table(spec, outcome.clean, rows[~bad], file.path, run_id))
                keys.write(_keys_table(file.index, outcome.typed[ENTITY], rows, ~bad))
                positions = np.flatnonzero(bad)
                if len(positions):
                    result.bad_files.append(file.path)
                    failed.update(outcome.reasons.counts)
                limit = shard.quarantine_limit
                if limit is not None and result.rows_bad + len(positions) > limit:
                    result.truncated = True
                if not result.truncated:
                    quarantine.write(_quarantine_table(file.path, table, outcome, positions, rows))
                result.rows_read += table.num_rows
                result.rows_by_file[file.path] = (
                    result.rows_by_file.get(file.path, 0) + table.num_rows
                )
                result.rows_bad += len(positions)
                result.rows_clean += table.num_rows - len(positions)
            # Read as planned, or not at all: a file that grew (or shrank) while it was read
            # would be published short (or with rows nobody checked) as a success.
            landing.check_unchanged(file, where, rows=result.rows_read - read_before, of=piece.rows)
    faults.point("validate.shard_written")
    result.failed = {f"{c}|{k}": int(n) for (c, k), n in failed.items()}
    result.bad_files = sorted(set(result.bad_files))
    log.info(
        "model %s, date %s, shard %d/%d: %d rows read, %d clean, %d bad (%.1fs)",
        spec.name,
        day,
        shard.index + 1,
        shard.count,
        result.rows_read,
        result.rows_clean,
        result.rows_bad,
        time.monotonic() - started,
    )
    return result


def _renew(spec: ModelSpec, shard: Shard, last: float) -> float:
    """Renew the attempt's lease if the last renewal is older than LEASE_RENEW_SECONDS."""
    now = time.monotonic()
    if now - last < LEASE_RENEW_SECONDS and last:
        return last
    lake.renew_lease(spec.name, shard.day, shard.attempt)
    return now


def _quarantine_table(path: str, table: pa.Table, outcome, positions, rows) -> pa.Table:
    ids = outcome.typed[ENTITY].to_numpy(dtype=object)[positions]
    return pa.table(
        {
            "source_file": pa.array([path] * len(positions), pa.string()),
            "row_number": rows[positions],
            "entity_id": pa.array([None if pd.isna(v) else str(v) for v in ids], pa.string()),
            "record": landing.records(table, positions),
            "reasons": [json.dumps(outcome.reasons.by_row[int(p)]) for p in positions],
        },
        schema=lake.QUARANTINE_SCHEMA,
    )


# --- publish ----------------------------------------------------------------------------------


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


def _quarantine_tables(spec, plan: DayPlan, results, duplicates: Duplicates):
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


def publish_day(spec: ModelSpec, plan: DayPlan, results: list[ShardResult], *, run_id: str) -> dict:
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
        storage.delete_tree(folder)
        raise
    _drop_clean_duplicates(spec, plan, results, duplicates)
    files = [{"path": r.clean_path, "rows": lake.file_rows(r.clean_path)} for r in results]
    rows_clean = sum(f["rows"] for f in files)
    outcome = {
        "run_id": run_id,
        "published_run_id": run_id,
        "rows_read": counts.rows_read,
        "rows_clean": rows_clean,
        "rows_quarantined": counts.rows_read - rows_clean,
        "success": True,
        "failed_expectations": counts.failed_expectations(),
        "error": None,
    }
    previous = warehouse.publish_day(
        spec.name,
        day,
        pointer={
            "attempt": plan.attempt,
            "location": folder,
            "files": files,
            "rows_clean": rows_clean,
            "run_id": run_id,
        },
        files=_ingested_files(plan, results, run_id),
        quarantine=_quarantine_tables(spec, plan, results, duplicates),
        result=outcome,
    )
    faults.point("publish.committed")
    _clean_up(spec, plan, previous)
    log.info(
        "model %s, date %s: published attempt %s: %d read, %d clean, %d quarantined",
        spec.name,
        day,
        plan.attempt,
        counts.rows_read,
        rows_clean,
        outcome["rows_quarantined"],
    )
    return {"model": spec.name, "partition_date": day.isoformat(), **outcome}


def _drop_clean_duplicates(spec, plan: DayPlan, results, duplicates: Duplicates) -> None:
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


def _clean_up(spec: ModelSpec, plan: DayPlan, previous: dict | None) -> None:
    """After publishing: the superseded attempt, this attempt's work files, and attempts left
    by killed runs: their lease not renewed for ``LEASE_SECONDS`` (older attempts without a
    lease: untouched for ``STALE_SECONDS``)."""
    current = lake.attempt_folder(spec.name, plan.day, plan.attempt)
    storage.delete_tree(storage.join(current, "_work"))
    if previous and previous["attempt"] != plan.attempt:
        storage.delete_tree(previous["location"])
    now = time.time()
    for attempt in lake.attempts_of_day(spec.name, plan.day):
        if attempt == plan.attempt:
            continue
        folder = lake.attempt_folder(spec.name, plan.day, attempt)
        age = lake.lease_age(spec.name, plan.day, attempt, now)
        if age is not None:
            stale = age > LEASE_SECONDS
        else:
            stale = all(now - f.modified > STALE_SECONDS for f in storage.list_tree(folder))
        if stale:
            storage.delete_tree(folder)


def shard_results(data: list[dict]) -> list[ShardResult]:
    return [ShardResult(**d) for d in data]


def validate_day(spec: ModelSpec, day: dt.date, *, run_id: str, landing_root=None) -> dict:
    """Plan, validate every shard and publish, in this process (the CLI, tests, benchmarks;
    the DAG runs the same three steps as separate tasks, the shards mapped)."""
    from loopline.steps.ingest import plan_day

    plan = plan_day(spec, day, run_id=run_id, landing_root=landing_root)
    results = [validate_shard(spec, shard, run_id=run_id) for shard in plan.shards]
    return publish_day(spec, plan, results, run_id=run_id)
