"""Performance estimated before the labels, measured (run by hand, not in CI): for each scenario
a churn champion is trained and evaluated as loopline does (XGBoost, isotonic calibration when
its holdout ECE is over the limit), then scores days before and after a change; each day's
ROC-AUC and accuracy at the decision threshold are estimated from the scores alone and compared
with the realized ones from the labels, by loopline (``loopline.core.estimate``, through the
score-to-rate map fitted on the champion's holdout, as the pipeline does) and by NannyML's CBPE
on the same scores and the same reference (the champion's holdout; it calibrates on it too).

    .venv/bin/python benchmarks/estimate_cbpe.py                      # every scenario, 3 seeds
    .venv/bin/python benchmarks/estimate_cbpe.py --rows 20000 --seeds 1
    .venv/bin/python benchmarks/estimate_cbpe.py --peer-python /tmp/peers/venv/bin/python

NannyML runs only in its own virtualenv (``benchmarks/peers/requirements.txt``; without it the
table has loopline's columns only). Per scenario and tool: the mean absolute error of the
estimate against the realized metric before and after the change, how often the realized value
lies inside the tool's band (loopline: 95% of labels drawn from the scores; NannyML: its
confidence boundaries, +-3 sampling errors), and the time per day (loopline: the estimate of one
day; NannyML: fitting on the reference and estimating every day, over the days; imports and
file reads left out of both).

Where it must fail, by design: CBPE assumes the scores stay calibrated, i.e. P(y|x) unchanged.
A covariate shift keeps that (the estimate should follow the realized metric); a prior shift
and a concept drift break it (the realized metric moves, the estimate cannot see it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

START = dt.date(2026, 1, 1)
TRAIN_DAYS, CHANGE, DAYS = 21, 24, 34
SCENARIOS = {
    "none": "none",
    "covariate shift": "covariate_shift:start=24,strength=1.5",
    "prior shift": "prior_shift:start=24,strength=1.0",
    "concept drift": "concept_drift:start=24,strength=1.5",
}
DEFAULT_PEER_PYTHON = "/tmp/peers/venv/bin/python"

NANNYML = """
import json, sys, time
import pandas as pd, nannyml as nml
reference = pd.read_parquet(sys.argv[1]); analysis = pd.read_parquet(sys.argv[2])
started = time.perf_counter()
cbpe = nml.CBPE(y_pred_proba="score", y_pred="predicted", y_true="label",
                timestamp_column_name="ts", metrics=["roc_auc", "accuracy"], chunk_period="D",
                problem_type="classification_binary")
cbpe.fit(reference)
frame = cbpe.estimate(analysis).filter(period="analysis").to_df()
seconds = time.perf_counter() - started  # fit + estimate, imports and file reads left out
out = []
for _, row in frame.iterrows():
    day = str(pd.Timestamp(row[("chunk", "start_date")]).date())
    found = {"day": day}
    for metric in ("roc_auc", "accuracy"):
        found[metric] = [float(row[(metric, k)]) for k in
                         ("value", "lower_confidence_boundary", "upper_confidence_boundary")]
    out.append(found)
print(json.dumps({"days": out, "seconds": seconds}))
"""


def labelled(spec, index: int, rows: int, seed: int, scenarios) -> pd.DataFrame:
    from loopline.core.columns import LABEL, PARTITION_DATE
    from loopline.core.features import typed_frame
    from loopline.dev.simulate import generate_day

    day = START + dt.timedelta(days=index)
    frame, label = generate_day(day, index, rows=rows, seed=seed, scenarios=scenarios)
    frame = frame.assign(**{PARTITION_DATE: day, LABEL: label.astype(float)})
    return typed_frame(spec, frame)


def champion(spec, rows: int, seed: int):
    """A model trained and evaluated as loopline's steps do, with its holdout."""
    from loopline.core.columns import LABEL
    from loopline.core.features import input_columns
    from loopline.core.metrics import calibrate, metrics
    from loopline.core.training import fit_xgboost, score, split_by_time

    frame = pd.concat([labelled(spec, i, rows, seed, ()) for i in range(TRAIN_DAYS)])
    data = split_by_time(spec, frame.reset_index(drop=True))
    model, _ = fit_xgboost(spec, data, seed=seed)
    holdout_ece = metrics(spec, data.holdout[LABEL], score(spec, model, data.holdout))["ece"]
    if holdout_ece > spec.metric.max_calibration_error:
        model = calibrate(model, data.validation, input_columns(spec))
    return model, data.holdout


