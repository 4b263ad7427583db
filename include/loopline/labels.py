"""Late labels: load label files into ``warehouse.labels``, keyed like the rows they label.

Files arrive in ``<labels>/<model>/date=<arrival day>/`` with the entity id, the
``partition_date`` of the row they label, and the target. Loading an arrival day is idempotent;
a label re-delivered later replaces the earlier one. Bad label rows go to quarantine.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from loopline import config, storage, warehouse
from loopline.ingest import day_folder, to_json_lines
from loopline.spec import ModelSpec

log = logging.getLogger(__name__)
ARRIVAL = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def arrival_days(spec: ModelSpec, until: dt.date, root: str | None = None) -> list[dt.date]:
    folder = Path(storage.join(root or config.labels_root(), spec.name))
    found = (ARRIVAL.match(p.name) for p in folder.iterdir()) if folder.is_dir() else ()
    days = sorted(dt.date.fromisoformat(m.group(1)) for m in found if m)
    return [d for d in days if d <= until]


def split_labels(spec: ModelSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Typed labels, and for the rest a reason per row (same index)."""
    entity, target = spec.entity_id.column, spec.target.column
    missing = [c for c in (entity, "partition_date", target) if c not in frame.columns]
    if missing:
        raise ValueError(f"model '{spec.name}': label file lacks column(s) {missing}")
    label = pd.to_numeric(frame[target], errors="coerce")
    day = pd.to_datetime(frame["partition_date"], errors="coerce", format="ISO8601").dt.date
    reason = pd.Series(None, index=frame.index, dtype=object)
    if spec.target.task == "binary_classification":
        reason[~label.isin([0, 1])] = f"{target} is not 0 or 1"
    else:
        reason[label.isna() | ~np.isfinite(label)] = f"{target} is not a number"
    reason[day.isna()] = "partition_date is not a date"
    reason[frame[entity].isna()] = f"{entity} is null"
    good = reason.isna()
    typed = pd.DataFrame(
        {
            "partition_date": day[good],
            "entity_id": frame.loc[good, entity].astype(str),
            "label": label[good].astype(float),
        }
    )
    return typed, reason[~good]


def ingest_labels(
    spec: ModelSpec, arrival: dt.date, *, run_id: str, root: str | None = None
) -> int:
    """Load one arrival day's label files; return the number of labels loaded."""
    loaded = 0
    for data_file in storage.list_files(
        day_folder(root or config.labels_root(), spec.name, arrival)
    ):
        frame = storage.read_frame(data_file.path)
        typed, bad = split_labels(spec, frame)
        typed = typed.drop_duplicates(["partition_date", "entity_id"], keep="last")
        with warehouse.partition_transaction(spec.name, arrival) as cursor:
            cursor.execute(
                "DELETE FROM warehouse.labels WHERE model = %s AND source_file = %s",
                (spec.name, data_file.path),
            )
            warehouse.upsert_frame(
                cursor,
                "labels",
                ["model", "partition_date", "entity_id"],
                typed.assign(
                    model=spec.name, arrival_date=arrival, source_file=data_file.path, run_id=run_id
                ),
            )
            if len(bad):
                records = to_json_lines(frame.loc[bad.index])
                reasons = [
                    json.dumps([{"column": spec.target.column, "check": "label", "detail": r}])
                    for r in bad
                ]
                quarantine = pd.DataFrame(
                    {
                        "model": spec.name,
                        "partition_date": arrival,
                        "source_file": data_file.path,
                        "row_number": bad.index,
                        "record": records,
                        "reasons": reasons,
                        "run_id": run_id,
                    }
                )
                cursor.execute(
                    "DELETE FROM warehouse.quarantine WHERE model = %s AND source_file = %s",
                    (spec.name, data_file.path),
                )
                warehouse.copy_frame(cursor, "quarantine", quarantine)
        loaded += len(typed)
        log.info(
            "model %s: %d labels from %s (%d quarantined)",
            spec.name,
            len(typed),
            data_file.path,
            len(bad),
        )
    return loaded


def sync_labels(spec: ModelSpec, until: dt.date, *, run_id: str) -> int:
    """Load every arrival day up to ``until`` (idempotent)."""
    return sum(ingest_labels(spec, day, run_id=run_id) for day in arrival_days(spec, until))
