"""Score a day: the champion scores the day's published clean files into
``warehouse.predictions``.

The ``champion`` alias is resolved once, when the scoring is planned, so a promotion during the
run cannot mix versions. When the model has a ``challenger`` (and the spec's ``shadow.enabled``),
the day is scored by it too, in shadow: the same shards and lineage, swapped into
``warehouse.shadow_predictions``, which analysts do not see.

Each published file is a shard (a mapped task): its rows stream from the lake in batches (only
the model's columns), are scored with the model loaded once, and are COPYed into
``predictions_staging`` under the scoring attempt. The swap step then checks every shard staged
all its rows and replaces the day's predictions in one transaction, under the day's advisory
lock and the (model, partition_date, entity_id) primary key: a re-run replaces the day and two
concurrent runs cannot duplicate or mix a row.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import pyarrow as pa

from loopline.adapters import lake, model_store, warehouse
from loopline.core import faults
from loopline.core.columns import ENTITY_ID
from loopline.core.errors import NoChampionError, PermanentError, PredictionInputError
from loopline.core.explain import contributions, top_reasons
from loopline.core.features import input_columns, typed_frame
from loopline.core.spec import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringShard:
    """One published file of the day, to be scored by one version (small enough for XCom)."""

    model: str
    day: str
    attempt: str
    index: int
    path: str
    rows: int
    version: int
    mlflow_run_id: str
    role: str = "champion"  # or "challenger" (shadow)
    # The published lake attempt these files belong to: the swap checks the day still points
    # at it, so a run that scored a day since published again cannot replace its predictions.
    lake_attempt: str = ""

    @property
    def table(self) -> str:
        return "predictions" if self.role == "champion" else "shadow_predictions"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SwapResult:
    """A day's predictions as swapped in: by which version (and run), how many rows; and the
    challenger's shadow predictions, when it scored in shadow."""

    model: str
    partition_date: dt.date
    rows: int = 0
    model_version: int | None = None
    mlflow_run_id: str | None = None
    shadow_rows: int | None = None
    shadow_version: int | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "partition_date": self.partition_date.isoformat()}


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


def plan_scoring(
    spec: ModelSpec, day: dt.date, *, attempt: str | None = None
) -> list[ScoringShard]:
    """The champion's version and the day's published files, one shard per file."""
    store = model_store.store()
    champion = store.champion(spec.name)
    if champion is None:
        raise NoChampionError("no champion yet: nothing to score with", model=spec.name, day=day)
    published = warehouse.published_partition(spec.name, day)
    if published is None:
        raise PermanentError(
            "the day has no published clean rows",
            model=spec.name,
            day=day,
            hint="run (or fix) the day's validation first; `loopline summary` shows why it failed",
        )
    roles = [("champion", champion, attempt or lake.new_attempt())]
    challenger = store.challenger(spec.name)
    if spec.shadow.enabled and challenger is not None and challenger.version != champion.version:
        roles.append(("challenger", challenger, lake.new_attempt()))
    return [
        ScoringShard(
            spec.name,
            day.isoformat(),
            role_attempt,
            i,
            f.path,
            f.rows,
            version.version,
            version.run_id,
            role,
            published.attempt,
        )
        for role, version, role_attempt in roles
        for i, f in enumerate(published.files)
    ]


def load_champion(spec: ModelSpec, version: int, run_id: str) -> Champion:
    model = model_store.store().load_version(spec.name, version)
    return Champion(spec.name, version, run_id, model)


def score_chunk(
    spec: ModelSpec, champion: Champion, chunk: pd.DataFrame, reasons: int = 0
) -> pa.Table:
    """Entity id, score and predicted label of each row of the chunk; with ``reasons``, also
    that many top features of each row by |contribution| and their contributions."""
    inputs = typed_frame(spec, chunk)[champion.required_columns or input_columns(spec)]
    if spec.is_classifier:
        score = champion.model.predict_proba(inputs)[:, 1]
        label = pa.array((score >= spec.metric.decision_threshold).astype(np.int32))
    else:
        score = np.asarray(champion.model.predict(inputs), dtype=float)
        label = pa.nulls(len(score), pa.int32())
    columns = {
        "entity_id": pa.array(chunk[ENTITY_ID].astype(str).to_numpy(dtype=object)),
        "score": pa.array(score, pa.float64()),
        "predicted_label": label,
    }
    if reasons:
        columns |= _reason_columns(spec, champion, inputs, reasons)
    return pa.table(columns)


