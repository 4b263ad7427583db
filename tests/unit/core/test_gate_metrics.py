"""Metrics against hand-computed cases, and the gate's rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from loopline.adapters.specs import get_spec
from loopline.core.columns import LABEL
from loopline.core.gate import decide
from loopline.core.metrics import (
    classification_metrics,
    expected_calibration_error,
    regression_metrics,
    slice_metrics,
)
from loopline.core.spec import Gate
from sklearn import metrics as skm

CHURN = get_spec("churn")
GATE = Gate(min_lift_over_baseline=0.05, champion_margin=0.01, slice_tolerance=0.02)
SPEC = CHURN.model_copy(update={"gate": GATE})
# Guardrails and calibration of a candidate as good as the baseline on both.
OK = {"log_loss": 0.10, "brier": 0.02, "ece": 0.01}
BASE = {"roc_auc": 0.5, "log_loss": 0.12, "brier": 0.025}


def spec_with(**gate) -> object:
    return SPEC.model_copy(update={"gate": GATE.model_copy(update=gate)})


def regression(gate: Gate):
    target = CHURN.target.model_copy(update={"task": "regression"})
    return CHURN.model_copy(
        update={
            "target": target,
            "gate": gate,
            "metric": CHURN.metric.model_copy(update={"primary": None}),
        }
    )


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
        {"plan": ["basic"] * 40 + ["family"] * 5, "region": "north", LABEL: [0, 1] * 20 + [0] * 5}
    )
    score = np.where(frame[LABEL] == 1, 0.9, 0.1)
    result = slice_metrics(spec, frame, score)
    assert set(result["plan"]) == {"basic"}  # 5 rows of "family": too few to judge
    assert result["plan"]["basic"]["roc_auc"] == 1.0 and result["plan"]["basic"]["n"] == 40
    assert result["region"]["north"]["n"] == 45


def test_gate_fails_closed_without_config():
    decision = decide(CHURN.model_copy(update={"gate": None}), {"roc_auc": 0.9}, BASE)
    assert not decision.promote and decision.alias == "challenger"
    assert "fails closed" in decision.reasons[0]


def test_first_candidate_is_promoted_only_if_it_beats_the_baseline():
    assert decide(SPEC, {"roc_auc": 0.80, **OK}, BASE).promote
    decision = decide(SPEC, {"roc_auc": 0.54, **OK}, BASE)
    assert not decision.promote
    assert decision.reasons[0].startswith("does not beat the baseline: roc_auc 0.5400 vs 0.5000")


def test_a_candidate_worse_than_the_baseline_on_a_guardrail_is_refused():
    # The small binary panel's case: better ROC-AUC, but log loss far worse than the baseline's.
    decision = decide(SPEC, {"roc_auc": 0.80, **OK, "log_loss": 0.824}, {**BASE, "log_loss": 0.582})
    assert not decision.promote
    assert (
        "worse than the baseline on guardrail log_loss: 0.8240 vs 0.5820 (change -0.2420, "
        "allowed -0.0000: tolerance 0.0000 + 2 standard errors)" in decision.reasons
    )
    # A gap sampling alone explains (two standard errors of the paired difference) passes.
    noisy = decide(
        SPEC,
        {"roc_auc": 0.8, **OK, "log_loss": 0.62},
        {**BASE, "log_loss": 0.6},
        guardrail_noise={"log_loss": 0.015},
    )
    assert noisy.promote
    assert any(r.startswith("guardrail brier holds") for r in decision.reasons)
    loose = spec_with(guardrail_tolerance=0.3)
    assert decide(
        loose, {"roc_auc": 0.80, **OK, "log_loss": 0.824}, {**BASE, "log_loss": 0.582}
    ).promote
    assert decide(
        spec_with(guardrails=["brier"]), {"roc_auc": 0.8, **OK, "log_loss": 9}, BASE
    ).promote


def test_a_miscalibrated_candidate_is_refused():
    decision = decide(SPEC, {"roc_auc": 0.80, **OK, "ece": 0.09}, BASE)
    assert not decision.promote
    assert "calibration error 0.0900 is above the spec's limit 0.0500" in decision.reasons
    assert decide(
        spec_with(enforce_calibration=False), {"roc_auc": 0.8, **OK, "ece": 0.09}, BASE
    ).promote


def test_candidate_must_beat_the_champion_by_the_margin():
    assert decide(SPEC, {"roc_auc": 0.811, **OK}, BASE, {"roc_auc": 0.80}).promote
    decision = decide(SPEC, {"roc_auc": 0.805, **OK}, BASE, {"roc_auc": 0.80})
    assert not decision.promote
    assert (
        "does not beat the champion: roc_auc 0.8050 vs 0.8000 (gain +0.0050, needs +0.0100)"
        in decision.reasons
    )


def test_a_slice_that_gets_worse_blocks_promotion():
    candidate_slices = {"plan": {"basic": {"roc_auc": 0.90}, "family": {"roc_auc": 0.70}}}
    champion_slices = {"plan": {"basic": {"roc_auc": 0.80}, "family": {"roc_auc": 0.75}}}
    candidate, champion = {"roc_auc": 0.85, **OK}, {"roc_auc": 0.80}
    decision = decide(SPEC, candidate, BASE, champion, candidate_slices, champion_slices)
    assert not decision.promote
    assert any(r.startswith("slice plan=family gets worse") for r in decision.reasons)
    candidate_slices["plan"]["family"]["roc_auc"] = 0.74  # within the 0.02 tolerance
    assert decide(SPEC, candidate, BASE, champion, candidate_slices, champion_slices).promote


def test_regression_defaults_to_rmse_lower_is_better_guarded_by_mae():
    spec = regression(Gate(min_lift_over_baseline=1.0, champion_margin=0.1, slice_tolerance=0.5))
    assert spec.primary_metric == "rmse" and spec.guardrails == ["mae"]
    base = {"rmse": 5.0, "mae": 4.0}
    assert decide(spec, {"rmse": 3.0, "mae": 2.0}, base, {"rmse": 3.2}).promote
    assert not decide(spec, {"rmse": 3.15, "mae": 2.0}, base, {"rmse": 3.2}).promote
    assert not decide(spec, {"rmse": 4.5, "mae": 2.0}, base).promote
    worse_mae = decide(spec, {"rmse": 3.0, "mae": 4.5}, base)
    assert not worse_mae.promote and "guardrail mae" in " ".join(worse_mae.reasons)


def test_auc_standard_error_hanley_mcneil():
    from loopline.core.metrics import auc_standard_error

    labels = np.array([1] * 50 + [0] * 50)
    q1, q2 = 0.8 / 1.2, 2 * 0.64 / 1.8
    expected = math.sqrt((0.16 + 49 * (q1 - 0.64) + 49 * (q2 - 0.64)) / 2500)
    assert auc_standard_error(0.8, labels) == pytest.approx(expected)
    assert auc_standard_error(0.8, np.zeros(10)) == math.inf  # one class: no estimate


def test_paired_noise_is_the_standard_error_of_the_per_row_loss_difference():
    from loopline.core.metrics import paired_noise

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 2000)
    a, b = rng.uniform(0.05, 0.95, 2000), np.full(2000, 0.5)
    diff = (a - y) ** 2 - (b - y) ** 2
    assert paired_noise(SPEC, "brier", y, a, b) == pytest.approx(diff.std(ddof=1) / np.sqrt(2000))
    assert paired_noise(SPEC, "roc_auc", y, a, b) == 0.0  # no per-row form


def test_the_calibration_floor_is_what_a_perfectly_calibrated_model_shows():
    from loopline.core.metrics import ece_noise

    rng = np.random.default_rng(3)
    small, large = rng.uniform(0.1, 0.9, 300), rng.uniform(0.1, 0.9, 30_000)
    assert ece_noise(small) > 0.04  # 300 rows: noise alone reaches the usual 0.05 limit
    assert ece_noise(large) < 0.01
    decision = decide(SPEC, {"roc_auc": 0.8, **OK, "ece": 0.06}, BASE, calibration_floor=0.07)
    assert decision.promote and any("not judged" in r for r in decision.reasons)
    assert not decide(
        SPEC, {"roc_auc": 0.8, **OK, "ece": 0.09}, BASE, calibration_floor=0.07
    ).promote
