"""Late labels: load label files into ``warehouse.labels``, measure realized performance, and
say whether the champion's realized metric has dropped (concept drift).

Label files arrive in ``<labels>/<model>/date=<arrival day>/`` (Parquet or CSV) with three
columns: the spec's entity id column, ``partition_date`` (the day of the rows they label,
YYYY-MM-DD) and the spec's target column. A binary target may be sent as 0/1, true/false or
yes/no (any case); a regression target as a number. Loading an arrival day is idempotent; a
label re-delivered later replaces the earlier one; a row that cannot be read goes to
``warehouse.labels_quarantine`` with the value that was refused.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from loopline.adapters import landing, model_store, settings, storage, warehouse
from loopline.core.errors import LabelFileError
from loopline.core.metrics import auc_standard_error, gain, metrics
from loopline.core.spec import ModelSpec
from loopline.steps.ingest import day_folder

log = logging.getLogger(__name__)
ARRIVAL = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
BINARY = {"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0, "no": 0.0, "yes": 1.0}


def arrival_days(spec: ModelSpec, until: dt.date, root: str | None = None) -> list[dt.date]:
    folder = storage.join(root or settings.labels_root(), spec.name)
    found = (ARRIVAL.match(name) for name in storage.list_folders(folder))
    days = sorted(dt.date.fromisoformat(m.group(1)) for m in found if m)
    return [d for d in days if d <= until]


def _binary(values: pd.Series) -> pd.Series:
    text = values.map(lambda v: str(v).strip().lower(), na_action="ignore")
    text = text.map(lambda v: v[:-2] if v.endswith(".0") else v, na_action="ignore")
    return text.map(BINARY)


def split_labels(spec: ModelSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Typed labels, and for the rest a reason per row naming the refused value."""
    entity, target = spec.entity_id.column, spec.target.column
    raw = frame[target]
    if spec.is_classifier:
        label = _binary(raw)
        expected = "0/1, true/false or yes/no"
    else:
        label = pd.to_numeric(raw, errors="coerce")
        label = label.where(np.isfinite(label))
        expected = "a finite number"
    day = pd.to_datetime(frame["partition_date"], errors="coerce", format="ISO8601").dt.date
    reason = pd.Series(None, index=frame.index, dtype=object)
    bad_label = label.isna()
    reason[bad_label] = [f"{target} is {v!r}, not {expected}" for v in raw[bad_label]]
    reason[day.isna()] = [
        f"partition_date is {v!r}, not a date" for v in frame["partition_date"][day.isna()]
    ]
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


def _batches(spec: ModelSpec, file: landing.LandingFile, where: dict) -> Iterator:
    for offset, table in landing.iter_batches(file, spec.processing.batch_rows, where):
        frame = table.to_pandas()
        typed, reasons = split_labels(spec, frame)
        rows = np.arange(offset, offset + len(frame))
        positions = reasons.index.to_numpy()
        bad = pd.DataFrame(
            {
                "row_number": rows[positions],
                "entity_id": frame.loc[reasons.index, spec.entity_id.column].astype(object),
                "record": landing.records(table, positions),
                "reasons": [
                    json.dumps([{"column": spec.target.column, "check": "label", "detail": r}])
                    for r in reasons
                ],
            }
        )
        yield typed.assign(row_number=rows[~frame.index.isin(reasons.index)]), bad


