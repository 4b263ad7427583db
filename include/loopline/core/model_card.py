"""Model cards: what a model version is for, what it was trained on, how it did, what the gate
decided and why, and its known limits. Built as a plain dict (stored with the version as JSON,
shown by the Models view) and rendered as Markdown (the version's description in MLflow)."""

from __future__ import annotations

from loopline.core.metrics import GREATER_IS_BETTER
from loopline.core.registry import TrainingRun
from loopline.core.spec import ModelSpec


def build(
    spec: ModelSpec,
    version: int,
    *,
    training: TrainingRun,
    metrics: dict[str, float],
    calibrated: bool,
    slices: dict,
    small_slices: dict,
    training_drift: list[str],
    attributions: dict | None = None,
) -> dict:
    """The card of a freshly evaluated version (no gate decision yet)."""
    holdout = {
        k.removeprefix("holdout_"): v for k, v in metrics.items() if k.startswith("holdout_")
    }
    return {
        "model": spec.name,
        "version": int(version),
        "mlflow_run_id": training.run_id,
        "intended_use": {
            "description": spec.description or "(no description in the spec)",
            "owner": spec.owner,
            "task": spec.target.task,
            "target": spec.target.column,
            "entity": spec.entity_id.column,
            "decision_threshold": spec.metric.decision_threshold if spec.is_classifier else None,
        },
        "training": {
            "window": [d.isoformat() for d in training.window] if training.window else [None, None],
            "rows": dict(training.counts),
            "mode": training.mode,
            "reason": training.reason,
            "git_commit": training.git_commit,
            "dag_run_id": training.dag_run_id,
        },
        "primary_metric": spec.primary_metric,
        "metrics": holdout,
        "baseline": {
            k.removeprefix("baseline_holdout_"): v
            for k, v in metrics.items()
            if k.startswith("baseline_holdout_")
        },
        "calibration": {
            "calibrated": calibrated,
            "before": {
                k.removeprefix("uncalibrated_holdout_"): v
                for k, v in metrics.items()
                if k.startswith("uncalibrated_holdout_")
            }
            or None,
            "after": {k: holdout[k] for k in ("ece", "brier", "log_loss") if k in holdout} or None,
            "limit": spec.metric.max_calibration_error if spec.is_classifier else None,
        },
        "slices": slices,
        # Mean |SHAP| per feature on the holdout (the booster's margin units), overall and by
        # slice: what the model's predictions rest on.
        "attributions": attributions,
        "gate": None,
        "known_limits": {
            "slices_too_small_to_judge": small_slices,
            "features_drifting_within_the_training_window": training_drift,
        },
    }


def with_gate(card: dict, decision: dict) -> dict:
    """The card once the gate has judged the version."""
    return {**card, "gate": decision}


def _metric_rows(card: dict) -> list[str]:
    rows = ["| metric | holdout | baseline |", "|---|---:|---:|"]
    for name, value in card["metrics"].items():
        base = card["baseline"].get(name)
        better = "higher" if GREATER_IS_BETTER.get(name, True) else "lower"
        base_text = "" if base is None else f"{base:.4f}"
        rows.append(f"| {name} ({better} is better) | {value:.4f} | {base_text} |")
    return rows


def markdown(card: dict) -> str:
    use, training, calibration = card["intended_use"], card["training"], card["calibration"]
    limits = card["known_limits"]
    lines = [
        f"# {card['model']} v{card['version']}",
        "",
        f"**Intended use.** {use['description']} Owner: {use['owner']}. Task: {use['task']} of "
        f"`{use['target']}` per `{use['entity']}`.",
        "",
        f"**Training.** Days {training['window'][0]} to {training['window'][1]}; rows "
        + ", ".join(f"{k.removeprefix('rows_')} {v:,}" for k, v in training["rows"].items())
        + f"; {training['mode']}; reason: {training['reason']}; code {training['git_commit']}.",
        "",
        f"**Holdout metrics** (primary: {card['primary_metric']}):",
        "",
        *_metric_rows(card),
        "",
    ]
    explained = card.get("attributions")
    if explained:
        top = list(explained["overall"].items())[:5]
        lines += [
            "**What it rests on** (mean |SHAP| on the holdout): "
            + ", ".join(f"{name} {value:.3f}" for name, value in top)
            + ".",
            "",
        ]
    if calibration["limit"] is not None:
        lines += [
            f"**Calibration.** Recalibrated: {calibration['calibrated']}; "
            f"before {calibration['before'] or '-'}; after {calibration['after']}; "
            f"limit (ECE) {calibration['limit']}.",
            "",
        ]
    gate = card["gate"]
    if gate:
        verdict = "promoted to champion" if gate["promoted"] else "kept as challenger"
        lines += [f"**Gate.** {verdict}:", "", *[f"- {r}" for r in gate["reasons"]], ""]
    small = [
        f"{c}={v} ({n} rows)"
        for c, vs in limits["slices_too_small_to_judge"].items()
        for v, n in vs.items()
    ]
    drifting = limits["features_drifting_within_the_training_window"]
    lines += [
        "**Known limits.**",
        "",
        f"- slices too small to judge: {', '.join(small) or 'none'}",
        f"- features drifting within the training window: {', '.join(drifting) or 'none'}",
    ]
    return "\n".join(lines) + "\n"
