"""Metrics: holdout and realized metrics, per slice, calibration, and which direction of each
metric is better (pure functions).

Expected calibration error is computed here (scikit-learn has no ECE): equal-width bins of
the predicted probability, the weighted mean of |observed rate - mean prediction| per bin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn import metrics as skm
from sklearn.pipeline import Pipeline

from loopline.core.columns import LABEL
from loopline.core.spec import METRICS, ModelSpec

if TYPE_CHECKING:
    from sklearn.calibration import CalibratedClassifierCV

# Whether a larger value of the metric is better; the gate compares in this direction.
GREATER_IS_BETTER = {name: name in ("roc_auc", "pr_auc", "r2") for name in METRICS}
MIN_SLICE_ROWS = 30


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        in_bin = which == b
        total += in_bin.sum() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(total / len(y))


def ece_noise(p: npt.ArrayLike, bins: int = 10, draws: int = 200, seed: int = 0) -> float:
    """The 95th percentile of the ECE a perfectly calibrated model shows on these scores: labels
    drawn from the scores themselves. On a small holdout this floor is well above zero, so an
    observed ECE below it says nothing about miscalibration."""
    p = np.clip(np.asarray(p, dtype=float), 0, 1)
    if len(p) == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    found = [
        expected_calibration_error(rng.uniform(size=len(p)) < p, p, bins) for _ in range(draws)
    ]
    return float(np.quantile(found, 0.95))


def classification_metrics(y: npt.ArrayLike, p: npt.ArrayLike) -> dict[str, float]:
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
    }


def regression_metrics(y: npt.ArrayLike, yhat: npt.ArrayLike) -> dict[str, float]:
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, yhat))),
        "mae": float(skm.mean_absolute_error(y, yhat)),
        "r2": float(skm.r2_score(y, yhat)) if len(y) > 1 else float("nan"),
    }


def metrics(spec: ModelSpec, y: npt.ArrayLike, score: npt.ArrayLike) -> dict[str, float]:
    if spec.target.task == "binary_classification":
        return classification_metrics(y, score)
    return regression_metrics(y, score)


def slice_metrics(
    spec: ModelSpec, frame: pd.DataFrame, score: np.ndarray, label: str = LABEL
) -> dict:
    """``{column: {value: {metric: x, ..., "n": rows}}}`` for the spec's slice columns; slices
    under ``MIN_SLICE_ROWS`` rows are left out (too few to judge)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for column in spec.slices:
        values = frame[column].astype(object).where(frame[column].notna(), "<missing>")
        out[column] = {}
        for value in sorted(values.unique(), key=str):
            mask = (values == value).to_numpy()
            if mask.sum() >= MIN_SLICE_ROWS:
                result = metrics(spec, frame[label].to_numpy()[mask], score[mask])
                out[column][str(value)] = {**result, "n": int(mask.sum())}
    return out


