"""Drift detection against its peers (run by hand, not in CI): loopline and each installed peer
library judge the same reference and current frames, each in a fresh process that reads them
from the same Parquet files; the script prints the time of each, the speed ratio of every peer
to loopline, and the features each flagged against the known truth.

    .venv/bin/python benchmarks/drift_peers.py                       # 100k and 1M rows
    .venv/bin/python benchmarks/drift_peers.py --rows 100000 --peers alibi,frouros
    .venv/bin/python benchmarks/drift_peers.py --peer-python /path/to/peer/venv/bin/python

The peers run only in their own virtualenv (``benchmarks/peers/requirements.txt`` says how to
make it; default ``/tmp/peers/venv``): they are never a dependency of loopline.

The frames: 60 features, 49 numeric (normal, lognormal and Student-t and Pareto heavy tails,
uniform, Poisson counts, zero-inflated, with nulls) and 11 categorical (5 to 200 levels, one with
nulls, one integer-coded with nulls), reference and current drawn independently (seeded).
Two cases: ``no_shift`` (same distributions: every flag is a false alarm) and ``mixed_shift``:
``MATERIAL`` features change by an amount that matters (Wasserstein/IQR >= 0.15, JS >= 0.16, a
new category of 8%, nulls 5% -> 25%), ``NEGLIGIBLE`` ones by an amount far below every effect
threshold (a 0.02 sd mean shift, Poisson 3 -> 3.05, nulls 5% -> 6%, JS 0.009): a p-value at a
million rows sees them, a drift verdict should not.

What is timed, per tool, from frames in memory to a verdict per feature:
- loopline: ``build_profile`` on the reference + ``Window`` fed the current in batches of
  250,000 rows + ``compare_window`` (the spec's default drift settings);
- alibi-detect: ``TabularDrift`` (KS for numeric, chi-square for categorical, Bonferroni) on an
  ordinal-encoded matrix, numeric nulls imputed with the reference median (it takes no NaN);
- frouros: ``KSTest`` per numeric column (nulls dropped), ``ChiSquareTest`` per categorical,
  Bonferroni across the 60 tests;
- nannyml: ``UnivariateDriftCalculator`` (KS for numeric, chi-square for categorical, its
  default 10 chunks and thresholds); a feature is flagged if any current chunk alerts;
- evidently: ``Report([DataDriftPreset()])`` with the column types declared (its default
  method choice: Wasserstein / Jensen-Shannon distance, threshold 0.1, at these sizes).
Each tool first runs once on 2,000 rows (imports and first-call costs are not timed); the time
is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20261123
BATCH_ROWS = 250_000
ALPHA = 0.05
PEERS = ("alibi", "frouros", "nannyml", "evidently")
SLOW_PEERS = {"evidently"}  # minutes per run at a million rows: run once
DEFAULT_PEER_PYTHON = "/tmp/peers/venv/bin/python"
MATERIAL = {
    "normal_00": "mean +0.5 sd",
    "normal_01": "sd x1.5",
    "lognormal_00": "sigma 1 -> 1.3",
    "lognormal_01": "scale x1.2",
    "student_t_00": "location +0.5",
    "pareto_00": "scale x1.3",
    "uniform_00": "location +0.1",
    "poisson_00": "lambda 3 -> 4",
    "zero_inflated_00": "zero share 0.7 -> 0.5",
    "missing_00": "null share 5% -> 25%",
    "cat5_00": "zipf -> uniform (JS 0.27)",
    "cat50_06": "new category, 8% of rows",
    "cat200_08": "level order reversed (JS 0.83)",
    "coded_00": "uniform -> skewed codes (JS 0.17)",
}
NEGLIGIBLE = {
    "normal_02": "mean +0.02 sd",
    "poisson_01": "lambda 3 -> 3.05",
    "missing_01": "null share 5% -> 6%",
    "cat5_01": "3% mixed towards uniform (JS 0.009)",
}
CASES = ("no_shift", "mixed_shift")
LIBRARIES = ("numpy", "pandas")


# --- the frames (numpy and pandas only: the peers' interpreter runs this module too) ---------


def _zipf(levels: int, exponent: float = 1.1) -> np.ndarray:
    weights = 1 / np.arange(1, levels + 1) ** exponent
    return weights / weights.sum()


def _text(values: np.ndarray, nulls: np.ndarray | None = None) -> pd.Series:
    series = pd.Series(values, dtype=object)
    if nulls is not None:
        series[nulls] = np.nan
    return series


def make_frame(rows: int, seed: int, shift: bool = False) -> pd.DataFrame:
    """One frame of the benchmark; ``shift`` applies the MATERIAL and NEGLIGIBLE changes."""
    rng = np.random.default_rng(seed)
    on = shift  # readability below: a change applies only to the shifted current frame
    cols: dict[str, object] = {}
    for i in range(12):
        mean = {0: 0.5, 2: 0.02}.get(i, 0.0) if on else 0.0
        cols[f"normal_{i:02d}"] = rng.normal(mean, 1.5 if on and i == 1 else 1.0, rows)
    for i in range(8):
        sigma = 1.3 if on and i == 0 else 1.0
        cols[f"lognormal_{i:02d}"] = (1.2 if on and i == 1 else 1.0) * rng.lognormal(0, sigma, rows)
    for i in range(4):
        cols[f"student_t_{i:02d}"] = rng.standard_t(2, rows) + (0.5 if on and i == 0 else 0.0)
    for i in range(4):
        cols[f"pareto_{i:02d}"] = (rng.pareto(1.5, rows) + 1) * (1.3 if on and i == 0 else 1.0)
    for i in range(4):
        cols[f"uniform_{i:02d}"] = rng.random(rows) + (0.1 if on and i == 0 else 0.0)
    for i in range(8):
        lam = {0: 4.0, 1: 3.05}.get(i, 3.0) if on else 3.0
        cols[f"poisson_{i:02d}"] = rng.poisson(lam, rows).astype(float)
    for i in range(4):
        zeros = 0.5 if on and i == 0 else 0.7
        cols[f"zero_inflated_{i:02d}"] = np.where(
            rng.random(rows) < zeros, 0.0, rng.exponential(1.0, rows)
        )
    for i in range(5):
        share = {0: 0.25, 1: 0.06}.get(i, 0.05) if on else 0.05
        cols[f"missing_{i:02d}"] = np.where(
            rng.random(rows) < share, np.nan, rng.normal(10, 2, rows)
        )
    for i, levels in enumerate([5, 5, 5, 5, 20, 20, 50, 50, 200]):
        names = np.array([f"v{j:03d}" for j in range(levels)], dtype=object)
        weights = _zipf(levels)
        if on and i == 0:
            weights = np.full(levels, 1 / levels)
        if on and i == 1:
            weights = 0.97 * weights + 0.03 / levels
        if on and i == 8:
            weights = weights[::-1].copy()
        values = names[rng.choice(levels, rows, p=weights)]
        if on and i == 6:
            values = np.where(rng.random(rows) < 0.08, "new", values)
        cols[f"cat{levels}_{i:02d}"] = _text(values)
    codes = rng.choice(
        np.arange(1.0, 7.0), rows, p=[0.3, 0.2, 0.15, 0.15, 0.1, 0.1] if on else None
    )
    codes[rng.random(rows) < 0.03] = np.nan  # a null makes the integer codes floats: 1.0
    cols["coded_00"] = codes
    names = np.array([f"v{j:03d}" for j in range(5)], dtype=object)
    cols["cat5_nulls_00"] = _text(names[rng.choice(5, rows, p=_zipf(5))], rng.random(rows) < 0.03)
    return pd.DataFrame(cols)


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith(("cat", "coded"))]


def truth(case: str) -> dict[str, str]:
    """feature -> material | negligible | unchanged."""
    columns = make_frame(10, 0).columns
    if case == "no_shift":
        return dict.fromkeys(columns, "unchanged")
    return {
        c: "material" if c in MATERIAL else "negligible" if c in NEGLIGIBLE else "unchanged"
        for c in columns
    }


def write_frames(rows: int, case: str, folder: Path) -> None:
    make_frame(rows, SEED).to_parquet(folder / "reference.parquet")
    make_frame(rows, SEED + 1, shift=case == "mixed_shift").to_parquet(folder / "current.parquet")


def read_frames(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The frames as a task holds them: numeric float64, categorical object text with NaN."""
    frames = []
    for name in ("reference", "current"):
        frame = pd.read_parquet(folder / f"{name}.parquet")
        for column in categorical_columns(frame):
            if frame[column].dtype != float:
                frame[column] = frame[column].astype(object).where(frame[column].notna(), np.nan)
        frames.append(frame)
    return frames[0], frames[1]


