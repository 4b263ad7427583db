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

import numpy as np
import pandas as pd

from loopline import config, storage, warehouse
from loopline.ingest import day_folder, to_json_lines
from loopline.spec import ModelSpec

log = logging.getLogger(__name__)
ARRIVAL = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def arrival_days(spec: ModelSpec, until: dt.date, root: str | None = None) -> list[dt.date]:
    folder = storage.join(root or config.labels_root(), spec.name)
    found = (ARRIVAL.match(name) for name in storage.list_folders(folder))
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
                    "DELETE FROM warehouse.labels_quarantine WHERE model = %s AND source_file = %s",
                    (spec.name, data_file.path),
                )
                warehouse.copy_frame(cursor, "labels_quarantine", quarantine)
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


def realized_performance(spec: ModelSpec, scored_day: dt.date) -> pd.DataFrame:
    """Metrics of the predictions made for ``scored_day`` against their labels, per model
    version, stored in ``warehouse.model_performance`` (replacing that day's rows)."""
    from loopline import registry
    from loopline.evaluate import metrics
    from loopline.gate import gain

    joined = warehouse.query(
        "SELECT p.model_version, p.score, l.label FROM warehouse.predictions p "
        "JOIN warehouse.labels l USING (model, partition_date, entity_id) "
        "WHERE p.model = :m AND p.partition_date = :d",
        {"m": spec.name, "d": scored_day},
    )
    primary, rows = spec.metric.primary, []
    for version, part in joined.groupby("model_version"):
        result = metrics(spec, part["label"].to_numpy(), part["score"].to_numpy())
        tags = registry.client().get_model_version(spec.name, str(version)).tags
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
    with warehouse.partition_transaction(spec.name, scored_day) as cursor:
        warehouse.replace_partition(
            cursor, "model_performance", spec.name, scored_day, pd.DataFrame(rows)
        )
    return pd.DataFrame(rows)


def auc_standard_error(auc: float, labels) -> float:
    """Hanley & McNeil (1982) standard error of a ROC-AUC estimate."""
    positives = float(np.sum(labels))
    negatives = float(len(labels) - positives)
    if positives < 1 or negatives < 1 or auc != auc:
        return float("inf")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def performance_signal(spec: ModelSpec, day: dt.date) -> dict:
    """Concept drift: the champion's realized metric over the last ``drift.window_days`` mature
    days (pooled), against its holdout metric. Too few rows: no signal."""
    from loopline import registry
    from loopline.evaluate import metrics
    from loopline.gate import gain

    champion = registry.champion_version(spec.name)
    if champion is None:
        return {"degraded": False, "text": "no champion"}
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    joined = warehouse.query(
        "SELECT p.score, l.label FROM warehouse.predictions p "
        "JOIN warehouse.labels l USING (model, partition_date, entity_id) "
        "WHERE p.model = :m AND p.model_version = :v AND p.partition_date BETWEEN :s AND :d",
        {"m": spec.name, "v": int(champion.version), "s": start, "d": day},
    )
    primary = spec.metric.primary
    reference = float(champion.tags.get(f"holdout_{primary}", "nan"))
    if len(joined) < spec.drift.min_rows:
        return {
            "degraded": False,
            "rows": len(joined),
            "text": f"{len(joined)} labelled predictions of v{champion.version}, fewer than "
            f"{spec.drift.min_rows}",
        }
    labels = joined["label"].to_numpy()
    value = metrics(spec, labels, joined["score"].to_numpy())[primary]
    change = gain(primary, value, reference)
    # Rare positives make a day's AUC noisy: the drop must exceed the tolerance by two standard
    # errors (Hanley & McNeil), so sampling noise alone does not trigger a retraining.
    margin = 2 * auc_standard_error(value, labels) if primary == "roc_auc" else 0.0
    degraded = bool(value == value and change + margin < -spec.labels.performance_tolerance)
    return {
        "degraded": degraded,
        "rows": len(joined),
        "value": value,
        "reference": reference,
        "model_version": int(champion.version),
        "text": f"realized {primary} of v{champion.version} over {start}..{day} is {value:.4f} "
        f"vs {reference:.4f} on its holdout (change {change:+.4f}, tolerance "
        f"{spec.labels.performance_tolerance})",
    }
