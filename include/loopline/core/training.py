"""Training computations: a time-based split, a baseline and an XGBoost candidate (pure: frames
in, fitted models out; ``loopline.steps.train`` reads the data and logs the results).

The split never shuffles across time: the last ``holdout_days`` days are the holdout, the
``validation_days`` before them the validation split (early stopping, calibration), the rest
training. The preprocessing is fit on the training split only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.pipeline import Pipeline
from xgboost import XGBClassifier, XGBRegressor

from loopline.core.columns import EVENT_TS, LABEL, PARTITION_DATE
from loopline.core.errors import TooFewDaysError, TrainingDataError
from loopline.core.features import input_columns, preprocessor
from loopline.core.spec import ModelSpec


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
        return min(self.train[PARTITION_DATE]), max(self.holdout[PARTITION_DATE])

    def counts(self) -> dict[str, int]:
        return {
            "rows_train": len(self.train),
            "rows_validation": len(self.validation),
            "rows_holdout": len(self.holdout),
        }


@dataclass
class Candidate:
    """One way to train: its train and validation rows (the holdout is shared by every
    candidate of a training), the rows' weights, and what it is."""

    name: str
    data: TrainingSet
    weights: np.ndarray | None = None
    note: str = ""

    @property
    def window(self) -> tuple[dt.date, dt.date]:
        """First training day .. last validation day."""
        return min(self.data.train[PARTITION_DATE]), max(self.data.validation[PARTITION_DATE])

    def describe(self) -> str:
        start, end = self.window
        rows = len(self.data.train) + len(self.data.validation)
        return f"{self.name} ({start}..{end}, {rows} rows{', ' + self.note if self.note else ''})"


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
    days = sorted(frame[PARTITION_DATE].unique())
    t = spec.training
    min_days = t.min_days if min_days is None else min_days
    if len(days) < min_days:
        span = f"{days[0]}..{days[-1]}" if days else "none"
        needed = t.validation_days + t.holdout_days + 1
        if len(days) >= needed:
            hint = (
                f"wait for more labelled days, or lower training.{setting} to at most "
                f"{len(days)} (the days there are)"
            )
        else:
            hint = (
                f"wait for {min_days - len(days)} more labelled day(s); lowering "
                f"training.{setting} is not enough, a split needs validation_days + "
                f"holdout_days + 1 = {needed} days: lower training.validation_days / "
                f"training.holdout_days too (to {len(days)} days in all), with "
                f"training.{setting} at most {len(days)}"
            )
        raise TooFewDaysError(
            f"{len(days)} labelled day(s) in the training window (labelled days: {span}), "
            f"the spec needs at least {min_days} (training.{setting})",
            model=spec.name,
            hint=hint,
        )
    holdout_days = set(days[-t.holdout_days :])
    validation_days = set(days[-(t.holdout_days + t.validation_days) : -t.holdout_days])
    in_holdout = frame[PARTITION_DATE].isin(holdout_days)
    in_validation = frame[PARTITION_DATE].isin(validation_days)
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


def _two_classes(spec: ModelSpec, *parts: pd.DataFrame) -> bool:
    return not spec.is_classifier or all(part[LABEL].nunique() >= 2 for part in parts)


