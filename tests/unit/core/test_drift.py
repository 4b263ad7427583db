"""Drift statistics: the sketch agrees with scipy on the full data, every degenerate column gives
a defined verdict, missing data is in the verdict, categorical tests count the reference's own
sampling, and big samples with a negligible shift do not cry wolf."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from loopline.adapters.specs import get_spec
from loopline.core.drift import (
    SMOOTHING,
    CategoricalAccumulator,
    CategoricalCounts,
    NumericAccumulator,
    NumericSketch,
    Profile,
    build_profile,
    compare_categorical,
    compare_numeric,
    compare_rates,
    decide,
    detect,
    psi,
)
from loopline.core.spec import Drift
from scipy import stats

SETTINGS = Drift(alpha=0.05, psi_threshold=0.2, min_rows=500)


def numeric(reference, current, name="x") -> object:
    accumulator = NumericAccumulator(NumericSketch.build(reference))
    for start in range(0, len(current), 7919):  # batches of an odd size
        accumulator.update(current[start : start + 7919])
    return compare_numeric(name, NumericSketch.build(reference), accumulator)


def categorical(reference, current, name="c") -> object:
    accumulator = CategoricalAccumulator()
    accumulator.update(current)
    return compare_categorical(name, CategoricalCounts.build(reference), accumulator)


def scipy_wasserstein(reference, current) -> float:
    iqr = np.subtract(*np.quantile(reference, [0.75, 0.25]))
    return stats.wasserstein_distance(reference, current) / iqr


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n, shift: rng.normal(shift, 1, n),
        lambda rng, n, shift: rng.lognormal(shift, 1.0, n),  # heavy tail
        lambda rng, n, shift: rng.poisson(3 + 3 * shift, n).astype(float),  # ties
    ],
    ids=["normal", "lognormal", "poisson"],
)
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.3])
def test_the_sketch_agrees_with_scipy_on_the_full_data(draw, shift):
    rng = np.random.default_rng(7)
    reference, current = draw(rng, 200_000, 0.0), draw(rng, 100_000, shift)
    result = numeric(reference, current)
    exact = stats.ks_2samp(reference, current)
    assert abs(result.statistic - exact.statistic) <= 0.003
    if exact.pvalue > 1e-12:
        assert abs(math.log10(result.p_value) - math.log10(exact.pvalue)) < 0.5
    assert abs(result.wasserstein - scipy_wasserstein(reference, current)) <= 0.01


def test_psi_hand_computed():
    # reference 50/50, current 90/10, smoothing 0.5 per bin
    ref = np.array([50 + SMOOTHING, 50 + SMOOTHING]) / (100 + 2 * SMOOTHING)
    cur = np.array([90 + SMOOTHING, 10 + SMOOTHING]) / (100 + 2 * SMOOTHING)
    expected = sum((c - r) * math.log(c / r) for c, r in zip(cur, ref, strict=True))
    assert psi([50, 50], [90, 10]) == pytest.approx(expected)
    assert psi([50, 50], [50, 50]) == 0.0
    assert math.isfinite(psi([100, 0], [0, 100]))  # empty bins: smoothed, finite


def test_degenerate_columns_give_defined_verdicts():
    constant = numeric(np.full(1000, 3.0), np.full(1000, 3.0))
    assert (constant.statistic, constant.wasserstein) == (0.0, 0.0)
    moved = numeric(np.full(1000, 3.0), np.full(1000, 4.0))
    assert moved.wasserstein == pytest.approx(1.0) and moved.statistic == 1.0
    all_null_current = numeric(np.arange(1000.0), np.full(700, np.nan))
    all_null_both = numeric(np.full(1000, np.nan), np.full(700, np.nan))
    null_reference = numeric(np.full(1000, np.nan), np.arange(700.0))
    empty = numeric(np.arange(1000.0), np.array([]))
    results = [constant, moved, all_null_current, all_null_both, null_reference, empty]
    for r in results:
        values = (r.statistic, r.p_value, r.psi, r.wasserstein, r.null_share, r.null_p_value)
        assert all(math.isfinite(v) for v in values), r
    decide(SETTINGS, results)
    # An all-null column is missing data, not a quiet small window.
    assert all_null_current.decision == "drift" and "missing data" in all_null_current.rule
    assert null_reference.decision == "drift"
    assert all_null_both.decision == "no_drift"  # nothing changed
    assert empty.decision == "insufficient_sample" and "drift.min_rows 500" in empty.rule
    assert moved.decision == "drift" and constant.decision == "no_drift"


def test_rising_nulls_are_drift_even_when_the_values_do_not_move():
    rng = np.random.default_rng(2)
    reference = np.where(rng.uniform(size=20_000) < 0.05, np.nan, rng.normal(0, 1, 20_000))
    current = np.where(rng.uniform(size=20_000) < 0.40, np.nan, rng.normal(0, 1, 20_000))
    [result] = decide(SETTINGS, [numeric(reference, current)])
    assert result.decision == "drift"
    assert result.null_share_ref == pytest.approx(0.05, abs=0.01)
    assert result.null_share == pytest.approx(0.40, abs=0.01)
    assert result.rule.startswith("missing data: null share 0.04")


def test_an_integer_coded_categorical_with_nulls_does_not_alarm():
    rng = np.random.default_rng(3)
    codes = rng.integers(1, 6, 50_000)
    reference = pd.Series(codes[:25_000])  # int64: "1"
    current = pd.Series(codes[25_000:], dtype=float)  # a null makes it float: 1.0
    current[::50] = np.nan
    reference_nulls = pd.Series(codes[:25_000], dtype=float)
    reference_nulls[::50] = np.nan
    [result] = decide(SETTINGS, [categorical(reference_nulls, current)])
    assert result.unseen_share == 0.0 and result.decision == "no_drift", result.rule
    [plain] = decide(SETTINGS, [categorical(reference, current.dropna().astype(int))])
    assert plain.decision == "no_drift"


def test_categorical_shifts_are_judged_by_an_effect_that_does_not_grow_with_n():
    rng = np.random.default_rng(4)
    levels = ["a", "b"]
    reference = rng.choice(levels, 20_000, p=[0.5, 0.5])
    shifted = rng.choice(levels, 5_000, p=[0.65, 0.35])  # a 15-point proportion shift
    [result] = decide(SETTINGS, [categorical(reference, shifted)])
    assert result.decision == "drift" and result.effect == "js", result.rule
    for n in (5_000, 100_000):  # a 3% new category, caught at both sizes
        current = np.where(rng.uniform(size=n) < 0.03, "new", rng.choice(levels, n))
        [found] = decide(SETTINGS, [categorical(reference, current)])
        assert found.decision == "drift", (n, found.rule)
        assert found.unseen_share == pytest.approx(0.03, abs=0.01)
    same = categorical(reference, rng.choice(levels, 100_000))
    assert decide(SETTINGS, [same])[0].decision == "no_drift"


def test_a_many_level_categorical_test_is_calibrated_on_small_samples():
    """200 levels, 600 rows, no shift: the chi-square of homogeneity (reference counts, sparse
    levels pooled) rejects about alpha of the time; treating the reference as exact did 100%."""
    rng = np.random.default_rng(5)
    weights = rng.dirichlet(np.ones(200))
    levels = [f"l{i}" for i in range(200)]
    reference = rng.choice(levels, 20_000, p=weights)
    rejected = [
        categorical(reference, rng.choice(levels, 600, p=weights)).p_value < 0.05
        for _ in range(200)
    ]
    assert np.mean(rejected) < 0.10


def test_big_samples_with_a_tiny_shift_do_not_cry_wolf():
    rng = np.random.default_rng(1)
    reference = rng.normal(0, 1, 200_000)
    tiny = numeric(reference, rng.normal(0.05, 1, 1_000_000))
    assert tiny.p_value < SETTINGS.alpha  # a p-value alone alarms ...
    assert decide(SETTINGS, [tiny])[0].decision == "no_drift"  # ... the effect size does not
    big = numeric(reference, rng.normal(1.0, 1, 1_000_000))
    assert decide(SETTINGS, [big])[0].decision == "drift"


def test_small_samples_are_insufficient_not_alarms():
    rng = np.random.default_rng(2)
    small = numeric(rng.normal(0, 1, 5000), rng.normal(2.0, 1, 100))  # a big shift, 100 rows
    assert decide(SETTINGS, [small])[0].decision == "insufficient_sample"


def test_benjamini_hochberg_runs_across_value_and_missing_data_tests():
    rng = np.random.default_rng(3)
    results = [numeric(rng.normal(0, 1, 3000), rng.normal(0, 1, 3000)) for _ in range(5)]
    raw = [r.p_value for r in results] + [r.null_p_value for r in results]
    decide(SETTINGS, results)
    expected = stats.false_discovery_control(raw, method="bh")
    found = [r.p_adjusted for r in results] + [r.null_p_adjusted for r in results]
    assert found == pytest.approx(list(expected))


def test_label_rate_accounts_for_the_reference_sample():
    labels = np.array([1] * 45 + [0] * 955)
    rates = compare_rates(0.03, 5000, labels, SETTINGS)
    pooled = (150 + 45) / 6000
    z = 0.015 / math.sqrt(pooled * (1 - pooled) * (1 / 5000 + 1 / 1000))
    assert rates["p_value"] == pytest.approx(2 * stats.norm.sf(z))
    assert rates["current_rate"] == 0.045 and rates["shifted"]
    # The same current rate against a reference of only 200 rows is within its noise.
    assert not compare_rates(0.03, 200, labels, SETTINGS)["shifted"]


def test_detect_flags_exactly_the_shifted_features_reports_absent_ones_and_says_why():
    from loopline.dev.simulate import Scenario, generate_day

    spec = get_spec("churn")
    day = dt.date(2026, 1, 1)
    reference, _ = generate_day(day, 0, rows=6000, seed=1)
    importance = {name: 1.0 for name in spec.feature_names} | {"monthly_charges": 10.0}
    profile = build_profile(spec, reference, importance=importance)
    same, _ = generate_day(day, 5, rows=3000, seed=1)
    quiet = detect(spec, profile, same)
    assert quiet.drifted_features == [] and not quiet.dataset_drift
    assert all(f.rule for f in quiet.features)
    shifted, _ = generate_day(
        day, 5, rows=3000, seed=1, scenarios=[Scenario("covariate_shift", strength=1.0)]
    )
    result = detect(spec, profile, shifted)
    assert sorted(result.drifted_features) == ["days_since_last_login", "monthly_charges"]
    assert result.drifted_share == pytest.approx(11 / (len(spec.feature_names) + 9))
    roundtrip = Profile.from_dict(profile.to_dict())
    assert detect(spec, roundtrip, shifted).drifted_features == result.drifted_features
    without = detect(spec, profile, same.drop(columns=["age"]))
    [age] = [f for f in without.features if f.feature == "age"]
    assert age.decision == "absent" and without.drifted_features == ["age"]


def test_the_verdict_weighs_a_shift_by_what_the_model_attributes_to_the_feature():
    """The same shift of two features: one the model rests on trips the dataset verdict, one
    it ignores does not; the weights are shares and say where they came from."""
    from loopline.dev.simulate import Scenario, generate_day

    spec = get_spec("churn").model_copy(update={"drift": Drift(dataset_threshold=0.3)})
    day = dt.date(2026, 1, 1)
    reference, _ = generate_day(day, 0, rows=6000, seed=1)
    shifted, _ = generate_day(
        day, 5, rows=3000, seed=1, scenarios=[Scenario("covariate_shift", strength=1.0)]
    )
    ignored = {name: 1.0 for name in spec.feature_names}
    ignored |= {"monthly_charges": 0.0, "days_since_last_login": 0.0}
    relied = ignored | {"monthly_charges": 20.0}
    for importance, drifts in ((ignored, False), (relied, True)):
        profile = build_profile(spec, reference, importance=importance)
        profile.importance_kind = "attribution"
        result = detect(spec, profile, shifted)
        assert sorted(result.drifted_features) == ["days_since_last_login", "monthly_charges"]
        assert result.dataset_drift is drifts, result.drifted_share
        assert sum(result.weights.values()) == pytest.approx(1.0)
        assert result.weighted_by == "attribution"
    unweighted = detect(spec, build_profile(spec, reference), shifted)
    assert unweighted.weighted_by == "equal"
    assert unweighted.drifted_share == pytest.approx(2 / len(spec.feature_names))
