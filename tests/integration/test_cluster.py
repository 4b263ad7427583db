"""Scale-out, run for real: the daily DAG's shards on a CeleryExecutor cluster with no shared
disk, on loopback (loopline.dev.cluster: a Redis broker, an S3-API server holding the lake,
landing zone and MLflow's artifacts, the MLflow tracking server over HTTP, Airflow's scheduler,
dag-processor, api-server and triggerer, two Celery workers with folders of their own).

One simulated day cut into four shards is validated, published, scored and swapped through
mapped tasks on both workers; every row read is clean or quarantined; the predictions equal,
row for row, a run of the same day through dag.test(); nothing of the day is written to a
local folder; a worker killed in the middle of a shard has that shard retried on the other
worker with no row lost or doubled; a training and a drift-triggered retraining run there too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .. import conftest
from ..conftest import CHURN_SPEC, SESSION_DIR, forget_models, free_port, run_day

# The first test also starts the cluster (Redis, S3, MLflow, Airflow, two workers): ~6 min on an
# idle 2-core machine, over the suite's 10-minute limit when the machine is shared.
pytestmark = pytest.mark.timeout(1500)

START = dt.date(2026, 3, 1)
ROWS = 4000
SHARDS = 4


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


@pytest.fixture(scope="module")
def cluster(warehouse_url, pg_server, airflow_db):
    from loopline.adapters import warehouse
    from loopline.dev.cluster import LocalCluster

    from ..conftest import empty_tables

    root = Path(os.path.realpath(SESSION_DIR)) / "cluster"
    specs = root / "specs"
    specs.mkdir(parents=True)
    spec = yaml.safe_load(CHURN_SPEC.read_text())
    spec.update(
        # no scheduled runs on the cluster: every run of the test is triggered
        schedule={"cron": "0 2 * * *", "start_date": "2030-01-01", "catchup": False},
        training={
            "cron": None,
            "window_days": 10,
            "min_days": 6,
            "validation_days": 2,
            "holdout_days": 2,
        },
        labels={"delay_days": 0, "performance_tolerance": 0.05},
        processing={"batch_rows": 1000, "shard_rows": 1000},
        drift={
            "window_days": 1,
            "min_rows": 300,
            "persistence_k": 1,
            "persistence_m": 1,
            "cooldown_days": 0,
            "min_new_labels": 0,
            "dataset_threshold": 0.1,
        },
    )
    (specs / "churn.yaml").write_text(yaml.safe_dump(spec))
    empty_tables(warehouse_url)
    forget_models("churn")
    # the workers of worker 1 pause at this point when a test asks (the kill case)
    pause = root / "pause-worker1"
    cluster = LocalCluster(
        root,
        workers=2,
        port=free_port(),
        server=pg_server,
        overrides={
            "LOOPLINE_SPECS_DIR": str(specs),
            "LOOPLINE_RETRY_DELAY_SECONDS": "1",
            # a lost worker's task is failed (and retried elsewhere) after 30 s, not 5 min
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "3",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        },
        worker_env={1: {"LOOPLINE_FAULT_PAUSE_FILE": str(pause)}},
    )
    with cluster.running():
        cluster.airflow.wait_healthy()
        cluster.airflow.wait_dags(["churn_daily", "churn_train", "churn_labels"])
        for dag_id in ("churn_daily", "churn_train"):
            cluster.airflow.set_paused(dag_id, False)
        here = cluster.loopline_environment()
        saved = {k: os.environ.get(k) for k in here}
        os.environ.update(here)  # this process reads the cluster's S3, MLflow and specs
        yield cluster, root
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    forget_models("churn")
    warehouse.engine().dispose()


def wait_run(airflow, dag_id: str, run_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        airflow.check_alive()
        run = airflow.api("GET", f"dags/{dag_id}/dagRuns/{run_id}")
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(2)
    raise TimeoutError(f"{dag_id} {run_id} not done within {timeout:.0f}s")


def trigger(airflow, dag_id: str, conf: dict) -> str:
    return airflow.trigger(dag_id, conf)


def task_instances(airflow, dag_id: str, run_id: str) -> list[dict]:
    found = airflow.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")
    return found["task_instances"]


def write_days(root: Path, cluster, scenarios=()) -> None:
    """Simulated days straight into the cluster's S3 landing zone and labels, the day cut into
    four files (a shard each)."""
    from loopline.adapters import storage
    from loopline.dev.simulate import generate_day

    env = cluster.environment()
    for i in range(8):
        frame, label = generate_day(day(i), i, rows=ROWS, seed=6, scenarios=scenarios)
        for part in range(SHARDS):
            rows = frame.iloc[part::SHARDS]
            path = f"{env['LOOPLINE_LANDING']}/churn/date={day(i)}/part-{part:03d}.parquet"
            storage.write_frame(rows, path)
        labels = pd.DataFrame(
            {"customer_id": frame["customer_id"], "partition_date": str(day(i)), "churned": label}
        )
        storage.write_frame(
            labels, f"{env['LOOPLINE_LABELS']}/churn/date={day(i)}/labels-{day(i)}.parquet"
        )


def test_a_day_in_four_shards_runs_on_both_workers_and_matches_a_local_run(cluster):
    from loopline.adapters import model_store, warehouse

    cluster, root = cluster
    write_days(root, cluster)
    airflow = cluster.airflow
    for i in range(7):  # history, validated on the workers
        run = trigger(airflow, "churn_daily", {"partition_date": str(day(i))})
        assert wait_run(airflow, "churn_daily", run)["state"] == "success"
    trained = trigger(airflow, "churn_train", {"end_date": str(day(7)), "reason": "cluster"})
    assert wait_run(airflow, "churn_train", trained)["state"] == "success"
    champion = model_store.store().champion("churn")
    assert champion is not None  # trained on a worker, through the MLflow server, on S3
    assert model_store.store().training(champion.run_id).window_end == day(6)
    run = trigger(airflow, "churn_daily", {"partition_date": str(day(7))})
    assert wait_run(airflow, "churn_daily", run)["state"] == "success"
    tis = task_instances(airflow, "churn_daily", run)
    shards = [t for t in tis if t["task_id"] in ("validate.validate_shard", "predict.score_shard")]
    assert sum(t["task_id"] == "validate.validate_shard" for t in shards) == SHARDS
    hosts = {t["hostname"] for t in shards}
    assert hosts == {"127.0.0.2", "127.0.0.3"}, hosts  # both workers ran shards
    counts = warehouse.query(
        "SELECT rows_read, rows_clean, rows_quarantined FROM warehouse.validation_results "
        "WHERE model = 'churn' AND partition_date = %(d)s",
        {"d": day(7)},
    ).iloc[0]
    assert counts.rows_read == ROWS == counts.rows_clean + counts.rows_quarantined
    on_cluster = warehouse.predictions("churn", day(7)).set_index("entity_id")
    assert len(on_cluster) == counts.rows_clean
    left = cluster.local_files()
    assert left == [], left  # nothing of the day on any worker's or the scheduler's disk
    # the same day through dag.test() in this process, against the same stores
    local = run_day("churn_daily", day(7))
    assert local.state == "success", conftest.task_states(local)
    here = warehouse.predictions("churn", day(7)).set_index("entity_id")
    pd.testing.assert_series_equal(here.score.sort_index(), on_cluster.score.sort_index())
    assert (here.model_version == on_cluster.model_version).all()


def test_a_worker_killed_mid_shard_has_its_shard_retried_on_the_other(cluster):
    from loopline.adapters import warehouse

    cluster, root = cluster
    airflow = cluster.airflow
    pause = root / "pause-worker1"
    pause.write_text("validate.shard_written:600")  # worker 1's shards stop after writing
    try:
        run = trigger(airflow, "churn_daily", {"partition_date": str(day(6))})
        deadline = time.monotonic() + 600
        while True:
            tis = task_instances(airflow, "churn_daily", run)
            held = [
                t
                for t in tis
                if t["task_id"] == "validate.validate_shard"
                and t["state"] == "running"
                and t["hostname"] == "127.0.0.2"
            ]
            if held:
                break
            assert time.monotonic() < deadline, [(t["task_id"], t["state"]) for t in tis]
            time.sleep(1)
        cluster.kill_worker(1)  # lost mid-shard, its files half way to being published
        done = wait_run(airflow, "churn_daily", run, timeout=900)
    finally:
        pause.unlink(missing_ok=True)
    assert done["state"] == "success"
    tis = task_instances(airflow, "churn_daily", run)
    retried = [
        t
        for t in tis
        if t["map_index"] == held[0]["map_index"] and t["task_id"] == "validate.validate_shard"
    ]
    assert retried[0]["try_number"] >= 2 and retried[0]["hostname"] == "127.0.0.3"
    counts = warehouse.query(
        "SELECT rows_read, rows_clean, rows_quarantined FROM warehouse.validation_results "
        "WHERE model = 'churn' AND partition_date = %(d)s",
        {"d": day(6)},
    ).iloc[0]
    assert counts.rows_read == ROWS == counts.rows_clean + counts.rows_quarantined
    scored = warehouse.predictions("churn", day(6))
    assert len(scored) == counts.rows_clean and scored.entity_id.is_unique


def test_a_drift_on_the_cluster_triggers_a_retraining_the_workers_run(cluster):
    from loopline.adapters import model_store, storage, warehouse
    from loopline.dev.simulate import Scenario, generate_day

    cluster, root = cluster
    airflow = cluster.airflow
    env = cluster.environment()
    shifted = [Scenario("covariate_shift", start_day=0, strength=2.0)]
    frame, _ = generate_day(day(8), 8, rows=ROWS, seed=6, scenarios=shifted)
    storage.write_frame(frame, f"{env['LOOPLINE_LANDING']}/churn/date={day(8)}/part-000.parquet")
    before = len(model_store.store().versions("churn"))
    run = trigger(airflow, "churn_daily", {"partition_date": str(day(8))})
    assert wait_run(airflow, "churn_daily", run)["state"] == "success"
    decisions = warehouse.retrain_decisions("churn")
    assert decisions[decisions.partition_date == day(8)].triggered.any(), decisions.reason.tolist()
    deadline = time.monotonic() + 900
    while (
        len(model_store.store().versions("churn")) == before
    ):  # the triggered training, on a worker
        assert time.monotonic() < deadline, "the triggered training never registered a version"
        time.sleep(3)
    runs = airflow.api("GET", "dags/churn_train/dagRuns?limit=50")["dag_runs"]
    triggered = [r for r in runs if r["dag_run_id"].startswith("retrain__churn__")]
    assert (
        triggered
        and wait_run(airflow, "churn_train", triggered[0]["dag_run_id"])["state"] == "success"
    )
    assert json.loads(json.dumps(triggered[0]["conf"]))["source"] == "drift"
