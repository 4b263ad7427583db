"""Ingest: copy one model-day of landing files, row for row, into ``warehouse.raw_rows``.

Idempotent per (model, date): a re-run replaces the day's raw rows, never appends.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass

import pandas as pd

from loopline import config, storage, warehouse
from loopline.spec import ModelSpec

log = logging.getLogger(__name__)


class LandingMissingError(FileNotFoundError):
    """No files yet for the day: upstream may be late, so a retry can help."""


class UnreadableFileError(ValueError):
    """A landing file that cannot be parsed: a retry cannot fix it."""


@dataclass(frozen=True)
class IngestResult:
    model: str
    partition_date: dt.date
    files: int
    rows: int

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "partition_date": self.partition_date.isoformat(),
            "files": self.files,
            "rows": self.rows,
        }


def day_folder(root: str, model: str, day: dt.date) -> str:
    return storage.join(root, model, f"date={day.isoformat()}")


def to_json_lines(frame: pd.DataFrame) -> list[str]:
    """One JSON object per row, values as sent (NaN as null, timestamps as ISO-8601)."""
    if frame.empty:
        return []
    text = frame.to_json(orient="records", lines=True, date_format="iso", date_unit="s")
    lines = text.rstrip("\n").split("\n")
    if len(lines) != len(frame):
        raise ValueError(f"JSON encoding produced {len(lines)} lines for {len(frame)} rows")
    return lines


def ingest_day(
    spec: ModelSpec,
    day: dt.date,
    *,
    run_id: str,
    landing: str | None = None,
    url: str | None = None,
) -> IngestResult:
    folder = day_folder(landing or config.landing_root(), spec.name, day)
    files = storage.list_files(folder)
    if not files:
        raise LandingMissingError(
            f"model '{spec.name}', date {day}: no .parquet or .csv files in {folder}"
        )
    file_rows, raw_rows = [], []
    for data_file in files:
        try:
            frame, sha256 = storage.read_file(data_file.path)
        except Exception as exc:
            raise UnreadableFileError(
                f"model '{spec.name}', date {day}, file {data_file.path}: unreadable: {exc}"
            ) from exc
        file_rows.append(
            {
                "source_file": data_file.path,
                "sha256": sha256,
                "size_bytes": data_file.size,
                "rows": len(frame),
                "columns": json.dumps([str(c) for c in frame.columns]),
                "run_id": run_id,
            }
        )
        raw_rows.append(
            pd.DataFrame(
                {
                    "source_file": data_file.path,
                    "row_number": range(len(frame)),
                    "record": to_json_lines(frame),
                    "run_id": run_id,
                }
            )
        )
        log.info(
            "model %s, date %s: read %d rows from %s", spec.name, day, len(frame), data_file.path
        )
    with warehouse.partition_transaction(spec.name, day, url) as cursor:
        warehouse.replace_partition(
            cursor, "ingested_files", spec.name, day, pd.DataFrame(file_rows)
        )
        warehouse.replace_partition(cursor, "raw_rows", spec.name, day, pd.concat(raw_rows))
    return IngestResult(spec.name, day, len(files), sum(r["rows"] for r in file_rows))