def small_slices(spec: ModelSpec, frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{column: {value: rows}}`` of the slices too small to judge (under ``MIN_SLICE_ROWS``)."""
    out: dict[str, dict[str, int]] = {}
    for column in spec.slices:
        counts = frame[column].astype(object).where(frame[column].notna(), "<missing>")
        small = {str(k): int(v) for k, v in counts.value_counts().items() if v < MIN_SLICE_ROWS}
        if small:
            out[column] = small
    return out


def flat(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items() if v == v}  # drops NaN


ISOTONIC_MIN_ROWS = 1000


def calibrate(
    model: Pipeline, frame: pd.DataFrame, columns: list[str], label: str = LABEL
) -> CalibratedClassifierCV:
    """Recalibrate a fitted classifier on held-apart data (the validation split): isotonic with
    enough rows, else Platt's sigmoid (isotonic overfits small sets)."""
    method = "isotonic" if len(frame) >= ISOTONIC_MIN_ROWS else "sigmoid"
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    return CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(
        frame[columns], frame[label]
    )


def feature_importance(model: object) -> pd.Series | None:
    """Gain importance of the pipeline's XGBoost step, by input column."""
    estimator = getattr(model, "named_steps", {}).get("model")
    if estimator is None or not hasattr(estimator, "get_booster"):
        return None
    gains = estimator.get_booster().get_score(importance_type="gain")
    names = list(model.named_steps["features"].get_feature_names_out())
    return pd.Series(
        {
            names[int(k[1:])] if k.startswith("f") and k[1:].isdigit() else k: v
            for k, v in gains.items()
        }
    ).reindex(names, fill_value=0.0)


def auc_standard_error(auc: float, labels: npt.ArrayLike) -> float:
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


def standard_error(
    spec: ModelSpec, metric: str, y: npt.ArrayLike, score: npt.ArrayLike, draws: int = 200
) -> float:
    """How much a metric measured on these rows would move from sampling alone: Hanley & McNeil
    for ROC-AUC, the delta method for RMSE and the per-row losses, a seeded bootstrap else."""
    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    if len(y) < 2:
        return float("inf")
    if metric == "roc_auc":
        return auc_standard_error(metrics(spec, y, score)[metric], y)
    if metric == "rmse":
        squared = (score - y) ** 2
        rmse = float(np.sqrt(squared.mean()))
        return float(squared.std(ddof=1) / np.sqrt(len(y)) / max(2 * rmse, 1e-12))
    losses = row_losses(spec, metric, y, score)
    if losses is not None:
        return float(losses.std(ddof=1) / np.sqrt(len(y)))
    rng = np.random.default_rng(0)
    found = []
    for _ in range(draws):
        rows = rng.integers(0, len(y), len(y))
        value = metrics(spec, y[rows], score[rows])[metric]
        if value == value:
            found.append(value)
    return float(np.std(found, ddof=1)) if len(found) > 1 else float("inf")


def gain(metric: str, new: float, old: float) -> float:
    """How much better ``new`` is than ``old`` (positive = better), in the metric's direction."""
    return new - old if GREATER_IS_BETTER[metric] else old - new


def row_losses(
    spec: ModelSpec, metric: str, y: npt.ArrayLike, score: npt.ArrayLike
) -> np.ndarray | None:
    """Per-row losses whose mean is ``metric`` (log loss, Brier, MAE), else None."""
    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    if metric == "log_loss":
        p = np.clip(score, 1e-7, 1 - 1e-7)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    if metric == "brier":
        return (score - y) ** 2
    if metric == "mae":
        return np.abs(score - y)
    return None


def paired_noise(
    spec: ModelSpec,
    metric: str,
    y: npt.ArrayLike,
    candidate: npt.ArrayLike,
    baseline: npt.ArrayLike,
) -> float:
    """Standard error of the mean per-row loss difference of two models on the same rows: how
    much of a metric gap sampling alone would explain (0 when the metric has no per-row form)."""
    a, b = row_losses(spec, metric, y, candidate), row_losses(spec, metric, y, baseline)
    if a is None or len(a) < 2:
        return 0.0
    return float(np.std(a - b, ddof=1) / np.sqrt(len(a)))


def paired_bootstrap(
    spec: ModelSpec,
    y: npt.ArrayLike,
    challenger: npt.ArrayLike,
    champion: npt.ArrayLike,
    *,
    draws: int = 400,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """How much better the challenger is than the champion on the same rows (the primary
    metric's gain, positive = better), with a paired bootstrap interval: rows are resampled
    together, so what both models got right or wrong on a row moves together."""
    metric = spec.primary_metric
    y, a, b = (np.asarray(v, dtype=float) for v in (y, challenger, champion))
    value = gain(metric, metrics(spec, y, a)[metric], metrics(spec, y, b)[metric])
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(draws):
        rows = rng.integers(0, len(y), len(y))
        if spec.is_classifier and len(np.unique(y[rows])) < 2:
            continue
        found.append(
            gain(
                metric,
                metrics(spec, y[rows], a[rows])[metric],
                metrics(spec, y[rows], b[rows])[metric],
            )
        )
    if not found or value != value:
        return {"difference": float(value), "low": float("nan"), "high": float("nan")}
    tail = (1 - level) / 2
    low, high = np.quantile(found, [tail, 1 - tail])
    return {"difference": float(value), "low": float(low), "high": float(high)}