def _reason_columns(
    spec: ModelSpec, champion: Champion, inputs: pd.DataFrame, top: int
) -> dict[str, pa.Array]:
    approximate = spec.explain.method == "approximate"
    values, names = contributions(
        spec, champion.model, inputs, list(inputs.columns), approximate=approximate
    )
    features, amounts = top_reasons(values, names, top)
    columns, rows = {}, len(inputs)
    for i in range(top):
        found = i < features.shape[1]  # a model of fewer features has fewer reasons
        feature = pa.array(features[:, i], pa.string()) if found else pa.nulls(rows, pa.string())
        amount = pa.array(amounts[:, i], pa.float64()) if found else pa.nulls(rows, pa.float64())
        columns[f"feature_{i + 1}"], columns[f"contribution_{i + 1}"] = feature, amount
    return columns


def _check_columns(spec: ModelSpec, champion: Champion, shard: ScoringShard) -> list[str]:
    available = set(lake.clean_columns(shard.path))
    missing = [c for c in champion.required_columns if c not in available]
    if missing:
        raise PredictionInputError(
            f"version {champion.version}: column '{missing[0]}' needed by the model is missing "
            f"from the day's rows (missing: {missing})",
            model=spec.name,
            day=dt.date.fromisoformat(shard.day),
            file=shard.path,
            column=missing[0],
            hint="restore the column in the spec and the data, or roll back / retrain the model "
            "without it",
        )
    return [ENTITY_ID, *champion.required_columns]


def score_shard(spec: ModelSpec, shard: ScoringShard, champion: Champion | None = None) -> int:
    """Score one published file into the staging table; returns the rows staged."""
    champion = champion or load_champion(spec, shard.version, shard.mlflow_run_id)
    columns = _check_columns(spec, champion, shard)
    started = time.monotonic()

    reasons = spec.explain.top if spec.explain.reasons and shard.role == "champion" else 0

    def scored() -> Iterator[pa.Table]:
        for chunk in lake.read_batches(shard.path, columns, spec.processing.batch_rows):
            yield score_chunk(spec, champion, chunk, reasons)

    day = dt.date.fromisoformat(shard.day)
    rows = warehouse.stage_predictions(spec.name, day, shard.attempt, shard.index, scored())
    faults.point("score.staged")
    log.info(
        "model %s v%d, date %s, shard %d: %d rows scored (%.1fs)",
        spec.name,
        shard.version,
        shard.day,
        shard.index,
        rows,
        time.monotonic() - started,
    )
    return rows


def swap_day(
    spec: ModelSpec,
    shards: list[ScoringShard],
    *,
    dag_run_id: str,
    scored_at: pd.Timestamp,
) -> SwapResult:
    """Replace the day's predictions (and the challenger's shadow predictions) with the
    attempts' staged rows, each in one transaction. Analyst work that outlived its limits is
    ended first (the analysts' role: docs/operations.md)."""
    ended = warehouse.end_overlong_analyst_work()
    if ended:
        log.warning("model %s: ended %d analyst session(s) past their limits", spec.name, ended)
    result = SwapResult(spec.name, dt.date.fromisoformat(shards[0].day))
    for role in ("champion", "challenger"):
        mine = [s for s in shards if s.role == role]
        if not mine:
            continue
        first = mine[0]
        day = dt.date.fromisoformat(first.day)
        constants = {
            "model_version": first.version,
            "mlflow_run_id": first.mlflow_run_id,
            "dag_run_id": dag_run_id,
            "scored_at": scored_at.to_pydatetime(),
        }
        expected = {s.index: s.rows for s in mine if s.rows}
        rows = warehouse.swap_predictions(
            spec.name,
            day,
            first.attempt,
            expected,
            constants,
            first.table,
            published_attempt=first.lake_attempt or None,
        )
        log.info(
            "model %s v%d (%s), date %s: %d predictions", spec.name, first.version, role, day, rows
        )
        if role == "champion":
            result = replace(
                result, rows=rows, model_version=first.version, mlflow_run_id=first.mlflow_run_id
            )
        else:
            result = replace(result, shadow_rows=rows, shadow_version=first.version)
    return result


def score_day(
    spec: ModelSpec,
    day: dt.date,
    *,
    dag_run_id: str,
    scored_at: pd.Timestamp | None = None,
    champion: Champion | None = None,
) -> SwapResult:
    """Plan, score every shard and swap, in this process (the CLI, tests, benchmarks; the DAG
    runs the same three steps as separate tasks, the shards mapped)."""
    shards = plan_scoring(spec, day)
    models = {}
    if champion is not None:
        models[champion.version] = champion
    for shard in shards:
        if shard.version not in models:
            models[shard.version] = load_champion(spec, shard.version, shard.mlflow_run_id)
        score_shard(spec, shard, models[shard.version])
    scored_at = scored_at if scored_at is not None else pd.Timestamp.now(tz="UTC")
    return swap_day(spec, shards, dag_run_id=dag_run_id, scored_at=scored_at)
