"""Closed-loop benchmark (run by hand): replay scenarios through the real DAGs and measure how
close the model in service gets to what the data allows.

    .venv/bin/python benchmarks/closed_loop.py --suite                 # every scenario, 3 seeds
    .venv/bin/python benchmarks/closed_loop.py \
        --scenario concept_drift:start=14,strength=1.5 --seeds 8 --per-day
    .venv/bin/python benchmarks/closed_loop.py --model spend \
        --scenario concept_drift:start=14,strength=1.0 --seeds 8,9,10
    .venv/bin/python benchmarks/closed_loop.py \
        --scenario concept_drift:start=12,strength=2,days=12 \
        --train-at 24 --no-triggers --compare-shadow 3

Each (scenario, seed) runs in a fresh process on a throwaway PostgreSQL server, MLflow store and
Airflow database, with the model's spec on short windows (14-day training window, 2-day drift
window and label delay, 4-day cool-down, persistence 2 of 3): ten days ingested, a first
champion, then ``<model>_daily`` and ``<model>_labels`` through ``dag.test()`` day by day, and
the trainings the retrain trigger queues run at once, as the scheduler would (``--schedule``
adds the spec's weekly scheduled trainings; by default only triggers retrain).

For every day it prints the served model's realized metric beside

* the **oracle**: a model of the same kind (the loop's own XGBoost training) fitted on the days
  after the latest change whose labels have arrived by that day, scored on the same rows; and
* the **ceiling**: the simulator's true probabilities (or mean spend) scored as a model,

and summarises per run the *days to recover* (the first day from which the served model stays
within 0.03 ROC-AUC of the oracle, or within 1.5x its RMSE, on every later day), the mean gap to
the oracle after the change and from eight days after it, false alarms before the change,
retrainings triggered and promotions; across seeds, the spread (min..max).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from loopline.adapters.settings import airflow_environment
from loopline.dev.simulate import SHORT_WINDOWS

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2026, 1, 1)
SEEDED = 10
# The scenarios: (model, scenario, days, rows per day).
SUITE = [
    ("churn", "concept_drift:start=14,strength=1.0", 34, 1500),
    ("churn", "concept_drift:start=14,strength=1.5", 34, 1500),
    ("churn", "concept_drift:start=14,strength=2.5", 34, 1500),
    ("churn", "concept_drift:start=14,strength=2,days=10", 40, 1500),
    ("churn", "covariate_shift:start=14", 34, 1500),
    ("churn", "prior_shift:start=14,strength=1.0", 34, 1500),
    ("churn", "none", 70, 1500),
    ("spend", "concept_drift:start=14,strength=1.0", 34, 1500),
    # An abrupt shift: a repricing moves the charges (inputs) and what subscribers spend.
    ("spend", "covariate_shift:start=14,features=monthly_charges;concept_drift:start=14", 34, 1500),
]
RECOVERED = {"roc_auc": 0.03, "rmse": 1.5}  # within 0.03 of the oracle / within 1.5x its error
SETTLED_AFTER = 8  # "from eight days after the change on"


def write_spec(tmp: Path, model: str, shadow_days: int = 0, no_triggers: bool = False) -> None:
    import yaml
    from loopline.dev.simulate import twin_spec

    churn = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    for section, values in SHORT_WINDOWS.items():
        churn[section] = {**churn.get(section, {}), **values}
    spec = churn if model == "churn" else twin_spec(churn)
    spec["shadow"] = {"required_days": shadow_days, "window_days": max(shadow_days, 1)}
    if no_triggers:  # only the scheduled trainings of --train-at
        spec["drift"] = {**spec["drift"], "min_new_labels": 10**9}
    specs = tmp / "specs"
    specs.mkdir()
    (specs / f"{model}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def prepare(tmp: Path) -> None:
    os.environ.update(
        {
            "LOOPLINE_HOME": str(tmp),
            "LOOPLINE_SPECS_DIR": str(tmp / "specs"),
            "LOOPLINE_LANDING": str(tmp / "landing"),
            "LOOPLINE_LABELS": str(tmp / "labels"),
            "LOOPLINE_LAKE": str(tmp / "lake"),
            **airflow_environment(tmp / "airflow"),
            "LOOPLINE_RETRY_DELAY_SECONDS": "1",
        }
    )
    (tmp / "airflow").mkdir(exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)


def replay(args, model: str) -> dict:
    """Ten days validated, a first champion, then day by day as ``loopline replay`` does."""
    from loopline.adapters import model_store, warehouse
    from loopline.adapters.specs import get_spec
    from loopline.airflow.runner import Runner
    from loopline.dev.simulate import Scenario, simulate
    from loopline.steps.validate import validate_day

    parsed = [Scenario.parse(text) for text in args.scenario.split(";")]
    simulate(
        landing=os.environ["LOOPLINE_LANDING"],
        labels=os.environ["LOOPLINE_LABELS"],
        start=START,
        days=args.days,
        rows_per_day=args.rows,
        seed=args.seed,
        scenarios=parsed,
        label_delay_days=SHORT_WINDOWS["labels"]["delay_days"],
        model=model,
    )
    spec = get_spec(model)
    for i in range(SEEDED):
        validate_day(spec, START + dt.timedelta(days=i), run_id="seed")
    runner = Runner()
    first = {"end_date": str(START + dt.timedelta(days=SEEDED)), "reason": "first champion"}
    print(runner.run(f"{model}_train", first, first["end_date"]).line(), flush=True)
    days = [START + dt.timedelta(days=i) for i in range(SEEDED, args.days)]
    train_at = {START + dt.timedelta(days=i) for i in args.train_at}
    for day in days:
        if day in train_at:  # a training by hand, with the data of this day
            conf = {"end_date": day.isoformat(), "reason": "by hand (--train-at)"}
            print(runner.run(f"{model}_train", conf, day.isoformat()).line(), flush=True)
        for outcome in runner.replay(spec, [day], scheduled=args.schedule):
            if not outcome.ok or outcome.dag_id.endswith("_train"):
                champion = model_store.store().champion(model)
                print(f"{outcome.line()} -> champion v{champion.version}", flush=True)
    return {
        "scenario": parsed,
        "spec": spec,
        "drift": warehouse.drift_reports(model),
        "decisions": warehouse.retrain_decisions(model),
        "performance": warehouse.performance(model),
        "estimates": {
            (e.partition_date, e.model_version): e for e in warehouse.estimated_days(model)
        },
        "events": warehouse.model_events(model),
        "scored": warehouse.day_table(model)[["partition_date", "version"]]
        .dropna()
        .astype({"version": int}),
    }


# --- the oracle and the ceiling -----------------------------------------------------------------


def change_days(scenarios) -> list[dt.date]:
    """The days the world changes: each scenario's start and, if it ends, the day it ends."""
    found = set()
    for scenario in scenarios:
        if scenario.kind == "none":
            continue
        found.add(START + dt.timedelta(days=scenario.start_day))
        if scenario.duration_days:
            found.add(START + dt.timedelta(days=scenario.start_day + scenario.duration_days))
    return sorted(found)


