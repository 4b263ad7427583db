"""Drift statistics against known truth, at sizes too big for the unit tests (run by hand): the
figures of tests/unit/core/test_drift_calibration.py at 100k and 1M rows, for the docs.

    .venv/bin/python benchmarks/drift_oracle.py                 # everything, ~15 minutes
    .venv/bin/python benchmarks/drift_oracle.py --parts fwer --seeds 20 --rows 100000 1000000

Parts:
- ``fwer``: the 60-feature frames of benchmarks/drift_peers.py with nothing shifted, ``--seeds``
  seeds per size, spec defaults: how often the dataset verdict fires, how often any feature is
  flagged (the family-wise false-alarm rate), how often any test rejects after
  Benjamini-Hochberg, and the smallest corrected p-value seen;
- ``shifted``: the same frames with the benchmark's mixed shift: how often each MATERIAL
  feature is caught and how often a NEGLIGIBLE or unchanged one is flagged;
- ``pvalues``: raw p-values of each test type with nothing shifted: the rejection rate at
  alpha 0.05 and 0.01 (KS on continuous and on discrete values, chi-square on 5, 50 and 200
  levels, the missingness test);
- ``power``: the share of checks that call a single feature drifted, per shift size and rows;
- ``sketch``: the sketch's KS and Wasserstein / IQR against scipy's on the full data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

sys.path.insert(0, str(Path(__file__).resolve().parent))

from drift_peers import MATERIAL, NEGLIGIBLE, categorical_columns, make_frame  # noqa: E402
from loopline.core.drift import (  # noqa: E402
    CategoricalAccumulator,
    CategoricalCounts,
    NumericAccumulator,
    NumericSketch,
    build_profile,
    compare_categorical,
    compare_numeric,
    decide,
    detect,
)
from loopline.core.spec import Drift, ModelSpec  # noqa: E402

DEFAULTS = Drift()


def spec_for(frame: pd.DataFrame) -> ModelSpec:
    categorical = set(categorical_columns(frame))
    return ModelSpec(
        name="drift_oracle",
        entity_id={"column": "row_id"},
        event_timestamp="ts",
        target={"column": "y", "task": "binary_classification"},
        schedule={"start_date": dt.date(2026, 1, 1)},
        features=[
            {"name": c, "type": "categorical" if c in categorical else "numeric"}
            for c in frame.columns
        ],
    )


def part_fwer(rows_list: list[int], seeds: int) -> None:
    print(f"\n== no shift, 60 features, spec defaults, {seeds} seeds per size ==")
    print(
        f"{'rows':>10s} {'verdicts':>9s} {'any flag':>9s} {'flags':>6s} {'any BH<a':>9s} "
        f"{'min p(BH)':>10s} {'s/check':>8s}"
    )
    for rows in rows_list:
        verdicts = any_flag = flags = any_rejection = 0
        smallest, seconds = 1.0, 0.0
        spec = spec_for(make_frame(10, 0))
        for seed in range(seeds):
            reference = make_frame(rows, 10_000 + 2 * seed)
            current = make_frame(rows, 10_001 + 2 * seed)
            started = time.perf_counter()
            result = detect(spec, build_profile(spec, reference), current)
            seconds += time.perf_counter() - started
            verdicts += result.dataset_drift
            any_flag += bool(result.drifted_features)
            flags += len(result.drifted_features)
            lowest = min(min(f.p_adjusted, f.null_p_adjusted) for f in result.features)
            any_rejection += lowest < DEFAULTS.alpha
            smallest = min(smallest, lowest)
        print(
            f"{rows:10,d} {verdicts:5d}/{seeds:<3d} {any_flag:5d}/{seeds:<3d} {flags:6d} "
            f"{any_rejection:5d}/{seeds:<3d} {smallest:10.3g} {seconds / seeds:8.2f}"
        )


def part_shifted(rows_list: list[int], seeds: int) -> None:
    print(f"\n== mixed shift (benchmarks/drift_peers.py), {seeds} seeds per size ==")
    for rows in rows_list:
        spec = spec_for(make_frame(10, 0))
        caught: dict[str, int] = dict.fromkeys(MATERIAL, 0)
        wrong: dict[str, int] = {}
        for seed in range(seeds):
            reference = make_frame(rows, 20_000 + 2 * seed)
            current = make_frame(rows, 20_001 + 2 * seed, shift=True)
            result = detect(spec, build_profile(spec, reference), current)
            for name in result.drifted_features:
                if name in caught:
                    caught[name] += 1
                else:
                    wrong[name] = wrong.get(name, 0) + 1
        negligible = sum(v for k, v in wrong.items() if k in NEGLIGIBLE)
        unchanged = sum(v for k, v in wrong.items() if k not in NEGLIGIBLE)
        missed = {k: seeds - v for k, v in caught.items() if v < seeds}
        print(
            f"{rows:10,d} rows: material caught {sum(caught.values())}/{len(caught) * seeds}"
            f" (missed: {missed or 'none'}), negligible flagged {negligible}/"
            f"{len(NEGLIGIBLE) * seeds}, unchanged flagged {unchanged}/{42 * seeds}"
        )


def zipf(levels: int) -> np.ndarray:
    weights = 1 / np.arange(1, levels + 1) ** 1.1
    return weights / weights.sum()


def rejection(draw, reps: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    p_values = np.array([draw(rng) for _ in range(reps)])
    return float(np.mean(p_values < 0.05)), float(np.mean(p_values < 0.01))


def ks_draw(sampler, n_ref: int, n_cur: int):
    def draw(rng):
        sketch = NumericSketch.build(sampler(rng, n_ref))
        current = NumericAccumulator(sketch)
        current.update(sampler(rng, n_cur))
        return compare_numeric("x", sketch, current).p_value

    return draw


def chi2_draw(levels: int, n_ref: int, n_cur: int):
    weights = zipf(levels)

    def draw(rng):
        reference = CategoricalCounts.build(rng.choice(levels, n_ref, p=weights))
        current = CategoricalAccumulator()
        current.update(rng.choice(levels, n_cur, p=weights))
        return compare_categorical("c", reference, current).p_value

    return draw


def nulls_draw(share: float, n_ref: int, n_cur: int):
    def draw(rng):
        sketch = NumericSketch.build(np.where(rng.random(n_ref) < share, np.nan, 1.0))
        current = NumericAccumulator(sketch)
        current.update(np.where(rng.random(n_cur) < share, np.nan, 1.0))
        return compare_numeric("x", sketch, current).null_p_value

    return draw


def part_pvalues(rows_list: list[int], reps: int) -> None:
    print(
        f"\n== raw p-values with nothing shifted: rejection rate at 0.05 / 0.01, {reps} reps up"
        f" to 100,000 rows, {max(reps // 5, 20)} above =="
    )
    normal = lambda r, n: r.normal(0, 1, n)  # noqa: E731
    lognormal = lambda r, n: r.lognormal(0, 1, n)  # noqa: E731
    poisson = lambda r, n: r.poisson(3, n).astype(float)  # noqa: E731
    cases = {
        "KS, normal": lambda n: ks_draw(normal, n, n),
        "KS, lognormal, current n/10": lambda n: ks_draw(lognormal, n, n // 10),
        "KS, Poisson(3) (ties)": lambda n: ks_draw(poisson, n, n),
        "chi-square, 5 levels": lambda n: chi2_draw(5, n, n),
        "chi-square, 50 levels, current n/10": lambda n: chi2_draw(50, n, n // 10),
        "chi-square, 200 levels": lambda n: chi2_draw(200, n, n),
        "chi-square, 200 levels, current 600": lambda n: chi2_draw(200, n, 600),
        "missingness, 5% nulls": lambda n: nulls_draw(0.05, n, n),
        "missingness, 0.5% nulls, current n/10": lambda n: nulls_draw(0.005, n, n // 10),
    }
    print(f"{'test':40s}" + "".join(f"{n:>16,d}" for n in rows_list))
    for index, (name, make) in enumerate(cases.items()):
        cells = []
        for rows in rows_list:
            count = reps if rows <= 100_000 else max(reps // 5, 20)
            at_05, at_01 = rejection(make(rows), count, seed=index)
            cells.append(f"{at_05:.3f}/{at_01:.3f}")
        print(f"{name:40s}" + "".join(f"{c:>16s}" for c in cells))


def drifted_share(make_pair, reps: int, seed: int, categorical: bool = False) -> float:
    rng = np.random.default_rng(seed)
    found = 0
    for _ in range(reps):
        reference, current = make_pair(rng)
        if categorical:
            result = compare_categorical("c", reference, current)
        else:
            result = compare_numeric("x", reference, current)
        found += decide(DEFAULTS, [result])[0].drifted
    return found / reps


def numeric_pair(rows: int, draw):
    def make(rng):
        sketch = NumericSketch.build(draw(rng, rows, False))
        current = NumericAccumulator(sketch)
        current.update(draw(rng, rows, True))
        return sketch, current

    return make


def categorical_pair(rows: int, mix: float):
    weights = zipf(5)
    moved = (1 - mix) * weights + mix / 5

    def make(rng):
        reference = CategoricalCounts.build(rng.choice(5, rows, p=weights))
        current = CategoricalAccumulator()
        current.update(rng.choice(5, rows, p=moved))
        return reference, current

    return make


def part_power(reps: int) -> None:
    sizes = [500, 2_000, 10_000, 100_000]
    print(
        f"\n== share of checks calling one feature drifted (spec defaults), {reps} reps up to"
        f" 10,000 rows, {max(reps // 4, 20)} at 100,000 =="
    )
    print(f"{'shift':44s}" + "".join(f"{n:>9,d}" for n in sizes))
    rows_out = []
    for delta in (0.05, 0.1, 0.15, 0.2, 0.3, 0.5):
        ratio = delta / 1.349  # the W / IQR of a normal mean shift

        def mean_shift(rng, n, shifted, delta=delta):
            return rng.normal(delta if shifted else 0.0, 1, n)

        label = f"normal mean +{delta} sd (W/IQR {ratio:.3f})"
        rows_out.append((label, [numeric_pair(n, mean_shift) for n in sizes], False))
    for mix in (0.2, 0.4, 0.6):
        js = jensenshannon(zipf(5), (1 - mix) * zipf(5) + mix / 5, base=2)
        label = f"5-level Zipf {mix:.0%} towards uniform (JS {js:.3f})"
        rows_out.append((label, [categorical_pair(n, mix) for n in sizes], True))
    for share in (0.10, 0.15, 0.20):

        def nulls(rng, n, shifted, share=share):
            return np.where(rng.random(n) < (share if shifted else 0.05), np.nan, rng.random(n))

        label = f"nulls 5% -> {share:.0%} (change {share - 0.05:.2f})"
        rows_out.append((label, [numeric_pair(n, nulls) for n in sizes], False))
    for index, (label, pairs, categorical) in enumerate(rows_out):
        cells = []
        for rows, pair in zip(sizes, pairs, strict=True):
            count = reps if rows <= 10_000 else max(reps // 4, 20)
            cells.append(f"{drifted_share(pair, count, index, categorical):9.2f}")
        print(f"{label:44s}" + "".join(cells))


HEAVY = {
    "normal": lambda r, n, s: r.normal(s, 1, n),
    "lognormal": lambda r, n, s: r.lognormal(s, 1, n),
    "Student-t(2)": lambda r, n, s: r.standard_t(2, n) + s,
    "Pareto(1.5)": lambda r, n, s: (r.pareto(1.5, n) + 1) * (1 + s),
    "Poisson(3)": lambda r, n, s: r.poisson(3 + 3 * s, n).astype(float),
    "zero-inflated": lambda r, n, s: np.where(r.random(n) < 0.7, 0, r.exponential(1 + s, n)),
    "bimodal": lambda r, n, s: np.where(
        r.random(n) < 0.5, r.normal(-3, 0.1, n), r.normal(3 + s, 1, n)
    ),
}


def part_sketch(rows_list: list[int], seeds: int) -> None:
    print(
        f"\n== sketch vs scipy on the full data: reference n, current n/2, shifts 0, 0.05, 0.3,"
        f" {seeds} seeds: the largest error =="
    )
    print(
        f"{'distribution':16s} {'rows':>10s} {'points':>7s} {'max |KS err|':>13s} "
        f"{'max |W/IQR err|':>16s}"
    )
    for name, draw in HEAVY.items():
        for rows in rows_list:
            ks_error = w_error = 0.0
            for seed, shift in itertools.product(range(seeds), (0.0, 0.05, 0.3)):
                rng = np.random.default_rng([seed, int(shift * 100)])
                reference, current = draw(rng, rows, 0.0), draw(rng, rows // 2, shift)
                sketch = NumericSketch.build(reference)
                window = NumericAccumulator(sketch)
                for start in range(0, len(current), 250_000):
                    window.update(current[start : start + 250_000])
                found = compare_numeric("x", sketch, window)
                iqr = np.subtract(*np.quantile(reference, [0.75, 0.25]))
                exact_ks = stats.ks_2samp(reference, current, method="asymp").statistic
                exact_w = stats.wasserstein_distance(reference, current) / iqr
                ks_error = max(ks_error, abs(found.statistic - exact_ks))
                w_error = max(w_error, abs(found.wasserstein - exact_w))
            print(
                f"{name:16s} {rows:10,d} {len(sketch.points):7d} {ks_error:13.5f} {w_error:16.5f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--reps", type=int, default=200, help="replicates per p-value/power cell")
    parser.add_argument("--parts", default="fwer,shifted,pvalues,power,sketch")
    args = parser.parse_args()
    started = time.perf_counter()
    parts = args.parts.split(",")
    if "fwer" in parts:
        part_fwer(args.rows, args.seeds)
    if "shifted" in parts:
        part_shifted(args.rows, max(args.seeds // 4, 2))
    if "pvalues" in parts:
        part_pvalues(args.rows, args.reps)
    if "power" in parts:
        part_power(args.reps)
    if "sketch" in parts:
        part_sketch(args.rows, max(args.seeds // 5, 1))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
