"""Closed-loop report (run by hand): replay a scenario through the real DAGs and measure the loop.

    .venv/bin/python benchmarks/closed_loop.py --scenario covariate_shift:start=16 --days 34
    .venv/bin/python benchmarks/closed_loop.py --scenario concept_drift:start=14,strength=1.5 \
        --rows 1500 --plot docs/closed_loop.png
    .venv/bin/python benchmarks/closed_loop.py \
        --scenario concept_drift:start=12,strength=2,days=12 \
        --train-at 24 --no-triggers --compare-shadow 3
    .venv/bin/python benchmarks/closed_loop.py --scenario concept_drift:start=14,strength=2,days=6 \
        --rows 1500 --days 32 --compare-shadow 3

On a throwaway PostgreSQL server, MLflow store and Airflow metadata DB, with churn's spec on short
windows (2-day drift window, 2-day label delay, 4-day cool-down), it ingests ten days, trains the
first champion, then runs ``churn_daily`` and ``churn_labels`` through ``dag.test()`` day by day.
Trainings the retrain trigger queues are run at once (as the scheduler would) with their conf.
It prints the detection delay in days, false alarms before the scenario starts, retrains and
promotions, and the champion's realized metric before the change, after it, and after the
first retrained promotion; with --plot it draws the run. With --compare-shadow N it replays the
scenario twice, promoting on the offline gate alone and with a shadow period of N labelled days,
and prints the realized metric of the served model per day side by side.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from loopline.adapters.settings import airflow_environment
from loopline.dev.simulate import SHORT_WINDOWS

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2026, 1, 1)
SEEDED = 10


def prepare(tmp: Path, shadow_days: int = 0, no_triggers: bool = False) -> None:
    import yaml

    specs = tmp / "specs"
    specs.mkdir()
    spec = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text()) | SHORT_WINDOWS
    spec["shadow"] = {"required_days": shadow_days, "window_days": max(shadow_days, 1)}
    if no_triggers:  # only the scheduled trainings of --train-at
        spec["drift"] = {**spec["drift"], "min_new_labels": 10**9}
    (specs / "churn.yaml").write_text(yaml.safe_dump(spec))
    os.environ.update(
        {
            "LOOPLINE_HOME": str(tmp),
            "LOOPLINE_SPECS_DIR": str(specs),
            "LOOPLINE_LANDING": str(tmp / "landing"),
            "LOOPLINE_LABELS": str(tmp / "labels"),
            "LOOPLINE_LAKE": str(tmp / "lake"),
            **airflow_environment(tmp / "airflow"),
            "LOOPLINE_RETRY_DELAY_SECONDS": "1",
        }
    )
    (tmp / "airflow").mkdir()
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)


def replay(scenario: str, days: int, rows: int, seed: int, train_at: tuple = ()) -> dict:
    """Ten days validated, a first champion, then day by day as ``loopline replay`` does."""
    from loopline.adapters import model_store, warehouse
    from loopline.adapters.specs import get_spec
    from loopline.airflow.runner import Runner
    from loopline.dev.simulate import Scenario, simulate
    from loopline.steps.validate import validate_day

    parsed = Scenario.parse(scenario)
    simulate(
        landing=os.environ["LOOPLINE_LANDING"],
        labels=os.environ["LOOPLINE_LABELS"],
        start=START,
        days=days,
        rows_per_day=rows,
        seed=seed,
        scenarios=[parsed],
        label_delay_days=SHORT_WINDOWS["labels"]["delay_days"],
    )
    spec = get_spec("churn")
    for i in range(SEEDED):
        validate_day(spec, START + dt.timedelta(days=i), run_id="seed")
    runner = Runner()
    first = {"end_date": str(START + dt.timedelta(days=SEEDED)), "reason": "first champion"}
    print(runner.run("churn_train", first, first["end_date"]).line())
    for i in range(SEEDED, days):
        day = (START + dt.timedelta(days=i)).isoformat()
        if i in train_at:  # a scheduled training, with the data of this day
            conf = {"end_date": day, "reason": "scheduled (--train-at)"}
            print(runner.run("churn_train", conf, day).line(), flush=True)
        for kind in ("daily", "labels"):
            outcome = runner.run(f"churn_{kind}", {"partition_date": day}, day)
            if not outcome.ok:
                print(outcome.line())
        for outcome in runner.run_queued_trainings("churn"):
            version = model_store.champion_version("churn").version
            print(f"  day {i}: retrained ({outcome.state}), champion now v{version}")
        print(f"  day {i} done", flush=True)
    return {
        "scenario": parsed,
        "drift": warehouse.drift_reports("churn"),
        "decisions": warehouse.retrain_decisions("churn"),
        "performance": warehouse.performance("churn"),
        "events": warehouse.model_events("churn"),
        "scored": warehouse.day_table("churn")[["partition_date", "version"]]
        .dropna()
        .astype({"version": int}),
    }


def report(result: dict) -> dict:
    import pandas as pd

    scenario = result["scenario"]
    change = START + dt.timedelta(days=scenario.start_day)
    drift, decisions = result["drift"], result["decisions"]
    flagged = drift[drift.dataset_drift]
    detected = flagged[flagged.partition_date >= change].partition_date.min()
    if decisions.triggered.any():
        first_trigger = decisions[decisions.triggered].partition_date.min()
    else:
        first_trigger = None
    early = decisions[decisions.triggered & (decisions.partition_date < change)]
    false_alarms = int((flagged.partition_date < change).sum()) + len(early)
    scored = result["scored"].set_index("partition_date").version
    perf = result["performance"].merge(scored.rename("champion").reset_index(), on="partition_date")
    perf = perf[perf.model_version == perf.champion]
    promoted = result["events"][result["events"].event == "promoted"].version.tolist()
    # The first day a retrained version scored: realized metrics before / after it.
    first_new = scored[scored > 1].index.min() if (scored > 1).any() else dt.date.max
    before = perf[perf.partition_date < change].value.mean()
    during = perf[(perf.partition_date >= change) & (perf.partition_date < first_new)].value.mean()
    after = perf[perf.partition_date >= first_new].value.mean()
    delay = (detected - change).days if not pd.isna(detected) else None
    trigger = (
        f"{first_trigger} ({(first_trigger - change).days:+d} days)" if first_trigger else None
    )
    summary = {
        "scenario": f"{scenario.kind} from {change} (strength {scenario.strength})",
        "detection delay (days, feature-drift verdict)": delay,
        "first retrain trigger": trigger,
        "false alarms before the change (verdicts + triggers)": false_alarms,
        "retrains triggered": int(decisions.triggered.sum()),
        "suppressed decisions": int(decisions.reason.str.startswith("suppressed").sum()),
        "promotions": f"{len(promoted)} (versions {promoted})",
        "realized roc_auc before the change": round(before, 4),
        "realized roc_auc after it, old champion": round(during, 4),
        "realized roc_auc after the retrained promotion": round(after, 4),
    }
    for key, value in summary.items():
        print(f"  {key:<48} {value}")
    return summary


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drift, perf, decisions = result["drift"], result["performance"], result["decisions"]
    change = START + dt.timedelta(days=result["scenario"].start_day)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    top.bar(
        drift.partition_date,
        drift.drifted_share,
        color=["tab:red" if d else "tab:grey" for d in drift.dataset_drift],
    )
    top.set_ylabel("drifted share\n(weighted)")
    for version, part in perf.groupby("model_version"):
        bottom.plot(part.partition_date, part.value, "o-", label=f"v{version}")
    bottom.set_ylabel("realized ROC-AUC")
    bottom.legend(title="model version")
    for axis in (top, bottom):
        axis.axvline(change, color="black", linestyle="--")
        for day in decisions[decisions.triggered].partition_date:
            axis.axvline(day, color="tab:orange")
    top.set_title(f"{result['scenario'].kind}: change (dashed), retrain triggers (orange)")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def served(result: dict) -> list[dict]:
    """Per scored day: the version that served it and its realized metric."""
    scored = result["scored"].set_index("partition_date").version
    perf = result["performance"]
    rows = []
    for day, version in scored.items():
        found = perf[(perf.partition_date == day) & (perf.model_version == version)]
        value = (
            float(found.value.iloc[0])
            if len(found) and found.value.iloc[0] == found.value.iloc[0]
            else None
        )
        rows.append({"day": str(day), "version": int(version), "value": value})
    return rows


def compare_shadow(args) -> None:
    """The scenario twice, in fresh processes: offline gate alone, then with a shadow period."""
    import json

    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for days in (0, args.compare_shadow):
            out = Path(tmp) / f"shadow-{days}.json"
            command = [
                sys.executable,
                __file__,
                *(["--no-triggers"] if args.no_triggers else []),
                *[arg for day in args.train_at for arg in ("--train-at", str(day))],
                "--scenario",
                args.scenario,
                "--days",
                str(args.days),
                "--rows",
                str(args.rows),
                "--seed",
                str(args.seed),
                "--shadow-days",
                str(days),
                "--json",
                str(out),
            ]
            subprocess.run(command, check=True)
            found[days] = json.loads(out.read_text())
    without, with_shadow = found[0], found[args.compare_shadow]
    change = START + dt.timedelta(days=scenario_start(args.scenario))
    print(f"\nrealized {without['metric']} of the served model per day (change {change})")
    print(f"  {'day':<12}{'offline gate only':>22}{f'shadow {args.compare_shadow} days':>22}")
    by_day = {r["day"]: r for r in with_shadow["served"]}
    for row in without["served"]:
        other = by_day.get(row["day"], {})
        print(f"  {row['day']:<12}{_cell(row):>22}{_cell(other):>22}")
    for name, run in (("offline gate only", without), ("with shadow", with_shadow)):
        after = [r["value"] for r in run["served"] if r["day"] >= str(change) and r["value"]]
        mean = sum(after) / len(after) if after else float("nan")
        print(f"  {name}: mean after the change {mean:.4f}; events {run['events']}")


def _cell(row: dict) -> str:
    if not row or row.get("value") is None:
        return f"v{row.get('version', '-')} -"
    return f"v{row['version']} {row['value']:.4f}"


def scenario_start(text: str) -> int:
    from loopline.dev.simulate import Scenario

    return Scenario.parse(text).start_day


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="covariate_shift:start=16")
    parser.add_argument("--days", type=int, default=34)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--plot", help="write a PNG of the run here")
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
        help="run a scheduled training on this day index; repeatable",
    )
    parser.add_argument(
        "--no-triggers",
        action="store_true",
        help="no triggered retrainings: only the --train-at ones",
    )
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compare_shadow:
        compare_shadow(args)
        return
    with tempfile.TemporaryDirectory(prefix="loopline-replay-") as folder:
        tmp = Path(folder)
        prepare(tmp, args.shadow_days, args.no_triggers)
        from loopline.dev.pgserver import LocalPostgres

        server = LocalPostgres(tmp / "postgres", durable=False)
        server.start()
        os.environ.update(server.environment())
        try:
            from loopline.adapters import warehouse

            warehouse.upgrade()
            result = replay(args.scenario, args.days, args.rows, args.seed, tuple(args.train_at))
            print("\nclosed-loop report")
            report(result)
            if args.json:
                import json

                events = result["events"]
                Path(args.json).write_text(
                    json.dumps(
                        {
                            "metric": "roc_auc",
                            "served": served(result),
                            "events": [
                                f"{e} v{v}"
                                for e, v in zip(events.event, events.version, strict=True)
                            ],
                        }
                    )
                )
            if args.plot:
                plot(result, args.plot)
                print(f"  plot: {args.plot}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