def oracle_scores(spec, scenarios, days: list[dt.date], delay: int, seed: int) -> dict:
    """Per day: the metric of an XGBoost fitted, as the loop fits one, on the days since the
    latest change whose labels have arrived by that day (the newest fifth of its rows, by time,
    for early stopping), scored on the day's labelled rows."""

    from loopline.core.columns import EVENT_TS, LABEL, PARTITION_DATE
    from loopline.core.features import input_columns
    from loopline.core.metrics import metrics
    from loopline.core.training import TrainingSet, fit_xgboost, score
    from loopline.steps.published import read_labelled

    columns = input_columns(spec) + [s for s in spec.slices if s not in input_columns(spec)]
    columns = [*columns, EVENT_TS]
    changes = change_days(scenarios)
    found = {}
    for day in days:
        since = max((c for c in changes if c <= day - dt.timedelta(days=delay)), default=None)
        if since is None:
            continue
        rows = read_labelled(spec, since, day - dt.timedelta(days=delay), columns)
        target = read_labelled(spec, day, day, columns)
        if len(rows) < 200 or target.empty:
            continue
        rows = rows.sort_values([PARTITION_DATE, EVENT_TS], kind="stable")
        cut = int(len(rows) * 0.8)
        data = TrainingSet(rows.iloc[:cut], rows.iloc[cut:], rows.iloc[:0])
        if (
            spec.is_classifier
            and min(data.train[LABEL].nunique(), data.validation[LABEL].nunique()) < 2
        ):
            continue
        model, _ = fit_xgboost(spec, data, seed)
        value = metrics(spec, target[LABEL].to_numpy(), score(spec, model, target))
        found[day] = {"value": value[spec.primary_metric], "rows": len(rows)}
        del model
    return found if found else {}


