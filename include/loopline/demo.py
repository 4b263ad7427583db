"""The main job of `make run`: the whole loop through the real Airflow scheduler.

1. start the embedded PostgreSQL (warehouse, Airflow metadata and MLflow databases) and migrate;
2. simulate ``days`` days of churn data ending yesterday (bad rows on a few days);
3. start Airflow (api-server with the UI, scheduler, dag-processor, triggerer; LocalExecutor);
4. backfill ``churn_daily`` over the first days (ingest, validate; nothing to score yet);
5. trigger ``churn_train`` once enough labelled days exist; the gate promotes a champion;
6. backfill the remaining days: the champion scores each into ``warehouse.predictions``;
7. print a summary and keep the UI up until Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time

from loopline import config, warehouse
from loopline.pgserver import LocalPostgres
from loopline.simulate import Scenario, simulate
from loopline.spec import get_spec
from loopline.stack import LocalAirflow

MODEL = "churn"


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _progress(dag_id: str, done: int, expected: int, states: dict) -> None:
    print(f"\r   {dag_id}: {done}/{expected} runs finished {states}", end="   ", flush=True)


def day_table(model: str):
    return warehouse.query(
        """
        SELECT v.partition_date, v.rows_read, v.rows_clean, v.rows_quarantined, v.success,
               v.error, count(p.entity_id) AS predicted, max(p.model_version) AS version
        FROM warehouse.validation_results v
        LEFT JOIN warehouse.predictions p
          ON p.model = v.model AND p.partition_date = v.partition_date
        WHERE v.model = :m
        GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1
        """,
        {"m": model},
    )


def print_days(model: str) -> None:
    frame = day_table(model)
    print(f"{'date':<12}{'read':>7}{'clean':>7}{'quar.':>7}{'scored':>8}{'model':>7}  status")
    for r in frame.itertuples():
        version = f"v{int(r.version)}" if r.version == r.version and r.version else "-"
        status = "ok" if r.success else f"FAILED: {r.error}"
        print(
            f"{r.partition_date!s:<12}{r.rows_read:>7}{r.rows_clean:>7}{r.rows_quarantined:>7}"
            f"{r.predicted:>8}{version:>7}  {status}"
        )
    print(
        f"{'total':<12}{frame.rows_read.sum():>7}{frame.rows_clean.sum():>7}"
        f"{frame.rows_quarantined.sum():>7}{frame.predicted.sum():>8}"
    )


def print_models(model: str) -> None:
    events = warehouse.query(
        "SELECT created_at, event, version, previous_champion, reasons FROM warehouse.model_events "
        "WHERE model = :m ORDER BY id",
        {"m": model},
    )
    for e in events.itertuples():
        print(f"  {e.created_at:%H:%M:%S} v{e.version} {e.event}: {'; '.join(e.reasons)}")
    from loopline import registry

    champion = registry.champion_version(model)
    if champion is None:
        print("  no champion")
        return
    tags = champion.tags
    shown = (
        "holdout_roc_auc",
        "holdout_pr_auc",
        "holdout_log_loss",
        "holdout_brier",
        "holdout_ece",
    )
    metrics = ", ".join(
        f"{k.removeprefix('holdout_')} {float(tags[k]):.4f}" for k in shown if k in tags
    )
    print(f"  champion: {model} v{champion.version} (MLflow run {champion.run_id})")
    print(f"  holdout: {metrics}; calibrated: {tags.get('calibrated')}")


def run_demo(
    *, days: int = 60, rows: int = 2000, seed: int = 0, port: int = 8080, keep_up: bool = True
) -> int:
    started = time.monotonic()
    _step("starting the embedded PostgreSQL (warehouse, airflow, mlflow databases)")
    server = LocalPostgres(config.state_dir() / "postgres")
    url = server.start()
    os.environ["WAREHOUSE_URL"] = url
    warehouse.upgrade(url)
    print(f"   {url}")

    spec = get_spec(MODEL)
    last = dt.date.today() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=days - 1)
    train_after = min(
        days - 5, max(spec.training.min_days + spec.labels.delay_days + 14, days * 2 // 3)
    )
    train_end = first + dt.timedelta(days=train_after)
    _step(f"simulating {days} days of {MODEL} data, {first} .. {last} ({rows} rows/day)")
    simulate(
        landing=config.landing_root(),
        labels=config.labels_root(),
        start=first,
        days=days,
        rows_per_day=rows,
        seed=seed,
        scenarios=[Scenario("bad_rows", start_day=9, strength=0.02, duration_days=3)],
    )

    airflow = LocalAirflow(config.state_dir() / "airflow", server.url("airflow"), port=port)
    _step(f"starting Airflow on http://localhost:{port} (logs: {airflow.logs})")
    airflow.migrate()
    airflow.start()
    try:
        airflow.wait_healthy()
        airflow.wait_dags([f"{MODEL}_daily", f"{MODEL}_train"])
        daily, train = f"{MODEL}_daily", f"{MODEL}_train"
        airflow.airflow("dags", "unpause", daily)
        last_seeded = train_end - dt.timedelta(days=1)
        _step(f"backfilling {daily} for {first} .. {last_seeded} (ingest, validate; no model yet)")
        _backfill(airflow, daily, first, last_seeded)
        expected = (last_seeded - first).days + 1
        airflow.wait_runs(daily, expected, timeout=1800, progress=_progress)

        _step(f"training: triggering {train} with data up to {train_end}")
        conf = {
            "end_date": train_end.isoformat(),
            "reason": f"make run: {train_after} days ingested",
        }
        airflow.airflow("dags", "trigger", train, "--conf", json.dumps(conf))
        airflow.airflow("dags", "unpause", train)
        airflow.wait_runs(train, 1, timeout=900, progress=_progress)

        _step(f"backfilling {daily} for {train_end} .. {last}: the champion scores each day")
        _backfill(airflow, daily, train_end, last, reprocess="completed")
        airflow.wait_runs(
            daily, expected + (last - train_end).days + 1, timeout=1800, progress=_progress
        )
        airflow.airflow("dags", "pause", train)  # no further scheduled trainings during the demo
        _summary(airflow, url, started)
        if keep_up:
            print("\nThe Airflow UI stays up: press Ctrl-C to stop everything.", flush=True)
            signal.pause()
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        airflow.stop()
    return 0


def _backfill(
    airflow: LocalAirflow, dag_id: str, start: dt.date, end: dt.date, reprocess: str = "none"
) -> None:
    # A daily run's logical date is its interval start (the day, 02:00 UTC): take whole days.
    airflow.airflow(
        "backfill",
        "create",
        "--dag-id",
        dag_id,
        "--from-date",
        f"{start}T00:00:00+00:00",
        "--to-date",
        f"{end}T23:59:59+00:00",
        "--max-active-runs",
        "4",
        "--reprocess-behavior",
        reprocess,
    )


def _summary(airflow: LocalAirflow, url: str, started: float) -> None:
    print()
    _step(f"done in {(time.monotonic() - started) / 60:.1f} min; per day in the warehouse:")
    print_days(MODEL)
    _step("model history (warehouse.model_events) and the champion")
    print_models(MODEL)
    psql = url.replace("+psycopg2", "")
    mlflow_uri = config.mlflow_tracking_uri()
    latest = "SELECT * FROM warehouse.predictions_latest ORDER BY score DESC LIMIT 10"
    print(f"""
== where to look
   Airflow UI   http://localhost:{airflow.port}   login: admin / {airflow.password()}
   MLflow UI    .venv/bin/mlflow ui --backend-store-uri {mlflow_uri} --port 5000
   predictions  psql {psql} -c "{latest}"
   state        {config.state_dir()}  (make reset deletes it)""")