def run_scenario(spec, scenario: str, rows: int, seed: int, peer: str | None) -> list[dict]:
    from loopline.core.columns import LABEL
    from loopline.core.estimate import Calibration, ScoreHistogram, estimate
    from loopline.core.training import score
    from loopline.dev.simulate import Scenario
    from sklearn.metrics import roc_auc_score

    parsed = [] if scenario == "none" else [Scenario.parse(t) for t in scenario.split(";")]
    model, holdout = champion(spec, rows, seed)
    threshold = spec.metric.decision_threshold
    # The champion's score-to-rate map on its holdout, as its evaluation keeps it.
    mapped = Calibration.fit(score(spec, model, holdout), holdout[LABEL].to_numpy())
    days, frames = [], []
    for index in range(TRAIN_DAYS, DAYS):
        day = labelled(spec, index, rows, seed, parsed)
        scores, labels = score(spec, model, day), day[LABEL].to_numpy()
        started = time.perf_counter()
        found = estimate(
            ScoreHistogram.of(scores), threshold=threshold, calibration=mapped, seed=index
        )
        seconds = time.perf_counter() - started
        days.append(
            {
                "index": index,
                "day": str(START + dt.timedelta(days=index)),
                "after": index >= CHANGE,
                "realized": {
                    "roc_auc": roc_auc_score(labels, scores),
                    "accuracy": float(((scores >= threshold) == labels).mean()),
                },
                "loopline": {
                    "roc_auc": [found.value, found.low, found.high],
                    "accuracy": [found.accuracy, found.accuracy_low, found.accuracy_high],
                    "seconds": seconds,
                },
            }
        )
        frames.append(_frame(scores, labels, threshold, START + dt.timedelta(days=index)))
    if peer:
        reference = _frame(
            score(spec, model, holdout), holdout[LABEL].to_numpy(), threshold, None, holdout
        )
        _nannyml(peer, reference, pd.concat(frames, ignore_index=True), days)
    return days


def _frame(scores, labels, threshold, day, source=None) -> pd.DataFrame:
    from loopline.core.columns import PARTITION_DATE

    dates = (
        pd.to_datetime(pd.Series(source[PARTITION_DATE]).astype(str)).to_numpy()
        if source is not None
        else np.full(len(scores), pd.Timestamp(day))
    )
    return pd.DataFrame(
        {
            "ts": dates,
            "score": scores,
            "predicted": (scores >= threshold).astype(int),
            "label": labels.astype(int),
        }
    )


def _nannyml(peer: str, reference: pd.DataFrame, analysis: pd.DataFrame, days: list) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f"{n}.parquet") for n in ("reference", "analysis")]
        reference.to_parquet(paths[0])
        analysis.drop(columns=["label"]).to_parquet(paths[1])
        out = subprocess.run(
            [peer, "-c", NANNYML, *paths], capture_output=True, text=True, check=True
        )
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    seconds = reply["seconds"] / len(days)
    found = {row["day"]: row for row in reply["days"]}
    for day in days:
        peer_day = found.get(day["day"])
        if peer_day:
            day["nannyml"] = {**peer_day, "seconds": seconds}


def summary(days: list[dict], tool: str, metric: str, after: bool) -> tuple[float, float, int]:
    """Mean absolute error, share of days inside the band, days."""
    errors, inside = [], []
    for day in days:
        if day["after"] != after or tool not in day:
            continue
        value, low, high = day[tool][metric]
        if value is None:
            continue
        truth = day["realized"][metric]
        errors.append(abs(value - truth))
        inside.append(low is not None and low <= truth <= high)
    if not errors:
        return float("nan"), float("nan"), 0
    return float(np.mean(errors)), float(np.mean(inside)), len(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000, help="rows per day")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
    from loopline.adapters.specs import get_spec

    spec = get_spec("churn")
    peer = args.peer_python if Path(args.peer_python).exists() else None
    if peer is None:
        print(f"no peer venv at {args.peer_python}: loopline only", flush=True)
    print(
        f"churn, {args.rows:,} rows a day; trained on days 0..{TRAIN_DAYS - 1}; scored days "
        f"{TRAIN_DAYS}..{DAYS - 1}, the change from day {CHANGE}; seeds {args.seeds}\n"
    )
    head = f"{'scenario':<16}{'metric':<9}{'tool':<9}{'MAE before':>11}{'after':>8}"
    print(head + f"{'in band before':>16}{'after':>8}{'ms/day':>8}")
    for name, scenario in SCENARIOS.items():
        days = []
        for seed in (int(s) for s in args.seeds.split(",")):
            days += run_scenario(spec, scenario, args.rows, seed, peer)
        for metric in ("roc_auc", "accuracy"):
            for tool in ("loopline", "nannyml"):
                before, after = (
                    summary(days, tool, metric, False),
                    summary(days, tool, metric, True),
                )
                if not before[2] and not after[2]:
                    continue
                ms = 1000 * np.mean([d[tool]["seconds"] for d in days if tool in d])
                print(
                    f"{name:<16}{metric:<9}{tool:<9}{before[0]:>11.4f}{after[0]:>8.4f}"
                    f"{before[1]:>16.0%}{after[1]:>8.0%}{ms:>8.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