def ceiling_scores(spec, scenarios, days: list[dt.date], rows: int, seed: int) -> dict:
    """Per day: the metric of the simulator's own truth (probability / mean) as the score."""
    from loopline.core.metrics import metrics
    from loopline.dev.simulate import expected_target

    found = {}
    for day in days:
        truth = expected_target(
            day, (day - START).days, rows=rows, seed=seed, scenarios=scenarios, model=spec.name
        )
        value = metrics(spec, truth["label"].to_numpy(), truth["expected"].to_numpy())
        found[day] = value[spec.primary_metric]
    return found


def promotion_checks(spec, result: dict) -> list[dict]:
    """Each promotion judged on live data: the new champion and the one it replaced, scored on
    the same labelled rows of the days the new one served (pooled)."""
    import pandas as pd
    from loopline.adapters import model_store
    from loopline.core.columns import LABEL
    from loopline.core.features import input_columns
    from loopline.core.metrics import gain, metrics
    from loopline.core.training import score
    from loopline.steps.published import read_labelled

    events, scored = result["events"], result["scored"].set_index("partition_date").version
    found = []
    for e in events[(events.event == "promoted") & events.previous_champion.notna()].itertuples():
        days = [d for d, v in scored.items() if v == e.version]
        rows = [read_labelled(spec, d, d, input_columns(spec)) for d in days]
        rows = [r for r in rows if len(r)]
        if not rows:
            continue
        frame = pd.concat(rows, ignore_index=True)
        y = frame[LABEL].to_numpy()
        values = {}
        for version in (e.version, e.previous_champion):
            model = model_store.store().load_version(spec.name, version)
            values[version] = metrics(spec, y, score(spec, model, frame))[spec.primary_metric]
        new, old = values[e.version], values[e.previous_champion]
        found.append(
            {
                "version": int(e.version),
                "previous": int(e.previous_champion),
                "days": len(rows),
                "new": new,
                "old": old,
                "gain": gain(spec.primary_metric, new, old),
            }
        )
    return found


def measure(result: dict, args) -> dict:
    """The run as JSON: per day the served version and metric, the oracle and the ceiling."""
    spec, scenario = result["spec"], result["scenario"]
    delay = spec.labels.delay_days
    scored = result["scored"].set_index("partition_date").version
    perf = result["performance"]
    days = [d for d in scored.index if d >= START + dt.timedelta(days=SEEDED)]
    started = time.monotonic()
    oracle = oracle_scores(spec, scenario, days, delay, args.seed)
    ceiling = ceiling_scores(spec, scenario, days, args.rows, args.seed)
    per_day = []
    for day in days:
        version = int(scored[day])
        found = perf[(perf.partition_date == day) & (perf.model_version == version)]
        value = found.value.iloc[0] if len(found) else None
        guess = result["estimates"].get((day, version))
        per_day.append(
            {
                "day": day.isoformat(),
                "version": version,
                "served": None if value is None or value != value else float(value),
                "estimated": [guess.value, guess.low, guess.high] if guess else None,
                "oracle": oracle.get(day, {}).get("value"),
                "oracle_rows": oracle.get(day, {}).get("rows"),
                "ceiling": ceiling.get(day),
            }
        )
    decisions, events, drift = result["decisions"], result["events"], result["drift"]
    return {
        "model": spec.name,
        "scenario": args.scenario,
        "seed": args.seed,
        "rows": args.rows,
        "metric": spec.primary_metric,
        "changes": [d.isoformat() for d in change_days(scenario)],
        "days": per_day,
        "drift_days": [d.isoformat() for d in drift[drift.dataset_drift].partition_date],
        "decisions": [
            {"day": d.isoformat(), "source": s, "triggered": bool(t), "reason": r}
            for d, s, t, r in zip(
                decisions.partition_date,
                decisions.source,
                decisions.triggered,
                decisions.reason,
                strict=True,
            )
        ],
        "events": [
            {"event": e, "version": int(v), "reasons": list(r)}
            for e, v, r in zip(events.event, events.version, events.reasons, strict=True)
        ],
        "promotions_live": promotion_checks(spec, result),
        "oracle_seconds": round(time.monotonic() - started, 1),
    }


# --- summaries ----------------------------------------------------------------------------------


def _better(metric: str, a: float, b: float) -> float:
    """How much better a is than b (positive = better), as the gate counts it."""
    from loopline.core.metrics import gain

    return gain(metric, a, b)