# --- the tools: each returns {feature: flagged} ------------------------------------------------


def run_loopline(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    import datetime as dt

    from loopline.core.drift import Window, build_profile, compare_window
    from loopline.core.spec import ModelSpec

    categorical = set(categorical_columns(reference))
    spec = ModelSpec(
        name="drift_bench",
        entity_id={"column": "row_id"},
        event_timestamp="ts",
        target={"column": "y", "task": "binary_classification"},
        schedule={"start_date": dt.date(2026, 1, 1)},
        features=[
            {"name": c, "type": "categorical" if c in categorical else "numeric"}
            for c in reference.columns
        ],
    )
    profile = build_profile(spec, reference)
    window = Window(profile)
    for start in range(0, len(current), BATCH_ROWS):
        window.update(current.iloc[start : start + BATCH_ROWS])
    result = compare_window(spec, window)
    return {f.feature: f.drifted for f in result.features}


def _encoded(reference: pd.DataFrame, current: pd.DataFrame, categorical: list[str]):
    """alibi-detect takes one float matrix: categories as codes of the reference's levels
    (unseen: a new code), nulls as their own code; numeric nulls as the reference median."""
    ref, cur = reference.copy(), current.copy()
    for column in reference.columns:
        if column in categorical:
            levels = pd.Index(ref[column].dropna().unique())
            for frame in (ref, cur):
                codes = levels.get_indexer(frame[column]).astype(float)
                codes[(codes < 0) & frame[column].notna().to_numpy()] = len(levels)
                codes[frame[column].isna().to_numpy()] = len(levels) + 1
                frame[column] = codes
        else:
            median = ref[column].median()
            ref[column] = ref[column].fillna(median)
            cur[column] = cur[column].fillna(median)
    return ref.to_numpy(dtype=np.float64), cur.to_numpy(dtype=np.float64)


def run_alibi(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    from alibi_detect.cd import TabularDrift

    categorical = categorical_columns(reference)
    x_ref, x_cur = _encoded(reference, current, categorical)
    index = {c: i for i, c in enumerate(reference.columns)}
    detector = TabularDrift(
        x_ref, p_val=ALPHA, categories_per_feature={index[c]: None for c in categorical}
    )
    found = detector.predict(x_cur, drift_type="batch", return_p_val=True)["data"]
    p_values = np.asarray(found["p_val"])
    return dict(zip(reference.columns, (p_values < ALPHA / len(p_values)).tolist(), strict=True))


def run_frouros(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    from frouros.detectors.data_drift import ChiSquareTest, KSTest

    categorical = set(categorical_columns(reference))
    p_values = {}
    for column in reference.columns:
        if column in categorical:
            detector = ChiSquareTest()
            ref = reference[column].astype(str).to_numpy()  # a null is the text 'nan'
            cur = current[column].astype(str).to_numpy()
        else:
            detector = KSTest()
            ref, cur = reference[column].dropna().to_numpy(), current[column].dropna().to_numpy()
        detector.fit(X=ref)
        result, _ = detector.compare(X=cur)
        p_values[column] = result.p_value
    return {c: bool(p < ALPHA / len(p_values)) for c, p in p_values.items()}


def run_nannyml(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")
    import nannyml

    categorical = categorical_columns(reference)
    calculator = nannyml.UnivariateDriftCalculator(
        column_names=list(reference.columns),
        treat_as_categorical=categorical,
        continuous_methods=["kolmogorov_smirnov"],
        categorical_methods=["chi2"],
    )
    calculator.fit(reference)
    table = calculator.calculate(current).filter(period="analysis").to_df()
    flags = {}
    for column in reference.columns:
        method = "chi2" if column in categorical else "kolmogorov_smirnov"
        flags[column] = bool(table[(column, method, "alert")].any())
    return flags


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, bool]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    categorical = categorical_columns(reference)
    definition = DataDefinition(
        numerical_columns=[c for c in reference.columns if c not in categorical],
        categorical_columns=categorical,
    )
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    flags = {}
    for test in snapshot.dict()["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type") == "evidently:metric_v2:ValueDrift":
            flags[params["column"]] = test["status"] == "FAIL"
    return flags


TOOLS = {
    "loopline": run_loopline,
    "alibi": run_alibi,
    "frouros": run_frouros,
    "nannyml": run_nannyml,
    "evidently": run_evidently,
}
VERSIONS = {
    "alibi": "alibi-detect",
    "frouros": "frouros",
    "nannyml": "nannyml",
    "evidently": "evidently",
    "loopline": "loopline",
}


def worker(tool: str, folder: Path, repeat: int) -> None:
    """One tool in this process: a warm-up on 2,000 rows, then ``repeat`` timed runs."""
    from importlib import metadata

    reference, current = read_frames(folder)
    TOOLS[tool](reference.iloc[:2000], current.iloc[:2000])
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        flags = TOOLS[tool](reference, current)
        seconds.append(time.perf_counter() - started)
    versions = {"numpy": np.__version__, "pandas": pd.__version__}
    with contextlib.suppress(metadata.PackageNotFoundError):
        versions[VERSIONS[tool]] = metadata.version(VERSIONS[tool])
    print(
        "RESULT "
        + json.dumps(
            {
                "tool": tool,
                "seconds": min(seconds),
                "runs": seconds,
                "flagged": sorted(c for c, f in flags.items() if f),
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "versions": versions,
            }
        )
    )


# --- the driver ----------------------------------------------------------------------------------


def launch(python: str, tool: str, folder: Path, repeat: int) -> dict | None:
    command = [python, __file__, "--worker", tool, "--data", str(folder), "--repeat", str(repeat)]
    env = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1", "DO_NOT_TRACK": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        print(f"  {tool}: failed ({done.returncode}): {' | '.join(tail)}", file=sys.stderr)
        return None
    return json.loads(lines[-1].removeprefix("RESULT "))


def score(flagged: list[str], known: dict[str, str]) -> str:
    counts = {kind: sum(1 for f in flagged if known[f] == kind) for kind in set(known.values())}
    totals = {kind: sum(1 for k in known.values() if k == kind) for kind in counts}
    order = [k for k in ("material", "negligible", "unchanged") if k in totals]
    return ", ".join(f"{kind} {counts[kind]}/{totals[kind]}" for kind in order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (best counts)")
    parser.add_argument("--worker", choices=sorted(TOOLS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.repeat)
        return
    peers = [p for p in args.peers.split(",") if p]
    if peers and not Path(args.peer_python).exists():
        print(f"no peer interpreter at {args.peer_python}: loopline only", file=sys.stderr)
        peers = []
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    for rows in args.rows:
        for case in args.cases.split(","):
            known = truth(case)
            with tempfile.TemporaryDirectory(prefix="drift-peers-") as tmp:
                folder = Path(tmp)
                write_frames(rows, case, folder)
                results = [launch(sys.executable, "loopline", folder, args.repeat)]
                for peer in peers:
                    repeat = 1 if peer in SLOW_PEERS and rows > 200_000 else args.repeat
                    results.append(launch(args.peer_python, peer, folder, repeat))
            report(rows, case, known, [r for r in results if r])


def report(rows: int, case: str, known: dict[str, str], results: list[dict]) -> None:
    ours = next((r for r in results if r["tool"] == "loopline"), None)
    print(f"\n{rows:,} x {rows:,} rows, 60 features, {case}: load average {os.getloadavg()[0]:.1f}")
    print(f"  {'tool':10s} {'seconds':>8s} {'x loopline':>10s} {'peak MiB':>9s}  flagged vs truth")
    for r in results:
        ratio = f"{r['seconds'] / ours['seconds']:.1f}" if ours else "-"
        print(
            f"  {r['tool']:10s} {r['seconds']:8.2f} {ratio:>10s} {r['peak_rss_mib']:9.0f}  "
            f"{score(r['flagged'], known)}"
        )
    for r in results:
        missed = sorted(f for f, k in known.items() if k == "material" and f not in r["flagged"])
        wrong = sorted(f for f in r["flagged"] if known[f] != "material")
        if missed or wrong:
            print(f"  {r['tool']}: missed {missed or 'none'}, flagged wrongly {wrong or 'none'}")
    versions = {k: v for r in results for k, v in r["versions"].items() if k not in LIBRARIES}
    for library in LIBRARIES:
        versions[library] = " / ".join(sorted({r["versions"][library] for r in results}))
    print("  versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    print("RESULTS " + json.dumps({"rows": rows, "case": case, "results": results}))


if __name__ == "__main__":
    main()
