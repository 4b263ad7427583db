"""Training computations: a time-based split, a baseline and an XGBoost candidate (pure: frames
in, fitted models out; ``loopline.steps.train`` reads the data and logs the results).

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

from loopline.core.errors import TrainingDataError
from loopline.core.features import input_columns, preprocessor
from loopline.core.spec import ModelSpec

LABEL = "label"


@dataclass
class TrainingSet:
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame

    @property
    def recent(self) -> pd.DataFrame:
        """The days the model is last validated on (validation + holdout)."""
        return pd.concat([self.validation, self.holdout], ignore_index=True)

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


def split_by_time(
    spec: ModelSpec, frame: pd.DataFrame, min_days: int | None = None, setting: str = "min_days"
) -> TrainingSet:
    """Train / validation / holdout by day, never shuffled. Too few days, or a split with one
    class only, is a :class:`TrainingDataError` naming the setting and what the data allows."""
    days = sorted(frame["partition_date"].unique())
    t = spec.training
    min_days = t.min_days if min_days is None else min_days
    if len(days) < min_days:
        span = f"{days[0]}..{days[-1]}" if days else "none"
        raise TrainingDataError(
            f"{len(days)} labelled day(s) in the training window (labelled days: {span}), "
            f"the spec needs at least {min_days} (training.{setting})",
            model=spec.name,
            hint=f"wait for more labelled days, or lower training.{setting} to at most "
            f"{max(len(days), t.validation_days + t.holdout_days + 1)} (and training.window_days, "
            "training.validation_days, training.holdout_days with it)",
        )
    holdout_days = set(days[-t.holdout_days :])
    validation_days = set(days[-(t.holdout_days + t.validation_days) : -t.holdout_days])
    in_holdout = frame["partition_date"].isin(holdout_days)
    in_validation = frame["partition_date"].isin(validation_days)
    split = TrainingSet(
        frame[~in_holdout & ~in_validation], frame[in_validation], frame[in_holdout]
    )
    if spec.is_classifier:
        for name, part in vars(split).items():
            classes = sorted(part[LABEL].unique().tolist())
            if len(classes) < 2:
                raise TrainingDataError(
                    f"the {name} split ({len(part)} rows) holds only class(es) {classes}",
                    model=spec.name,
                    hint="lengthen training.holdout_days / training.validation_days, raise "
                    "training.max_rows, or wait for days with both classes",
                )
    return split


def fit_baseline(spec: ModelSpec, data: TrainingSet) -> Pipeline:
    """The floor every candidate must beat: the training prior (or mean)."""
    model = (
        DummyClassifier(strategy="prior") if spec.is_classifier else DummyRegressor(strategy="mean")
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
    if spec.is_classifier:
        if spec.training.balance_classes:
            # Weigh positives as much as negatives in total: can help ranking on rare
            # positives, but skews probabilities (evaluation then recalibrates).
            positives = float(data.train[LABEL].sum())
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
    estimator = (XGBClassifier if spec.is_classifier else XGBRegressor)(**params)
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
    if spec.is_classifier:
        return model.predict_proba(frame[columns])[:, 1]
    return np.asarray(model.predict(frame[columns]), dtype=float)