def post_change_holdout(
    spec: ModelSpec, frame: pd.DataFrame, change: dt.date
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """``(rest, holdout)``: the newest labelled rows after the change held out (the newest
    ``retraining.holdout_share`` of the post-change days, at least one and at most
    ``training.holdout_days``; while only one post-change day exists, its newest half by event
    time). None when no labelled day follows the change, or the holdout would hold one class."""
    order = [PARTITION_DATE, EVENT_TS] if EVENT_TS in frame.columns else [PARTITION_DATE]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    post_days = sorted(d for d in frame[PARTITION_DATE].unique() if d >= change)
    if not post_days:
        return None
    if len(post_days) == 1:
        positions = np.flatnonzero((frame[PARTITION_DATE] == post_days[0]).to_numpy())
        if len(positions) < 2:
            return None
        in_holdout = np.zeros(len(frame), dtype=bool)
        in_holdout[positions[len(positions) // 2 :]] = True
    else:
        share = spec.retraining.holdout_share
        count = min(max(1, int(len(post_days) * share)), spec.training.holdout_days)
        in_holdout = frame[PARTITION_DATE].isin(set(post_days[-count:])).to_numpy()
    rest, holdout = frame[~in_holdout], frame[in_holdout]
    if not _two_classes(spec, holdout):
        return None
    return rest.reset_index(drop=True), holdout.reset_index(drop=True)


def change_candidates(
    spec: ModelSpec, frame: pd.DataFrame, change: dt.date
) -> tuple[list[Candidate], list[str]] | None:
    """The candidates a training after a change builds (``retraining.candidates``), all judged
    on the same post-change holdout; and why a candidate was not built. None: no labelled day
    after the change to judge on (train as usual)."""
    split = post_change_holdout(spec, frame, change)
    if split is None:
        return None
    rest, holdout = split
    t, policy = spec.training, spec.retraining
    days = sorted(rest[PARTITION_DATE].unique())
    validation_days = set(days[-t.validation_days :]) if len(days) > t.validation_days else set()
    in_validation = rest[PARTITION_DATE].isin(validation_days).to_numpy()
    train, validation = rest[~in_validation], rest[in_validation]
    post_rows = rest[(rest[PARTITION_DATE] >= change).to_numpy()]
    cut = int(len(post_rows) * 0.75)
    post_train, post_validation = post_rows.iloc[:cut], post_rows.iloc[cut:]
    built, skipped = [], []
    if not train.empty and not validation.empty and _two_classes(spec, train, validation):
        built.append(
            Candidate("window", TrainingSet(train, validation, holdout), note="the sliding window")
        )
    else:
        skipped.append(f"window: too few days before the holdout ({len(days)})")
    if "recent" in policy.candidates:
        # The whole window but the newest post-change quarter (its validation), what came after
        # the change weighted up to ``recent_weight_share`` of the total weight.
        older = rest.iloc[: len(rest) - len(post_validation)]
        post = (older[PARTITION_DATE] >= change).to_numpy()
        data = TrainingSet(older, post_validation, holdout)
        usable = post.any() and not post.all() and not post_validation.empty
        if usable and _two_classes(spec, older, post_validation):
            share = policy.recent_weight_share
            weight = share / (1 - share) * (~post).sum() / post.sum()
            note = f"post-change rows weighted {weight:.1f}x, {share:.0%} of the weight"
            built.append(Candidate("recent", data, np.where(post, weight, 1.0), note))
        else:
            skipped.append("recent: needs rows both before and after the change to weigh")
    if "post_change" in policy.candidates:
        data = TrainingSet(post_train, post_validation, holdout)
        if len(post_rows) < policy.min_post_change_rows:
            skipped.append(
                f"post_change: {len(post_rows)} labelled rows after {change} before the holdout, "
                f"needs {policy.min_post_change_rows} (retraining.min_post_change_rows)"
            )
        elif data.validation.empty or not _two_classes(spec, data.train, data.validation):
            skipped.append("post_change: its training or validation rows hold one class only")
        else:
            note = f"only the days since {change}, the newest quarter for validation"
            built.append(Candidate("post_change", data, note=note))
    return built, skipped


def fit_baseline(spec: ModelSpec, data: TrainingSet, weights: np.ndarray | None = None) -> Pipeline:
    """The floor every candidate must beat: the training prior (or mean)."""
    model = (
        DummyClassifier(strategy="prior") if spec.is_classifier else DummyRegressor(strategy="mean")
    )
    columns = input_columns(spec)
    return Pipeline([("model", model)]).fit(
        data.train[columns], data.train[LABEL], model__sample_weight=weights
    )


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


def base_pipeline(model: Any) -> Pipeline:
    """The preprocessing + XGBoost pipeline inside a (possibly calibrated) registered model."""
    if hasattr(model, "calibrated_classifiers_"):  # CalibratedClassifierCV(FrozenEstimator(...))
        model = model.estimator
    return (
        getattr(model, "estimator", model) if type(model).__name__ == "FrozenEstimator" else model
    )


def fit_xgboost(
    spec: ModelSpec,
    data: TrainingSet,
    seed: int = 0,
    base: Any = None,
    weights: np.ndarray | None = None,
) -> tuple[Pipeline, dict]:
    """Preprocessing + XGBoost, early-stopped on the validation split. Returns the fitted
    pipeline and the parameters used (with the number of trees kept). With ``base`` (stateful
    retraining) the base model's fitted preprocessing is kept and boosting continues from its
    booster on the new data; ``weights``: one per training row."""
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
        sample_weight=weights,
        eval_set=[(prep.transform(data.validation[columns]), data.validation[LABEL])],
        verbose=False,
        xgb_model=base.named_steps["model"].get_booster() if base is not None else None,
    )
    params["best_iteration"] = int(estimator.best_iteration)
    return Pipeline([("features", prep), ("model", estimator)]), params


def score(spec: ModelSpec, model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Positive-class probability, or the predicted value."""
    columns = input_columns(spec)
    if spec.is_classifier:
        return model.predict_proba(frame[columns])[:, 1]
    return np.asarray(model.predict(frame[columns]), dtype=float)