def _close(metric: str, served: float, oracle: float) -> bool:
    if metric == "rmse":
        return served <= RECOVERED["rmse"] * oracle
    return served >= oracle - RECOVERED[metric]


def summarise(run: dict) -> dict:
    metric, changes = run["metric"], [dt.date.fromisoformat(c) for c in run["changes"]]
    days = run["days"]
    first = changes[0] if changes else None
    both = [d for d in days if d["served"] is not None and d["oracle"] is not None]
    triggered = [d for d in run["decisions"] if d["triggered"]]
    before = [d for d in run["decisions"] if first is None or d["day"] < first.isoformat()]
    early_drift = [d for d in run["drift_days"] if first is None or d < first.isoformat()]
    out = {
        "run": f"{run['model']} {run['scenario']} seed {run['seed']}",
        "triggered": len(triggered),
        "false_alarms": len(early_drift) + sum(d["triggered"] for d in before),
        "promotions": sum(e["event"] == "promoted" for e in run["events"]),
        "not_better_live": sum(p["gain"] <= 0 for p in run.get("promotions_live", [])),
        "served_mean": _mean([d["served"] for d in days if d["served"] is not None]),
    }
    out |= estimate_error(days, first)
    if first is None:
        return out
    after = [d for d in both if d["day"] >= first.isoformat()]
    settled = first + dt.timedelta(days=SETTLED_AFTER)
    late = [d for d in after if d["day"] >= settled.isoformat()]
    recovered = None
    for i, d in enumerate(after):
        if all(_close(metric, x["served"], x["oracle"]) for x in after[i:]):
            recovered = (dt.date.fromisoformat(d["day"]) - first).days
            break
    served_late = _mean([d["served"] for d in late])
    oracle_late = _mean([d["oracle"] for d in late])
    out |= {
        "days_to_recover": recovered,
        "gap_after_change": _mean([_better(metric, d["oracle"], d["served"]) for d in after]),
        "served_late": served_late,
        "oracle_late": oracle_late,
        "gap_late": _better(metric, oracle_late, served_late) if late else None,
        "ceiling_late": _mean([d["ceiling"] for d in days if d["day"] >= settled.isoformat()]),
    }
    if metric == "rmse":
        window = [
            d
            for d in both
            if (first + dt.timedelta(days=2)).isoformat()
            <= d["day"]
            <= (first + dt.timedelta(days=8)).isoformat()
        ]
        served, oracle = _mean([d["served"] for d in window]), _mean([d["oracle"] for d in window])
        out["error_ratio_days_3_to_9"] = served / oracle if window else None
    return out


def estimate_error(days: list[dict], first: dt.date | None) -> dict:
    """How far the estimate before the labels (CBPE) was from the realized metric of the served
    version, before and after the change, and how often the realized value was in its band."""
    out = {}
    for name, keep in (
        ("before", lambda d: first is None or d < first.isoformat()),
        ("after", lambda d: first is not None and d >= first.isoformat()),
    ):
        pairs = [
            (d["estimated"], d["served"])
            for d in days
            if keep(d["day"])
            and d.get("estimated")
            and d["estimated"][0] is not None
            and d["served"] is not None
        ]
        if pairs:
            out[f"estimate_error_{name}"] = _mean([abs(e[0] - s) for e, s in pairs])
            inside = [e[1] is not None and e[1] <= s <= e[2] for e, s in pairs]
            out[f"estimate_in_band_{name}"] = sum(inside) / len(inside)
    return out


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def print_per_day(run: dict) -> None:
    changes = set(run["changes"])
    print(f"\n{run['model']} {run['scenario']} seed {run['seed']}: realized {run['metric']}")
    print(
        f"  {'day':<12}{'served':>12}{'estimated':>11}{'oracle':>10}{'(rows)':>8}"
        f"{'ceiling':>10}  triggers"
    )
    triggers = {}
    for d in run["decisions"]:
        if d["triggered"]:
            triggers.setdefault(d["day"], []).append(d["source"])
    for d in run["days"]:
        mark = "  <- change" if d["day"] in changes else ""
        estimated = _fmt((d.get("estimated") or [None])[0])
        print(
            f"  {d['day']:<12}{'v' + str(d['version']) + ' ' + _fmt(d['served']):>12}"
            f"{estimated:>11}{_fmt(d['oracle']):>10}{_fmt(d['oracle_rows']):>8}"
            f"{_fmt(d['ceiling']):>10}  {','.join(triggers.get(d['day'], []))}{mark}"
        )
    for p in run.get("promotions_live", []):
        print(
            f"  v{p['version']} over v{p['previous']} on the {p['days']} day(s) it served: "
            f"{_fmt(p['new'])} vs {_fmt(p['old'])} (gain {p['gain']:+.4f})"
        )


