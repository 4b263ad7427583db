"""Cluster benchmark (run by hand, not in CI): one simulated day of N churn rows through the daily
DAG on the loopback Celery cluster (``loopline.dev.cluster``: Redis broker, moto S3 holding the
lake and landing zone, the MLflow server, no folder shared between workers), once with one
worker and once with two, stage by stage from the task instances Airflow recorded.

    .venv/bin/python benchmarks/cluster.py --rows 1000000 --shards 4
    .venv/bin/python benchmarks/cluster.py --rows 4000000 --shards 8 --workers 1,2

Per stage: wall time (first start to last end of its tasks) and task-seconds (the sum of its
tasks' durations). Per run: the workers' CPU seconds per 1,000 rows (every process under each
worker, reaped task processes included), which separates work from contention on a machine with
fewer cores than task slots; the broker's share, as the wait from *queued* to *running* of each
shard task; and S3's share, as the time this process takes to read one shard's landing file and
write as many bytes back (the I/O floor a shard pays on the S3 API before any work).

Each worker runs two task slots (``AIRFLOW__CELERY__WORKER_CONCURRENCY``): one worker is 2 slots,
two are 4. On a 2-core machine, two workers measure contention, not scale-out: read the CPU
seconds per row and the task-seconds beside the wall times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 3, 1)
HISTORY_DAYS, HISTORY_ROWS = 8, 4000
STAGES = {
    "ingest": ["ingest.plan_day"],
    "validate": ["validate.validate_shard"],
    "publish": ["validate.publish"],
    "score": ["predict.plan_scoring", "predict.score_shard"],
    "swap": ["predict.swap"],
    "drift": ["monitor.estimate_performance", "monitor.drift_check", "monitor.retrain_trigger"],
}
SHARD_TASKS = ("validate.validate_shard", "predict.score_shard")


def write_spec(folder: Path, shard_rows: int) -> None:
    spec = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    spec.update(
        schedule={"cron": "0 2 * * *", "start_date": "2030-01-01", "catchup": False},
        training={
            "cron": None,
            "window_days": 10,
            "min_days": 6,
            "validation_days": 2,
            "holdout_days": 2,
        },
        labels={"delay_days": 0},
        processing={"batch_rows": 250_000, "shard_rows": shard_rows},
        drift={"window_days": 1, "min_rows": 500, "cooldown_days": 30},
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "churn.yaml").write_text(yaml.safe_dump(spec))


def write_day(day: dt.date, index: int, rows: int, files: int, *, labels: bool) -> list[str]:
    """A simulated day into the cluster's S3 landing zone, cut into ``files`` files, chunk by
    chunk (a day of any size: ids unique across the day, as ``loopline simulate`` writes)."""
    import pyarrow as pa
    from loopline.adapters import lake, storage
    from loopline.dev.simulate import generate_chunks

    paths = [
        f"{os.environ['LOOPLINE_LANDING']}/churn/date={day}/part-{part:03d}.parquet"
        for part in range(files)
    ]
    answers, writers = [], None
    for frame, label in generate_chunks(day, index, rows=rows, seed=11):
        if writers is None:
            schema = pa.Table.from_pandas(frame, preserve_index=False).schema
            writers = [lake.ParquetPart(path, schema).__enter__() for path in paths]
        for part, writer in enumerate(writers):  # every file a slice of every chunk
            writer.write_frame(frame.iloc[part::files])
        if labels:
            answers.append(
                pd.DataFrame(
                    {
                        "customer_id": frame["customer_id"],
                        "partition_date": str(day),
                        "churned": label,
                    }
                )
            )
    for writer in writers:
        writer.__exit__(None, None, None)
    if labels:
        storage.write_frame(
            pd.concat(answers, ignore_index=True),
            f"{os.environ['LOOPLINE_LABELS']}/churn/date={day}/labels-{day}.parquet",
        )
    return paths


def seed_champion() -> None:
    """History days validated and a champion trained in this process, against the cluster's
    S3 and MLflow server (the benchmark measures the big day, not these)."""
    from loopline.adapters.specs import get_spec
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.labels import sync_labels
    from loopline.steps.promote import run_gate
    from loopline.steps.train import run_training
    from loopline.steps.validate import validate_day

    spec = get_spec("churn")
    start = DAY - dt.timedelta(days=HISTORY_DAYS)
    for i in range(HISTORY_DAYS):
        write_day(start + dt.timedelta(days=i), i, HISTORY_ROWS, 1, labels=True)
        validate_day(spec, start + dt.timedelta(days=i), run_id="bench-history")
    sync_labels(spec, DAY, run_id="bench")
    trained = run_training(spec, DAY - dt.timedelta(days=1), dag_run_id="bench")
    run_gate(spec, run_evaluation(spec, trained.mlflow_run_id).version, dag_run_id="bench")


def cpu_seconds(processes) -> float:
    """CPU of every process under the workers' guards, reaped children included."""
    import psutil

    total = 0.0
    for process in processes:
        try:
            tree = [psutil.Process(process.pid)]
            tree += tree[0].children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for p in tree:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def s3_floor(path: str) -> float:
    """Read one shard's landing file and write as many bytes back to the lake bucket."""
    from loopline.adapters import storage

    started = time.perf_counter()
    data = storage.read_bytes(path)
    scratch = f"{os.environ['LOOPLINE_LAKE']}/_bench/{Path(path).name}"
    storage.write_bytes(scratch, data)
    elapsed = time.perf_counter() - started
    storage.delete(scratch)
    return elapsed


