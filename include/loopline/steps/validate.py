"""Validate a shard of a day: stream its landing files in record batches through the spec's
rules and write typed clean rows, bad rows and entity-id keys under the run's own attempt
folder in the lake (``loopline.steps.publish`` then judges the whole day and publishes it).

Every row read ends up in exactly one place: the clean rows, or the bad rows with every reason.
Memory depends on ``processing.batch_rows``, not on the size of the day.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import time
from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.adapters import lake, landing
from loopline.core import columns as own
from loopline.core import faults
from loopline.core.errors import DiskFullError
from loopline.core.spec import ModelSpec
from loopline.core.validation import ENTITY, BatchOutcome, RowValidator, validate_batch
from loopline.steps.ingest import Shard, ShardResult
from loopline.steps.publish import PublishResult, publish_day

log = logging.getLogger(__name__)


def _clean_table(
    spec: ModelSpec, typed: pd.DataFrame, rows: np.ndarray, source: str, run_id: str
) -> pa.Table:
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
        lake.discard_parts(result.clean_path, result.quarantine_path, result.keys_path)
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
    if now - last < lake.LEASE_RENEW_SECONDS and last:
        return last
    lake.renew_lease(spec.name, shard.day, shard.attempt)
    return now


def _quarantine_table(
    path: str, table: pa.Table, outcome: BatchOutcome, positions: np.ndarray, rows: np.ndarray
) -> pa.Table:
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


def validate_day(
    spec: ModelSpec, day: dt.date, *, run_id: str, landing_root: str | None = None
) -> PublishResult:
    """Plan, validate every shard and publish, in this process (the CLI, tests, benchmarks;
    the DAG runs the same three steps as separate tasks, the shards mapped)."""
    from loopline.steps.ingest import plan_day

    plan = plan_day(spec, day, run_id=run_id, landing_root=landing_root)
    results = [validate_shard(spec, shard, run_id=run_id) for shard in plan.shards]
    return publish_day(spec, plan, results, run_id=run_id)
