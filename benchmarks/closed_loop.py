"""Closed-loop report (run by hand): replay a scenario through the real DAGs and measure the loop.

    .venv/bin/python benchmarks/closed_loop.py --scenario covariate_shift:start=16 --days 34
    .venv/bin/python benchmarks/closed_loop.py --scenario concept_drift:start=14,strength=1.5 \
        --rows 1500 --plot docs/closed_loop.png

On a throwaway PostgreSQL server, MLflow store and Airflow metadata DB, with churn's spec on short
windows (2-day drift window, 2-day label delay, 4-day cool-down), it ingests ten days, trains the
first champion, then runs ``churn_daily`` and ``churn_labels`` through ``dag.test()`` day by day.
Trainings the retrain trigger queues are run at once (as the scheduler would) with their conf.
It prints the detection delay in days, false alarms before the scenario starts, retrains and
promotions, and the champion's realized metric before the change, after it, and after the
first retrained promotion; with --plot it draws the run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from loopline.config import airflow_environment
from loopline.simulate import SHORT_WINDOWS

REPO = Path(__file__).resolve().parents[1]
START = dt.date(2026, 1, 1)
SEEDED = 10


def prepare(tmp: Path) -> None:
    import yaml

    specs = tmp / "specs"
    specs.mkdir()
    spec = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text()) | SHORT_WINDOWS
    (specs / "churn.yaml").write_text(yaml.safe_dump(spec))
    os.environ.update(
        {
            "LOOPLINE_HOME": str(tmp),
            "LOOPLINE_SPECS_DIR": str(specs),
            "LOOPLINE_LANDING": str(tmp / "landing"),
            "LOOPLINE_LABELS": str(tmp / "labels"),
            **airflow_environment(tmp / "airflow"),
            "LOOPLINE_RETRY_DELAY_SECONDS": "1",
        }
    )
    (tmp / "airflow").mkdir()
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)


def dags():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(REPO / "dags"))


def run_queued_trainings(bag) -> list[dict]:
    """The scheduler's part: run each queued training with its conf, mark the queued run done."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        queued = [
            (r.run_id, dict(r.conf or {}))
            for r in session.query(DagRun).filter(
                DagRun.dag_id == "churn_train", DagRun.state == DagRunState.QUEUED
            )
        ]
    for run_id, conf in queued:
        bag.get_dag("churn_train").test(run_conf=conf)
        with create_session() as session:
            session.query(DagRun).filter(DagRun.run_id == run_id).update(
                {DagRun.state: DagRunState.SUCCESS}
            )
    return [conf for _, conf in queued]


def replay(scenario: str, days: int, rows: int, seed: int) -> dict:
    from loopline import registry, warehouse
    from loopline.ingest import ingest_day
    from loopline.simulate import Scenario, simulate
    from loopline.spec import get_spec
    from loopline.validate import validate_day

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
        day = START + dt.timedelta(days=i)
        ingest_day(spec, day, run_id="seed")
        validate_day(spec, day, run_id="seed")
    bag = dags()
    bag.get_dag("churn_train").test(
        run_conf={"end_date": str(START + dt.timedelta(days=SEEDED)), "reason": "first champion"}
    )
    for i in range(SEEDED, days):
        day = (START + dt.timedelta(days=i)).isoformat()
        bag.get_dag("churn_daily").test(run_conf={"partition_date": day})
        bag.get_dag("churn_labels").test(run_conf={"partition_date": day})
        for conf in run_queued_trainings(bag):
            version = registry.champion_version("churn").version
            print(f"  day {i}: retrained ({conf['reason'][:70]}...), champion now v{version}")
        print(f"  day {i} done", flush=True)
    q = warehouse.query
    return {
        "scenario": parsed,
        "drift": q(
            "SELECT partition_date, dataset_drift, drifted_share FROM warehouse.drift_reports "
            "WHERE model = 'churn' ORDER BY 1"
        ),
        "decisions": q(
            "SELECT partition_date, source, triggered, reason "
            "FROM warehouse.retrain_decisions WHERE model = 'churn' ORDER BY 1"
        ),
        "performance": q(
            "SELECT p.partition_date, p.model_version, p.value FROM "
            "warehouse.model_performance p ORDER BY 1, 2"
        ),
        "events": q("SELECT created_at, event, version FROM warehouse.model_events ORDER BY id"),
        "scored": q(
            "SELECT partition_date, max(model_version) AS version "
            "FROM warehouse.predictions GROUP BY 1 ORDER BY 1"
        ),
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="covariate_shift:start=16")
    parser.add_argument("--days", type=int, default=34)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--plot", help="write a PNG of the run here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loopline-replay-") as folder:
        tmp = Path(folder)
        prepare(tmp)
        from loopline.pgserver import LocalPostgres

        server = LocalPostgres(tmp / "postgres")
        server.start()
        os.environ.update(server.environment())
        try:
            from loopline import warehouse

            warehouse.upgrade()
            result = replay(args.scenario, args.days, args.rows, args.seed)
            print("\nclosed-loop report")
            report(result)
            if args.plot:
                plot(result, args.plot)
                print(f"  plot: {args.plot}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
