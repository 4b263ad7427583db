"""Batch prediction: the champion scores a day's clean rows into ``warehouse.predictions``.

The model is loaded once, by version (the alias is resolved once, so a promotion during the
run cannot mix versions). Rows stream from PostgreSQL in chunks, are scored, and are COPYed
into a staging table; the day's partition is then swapped in one transaction, under the
partition's advisory lock and the (model, partition_date, entity_id) primary key, so a re-run
replaces the day and two concurrent runs cannot duplicate a row.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import pandas as pd

from loopline import warehouse
from loopline.features import clean_rows_sql, input_columns, typed_frame
from loopline.spec import ModelSpec

log = logging.getLogger(__name__)
CHUNK_ROWS = 100_000


class NoChampionError(LookupError):
    """No model version carries the ``champion`` alias yet."""


class PredictionInputError(ValueError):
    """The champion needs a column the day's rows do not have: a retry cannot fix it."""


@dataclass(frozen=True)
class Champion:
    name: str
    version: int
    run_id: str
    model: object

    @property
    def required_columns(self) -> list[str]:
        features = getattr(self.model, "named_steps", {}).get("features")
        names = getattr(features, "feature_names_in_", None)
        if names is None:
            names = getattr(self.model, "feature_names_in_", [])
        return [str(n) for n in names]


def load_champion(spec: ModelSpec) -> Champion:
    from loopline import registry

    version = registry.champion_version(spec.name)
    if version is None:
        raise NoChampionError(f"model '{spec.name}' has no champion yet: nothing to score with")
    model = registry.load_model(f"models:/{spec.name}/{version.version}")
    return Champion(spec.name, int(version.version), version.run_id, model)


def score_chunk(
    spec: ModelSpec, champion: Champion, chunk: pd.DataFrame, *, day: dt.date
) -> pd.DataFrame:
    """Entity id, score and predicted label of each row of the chunk."""
    missing = [c for c in champion.required_columns if c not in chunk.columns]
    if missing:
        raise PredictionInputError(
            f"model '{spec.name}' version {champion.version}, date {day}: column '{missing[0]}' "
            f"needed by the model is missing from the day's rows (missing: {missing})"
        )
    inputs = typed_frame(spec, chunk)[champion.required_columns or input_columns(spec)]
    if spec.target.task == "binary_classification":
        score = champion.model.predict_proba(inputs)[:, 1]
        label = (score >= spec.metric.decision_threshold).astype(int)
    else:
        score, label = champion.model.predict(inputs).astype(float), None
    entity = chunk["entity_id"].astype(str).to_numpy()
    return pd.DataFrame({"entity_id": entity, "score": score, "predicted_label": label})


def predict_day(
    spec: ModelSpec,
    day: dt.date,
    *,
    dag_run_id: str,
    scored_at: pd.Timestamp | None = None,
    champion: Champion | None = None,
    chunk_rows: int = CHUNK_ROWS,
    url: str | None = None,
) -> dict:
    """Score the day's clean rows with the champion and replace the day's predictions."""
    champion = champion or load_champion(spec)
    scored_at = scored_at if scored_at is not None else pd.Timestamp.now(tz="UTC")
    params = {"model": spec.name, "start": day, "end": day}
    rows = 0
    constants = {
        "model_version": champion.version,
        "mlflow_run_id": champion.run_id,
        "dag_run_id": dag_run_id,
        "scored_at": scored_at.to_pydatetime(),
    }
    text = {f.name: str for f in spec.features if f.type == "categorical"}
    with (
        warehouse.partition_transaction(spec.name, day, url) as cursor,
        warehouse.partition_writer(cursor, "predictions", spec.name, day, constants) as load,
    ):
        for chunk in warehouse.stream_query(clean_rows_sql(spec), params, chunk_rows, url, text):
            load(score_chunk(spec, champion, chunk, day=day))
            rows += len(chunk)
    log.info("model %s version %d, date %s: %d predictions", spec.name, champion.version, day, rows)
    return {
        "model": spec.name,
        "partition_date": day.isoformat(),
        "rows": rows,
        "model_version": champion.version,
        "mlflow_run_id": champion.run_id,
    }
