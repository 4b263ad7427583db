"""Model cards (pure): what a fresh version's card holds, what the gate adds, and the Markdown
that becomes the version's description."""

from __future__ import annotations

import datetime as dt

import pytest
from loopline.adapters.specs import get_spec
from loopline.core import model_card
from loopline.core.registry import TrainingRun

SPEC = get_spec("churn")
METRICS = {
    "holdout_roc_auc": 0.8123,
    "holdout_ece": 0.021,
    "holdout_brier": 0.15,
    "baseline_holdout_roc_auc": 0.5,
    "uncalibrated_holdout_ece": 0.08,
    "rows_train": 9000.0,  # not a holdout figure: left out of the metrics
}
TRAINING = TrainingRun(
    run_id="run-1",
    reason="drift",
    window=(dt.date(2026, 2, 1), dt.date(2026, 2, 14)),
    counts={"rows_train": 9000, "rows_holdout": 1000},
)


def card(**kwargs) -> dict:
    args = {
        "training": TRAINING,
        "metrics": METRICS,
        "calibrated": True,
        "slices": {"plan": {"basic": {"roc_auc": 0.8}}},
        "small_slices": {"plan": {"enterprise": 12}},
        "training_drift": ["tenure_months"],
    } | kwargs
    return model_card.build(SPEC, 3, **args)


def test_a_fresh_card_splits_holdout_baseline_and_calibration_figures():
    built = card()
    assert (built["model"], built["version"], built["mlflow_run_id"]) == ("churn", 3, "run-1")
    assert built["metrics"] == {"roc_auc": 0.8123, "ece": 0.021, "brier": 0.15}
    assert built["baseline"] == {"roc_auc": 0.5}
    assert built["calibration"]["before"] == {"ece": 0.08}
    assert built["calibration"]["after"] == {"ece": 0.021, "brier": 0.15}
    assert built["calibration"]["limit"] == SPEC.metric.max_calibration_error
    assert built["training"]["window"] == ["2026-02-01", "2026-02-14"]
    assert built["training"]["mode"] == "stateless"  # no mode recorded: the default
    assert built["training"]["rows"] == {"rows_train": 9000, "rows_holdout": 1000}
    assert built["intended_use"]["decision_threshold"] == SPEC.metric.decision_threshold
    assert built["gate"] is None


def test_no_calibration_figures_are_none_not_empty_dicts():
    built = card(metrics={"holdout_roc_auc": 0.8})
    assert built["calibration"]["before"] is None and built["calibration"]["after"] is None


def test_the_gate_is_added_without_changing_the_rest():
    fresh = card()
    judged = model_card.with_gate(fresh, {"promoted": False, "reasons": ["worse than v2"]})
    assert judged["gate"] == {"promoted": False, "reasons": ["worse than v2"]}
    assert fresh["gate"] is None
    assert {k: v for k, v in judged.items() if k != "gate"} == {
        k: v for k, v in fresh.items() if k != "gate"
    }


@pytest.mark.parametrize("promoted, verdict", [(True, "promoted"), (False, "kept as challenger")])
def test_the_markdown_names_window_metrics_gate_and_limits(promoted, verdict):
    text = model_card.markdown(
        model_card.with_gate(card(), {"promoted": promoted, "reasons": ["beats v2 by 0.02"]})
    )
    assert text.startswith("# churn v3\n")
    assert "Days 2026-02-01 to 2026-02-14; rows train 9,000, holdout 1,000" in text
    assert "| roc_auc (higher is better) | 0.8123 | 0.5000 |" in text
    assert "| ece (lower is better) | 0.0210 |  |" in text
    assert f"**Gate.** {verdict}" in text and "- beats v2 by 0.02" in text
    assert "slices too small to judge: plan=enterprise (12 rows)" in text
    assert "features drifting within the training window: tenure_months" in text


def test_a_card_without_a_gate_or_limits_says_none():
    text = model_card.markdown(card(small_slices={}, training_drift=[]))
    assert "**Gate.**" not in text
    assert "slices too small to judge: none" in text
    assert "features drifting within the training window: none" in text
