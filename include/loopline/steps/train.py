"""Train a model: read the labelled window from the lake (column projection, a seeded sample
capped at ``training.max_rows``), split it by time, fit a baseline and an XGBoost candidate, and
log both with the validation and holdout splits and the drift reference profile to a new MLflow
run. Returns a small typed result for the evaluate step.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from loopline.adapters import model_store
from loopline.core.drift import Window, build_profile, compare_window
from loopline.core.features import input_columns
from loopline.core.metrics import feature_importance
from loopline.core.spec import ModelSpec
from loopline.core.training import (
    LABEL,
    fit_baseline,
    fit_xgboost,
    score,
    split_by_time,
    training_window,
)
from loopline.steps.published import read_labelled


@dataclass(frozen=True)
class TrainResult:
    mlflow_run_id: str
    window: list[str]
    rows_train: int
    rows_validation: int
    rows_holdout: int
    mode: str

    def as_dict(self) -> dict:
        return asdict(self)


def _stateful_base(spec: ModelSpec, start: dt.date):
    """Stateful mode: the champion to continue from, and the first day after its window."""
    champion = model_store.champion_version(spec.name)
    if spec.training.mode != "stateful" or champion is None:
        return None, start
    base = model_store.load_model(f"models:/{spec.name}/{champion.version}", model=spec.name)
    window_end = model_store.run_tags(champion.run_id)["window_end"]
    return (champion, base), max(start, dt.date.fromisoformat(window_end) + dt.timedelta(days=1))


def drift_within(spec: ModelSpec, data) -> list[str]:
    """Features whose holdout days already differ from the training split (a known limit)."""
    window = Window(build_profile(spec, data.train))
    window.update(data.holdout)
    return compare_window(spec, window).drifted_features


def run_training(
    spec: ModelSpec, end: dt.date, *, dag_run_id: str, reason: str = "scheduled", seed: int = 0
) -> TrainResult:
    start, last = training_window(spec, end)
    stateful, start = _stateful_base(spec, start)
    min_days, setting = None, "min_days"
    if stateful is not None:
        min_days = spec.training.holdout_days + spec.training.validation_days + 1
        setting = "validation_days + holdout_days + 1 (stateful)"
    columns = input_columns(spec) + [s for s in spec.slices if s not in input_columns(spec)]
    frame = read_labelled(spec, start, last, columns, max_rows=spec.training.max_rows, seed=seed)
    data = split_by_time(spec, frame, min_days, setting)
    baseline = fit_baseline(spec, data)
    candidate, params = fit_xgboost(spec, data, seed, stateful[1] if stateful else None)
    params["mode"] = "stateful" if stateful else "stateless"
    if stateful:
        params["base_version"] = int(stateful[0].version)
    window = data.window
    tags = {
        "reason": reason,
        "dag_run_id": dag_run_id,
        "git_commit": model_store.git_commit(),
        "window_start": window[0].isoformat(),
        "window_end": window[1].isoformat(),
        "task": spec.target.task,
    }
    sample = data.validation[input_columns(spec)].head(200)
    with model_store.training_run(spec.name, f"{spec.name} until {end}", tags) as run_id:
        model_store.log_params({k: v for k, v in params.items() if k != "eval_metric"})
        model_store.log_metrics({k: float(v) for k, v in data.counts().items()})
        for name, model in ((model_store.BASELINE, baseline), (model_store.CANDIDATE, candidate)):
            model_store.log_model(model, name, sample, score(spec, model, sample))
        model_store.log_frame(data.validation, model_store.VALIDATION)
        model_store.log_frame(data.holdout, model_store.HOLDOUT)
        importance = feature_importance(candidate)
        reference = data.train if spec.drift.reference == "training" else data.recent
        profile = build_profile(
            spec,
            reference,
            labels=reference[LABEL].to_numpy(),
            importance=importance.to_dict() if importance is not None else {},
        )
        model_store.log_dict(profile.to_dict(), model_store.TRAINING_PROFILE)
        model_store.log_dict({"features": drift_within(spec, data)}, model_store.TRAINING_DRIFT)
    return TrainResult(
        run_id,
        [d.isoformat() for d in window],
        *data.counts().values(),
        params["mode"],
    )