def print_table(summaries: list[dict]) -> None:
    keys = [
        "days_to_recover",
        "gap_after_change",
        "served_late",
        "oracle_late",
        "gap_late",
        "ceiling_late",
        "error_ratio_days_3_to_9",
        "triggered",
        "promotions",
        "not_better_live",
        "false_alarms",
        "estimate_error_before",
        "estimate_error_after",
        "estimate_in_band_after",
    ]
    shown = [k for k in keys if any(k in s for s in summaries)]
    print("\n" + " | ".join(["run", *shown]))
    for s in summaries:
        print(" | ".join([s["run"], *[_fmt(s.get(k), 3) for k in shown]]))
    groups: dict[str, list[dict]] = {}
    for s in summaries:
        groups.setdefault(s["run"].rsplit(" seed ", 1)[0], []).append(s)
    print("\nspread over seeds (min .. max)")
    for name, group in groups.items():
        parts = []
        for key in shown:
            values = [g[key] for g in group if g.get(key) is not None]
            if values:
                parts.append(f"{key} {_fmt(min(values), 3)}..{_fmt(max(values), 3)}")
            elif any(key in g for g in group):
                parts.append(f"{key} never")
        print(f"  {name} ({len(group)} seeds): " + "; ".join(parts))


# --- one run in its own process, many runs from the parent ------------------------------------


def run_one(args) -> None:
    with tempfile.TemporaryDirectory(prefix="loopline-replay-") as folder:
        tmp = Path(folder)
        write_spec(tmp, args.model, args.shadow_days, args.no_triggers)
        prepare(tmp)
        from loopline.dev.pgserver import LocalPostgres

        server = LocalPostgres(tmp / "postgres", durable=False)
        server.start()
        os.environ.update(server.environment())
        try:
            from loopline.adapters import warehouse

            warehouse.upgrade()
            started = time.monotonic()
            result = replay(args, args.model)
            measured = measure(result, args)
            measured["replay_seconds"] = round(time.monotonic() - started, 1)
            Path(args.json).write_text(json.dumps(measured, indent=1))
            if args.plot:
                plot(result, measured, args.plot)
        finally:
            server.stop()


def child_command(args, model: str, scenario: str, days: int, rows: int, seed: int, out: Path):
    return [
        sys.executable,
        __file__,
        "--one",
        "--model",
        model,
        "--scenario",
        scenario,
        "--days",
        str(days),
        "--rows",
        str(rows),
        "--seeds",
        str(seed),
        "--shadow-days",
        str(args.shadow_days),
        *(["--schedule"] if args.schedule else []),
        *(["--no-triggers"] if args.no_triggers else []),
        *[arg for day in args.train_at for arg in ("--train-at", str(day))],
        *(["--plot", args.plot] if args.plot else []),
        "--json",
        str(out),
    ]


def run_many(args, plan: list[tuple]) -> list[dict]:
    """Each run in a fresh process (``--jobs`` at a time); their logs under the output folder."""
    folder = Path(args.out or tempfile.mkdtemp(prefix="loopline-closed-loop-"))
    folder.mkdir(parents=True, exist_ok=True)

    def one(item):
        model, scenario, days, rows, seed = item
        name = f"{model}-{re.sub('[^A-Za-z0-9.=]+', '_', scenario)}-seed{seed}"
        out = folder / f"{name}.json"
        if out.exists() and args.reuse:
            return json.loads(out.read_text())
        command = child_command(args, model, scenario, days, rows, seed, out)
        started = time.monotonic()
        with open(folder / f"{name}.log", "w") as log:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT)
        print(
            f"  {name}: {'ok' if done.returncode == 0 else 'FAILED'} "
            f"({time.monotonic() - started:.0f} s; log {folder / (name + '.log')})",
            flush=True,
        )
        return json.loads(out.read_text()) if done.returncode == 0 else None

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = [r for r in pool.map(one, plan) if r is not None]
    print(f"  results in {folder}")
    return runs


