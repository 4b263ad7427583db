"""Train a model: read the labelled window from the lake (column projection, a seeded sample
capped at ``training.max_rows``), split it by time, fit a baseline and an XGBoost candidate, and
log both with the validation and holdout splits and the drift reference profile to a new MLflow
run. Returns a small typed result for the evaluate step.

After a known change (``change_date``, from the trigger or the latest recorded change), the
newest post-change labelled rows are the holdout, and one candidate per window of
``retraining.candidates`` is fitted (the sliding window, the same rows weighted to what came
after the change, the post-change days alone); the best on that holdout is the training's
candidate, and every candidate's window and holdout metric is kept for the gate's record.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from loopline.adapters import model_store, warehouse
from loopline.core import gate
from loopline.core.columns import EVENT_TS, LABEL
from loopline.core.drift import Window, build_profile, compare_window
from loopline.core.features import input_columns
from loopline.core.metrics import feature_importance, metrics
from loopline.core.registry import BASELINE, CANDIDATE, TrainingLog
from loopline.core.spec import ModelSpec
from loopline.core.training import (
    Candidate,
    TrainingSet,
    change_candidates,
    fit_baseline,
    fit_xgboost,
    score,
    split_by_time,
    training_window,
)
from loopline.steps.published import read_labelled

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    mlflow_run_id: str
    window: list[str]
    rows_train: int
    rows_validation: int
    rows_holdout: int
    mode: str
    candidate: str = "window"
    change_date: str | None = None
    choice: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def _stateful_base(spec: ModelSpec, start: dt.date):
    """Stateful mode: the champion to continue from, and the first day after its window."""
    store = model_store.store()
    champion = store.champion(spec.name)
    if spec.training.mode != "stateful" or champion is None:
        return None, start
    base = store.load_version(spec.name, champion.version)
    window_end = store.training(champion.run_id).window_end
    return (champion, base), max(start, window_end + dt.timedelta(days=1))


def drift_within(spec: ModelSpec, data: TrainingSet) -> list[str]:
    """Features whose holdout days already differ from the training split (a known limit)."""
    window = Window(build_profile(spec, data.train))
    window.update(data.holdout)
    return compare_window(spec, window).drifted_features


def _candidates(
    spec: ModelSpec,
    frame: pd.DataFrame,
    change: dt.date | None,
    min_days: int | None,
    setting: str,
) -> tuple[list[Candidate], list[str]]:
    """The candidates to fit, and what the choice among them says so far. Without a change (or
    with no labelled day after it) there is one: the sliding window, split as always."""
    if change is not None:
        found = change_candidates(spec, frame, change)
        if found is not None and found[0]:
            built, skipped = found
            note = [f"after the change of {change}: holdout = the newest post-change rows"]
            return built, note + [f"candidate {why}" for why in skipped]
        why = "no labelled day after it yet" if found is None else "no candidate could be built"
        note = [f"change of {change} known, {why}: the usual split"]
    else:
        note = []
    data = split_by_time(spec, frame, min_days, setting)
    return [Candidate("window", data, note="the sliding window")], note


def _fit_all(
    spec: ModelSpec, candidates: list[Candidate], seed: int, base: Any
) -> tuple[dict[str, tuple[Any, dict]], dict[str, dict[str, float]]]:
    """Fit every candidate; score each on the shared holdout."""
    fitted, results = {}, {}
    for candidate in candidates:
        model, params = fit_xgboost(spec, candidate.data, seed, base, candidate.weights)
        holdout = candidate.data.holdout
        fitted[candidate.name] = (model, params)
        scores = score(spec, model, holdout)
        results[candidate.name] = metrics(spec, holdout[LABEL].to_numpy(), scores)
    return fitted, results


def known_change(spec: ModelSpec, end: dt.date, given: str | None = None) -> dt.date | None:
    """The change a training learns from: the one it was given, else the one the loop is
    learning (a retraining was triggered for it within the training window)."""
    if given:
        return dt.date.fromisoformat(str(given))
    found = warehouse.open_change(
        spec.name, end + dt.timedelta(days=1), end - dt.timedelta(days=spec.training.window_days)
    )
    return found.first_day if found is not None else None


def _choice_record(
    change: dt.date | None,
    name: str,
    choice: list[str],
    candidates: list[Candidate],
    results: dict[str, dict[str, float]],
) -> dict:
    """The candidates a training fitted: their windows, holdout metrics, and why one won."""
    return {
        "change_date": change.isoformat() if change is not None else None,
        "chosen": name,
        "reasons": choice,
        "candidates": [
            {
                "name": c.name,
                "window": [d.isoformat() for d in c.window],
                "rows": len(c.data.train) + len(c.data.validation),
                "holdout": {k: v for k, v in results[c.name].items() if v == v},
            }
            for c in candidates
        ],
    }


def run_training(
    spec: ModelSpec,
    end: dt.date,
    *,
    dag_run_id: str,
    reason: str = "scheduled",
    seed: int = 0,
    change_date: dt.date | None = None,
) -> TrainResult:
    start, last = training_window(spec, end)
    stateful, start = _stateful_base(spec, start)
    min_days, setting = None, "min_days"
    if stateful is not None:
        min_days = spec.training.holdout_days + spec.training.validation_days + 1
        setting = "validation_days + holdout_days + 1 (stateful)"
    columns = input_columns(spec) + [s for s in spec.slices if s not in input_columns(spec)]
    frame = read_labelled(
        spec, start, last, [*columns, EVENT_TS], max_rows=spec.training.max_rows, seed=seed
    )
    split_by_time(spec, frame, min_days, setting)  # the window holds enough days, both classes
    change = change_date if stateful is None else None
    candidates, choice = _candidates(spec, frame, change, min_days, setting)
    fitted, results = _fit_all(spec, candidates, seed, stateful[1] if stateful else None)
    name, reasons = gate.choose(spec, results, {c.name: c.describe() for c in candidates})
    if len(candidates) > 1 or change is not None:
        choice = choice + reasons
    chosen = next(c for c in candidates if c.name == name)
    data = chosen.data
    candidate, params = fitted[name]
    baseline = fit_baseline(spec, data, chosen.weights)
    params["mode"] = "stateful" if stateful else "stateless"
    params["candidate"] = name
    if stateful:
        params["base_version"] = int(stateful[0].version)
    window = data.window
    sample = data.validation[input_columns(spec)].head(200)
    importance = feature_importance(candidate)
    reference = data.train if spec.drift.reference == "training" else data.recent
    run_id = model_store.store().log_training(
        spec.name,
        TrainingLog(
            title=f"{spec.name} until {end}",
            reason=reason,
            dag_run_id=dag_run_id,
            window=window,
            task=spec.target.task,
            candidate_name=name,
            change_date=change,
            params=params,
            counts=data.counts(),
            baseline=baseline,
            candidate=candidate,
            sample=sample,
            sample_scores={
                BASELINE: score(spec, baseline, sample),
                CANDIDATE: score(spec, candidate, sample),
            },
            validation=data.validation,
            holdout=data.holdout,
            choice=_choice_record(change, name, choice, candidates, results),
            profile=build_profile(
                spec,
                reference,
                labels=reference[LABEL].to_numpy(),
                importance=importance.to_dict() if importance is not None else {},
            ),
            drifting=drift_within(spec, data),
        ),
    )
    for line in choice:
        log.info("model %s, training until %s: %s", spec.name, end, line)
    return TrainResult(
        run_id,
        [d.isoformat() for d in window],
        *data.counts().values(),
        params["mode"],
        name,
        change.isoformat() if change is not None else None,
        choice,
    )
