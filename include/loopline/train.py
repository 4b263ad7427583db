"""Training: a time-based split, a baseline and an XGBoost candidate.

The split never shuffles across time: the last ``holdout_days`` days are the holdout, the
``validation_days`` before them the validation split (early stopping, calibration), the rest
training. The preprocessing is fit on the training split only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier, XGBRegressor

from loopline.features import input_columns, preprocessor
from loopline.spec import ModelSpec

LABEL = "label"


class TrainingDataError(ValueError):
    """Not enough labelled data to train: a retry will not help until more days arrive."""


@dataclass
class TrainingSet:
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        return min(self.train.partition_date), max(self.holdout.partition_date)

    def counts(self) -> dict[str, int]:
        return {
            "rows_train": len(self.train),
            "rows_validation": len(self.validation),
            "rows_holdout": len(self.holdout),
        }


def training_window(spec: ModelSpec, end: dt.date) -> tuple[dt.date, dt.date]:
    """Feature days whose labels have arrived by ``end``: the spec's window, ending
    ``labels.delay_days`` before ``end``."""
    last = end - dt.timedelta(days=spec.labels.delay_days)
    return last - dt.timedelta(days=spec.training.window_days - 1), last


def split_by_time(spec: ModelSpec, frame: pd.DataFrame, min_days: int | None = None) -> TrainingSet:
    days = sorted(frame["partition_date"].unique())
    t = spec.training
    min_days = t.min_days if min_days is None else min_days
    if len(days) < min_days:
        raise TrainingDataError(
            f"model '{spec.name}': {len(days)} labelled days, the spec needs at least {min_days}"
        )
    holdout_days = set(days[-t.holdout_days :])
    validation_days = set(days[-(t.holdout_days + t.validation_days) : -t.holdout_days])
    in_holdout = frame["partition_date"].isin(holdout_days)
    in_validation = frame["partition_date"].isin(validation_days)
    split = TrainingSet(
        frame[~in_holdout & ~in_validation], frame[in_validation], frame[in_holdout]
    )
    if spec.target.task == "binary_classification":
        for name, part in vars(split).items():
            if part[LABEL].nunique() < 2:
                raise TrainingDataError(f"model '{spec.name}': the {name} split has one class only")
    return split


def fit_baseline(spec: ModelSpec, data: TrainingSet) -> Pipeline:
    """The floor every candidate must beat: the training prior (or mean)."""
    model = (
        DummyClassifier(strategy="prior")
        if spec.target.task == "binary_classification"
        else DummyRegressor(strategy="mean")
    )
    columns = input_columns(spec)
    return Pipeline([("model", model)]).fit(data.train[columns], data.train[LABEL])


def xgboost_params(spec: ModelSpec, data: TrainingSet, seed: int) -> dict:
    params = {
        "n_estimators": 400,
        "learning_rate": 0.05,
        "max_depth": 4,
        "min_child_weight": 5,
        "subsample": 0.9,
        "colsample_bytree": 0.8,
        "tree_method": "hist",
        "early_stopping_rounds": 30,
        "random_state": seed,
        "n_jobs": 2,
    }
    if spec.target.task == "binary_classification":
        positives = float(data.train[LABEL].sum())
        # Class imbalance: weigh positives as much as negatives in total.
        params["scale_pos_weight"] = (len(data.train) - positives) / max(positives, 1.0)
        params["eval_metric"] = "logloss"
    else:
        params["eval_metric"] = "rmse"
    return params


def base_pipeline(model) -> Pipeline:
    """The preprocessing + XGBoost pipeline inside a (possibly calibrated) registered model."""
    if hasattr(model, "calibrated_classifiers_"):  # CalibratedClassifierCV(FrozenEstimator(...))
        model = model.estimator
    return (
        getattr(model, "estimator", model) if type(model).__name__ == "FrozenEstimator" else model
    )


def fit_xgboost(
    spec: ModelSpec, data: TrainingSet, seed: int = 0, base=None
) -> tuple[Pipeline, dict]:
    """Preprocessing + XGBoost, early-stopped on the validation split. Returns the fitted
    pipeline and the parameters used (with the number of trees kept). With ``base`` (stateful
    retraining) the base model's fitted preprocessing is kept and boosting continues from its
    booster on the new data."""
    columns = input_columns(spec)
    if base is not None:
        base = base_pipeline(base)
        prep = base.named_steps["features"]
    else:
        prep = preprocessor(spec).fit(data.train[columns])
    params = xgboost_params(spec, data, seed)
    estimator = (XGBClassifier if spec.target.task == "binary_classification" else XGBRegressor)(
        **params
    )
    estimator.fit(
        prep.transform(data.train[columns]),
        data.train[LABEL],
        eval_set=[(prep.transform(data.validation[columns]), data.validation[LABEL])],
        verbose=False,
        xgb_model=base.named_steps["model"].get_booster() if base is not None else None,
    )
    params["best_iteration"] = int(estimator.best_iteration)
    return Pipeline([("features", prep), ("model", estimator)]), params


def score(spec: ModelSpec, model, frame: pd.DataFrame) -> np.ndarray:
    """Positive-class probability, or the predicted value."""
    columns = input_columns(spec)
    if spec.target.task == "binary_classification":
        return model.predict_proba(frame[columns])[:, 1]
    return np.asarray(model.predict(frame[columns]), dtype=float)


def run_training(
    spec: ModelSpec, end: dt.date, *, dag_run_id: str, reason: str = "scheduled", seed: int = 0
) -> dict:
    """Build the training set for runs ending on ``end``, fit baseline and candidate, and log
    both with the validation and holdout splits to a new MLflow run. Returns small metadata."""
    import mlflow

    from loopline import registry
    from loopline.drift import build_profile
    from loopline.evaluate import feature_importance
    from loopline.features import read_clean

    start, last = training_window(spec, end)
    base, min_days = None, None
    champion = registry.champion_version(spec.name) if spec.training.mode == "stateful" else None
    if champion is not None:
        # Stateful: continue from the champion, on the days after its training window only.
        base = registry.load_model(f"models:/{spec.name}/{champion.version}")
        window_end = registry.client().get_run(champion.run_id).data.tags["window_end"]
        start = max(start, dt.date.fromisoformat(window_end) + dt.timedelta(days=1))
        min_days = spec.training.holdout_days + spec.training.validation_days + 1
    frame = read_clean(spec, start, last, with_labels=True)
    data = split_by_time(spec, frame, min_days)
    baseline = fit_baseline(spec, data)
    candidate, params = fit_xgboost(spec, data, seed, base)
    params["mode"] = "stateful" if base is not None else "stateless"
    if champion is not None:
        params["base_version"] = int(champion.version)
    columns = input_columns(spec)
    sample = data.validation[columns].head(200)
    window = data.window
    tags = {
        "reason": reason,
        "dag_run_id": dag_run_id,
        "git_commit": registry.git_commit(),
        "window_start": window[0].isoformat(),
        "window_end": window[1].isoformat(),
        "task": spec.target.task,
    }
    with mlflow.start_run(
        experiment_id=registry.experiment_id(spec), run_name=f"{spec.name} until {end}", tags=tags
    ) as run:
        mlflow.log_params({k: v for k, v in params.items() if k != "eval_metric"})
        mlflow.log_metrics({k: float(v) for k, v in data.counts().items()})
        registry.log_model(baseline, "baseline", sample, score(spec, baseline, sample))
        registry.log_model(candidate, "candidate", sample, score(spec, candidate, sample))
        for name in ("validation", "holdout"):
            registry.log_frame(getattr(data, name), f"data/{name}.parquet")
        importance = feature_importance(candidate)
        profile = build_profile(
            spec,
            data.train,
            labels=data.train[LABEL].to_numpy(),
            seed=seed,
            importance=importance.to_dict() if importance is not None else {},
        )
        mlflow.log_dict(profile.to_dict(), "reference/features.json")
    return {
        "mlflow_run_id": run.info.run_id,
        "window": [d.isoformat() for d in window],
        **data.counts(),
    }
