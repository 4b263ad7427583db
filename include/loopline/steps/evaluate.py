"""Evaluate and register: score a training run's candidate and baseline on its holdout,
calibrate if the spec asks, log metrics, slices and plots, explain the final model (mean |SHAP|
per feature on the holdout, overall and by slice), complete the drift reference with the final
model's scores and attributions (the verdict's weights), and register the final model as a new
version of the model with its card."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopline.adapters import model_store, reports
from loopline.core import model_card
from loopline.core.columns import LABEL
from loopline.core.drift import NumericSketch
from loopline.core.estimate import Calibration
from loopline.core.explain import attributions
from loopline.core.features import input_columns
from loopline.core.metrics import (
    calibrate,
    feature_importance,
    flat,
    metrics,
    slice_metrics,
    small_slices,
)
from loopline.core.registry import BASELINE, CANDIDATE, Registration
from loopline.core.spec import ModelSpec
from loopline.core.training import score


@dataclass(frozen=True)
class EvaluateResult:
    version: int
    calibrated: bool
    metrics: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def _calibrated(
    spec: ModelSpec,
    candidate: Any,
    holdout: pd.DataFrame,
    validation: pd.DataFrame,
    scores: np.ndarray,
    logged: dict[str, float],
) -> tuple[Any, np.ndarray, bool, dict[str, float]]:
    """Recalibrate (isotonic, on the validation split) when the holdout ECE is above the limit,
    and keep it if that lowers the ECE. Returns (model, scores, calibrated, metrics)."""
    y = holdout[LABEL].to_numpy()
    limit = spec.metric.max_calibration_error
    if not spec.is_classifier or logged.get("holdout_ece", 0) <= limit:
        return candidate, scores, False, logged
    recalibrated = calibrate(candidate, validation, input_columns(spec))
    new_scores = score(spec, recalibrated, holdout)
    after = metrics(spec, y, new_scores)
    logged |= flat("uncalibrated_holdout_", metrics(spec, y, scores))
    if after["ece"] >= logged["holdout_ece"]:
        return candidate, scores, False, logged
    return recalibrated, new_scores, True, logged | flat("holdout_", after)


def run_evaluation(spec: ModelSpec, mlflow_run_id: str) -> EvaluateResult:
    run, store = mlflow_run_id, model_store.store()
    holdout = store.holdout(run)
    validation = store.validation_split(run)
    candidate = store.load_trained(spec.name, run, CANDIDATE)
    baseline = store.load_trained(spec.name, run, BASELINE)
    y = holdout[LABEL].to_numpy()
    scores = score(spec, candidate, holdout)
    logged = flat("holdout_", metrics(spec, y, scores))
    logged |= flat("baseline_holdout_", metrics(spec, y, score(spec, baseline, holdout)))
    final, scores, calibrated, logged = _calibrated(
        spec, candidate, holdout, validation, scores, logged
    )
    slices = slice_metrics(spec, holdout, scores)
    profile = store.training_profile(run)
    profile.score = NumericSketch.build(scores)
    explained = attributions(spec, final, holdout)
    # The drift verdict weighs each feature by its share of what the model attributes to it.
    profile.importance, profile.importance_kind = explained.shares(), "attribution"
    if spec.is_classifier:  # the reference's score-to-rate map, for estimates before labels
        found = Calibration.fit(scores, y)
        profile.calibration = found.to_dict() if found is not None else None
    figures = reports.evaluation_figures(spec, y, scores, slices, feature_importance(candidate))
    sample = holdout[input_columns(spec)].head(200)
    try:
        version = store.register(
            spec.name,
            Registration(
                run_id=run,
                model=final,
                sample=sample,
                sample_scores=score(spec, final, sample),
                profile=profile,
                metrics=logged,
                slices=slices,
                figures=figures,
                calibrated=calibrated,
            ),
        )
    finally:
        for figure in figures.values():
            reports.close(figure)
    card = model_card.build(
        spec,
        version,
        training=store.training(run),
        metrics=logged,
        calibrated=calibrated,
        slices=slices,
        small_slices=small_slices(spec, holdout),
        training_drift=store.training_drift(run),
        attributions=explained.to_dict(),
    )
    save_card(spec.name, version, card)
    return EvaluateResult(version, calibrated, {k: round(v, 6) for k, v in logged.items()})


def save_card(model: str, version: int, card: dict) -> None:
    """The card with the version (JSON), its Markdown as the version's description."""
    model_store.store().save_card(model, version, card, model_card.markdown(card))
