"""Metrics against hand-computed cases, and the gate's rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from loopline.evaluate import (
    classification_metrics,
    expected_calibration_error,
    regression_metrics,
    slice_metrics,
)
from loopline.gate import decide
from loopline.spec import Gate, get_spec
from sklearn import metrics as skm

GATE = Gate(min_lift_over_baseline=0.05, champion_margin=0.01, slice_tolerance=0.02)


def test_ece_hand_computed():
    # Bin [0.1, 0.2): p = 0.1, 0.1 with outcomes 0, 1 -> |0.5 - 0.1| = 0.4, weight 2/5
    # Bin [0.8, 0.9): p = 0.8, 0.8, 0.8 with outcomes 1, 1, 0 -> |0.667 - 0.8| = 0.1333, weight 3/5
    y = np.array([0, 1, 1, 1, 0])
    p = np.array([0.1, 0.1, 0.8, 0.8, 0.8])
    assert expected_calibration_error(y, p) == pytest.approx(0.4 * 2 / 5 + (0.8 - 2 / 3) * 3 / 5)
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0  # p=1 binned


def test_classification_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 500), 0, 1)
    result = classification_metrics(y, p)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert result["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    one_class = classification_metrics(np.zeros(10), np.full(10, 0.2))
    assert math.isnan(one_class["roc_auc"]) and one_class["brier"] == pytest.approx(0.04)


def test_regression_metrics_hand_computed():
    result = regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert result["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert result["mae"] == pytest.approx(2 / 3)
    assert result["r2"] == pytest.approx(1 - 4 / 2)


def test_slice_metrics_skip_small_slices():
    spec = get_spec("churn")
    frame = pd.DataFrame(
        {"plan": ["basic"] * 40 + ["family"] * 5, "region": "north", "label": [0, 1] * 20 + [0] * 5}
    )
    score = np.where(frame["label"] == 1, 0.9, 0.1)
    result = slice_metrics(spec, frame, score)
    assert set(result["plan"]) == {"basic"}  # 5 rows of "family": too few to judge
    assert result["plan"]["basic"]["roc_auc"] == 1.0 and result["plan"]["basic"]["n"] == 40
    assert result["region"]["north"]["n"] == 45


def test_gate_fails_closed_without_config():
    decision = decide(None, "roc_auc", {"roc_auc": 0.9}, {"roc_auc": 0.5})
    assert not decision.promote and decision.alias == "challenger"
    assert "fails closed" in decision.reasons[0]


def test_first_candidate_is_promoted_only_if_it_beats_the_baseline():
    assert decide(GATE, "roc_auc", {"roc_auc": 0.80}, {"roc_auc": 0.5}).promote
    decision = decide(GATE, "roc_auc", {"roc_auc": 0.54}, {"roc_auc": 0.5})
    assert not decision.promote
    assert decision.reasons[0].startswith("does not beat the baseline: roc_auc 0.5400 vs 0.5000")


def test_candidate_must_beat_the_champion_by_the_margin():
    base = {"roc_auc": 0.5}
    assert decide(GATE, "roc_auc", {"roc_auc": 0.811}, base, {"roc_auc": 0.80}).promote
    decision = decide(GATE, "roc_auc", {"roc_auc": 0.805}, base, {"roc_auc": 0.80})
    assert not decision.promote
    assert (
        "does not beat the champion: roc_auc 0.8050 vs 0.8000 (gain +0.0050, needs +0.0100)"
        in (decision.reasons[1])
    )


def test_a_slice_that_gets_worse_blocks_promotion():
    candidate_slices = {"plan": {"basic": {"roc_auc": 0.90}, "family": {"roc_auc": 0.70}}}
    champion_slices = {"plan": {"basic": {"roc_auc": 0.80}, "family": {"roc_auc": 0.75}}}
    decision = decide(
        GATE,
        "roc_auc",
        {"roc_auc": 0.85},
        {"roc_auc": 0.5},
        {"roc_auc": 0.80},
        candidate_slices,
        champion_slices,
    )
    assert not decision.promote
    assert any(r.startswith("slice plan=family gets worse") for r in decision.reasons)
    candidate_slices["plan"]["family"]["roc_auc"] = 0.74  # within the 0.02 tolerance
    assert decide(
        GATE,
        "roc_auc",
        {"roc_auc": 0.85},
        {"roc_auc": 0.5},
        {"roc_auc": 0.80},
        candidate_slices,
        champion_slices,
    ).promote


def test_lower_is_better_metrics_compare_the_other_way():
    gate = Gate(min_lift_over_baseline=1.0, champion_margin=0.1, slice_tolerance=0.5)
    assert decide(gate, "rmse", {"rmse": 3.0}, {"rmse": 5.0}, {"rmse": 3.2}).promote
    assert not decide(gate, "rmse", {"rmse": 3.15}, {"rmse": 5.0}, {"rmse": 3.2}).promote
    assert not decide(gate, "rmse", {"rmse": 4.5}, {"rmse": 5.0}).promote


def test_auc_standard_error_hanley_mcneil():
    from loopline.labels import auc_standard_error

    labels = np.array([1] * 50 + [0] * 50)
    q1, q2 = 0.8 / 1.2, 2 * 0.64 / 1.8
    expected = math.sqrt((0.16 + 49 * (q1 - 0.64) + 49 * (q2 - 0.64)) / 2500)
    assert auc_standard_error(0.8, labels) == pytest.approx(expected)
    assert auc_standard_error(0.8, np.zeros(10)) == math.inf  # one class: no estimate
