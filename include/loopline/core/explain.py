"""Why a model says what it says, from XGBoost's own contributions (TreeSHAP, exact for trees:
``pred_contribs=True``), pure: frames in, attributions out.

Contributions are per input feature, in the booster's margin (log-odds for a classifier, the
target's units for a regression), and add up, with the bias, to the margin of each row. A
calibrated classifier is explained through the booster under its calibration (the calibration
is monotonic, so the order of reasons is the same). Categorical features are ordinal codes in
one column each, so each feature has one contribution.

* :func:`attributions`: mean absolute contribution per feature on a frame (the holdout), over
  all rows and per slice value: a version's global picture, kept in its model card and used to
  weigh the drift verdict (a shift in a feature the model ignores matters less).
* :func:`top_reasons`: the ``k`` features with the largest absolute contribution of each row,
  with their contributions: the per-prediction reasons analysts may read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from loopline.core.features import input_columns
from loopline.core.spec import ModelSpec
from loopline.core.training import base_pipeline

MIN_SLICE_ROWS = 30  # fewer rows of a slice value: its attributions are too noisy to show


def contributions(
    spec: ModelSpec,
    model: Any,
    frame: pd.DataFrame,
    columns: list[str] | None = None,
    *,
    approximate: bool = False,
) -> tuple[np.ndarray, list]:
    """Per row and input feature, the feature's contribution to the margin (bias dropped), and
    the features' names in column order. ``columns``: the model's inputs (the spec's by
    default; a version trained on an older spec has its own). ``approximate``: Saabas's
    per-tree path contributions instead of TreeSHAP (they also add up to the margin)."""
    pipeline = base_pipeline(model)
    prepared, estimator = pipeline.named_steps["features"], pipeline.named_steps["model"]
    inputs = frame[columns if columns is not None else input_columns(spec)]
    matrix = np.asarray(prepared.transform(inputs), dtype=float)
    # The trees the model predicts with: early stopping keeps the best iteration's.
    best = getattr(estimator, "best_iteration", None)
    values = estimator.get_booster().predict(
        xgb.DMatrix(matrix),
        pred_contribs=True,
        approx_contribs=approximate,
        iteration_range=(0, best + 1) if best is not None else (0, 0),
    )
    return values[:, :-1], [str(n) for n in prepared.get_feature_names_out()]


def _mean_abs(values: np.ndarray, names: list[str]) -> dict[str, float]:
    means = np.abs(values).mean(axis=0) if len(values) else np.zeros(len(names))
    return {name: float(m) for name, m in zip(names, means, strict=True)}


@dataclass(frozen=True)
class Attributions:
    """Mean |contribution| per feature, over the rows and per slice value (enough rows only)."""

    overall: dict[str, float]
    slices: dict[str, dict[str, dict[str, float]]]
    rows: int

    def shares(self) -> dict[str, float]:
        """Each feature's share of the total attribution (sums to 1; equal shares for a model
        that attributes nothing, a constant one)."""
        total = sum(self.overall.values())
        if total <= 0:
            return {name: 1.0 / len(self.overall) for name in self.overall} if self.overall else {}
        return {name: value / total for name, value in self.overall.items()}

    def to_dict(self) -> dict:
        ranked = dict(sorted(self.overall.items(), key=lambda kv: -kv[1]))
        return {"overall": ranked, "slices": self.slices, "rows": self.rows}


def attributions(spec: ModelSpec, model: Any, frame: pd.DataFrame) -> Attributions:
    """Global attributions of ``model`` on ``frame`` (the holdout), overall and by slice."""
    values, names = contributions(spec, model, frame)
    slices: dict[str, dict[str, dict[str, float]]] = {}
    for column in spec.slices:
        if column not in frame.columns:
            continue
        groups = frame[column].astype("string").fillna("(missing)").to_numpy()
        slices[column] = {
            str(value): _mean_abs(values[groups == value], names)
            for value in pd.unique(groups)
            if (groups == value).sum() >= MIN_SLICE_ROWS
        }
    return Attributions(_mean_abs(values, names), slices, len(frame))


def top_reasons(values: np.ndarray, names: list[str], k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` features of largest |contribution| per row, largest first: an array of their
    names (object) and one of their contributions (``k`` capped at the number of features)."""
    k = min(k, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    return np.asarray(names, dtype=object)[order], np.take_along_axis(values, order, axis=1)