def plot(result: dict, measured: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    drift, perf, decisions = result["drift"], result["performance"], result["decisions"]
    changes = change_days(result["scenario"])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.bar(
        drift.partition_date,
        drift.drifted_share,
        color=["tab:red" if d else "tab:grey" for d in drift.dataset_drift],
    )
    top.set_ylabel("drifted share\n(weighted)")
    for version, part in perf.groupby("model_version"):
        bottom.plot(part.partition_date, part.value, "o-", label=f"v{version}")
    days = pd.DataFrame(measured["days"])
    days["day"] = pd.to_datetime(days["day"]).dt.date
    bottom.plot(days.day, days.oracle, "k:", label="oracle")
    bottom.plot(days.day, days.ceiling, color="tab:grey", linewidth=1, label="ceiling")
    bottom.set_ylabel(f"realized {result['spec'].primary_metric}")
    bottom.legend(title="model version", ncol=2, fontsize="small")
    for axis in (top, bottom):
        for change in changes:
            axis.axvline(change, color="black", linestyle="--")
        for day in decisions[decisions.triggered].partition_date:
            axis.axvline(day, color="tab:orange")
    kinds = "+".join(s.kind for s in result["scenario"])
    top.set_title(f"{kinds}: change (dashed), retrain triggers (orange)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def compare_shadow(args) -> None:
    """The scenario twice: offline gate alone, then with a shadow period of N labelled days."""
    found = {}
    seed = args.seeds[0]
    for days in (0, args.compare_shadow):
        args.shadow_days = days
        found[days] = run_many(args, [(args.model, args.scenario, args.days, args.rows, seed)])[0]
    without, with_shadow = found[0], found[args.compare_shadow]
    print(
        f"\nrealized {without['metric']} of the served model per day (changes {without['changes']})"
    )
    print(f"  {'day':<12}{'offline gate only':>22}{f'shadow {args.compare_shadow} days':>22}")
    by_day = {r["day"]: r for r in with_shadow["days"]}
    for row in without["days"]:
        print(f"  {row['day']:<12}{_cell(row):>22}{_cell(by_day.get(row['day'], {})):>22}")
    first = without["changes"][0] if without["changes"] else ""
    for name, run in (("offline gate only", without), ("with shadow", with_shadow)):
        after = [r["served"] for r in run["days"] if r["day"] >= first and r["served"]]
        events = [f"{e['event']} v{e['version']}" for e in run["events"]]
        print(f"  {name}: mean after the change {_fmt(_mean(after))}; events {events}")


def _cell(row: dict) -> str:
    if not row or row.get("served") is None:
        return f"v{row.get('version', '-')} -"
    return f"v{row['version']} {row['served']:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", action="store_true", help="every scenario of the issue")
    parser.add_argument("--model", default="churn", choices=["churn", "spend"])
    parser.add_argument("--scenario", default="concept_drift:start=14,strength=1.5")
    parser.add_argument("--days", type=int, default=34)
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--seeds", default="8,9,10", help="comma-separated seeds")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each 1 process)")
    parser.add_argument("--out", help="folder for the runs' JSON and logs")
    parser.add_argument("--reuse", action="store_true", help="reuse runs found in --out")
    parser.add_argument("--per-day", action="store_true", help="print every run day by day")
    parser.add_argument("--plot", help="write a PNG of the (single) run here")
    parser.add_argument(
        "--schedule", action="store_true", help="also the spec's scheduled trainings"
    )
    parser.add_argument("--shadow-days", type=int, default=0, help="shadow.required_days")
    parser.add_argument(
        "--compare-shadow",
        type=int,
        default=0,
        metavar="N",
        help="replay twice: offline gate only, and a shadow period of N days",
    )
    parser.add_argument(
        "--train-at",
        type=int,
        action="append",
        default=[],
        help="run a training by hand on this day index; repeatable",
    )
    parser.add_argument(
        "--no-triggers",
        action="store_true",
        help="no triggered retrainings: only the --train-at ones",
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.seeds = [int(s) for s in str(args.seeds).split(",")]
    if args.one:
        args.seed = args.seeds[0]
        run_one(args)
        return
    if args.compare_shadow:
        compare_shadow(args)
        return
    if args.suite:
        plan = [(m, s, d, r, seed) for m, s, d, r in SUITE for seed in args.seeds]
    else:
        plan = [(args.model, args.scenario, args.days, args.rows, seed) for seed in args.seeds]
    runs = run_many(args, plan)
    if args.per_day:
        for run in runs:
            print_per_day(run)
    print_table([summarise(run) for run in runs])


if __name__ == "__main__":
    main()
