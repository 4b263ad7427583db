"""Evaluate and register: score a training run's candidate and baseline on its holdout,
calibrate if the spec asks, log metrics, slices and plots, complete the drift reference with the
final model's scores, and register the final model as a new version of the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from loopline.adapters import model_store, reports
from loopline.core import model_card
from loopline.core.columns import LABEL
from loopline.core.drift import NumericSketch, Profile
from loopline.core.features import input_columns
from loopline.core.metrics import (
    calibrate,
    feature_importance,
    flat,
    metrics,
    slice_metrics,
    small_slices,
)
from loopline.core.spec import ModelSpec
from loopline.core.training import score


@dataclass(frozen=True)
class EvaluateResult:
    version: int
    calibrated: bool
    metrics: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def _calibrated(spec: ModelSpec, candidate, holdout, validation, scores, logged: dict):
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
    run = mlflow_run_id
    holdout = model_store.load_frame(run, model_store.HOLDOUT)
    validation = model_store.load_frame(run, model_store.VALIDATION)
    candidate = model_store.load_model(f"runs:/{run}/{model_store.CANDIDATE}", model=spec.name)
    baseline = model_store.load_model(f"runs:/{run}/{model_store.BASELINE}", model=spec.name)
    y = holdout[LABEL].to_numpy()
    scores = score(spec, candidate, holdout)
    logged = flat("holdout_", metrics(spec, y, scores))
    logged |= flat("baseline_holdout_", metrics(spec, y, score(spec, baseline, holdout)))
    final, scores, calibrated, logged = _calibrated(
        spec, candidate, holdout, validation, scores, logged
    )
    slices = slice_metrics(spec, holdout, scores)
    profile = Profile.from_dict(model_store.load_dict(run, model_store.TRAINING_PROFILE))
    profile.score = NumericSketch.build(scores)
    with model_store.resumed_run(run):
        # The reference every drift check of this version compares with.
        model_store.log_dict(profile.to_dict(), model_store.PROFILE)
        model_store.log_metrics(logged)
        model_store.log_dict(slices, model_store.SLICES)
        model_store.set_tag("calibrated", str(calibrated))
        figures = reports.evaluation_figures(spec, y, scores, slices, feature_importance(candidate))
        for name, figure in figures.items():
            model_store.log_figure(figure, f"{model_store.PLOTS}/{name}")
            reports.close(figure)
        sample = holdout[input_columns(spec)].head(200)
        version = model_store.log_model(
            final, model_store.MODEL, sample, score(spec, final, sample), spec.name
        )
    model_store.set_version_tags(
        spec.name,
        version,
        {**logged, "calibrated": calibrated, "mlflow_run_id": run},
    )
    data = model_store.run_data(run)
    card = model_card.build(
        spec,
        version,
        run_id=run,
        tags={**data.tags, "mode": data.params.get("mode", "stateless")},
        counts={k: int(v) for k, v in data.metrics.items() if k.startswith("rows_")},
        metrics=logged,
        calibrated=calibrated,
        slices=slices,
        small_slices=small_slices(spec, holdout),
        training_drift=model_store.load_dict(run, model_store.TRAINING_DRIFT)["features"],
    )
    save_card(spec.name, version, card)
    return EvaluateResult(version, calibrated, {k: round(v, 6) for k, v in logged.items()})


def save_card(model: str, version: int, card: dict) -> None:
    """The card as a JSON artifact of the version's run, and as its description (Markdown)."""
    model_store.log_dict_to_run(card["mlflow_run_id"], card, model_store.MODEL_CARD)
    model_store.set_version_description(model, version, model_card.markdown(card))