def ingest_labels(
    spec: ModelSpec, arrival: dt.date, *, run_id: str, root: str | None = None
) -> int:
    """Load one arrival day's label files; return the number of labels loaded."""
    loaded = 0
    where = {"model": spec.name, "day": arrival}
    folder = day_folder(root or settings.labels_root(), spec.name, arrival)
    for i, data_file in enumerate(storage.list_files(folder)):
        file = landing.inspect(data_file, i, where)
        needed = [spec.entity_id.column, "partition_date", spec.target.column]
        missing = [c for c in needed if c not in file.columns]
        if missing:
            raise LabelFileError(
                f"label file lacks column(s) {missing} (it has {file.columns})",
                file=file.path,
                column=missing[0],
                hint=f"label files carry {needed}: fix the file and re-run the labels DAG",
                **where,
            )
        stage = (
            (typed[["row_number", "partition_date", "entity_id", "label"]], bad)
            for typed, bad in _batches(spec, file, where)
        )
        count, quarantined = warehouse.replace_label_file(
            spec.name, arrival, file.path, stage, run_id
        )
        loaded += count
        log.info(
            "model %s: %d labels from %s (%d quarantined)", spec.name, count, file.path, quarantined
        )
    return loaded


def sync_labels(spec: ModelSpec, until: dt.date, *, run_id: str) -> int:
    """Load every arrival day up to ``until`` (idempotent)."""
    return sum(ingest_labels(spec, day, run_id=run_id) for day in arrival_days(spec, until))


def realized_performance(spec: ModelSpec, scored_day: dt.date) -> pd.DataFrame:
    """Metrics of the predictions made for ``scored_day`` against their labels, per model
    version, stored in ``warehouse.model_performance`` (replacing that day's rows)."""
    joined = warehouse.labelled_predictions(spec.name, scored_day, scored_day)
    primary, rows = spec.primary_metric, []
    for version, part in joined.groupby("model_version"):
        result = metrics(spec, part["label"].to_numpy(), part["score"].to_numpy())
        tags = model_store.model_version(spec.name, int(version)).tags
        reference = float(tags[f"holdout_{primary}"]) if f"holdout_{primary}" in tags else None
        value = result.get(primary)
        degraded = bool(
            reference is not None
            and value == value
            and gain(primary, value, reference) < -spec.labels.performance_tolerance
        )
        rows.append(
            {
                "model_version": int(version),
                "rows": len(part),
                "metrics": json.dumps({k: v for k, v in result.items() if v == v}),
                "primary_metric": primary,
                "value": value if value == value else None,
                "reference": reference,
                "degraded": degraded,
            }
        )
    warehouse.replace_performance(spec.name, scored_day, pd.DataFrame(rows))
    return pd.DataFrame(rows)


def performance_signal(spec: ModelSpec, day: dt.date) -> dict:
    """Concept drift: the champion's realized metric over the last ``drift.window_days`` mature
    days (pooled), against its holdout metric. Too few rows: no signal."""
    champion = model_store.champion_version(spec.name)
    if champion is None:
        return {"signal": False, "degraded": False, "text": "no champion"}
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    joined = warehouse.labelled_predictions(spec.name, start, day, int(champion.version))
    primary = spec.primary_metric
    reference = float(champion.tags.get(f"holdout_{primary}", "nan"))
    if len(joined) < spec.drift.min_rows:
        return {
            "signal": False,
            "degraded": False,
            "rows": len(joined),
            "text": f"{len(joined)} labelled predictions of v{champion.version}, fewer than "
            f"{spec.drift.min_rows} (drift.min_rows)",
        }
    labels = joined["label"].to_numpy()
    value = metrics(spec, labels, joined["score"].to_numpy())[primary]
    change = gain(primary, value, reference)
    # Rare positives make a day's AUC noisy: the drop must exceed the tolerance by two standard
    # errors (Hanley & McNeil), so sampling noise alone does not trigger a retraining.
    margin = 2 * auc_standard_error(value, labels) if primary == "roc_auc" else 0.0
    degraded = bool(value == value and change + margin < -spec.labels.performance_tolerance)
    return {
        "signal": degraded,
        "degraded": degraded,
        "rows": len(joined),
        "value": value,
        "reference": reference,
        "model_version": int(champion.version),
        "text": f"realized {primary} of v{champion.version} over {start}..{day} is {value:.4f} "
        f"vs {reference:.4f} on its holdout (change {change:+.4f}, tolerance "
        f"{spec.labels.performance_tolerance})",
    }
