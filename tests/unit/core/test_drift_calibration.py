"""Drift statistics against known truth: with nothing shifted a 60-feature check stays quiet
(family-wise), every test's raw p-value rejects about alpha of the time, shifts of known size
are caught when they are past their effect threshold and not when they are below it, and the
sketch's statistics match scipy's on the full data, heavy tails included.

Seeded, so every figure is the same on every run; the bounds are wide enough for the sampling
noise of the replicate counts and tight enough that a miscalibrated test fails them (the
chi-square that treated the reference as exact rejected 100%; a KS on a 100-point sketch was
off by 0.01). ``benchmarks/drift_oracle.py`` prints the same figures at larger sizes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from loopline.core.drift import (
    CategoricalAccumulator,
    CategoricalCounts,
    NumericAccumulator,
    NumericSketch,
    _ks_pvalue,
    build_profile,
    compare_categorical,
    compare_numeric,
    decide,
    detect,
)
from loopline.core.spec import Drift, ModelSpec
from scipy import stats

DEFAULTS = Drift()  # the spec defaults: alpha 0.05, W/IQR 0.1, PSI 0.2, JS 0.1, nulls 0.1


def zipf(levels: int) -> np.ndarray:
    weights = 1 / np.arange(1, levels + 1) ** 1.1
    return weights / weights.sum()


def labels(levels: int) -> np.ndarray:
    return np.array([f"l{i:03d}" for i in range(levels)], dtype=object)


def frame(rng: np.random.Generator, rows: int) -> pd.DataFrame:
    """60 features as in benchmarks/drift_peers.py: normal, lognormal, Student-t, Pareto,
    uniform, Poisson, zero-inflated, with nulls; 5- to 200-level categoricals, one with nulls,
    one integer-coded with nulls."""
    columns: dict[str, object] = {}
    kinds = {
        "normal": (12, lambda: rng.normal(0, 1, rows)),
        "lognormal": (8, lambda: rng.lognormal(0, 1, rows)),
        "student_t": (4, lambda: rng.standard_t(2, rows)),
        "pareto": (4, lambda: rng.pareto(1.5, rows) + 1),
        "uniform": (4, lambda: rng.random(rows)),
        "poisson": (8, lambda: rng.poisson(3, rows).astype(float)),
        "zero_inflated": (4, lambda: np.where(rng.random(rows) < 0.7, 0, rng.exponential(1, rows))),
        "missing": (5, lambda: np.where(rng.random(rows) < 0.05, np.nan, rng.normal(10, 2, rows))),
    }
    for kind, (count, draw) in kinds.items():
        for i in range(count):
            columns[f"{kind}_{i:02d}"] = draw()
    for i, levels in enumerate([5, 5, 5, 5, 20, 20, 50, 50, 200]):
        columns[f"cat{levels}_{i:02d}"] = labels(levels)[rng.choice(levels, rows, p=zipf(levels))]
    codes = rng.integers(1, 7, rows).astype(float)
    codes[rng.random(rows) < 0.03] = np.nan
    columns["coded_00"] = codes
    text = pd.Series(labels(5)[rng.choice(5, rows, p=zipf(5))], dtype=object)
    text[rng.random(rows) < 0.03] = np.nan
    columns["cat5_nulls_00"] = text
    return pd.DataFrame(columns)


def spec_of(data: pd.DataFrame) -> ModelSpec:
    return ModelSpec(
        name="calibration",
        entity_id={"column": "row_id"},
        event_timestamp="ts",
        target={"column": "y", "task": "binary_classification"},
        schedule={"start_date": dt.date(2026, 1, 1)},
        features=[
            {"name": c, "type": "categorical" if c.startswith(("cat", "coded")) else "numeric"}
            for c in data.columns
        ],
    )


@pytest.mark.parametrize(("rows", "seeds"), [(1_000, 100), (20_000, 15)])
def test_with_nothing_shifted_a_60_feature_check_stays_quiet(rows, seeds):
    """Family-wise false alarms at the spec defaults: the dataset verdict never, and a check
    flags any of its 60 features in at most alpha (5%) of the seeds (measured: 3 of 100 at
    1,000 rows, 0 of 15 at 20,000)."""
    rng = np.random.default_rng(rows)
    spec = spec_of(frame(rng, 10))
    verdicts = flagged = 0
    for _ in range(seeds):
        result = detect(spec, build_profile(spec, frame(rng, rows)), frame(rng, rows))
        assert len(result.features) == 60
        verdicts += result.dataset_drift
        flagged += bool(result.drifted_features)
    assert verdicts == 0
    assert flagged <= 0.05 * seeds


def replicate_p_values(draw, reps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([draw(rng) for _ in range(reps)])


def ks_p(sampler, n_ref: int, n_cur: int):
    def draw(rng):
        sketch = NumericSketch.build(sampler(rng, n_ref))
        current = NumericAccumulator(sketch)
        current.update(sampler(rng, n_cur))
        return compare_numeric("x", sketch, current).p_value

    return draw


def chi2_p(levels: int, n_ref: int, n_cur: int):
    names, weights = labels(levels), zipf(levels)

    def draw(rng):
        reference = CategoricalCounts.build(names[rng.choice(levels, n_ref, p=weights)])
        current = CategoricalAccumulator()
        current.update(names[rng.choice(levels, n_cur, p=weights)])
        return compare_categorical("c", reference, current).p_value

    return draw


def nulls_p(share: float, n_ref: int, n_cur: int):
    def draw(rng):
        sketch = NumericSketch.build(np.where(rng.random(n_ref) < share, np.nan, 1.0))
        current = NumericAccumulator(sketch)
        current.update(np.where(rng.random(n_cur) < share, np.nan, 1.0))
        return compare_numeric("x", sketch, current).null_p_value

    return draw


@pytest.mark.parametrize(
    ("draw", "reps", "low", "high"),
    [
        # measured rejection rates at alpha 0.05 in comments
        (ks_p(lambda r, n: r.normal(0, 1, n), 2_000, 500), 1000, 0.025, 0.065),  # 0.041
        (ks_p(lambda r, n: r.lognormal(0, 1, n), 20_000, 2_000), 400, 0.02, 0.075),  # 0.062
        # KS on discrete values is conservative (ties), as scipy's is: never liberal
        (ks_p(lambda r, n: r.poisson(3, n).astype(float), 2_000, 500), 1000, 0.0, 0.05),  # 0.011
        (chi2_p(5, 2_000, 600), 800, 0.03, 0.075),  # 0.061
        (chi2_p(50, 20_000, 600), 600, 0.03, 0.07),  # 0.048
        (chi2_p(200, 2_000, 600), 800, 0.03, 0.07),  # 0.048
        (chi2_p(200, 20_000, 5_000), 400, 0.03, 0.075),  # 0.058
        (nulls_p(0.05, 2_000, 500), 2000, 0.035, 0.065),  # 0.054
        (nulls_p(0.01, 20_000, 2_000), 2000, 0.035, 0.065),  # 0.052
    ],
    ids=[
        "ks-normal",
        "ks-lognormal",
        "ks-poisson",
        "chi2-5-levels",
        "chi2-50-levels",
        "chi2-200-levels-small",
        "chi2-200-levels",
        "missingness-5pct",
        "missingness-1pct",
    ],
)
def test_raw_p_values_reject_about_alpha_of_the_time(draw, reps, low, high):
    p_values = replicate_p_values(draw, reps, seed=reps)
    assert np.all((p_values >= 0) & (p_values <= 1))
    assert low <= np.mean(p_values < 0.05) <= high


def numeric_drift(delta: float, rows: int, reps: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    found = 0
    for _ in range(reps):
        sketch = NumericSketch.build(rng.normal(0, 1, rows))
        current = NumericAccumulator(sketch)
        current.update(rng.normal(delta, 1, rows))
        found += decide(DEFAULTS, [compare_numeric("x", sketch, current)])[0].drifted
    return found / reps


def categorical_drift(mix: float, rows: int, reps: int, seed: int = 0) -> float:
    """A 5-level Zipf moved ``mix`` of the way towards uniform (JS 0.056 at 0.2, 0.164 at 0.6)."""
    rng = np.random.default_rng(seed)
    weights = zipf(5)
    moved = (1 - mix) * weights + mix / 5
    found = 0
    for _ in range(reps):
        reference = CategoricalCounts.build(labels(5)[rng.choice(5, rows, p=weights)])
        current = CategoricalAccumulator()
        current.update(labels(5)[rng.choice(5, rows, p=moved)])
        found += decide(DEFAULTS, [compare_categorical("c", reference, current)])[0].drifted
    return found / reps


def missing_drift(share: float, rows: int, reps: int, seed: int = 0) -> float:
    """Null share 5% in the reference, ``share`` in the current; values unchanged."""
    rng = np.random.default_rng(seed)
    found = 0
    for _ in range(reps):
        sketch = NumericSketch.build(
            np.where(rng.random(rows) < 0.05, np.nan, rng.normal(size=rows))
        )
        current = NumericAccumulator(sketch)
        current.update(np.where(rng.random(rows) < share, np.nan, rng.normal(size=rows)))
        found += decide(DEFAULTS, [compare_numeric("x", sketch, current)])[0].drifted
    return found / reps


@pytest.mark.parametrize(
    ("share_flagged", "low", "high"),
    [
        # a mean shift of 0.3 sd (W/IQR 0.22, past 0.1): caught from 500 rows on (0.965)
        (lambda: numeric_drift(0.3, 500, 200), 0.9, 1.0),
        # 0.2 sd (W/IQR 0.15): needs more rows (0.665 at 500, 0.98 at 2,000)
        (lambda: numeric_drift(0.2, 2_000, 200), 0.9, 1.0),
        # 0.1 sd (W/IQR 0.074, below 0.1): a p-value sees it at 10,000 rows, a verdict does not
        (lambda: numeric_drift(0.1, 10_000, 200), 0.0, 0.05),
        (lambda: categorical_drift(0.6, 500, 200), 0.95, 1.0),  # JS 0.164
        (lambda: categorical_drift(0.2, 10_000, 200), 0.0, 0.05),  # JS 0.056: below 0.1
        (lambda: missing_drift(0.20, 500, 200), 0.95, 1.0),  # nulls 5% -> 20%
        (lambda: missing_drift(0.10, 10_000, 200), 0.0, 0.05),  # 5% -> 10%: below 0.1
    ],
    ids=[
        "mean-0.3sd-500",
        "mean-0.2sd-2000",
        "mean-0.1sd-10000-below-threshold",
        "js-0.16-500",
        "js-0.06-10000-below-threshold",
        "nulls-5-to-20pct-500",
        "nulls-5-to-10pct-10000-below-threshold",
    ],
)
def test_shifts_of_known_size_are_caught_past_their_threshold_only(share_flagged, low, high):
    assert low <= share_flagged() <= high


HEAVY = {
    "normal": lambda r, n, s: r.normal(s, 1, n),
    "lognormal": lambda r, n, s: r.lognormal(s, 1, n),
    "student_t2": lambda r, n, s: r.standard_t(2, n) + s,
    "pareto1.5": lambda r, n, s: (r.pareto(1.5, n) + 1) * (1 + s),
    "poisson": lambda r, n, s: r.poisson(3 + 3 * s, n).astype(float),
    "zero_inflated": lambda r, n, s: np.where(r.random(n) < 0.7, 0, r.exponential(1 + s, n)),
    "bimodal": lambda r, n, s: np.where(
        r.random(n) < 0.5, r.normal(-3, 0.1, n), r.normal(3 + s, 1, n)
    ),
}
# Wasserstein / IQR bounds: the largest error over 10 seeds at 100k rows (benchmarks/
# drift_oracle.py), rounded up. Infinite-variance tails are the hard case: between the last
# reference points a few current rows decide the distance, and only their sum is kept (with
# nothing shifted, W / IQR itself ranges 0.04-0.24 between Pareto(1.5) samples of 100k rows).
W_BOUND = {"student_t2": 0.003, "pareto1.5": 0.06}


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_the_sketch_statistics_match_scipy_on_the_full_data(name):
    """100,000 vs 50,000 rows, shifts 0, 0.05 and 0.3: KS within 0.001 (the mass of about one
    sketch interval; measured here at most 0.00023) and Wasserstein / IQR within 0.001, or the
    family's bound (measured here at most 0.001, Pareto(1.5))."""
    rng = np.random.default_rng(17)
    for shift in (0.0, 0.05, 0.3):
        reference, current = HEAVY[name](rng, 100_000, 0.0), HEAVY[name](rng, 50_000, shift)
        sketch = NumericSketch.build(reference)
        window = NumericAccumulator(sketch)
        for start in range(0, len(current), 12_345):
            window.update(current[start : start + 12_345])
        found = compare_numeric("x", sketch, window)
        iqr = np.subtract(*np.quantile(reference, [0.75, 0.25]))
        exact_ks = stats.ks_2samp(reference, current, method="asymp").statistic
        exact_w = stats.wasserstein_distance(reference, current) / iqr
        assert abs(found.statistic - exact_ks) <= 0.001, (shift, found.statistic, exact_ks)
        bound = W_BOUND.get(name, 0.001)
        assert abs(found.wasserstein - exact_w) <= bound, (shift, found.wasserstein, exact_w)


@pytest.mark.parametrize("effective", [2_500, 10_000, 40_000])
def test_the_ks_p_value_matches_scipys_distribution(effective):
    """Above 2,000 effective rows the p-value is Kolmogorov's limit with Stephens' correction
    (scipy's ``kstwo`` costs up to a second per test at a million rows): within 2% of it for
    p from 1e-4 to 0.5, within 0.1 decades below."""
    for root_n_d in np.linspace(0.6, 4.0, 12):
        statistic = root_n_d / np.sqrt(effective)
        exact = stats.kstwo.sf(statistic, effective)
        found = _ks_pvalue(statistic, 2 * effective, 2 * effective)
        if exact > 1e-4:
            assert found == pytest.approx(exact, rel=0.02)
        else:
            assert abs(np.log10(found) - np.log10(exact)) < 0.1
