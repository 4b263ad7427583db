"""Evaluation on the holdout: metrics, metrics per slice, calibration, plots.

Expected calibration error is computed here (scikit-learn has no ECE): equal-width bins of
the predicted probability, the weighted mean of |observed rate - mean prediction| per bin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from loopline.spec import ModelSpec

# Whether a larger value of the metric is better; the gate compares in this direction.
GREATER_IS_BETTER = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
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


def classification_metrics(y, p) -> dict[str, float]:
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(skm.average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(skm.log_loss(y, p, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
    }


def regression_metrics(y, yhat) -> dict[str, float]:
    y, yhat = np.asarray(y, dtype=float), np.asarray(yhat, dtype=float)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y, yhat))),
        "mae": float(skm.mean_absolute_error(y, yhat)),
        "r2": float(skm.r2_score(y, yhat)) if len(y) > 1 else float("nan"),
    }


def metrics(spec: ModelSpec, y, score) -> dict[str, float]:
    if spec.target.task == "binary_classification":
        return classification_metrics(y, score)
    return regression_metrics(y, score)


def slice_metrics(
    spec: ModelSpec, frame: pd.DataFrame, score: np.ndarray, label: str = "label"
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


def flat(prefix: str, values: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": v for k, v in values.items() if v == v}  # drops NaN


def calibrate(
    model, frame: pd.DataFrame, columns: list[str], label: str = "label", method: str = "isotonic"
):
    """Recalibrate a fitted classifier on held-apart data (the validation split)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    return CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(
        frame[columns], frame[label]
    )


def figures(spec: ModelSpec, y, score, slices: dict, importance: pd.Series | None) -> dict:
    """Matplotlib figures to log with the model: ROC/PR or residuals, calibration, slices,
    feature importance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    figs = {}
    primary = spec.metric.primary
    if spec.target.task == "binary_classification":
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        fpr, tpr, _ = skm.roc_curve(y, score)
        left.plot(fpr, tpr)
        left.plot([0, 1], [0, 1], "--", color="grey")
        left.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
        precision, recall, _ = skm.precision_recall_curve(y, score)
        right.plot(recall, precision)
        right.set(title="precision-recall", xlabel="recall", ylabel="precision")
        figs["roc_pr.png"] = fig
        fig, axis = plt.subplots(figsize=(5, 4))
        from sklearn.calibration import calibration_curve

        observed, predicted = calibration_curve(y, score, n_bins=10, strategy="quantile")
        axis.plot(predicted, observed, "o-")
        axis.plot(
            [0, max(predicted.max(), 0.01)], [0, max(predicted.max(), 0.01)], "--", color="grey"
        )
        axis.set(title="calibration (holdout)", xlabel="mean predicted", ylabel="observed rate")
        figs["calibration.png"] = fig
    else:
        fig, axis = plt.subplots(figsize=(5, 4))
        axis.scatter(score, y - score, s=4, alpha=0.4)
        axis.axhline(0, color="grey")
        axis.set(title="residuals", xlabel="predicted", ylabel="actual - predicted")
        figs["residuals.png"] = fig
    for column, values in slices.items():
        names = list(values)
        fig, axis = plt.subplots(figsize=(6, 3))
        axis.bar(names, [values[n].get(primary, np.nan) for n in names])
        axis.set(title=f"{primary} by {column}", ylabel=primary)
        figs[f"slices_{column}.png"] = fig
    if importance is not None and len(importance):
        top = importance.sort_values().tail(20)
        fig, axis = plt.subplots(figsize=(6, 5))
        axis.barh(top.index, top.to_numpy())
        axis.set(title="feature importance (gain)")
        fig.tight_layout()
        figs["feature_importance.png"] = fig
    return figs


def feature_importance(model) -> pd.Series | None:
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


def run_evaluation(spec: ModelSpec, mlflow_run_id: str) -> dict:
    """Score the run's candidate and baseline on its holdout, calibrate if the spec asks,
    log metrics and plots, and register the final model as a new version."""
    import mlflow

    from loopline import registry
    from loopline.drift import NumericProfile, Profile
    from loopline.features import input_columns
    from loopline.train import LABEL, score

    holdout = registry.load_frame(mlflow_run_id, "data/holdout.parquet")
    validation = registry.load_frame(mlflow_run_id, "data/validation.parquet")
    candidate = registry.load_model(f"runs:/{mlflow_run_id}/candidate")
    baseline = registry.load_model(f"runs:/{mlflow_run_id}/baseline")
    y = holdout[LABEL].to_numpy()
    final, scores = candidate, score(spec, candidate, holdout)
    logged = flat("holdout_", metrics(spec, y, scores))
    logged |= flat("baseline_holdout_", metrics(spec, y, score(spec, baseline, holdout)))
    calibrated = False
    limit = spec.metric.max_calibration_error
    if spec.target.task == "binary_classification" and logged.get("holdout_ece", 0) > limit:
        recalibrated = calibrate(candidate, validation, input_columns(spec))
        new_scores = score(spec, recalibrated, holdout)
        after = metrics(spec, y, new_scores)
        logged |= flat("uncalibrated_holdout_", metrics(spec, y, scores))
        if after["ece"] < logged["holdout_ece"]:
            final, scores, calibrated = recalibrated, new_scores, True
            logged |= flat("holdout_", after)
    slices = slice_metrics(spec, holdout, scores)
    profile = Profile.from_dict(
        mlflow.artifacts.load_dict(f"runs:/{mlflow_run_id}/reference/features.json")
    )
    profile.score = NumericProfile.build(scores)
    with mlflow.start_run(run_id=mlflow_run_id):
        # The reference every drift check of this version compares with.
        mlflow.log_dict(profile.to_dict(), "reference/profile.json")
        mlflow.log_metrics(logged)
        mlflow.log_dict(slices, "slices.json")
        mlflow.set_tag("calibrated", str(calibrated))
        plots = figures(spec, y, scores, slices, feature_importance(candidate))
        import matplotlib.pyplot as plt

        for name, figure in plots.items():
            mlflow.log_figure(figure, f"plots/{name}")
            plt.close(figure)  # pyplot keeps every figure alive until closed
        sample = holdout[input_columns(spec)].head(200)
        info = registry.log_model(final, "model", sample, score(spec, final, sample), spec.name)
    version = int(info.registered_model_version)
    mlflow_client = registry.client()
    for key, value in {
        **{k: str(v) for k, v in logged.items()},
        "calibrated": str(calibrated),
        "mlflow_run_id": mlflow_run_id,
    }.items():
        mlflow_client.set_model_version_tag(spec.name, str(version), key, value)
    return {
        "version": version,
        "calibrated": calibrated,
        "metrics": {k: round(v, 6) for k, v in logged.items()},
    }
