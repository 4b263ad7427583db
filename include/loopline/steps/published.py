"""Reading published days from the lake: the only way steps read clean rows. A day is read only
through its pointer in ``warehouse.lake_partitions``, only the columns asked for, in batches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd

from loopline.adapters import lake, warehouse
from loopline.core.columns import ENTITY_ID, LABEL, PARTITION_DATE
from loopline.core.features import typed_frame
from loopline.core.spec import ModelSpec

# ``warehouse.labels_of_day`` gives SQL's column names; beside features, loopline's own.
LABEL_COLUMNS = {"entity_id": ENTITY_ID, "label": LABEL}


def days(spec: ModelSpec, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The published days in ``start..end``: ``partition_date, files, rows_clean``."""
    return warehouse.published_days(spec.name, start, end)


def iter_window(
    spec: ModelSpec,
    start: dt.date,
    end: dt.date,
    columns: list[str],
    batch_rows: int | None = None,
) -> Iterator[tuple[dt.date, pd.DataFrame]]:
    """``(day, batch)`` for every batch of the published clean rows of ``start..end``, with
    only ``columns`` (lake column names), typed by the spec."""
    batch_rows = batch_rows or spec.processing.batch_rows
    for row in days(spec, start, end).itertuples():
        for file in row.files:
            present = set(lake.clean_columns(file["path"]))
            wanted = [c for c in columns if c in present]  # a column the day lacks: absent
            for frame in lake.read_batches(file["path"], wanted, batch_rows):
                yield row.partition_date, typed_frame(spec, frame)


def read_window(spec: ModelSpec, start: dt.date, end: dt.date, columns: list[str]) -> pd.DataFrame:
    """All published clean rows of ``start..end`` (small windows: tests, reports), with a
    ``PARTITION_DATE`` column."""
    parts = [
        frame.assign(**{PARTITION_DATE: day})
        for day, frame in iter_window(spec, start, end, columns)
    ]
    if not parts:
        return pd.DataFrame(columns=[*columns, PARTITION_DATE])
    return pd.concat(parts, ignore_index=True)


def read_labelled(
    spec: ModelSpec,
    start: dt.date,
    end: dt.date,
    columns: list[str],
    *,
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Published rows of ``start..end`` joined to their labels (a ``LABEL`` column). With
    ``max_rows``, a seeded sample with the same rate on every day keeps at most about that many
    rows, so memory stays bounded however long the window."""
    published = days(spec, start, end)
    labelled = warehouse.labelled_days(spec.name, start, end)
    published = published[published["partition_date"].isin(set(labelled["partition_date"]))]
    total = int(published["rows_clean"].sum())
    rate = 1.0 if not max_rows or total <= max_rows else max_rows / total
    wanted = [ENTITY_ID, *[c for c in columns if c != ENTITY_ID]]
    parts = []
    for row in published.itertuples():
        rng = np.random.default_rng([seed, row.partition_date.toordinal()])
        chunks = []
        for file in row.files:
            for frame in lake.read_batches(file["path"], wanted, spec.processing.batch_rows):
                keep = rng.random(len(frame)) < rate if rate < 1 else slice(None)
                chunks.append(frame[keep])
        if not chunks:
            continue
        day = pd.concat(chunks, ignore_index=True).assign(_position=lambda f: np.arange(len(f)))
        joined = [
            day.merge(labels.rename(columns=LABEL_COLUMNS), on=ENTITY_ID, how="inner")
            for labels in warehouse.labels_of_day(
                spec.name, row.partition_date, spec.processing.batch_rows
            )
        ]
        if not joined:
            continue
        # The labels arrive in chunks: the day's rows are put back in their lake order.
        day = pd.concat(joined, ignore_index=True).sort_values("_position", kind="stable")
        day = day.drop(columns="_position").reset_index(drop=True)
        parts.append(typed_frame(spec, day).assign(**{PARTITION_DATE: row.partition_date}))
    if not parts:
        return pd.DataFrame(columns=[*wanted, LABEL, PARTITION_DATE])
    return pd.concat(parts, ignore_index=True)