def when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def stage_figures(tis: list[dict]) -> dict[str, tuple[float, float, int]]:
    """Per stage: wall seconds, task-seconds, number of task instances."""
    figures = {}
    for stage, task_ids in STAGES.items():
        mine = [t for t in tis if t["task_id"] in task_ids and t["start_date"] and t["end_date"]]
        if not mine:
            continue
        wall = max(when(t["end_date"]) for t in mine) - min(when(t["start_date"]) for t in mine)
        busy = sum(t["duration"] or 0.0 for t in mine)
        figures[stage] = (wall.total_seconds(), busy, len(mine))
    return figures


def run_once(workers: int, rows: int, shards: int) -> dict:
    from loopline.adapters import warehouse
    from loopline.dev.cluster import LocalCluster, free_port
    from loopline.dev.pgserver import LocalPostgres

    with tempfile.TemporaryDirectory(prefix="loopline-cluster-bench-") as folder:
        root = Path(folder)
        write_spec(root / "specs", max(rows // shards, 1000))
        server = LocalPostgres(root / "postgres")
        server.start()
        cluster = LocalCluster(
            root / "cluster",
            workers=workers,
            port=free_port(),
            server=server,
            overrides={"LOOPLINE_SPECS_DIR": str(root / "specs")},
        )
        saved = dict(os.environ)
        try:
            with cluster.running():
                os.environ.update(server.environment())
                os.environ.update(cluster.loopline_environment())
                warehouse.upgrade()
                airflow = cluster.airflow
                airflow.wait_healthy()
                airflow.wait_dags(["churn_daily"])
                print(
                    f"  {workers} worker(s): a champion from {HISTORY_DAYS} small days ...",
                    flush=True,
                )
                seed_champion()
                paths = write_day(DAY, HISTORY_DAYS, rows, shards, labels=False)
                floor = statistics.median(s3_floor(p) for p in paths[:3])
                airflow.set_paused("churn_daily", False)
                workers_now = [airflow.processes[f"worker{i}"] for i in range(1, workers + 1)]
                cpu_before = cpu_seconds(workers_now)
                started = time.perf_counter()
                run = airflow.trigger("churn_daily", {"partition_date": str(DAY)})
                while (
                    state := airflow.api("GET", f"dags/churn_daily/dagRuns/{run}")["state"]
                ) not in ("success", "failed"):
                    airflow.check_alive()
                    time.sleep(1)
                wall = time.perf_counter() - started
                cpu = cpu_seconds(workers_now) - cpu_before
                tis = airflow.api(
                    "GET", f"dags/churn_daily/dagRuns/{run}/taskInstances?limit=1000"
                )["task_instances"]
                shard_tis = [t for t in tis if t["task_id"] in SHARD_TASKS and t["queued_when"]]
                waits = [
                    (when(t["start_date"]) - when(t["queued_when"])).total_seconds()
                    for t in shard_tis
                ]
                durations = [t["duration"] for t in tis if t["task_id"] == SHARD_TASKS[0]]
                return {
                    "workers": workers,
                    "state": state,
                    "wall": wall,
                    "cpu": cpu,
                    "stages": stage_figures(tis),
                    "hosts": sorted({t["hostname"] for t in shard_tis}),
                    "queue_wait": statistics.median(waits),
                    "s3_floor": floor,
                    "validate_shard": statistics.median(durations),
                }
        finally:
            os.environ.clear()
            os.environ.update(saved)
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the benchmark day")
    parser.add_argument("--shards", type=int, default=4, help="files (and shards) of the day")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    print(
        f"one day of {args.rows:,} rows in {args.shards} shards on the loopback cluster; "
        f"{os.cpu_count()} cores, 2 task slots per worker",
        flush=True,
    )
    results = [run_once(n, args.rows, args.shards) for n in counts]
    base = results[0]
    print("\nstage      " + "".join(f"| {r['workers']} worker(s): wall  task-s " for r in results))
    for stage in STAGES:
        cells = []
        for r in results:
            wall, busy, n = r["stages"].get(stage, (float("nan"), float("nan"), 0))
            cells.append(f"| {wall:>16.1f} s {busy:>6.1f} ")
        print(f"{stage:<11}" + "".join(cells))
    for r in results:
        ratio = r["wall"] / base["wall"]
        print(
            f"\n{r['workers']} worker(s): {r['state']}, run {r['wall']:.1f} s "
            f"({ratio:.2f}x the {base['workers']}-worker run), "
            f"workers' CPU {r['cpu']:.1f} s = {1000 * r['cpu'] / args.rows:.3f} CPU ms/row, "
            f"shards on {', '.join(r['hosts'])}\n"
            f"  broker: median wait queued -> running of a shard task {r['queue_wait']:.2f} s; "
            f"S3: one shard's bytes read + written {r['s3_floor']:.2f} s "
            f"(median validate shard {r['validate_shard']:.1f} s: "
            f"{100 * r['s3_floor'] / r['validate_shard']:.0f}%)"
        )
    sys.exit(0 if all(r["state"] == "success" for r in results) else 1)


if __name__ == "__main__":
    main()
