"""Drift statistics: equal to scipy's, PSI by hand, defined on degenerate columns, and no
alarms on big samples without a meaningful shift."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from loopline.drift import (
    SMOOTHING,
    CategoricalProfile,
    NumericProfile,
    Reservoir,
    bin_counts,
    build_profile,
    compare_categorical,
    compare_numeric,
    decide,
    detect,
    psi,
)
from loopline.spec import Drift, get_spec
from scipy import stats

SETTINGS = Drift(alpha=0.05, psi_threshold=0.2, min_rows=500)


def test_ks_equals_scipy_on_the_same_samples():
    rng = np.random.default_rng(0)
    reference, current = rng.normal(0, 1, 1500), rng.normal(0.3, 1, 800)
    profile = NumericProfile.build(reference)
    assert len(profile.sample) == 1500  # under the reservoir size: all of it
    result = compare_numeric("x", profile, current)
    expected = stats.ks_2samp(reference, current)
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.wasserstein == pytest.approx(
        stats.wasserstein_distance(reference, current)
        / (np.percentile(reference, 75) - np.percentile(reference, 25))
    )


def test_psi_hand_computed():
    # reference 50/50, current 90/10, smoothing 0.5 per bin
    ref = np.array([50 + SMOOTHING, 50 + SMOOTHING]) / (100 + 2 * SMOOTHING)
    cur = np.array([90 + SMOOTHING, 10 + SMOOTHING]) / (100 + 2 * SMOOTHING)
    expected = sum((c - r) * math.log(c / r) for c, r in zip(cur, ref, strict=True))
    assert psi([50, 50], [90, 10]) == pytest.approx(expected)
    assert psi([50, 50], [50, 50]) == 0.0
    assert math.isfinite(psi([100, 0], [0, 100]))  # empty bins: smoothed, finite


def test_bins_put_out_of_range_values_in_the_end_bins():
    assert bin_counts(np.array([-5.0, 0.5, 1.5, 99.0]), [0.0, 1.0, 2.0]).tolist() == [2, 2]


def test_degenerate_columns_give_finite_sensible_results():
    constant = compare_numeric("c", NumericProfile.build(np.full(1000, 3.0)), np.full(1000, 3.0))
    assert (constant.statistic, constant.psi, constant.wasserstein) == (0.0, 0.0, 0.0)
    moved = compare_numeric("c", NumericProfile.build(np.full(1000, 3.0)), np.full(1000, 4.0))
    assert moved.wasserstein == pytest.approx(1.0) and math.isfinite(moved.psi)
    all_null = compare_numeric("n", NumericProfile.build(np.full(1000, np.nan)), [np.nan] * 700)
    assert (all_null.n_ref, all_null.n_cur, all_null.null_share, all_null.p_value) == (
        0,
        0,
        1.0,
        1.0,
    )
    empty = compare_numeric("e", NumericProfile.build(np.arange(1000.0)), [])
    assert empty.n_cur == 0 and math.isfinite(empty.psi)
    for result in (constant, moved, all_null, empty):
        assert all(math.isfinite(v) for v in (result.statistic, result.p_value, result.psi))
    decided = decide(SETTINGS, [all_null, empty])
    assert [r.decision for r in decided] == ["insufficient_sample", "insufficient_sample"]


def test_unseen_categories_are_counted_and_finite():
    ref = CategoricalProfile.build(["a"] * 600 + ["b"] * 400)
    result = compare_categorical("c", ref, ["a"] * 500 + ["b"] * 300 + ["z"] * 200)
    assert result.unseen_share == pytest.approx(0.2)
    assert math.isfinite(result.statistic) and math.isfinite(result.psi) and result.p_value < 1e-10
    same = compare_categorical("c", ref, ["a"] * 600 + ["b"] * 400)
    assert same.psi == pytest.approx(0.0, abs=1e-6) and same.p_value > 0.5


def test_big_samples_with_a_tiny_shift_do_not_cry_wolf():
    rng = np.random.default_rng(1)
    profile = NumericProfile.build(rng.normal(0, 1, 200_000))
    tiny = compare_numeric("x", profile, rng.normal(0.05, 1, 1_000_000))
    assert (
        tiny.p_adjusted < SETTINGS.alpha or tiny.p_value < SETTINGS.alpha
    )  # a p-value alone alarms
    assert decide(SETTINGS, [tiny])[0].decision == "no_drift"  # ... the effect size does not
    big = compare_numeric("x", profile, rng.normal(1.0, 1, 1_000_000))
    assert decide(SETTINGS, [big])[0].decision == "drift"


def test_small_samples_are_insufficient_not_alarms():
    rng = np.random.default_rng(2)
    profile = NumericProfile.build(rng.normal(0, 1, 5000))
    small = compare_numeric("x", profile, rng.normal(2.0, 1, 100))  # a big shift, 100 rows
    assert decide(SETTINGS, [small])[0].decision == "insufficient_sample"


def test_benjamini_hochberg_correction_is_applied():
    rng = np.random.default_rng(3)
    profile = NumericProfile.build(rng.normal(0, 1, 3000))
    results = [compare_numeric(f"x{i}", profile, rng.normal(0, 1, 3000)) for i in range(5)]
    raw = [r.p_value for r in results]
    decide(SETTINGS, results)
    expected = stats.false_discovery_control(raw, method="bh")
    assert [r.p_adjusted for r in results] == pytest.approx(list(expected))


def test_reservoir_is_uniform_and_bounded():
    reservoir = Reservoir(size=1000, seed=0)
    for start in range(0, 100_000, 7_000):
        reservoir.update(np.arange(start, min(start + 7_000, 100_000), dtype=float))
    assert len(reservoir.sample) == 1000 and reservoir.seen == 100_000
    assert len(np.unique(reservoir.sample)) == 1000
    assert 40_000 < reservoir.sample.mean() < 60_000  # uniform over 0..99,999
    assert (reservoir.sample >= 50_000).mean() == pytest.approx(0.5, abs=0.06)


def test_detect_flags_exactly_the_shifted_features_and_weights_by_importance():
    import datetime as dt

    from loopline.simulate import Scenario, generate_day

    spec = get_spec("churn")
    day = dt.date(2026, 1, 1)
    reference, _ = generate_day(day, 0, rows=6000, seed=1)
    importance = {name: 1.0 for name in spec.feature_names} | {"monthly_charges": 10.0}
    profile = build_profile(spec, reference, importance=importance)
    same, _ = generate_day(day, 5, rows=3000, seed=1)
    quiet = detect(spec, profile, same)
    assert quiet.drifted_features == [] and not quiet.dataset_drift
    shifted, _ = generate_day(
        day, 5, rows=3000, seed=1, scenarios=[Scenario("covariate_shift", strength=1.0)]
    )
    result = detect(spec, profile, shifted)
    assert sorted(result.drifted_features) == ["days_since_last_login", "monthly_charges"]
    assert result.drifted_share == pytest.approx(11 / (len(spec.feature_names) + 9))
    roundtrip = type(profile).from_dict(profile.to_dict())
    assert detect(spec, roundtrip, shifted).drifted_features == result.drifted_features
    assert isinstance(pd.DataFrame([vars(f) for f in result.features]), pd.DataFrame)
