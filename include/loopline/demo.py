"""The main job of `make run`: the whole loop through the real Airflow scheduler.

1. start the embedded PostgreSQL (warehouse, Airflow metadata and MLflow databases) and migrate;
2. simulate ``days`` days of churn data ending yesterday (bad rows on a few days, a covariate
   shift in the last days);
3. start Airflow (api-server with the UI, scheduler, dag-processor, triggerer; LocalExecutor);
4. backfill ``churn_daily`` and ``churn_labels`` over the first days (nothing to score yet);
5. trigger ``churn_train`` once enough labelled days exist; the gate promotes a champion;
6. run the last two weeks day by day: the champion scores each day, the drift check compares it
   with the champion's profile, the shift is detected and triggers a retraining, which the
   scheduler runs and the gate judges;
7. print a summary and keep the UI up until Ctrl-C.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time

from loopline import config, warehouse
from loopline.pgserver import LocalPostgres
from loopline.simulate import Scenario, simulate
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


def print_monitoring(model: str) -> None:
    drift = warehouse.query(
        "SELECT partition_date, dataset_drift, drifted_share, drifted_features, report_uri "
        "FROM warehouse.drift_reports WHERE model = :m ORDER BY partition_date",
        {"m": model},
    )
    for r in drift.itertuples():
        verdict = "DRIFT" if r.dataset_drift else "ok   "
        print(
            f"  {r.partition_date}  {verdict} share {r.drifted_share:.2f}  "
            f"{', '.join(r.drifted_features) or '-'}"
        )
    if len(drift) and drift.dataset_drift.any():
        print(f"  report of the first drift: {drift[drift.dataset_drift].report_uri.iloc[0]}")
    decisions = warehouse.query(
        "SELECT partition_date, source, triggered, reason FROM warehouse.retrain_decisions "
        "WHERE model = :m AND (triggered OR reason NOT LIKE 'no %') ORDER BY partition_date",
        {"m": model},
    )
    for r in decisions.itertuples():
        print(
            f"  {r.partition_date} {r.source:<11} {'TRIGGERED: ' if r.triggered else ''}{r.reason}"
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
    *, days: int = 56, rows: int = 2000, seed: int = 0, port: int = 8080, keep_up: bool = True
) -> int:
    started = time.monotonic()
    _step("starting the embedded PostgreSQL (warehouse, airflow, mlflow databases)")
    server = LocalPostgres(config.state_dir() / "postgres")
    url = server.start()
    os.environ.update(server.environment())
    warehouse.upgrade(url)
    print(f"   {url}")

    last = dt.date.today() - dt.timedelta(days=1)
    first = last - dt.timedelta(days=days - 1)
    train_after = days - 14  # two weeks of live operation after the first training
    train_end, shift_day = first + dt.timedelta(days=train_after), train_after + 3
    _step(
        f"simulating {days} days of {MODEL} data, {first} .. {last} ({rows} rows/day): "
        f"bad rows on days 10-12, a covariate shift from "
        f"{first + dt.timedelta(days=shift_day)}"
    )
    simulate(
        landing=config.landing_root(),
        labels=config.labels_root(),
        start=first,
        days=days,
        rows_per_day=rows,
        seed=seed,
        scenarios=[
            Scenario("bad_rows", start_day=9, strength=0.02, duration_days=3),
            Scenario("covariate_shift", start_day=shift_day, strength=1.0),
        ],
    )

    airflow = LocalAirflow(config.state_dir() / "airflow", server.url("airflow"), port=port)
    _step(f"starting Airflow on http://localhost:{port} (logs: {airflow.logs})")
    airflow.migrate()
    daily, labels, train = f"{MODEL}_daily", f"{MODEL}_labels", f"{MODEL}_train"
    with airflow.running():
        airflow.wait_healthy()
        airflow.wait_dags([daily, labels, train])
        for dag_id in (daily, labels):
            airflow.airflow("dags", "unpause", dag_id)
        history = train_end - dt.timedelta(days=1)
        _step(f"backfilling {daily} and {labels} for {first} .. {history} (no model yet)")
        for dag_id in (daily, labels):
            _backfill(airflow, dag_id, first, history, max_active=3)
        for dag_id in (daily, labels):
            airflow.wait_runs(dag_id, (history - first).days + 1, 1800, _progress)

        _step(f"training: triggering {train} with the data available on {train_end}")
        conf = {"end_date": train_end.isoformat(), "reason": f"make run: {train_after} days in"}
        airflow.airflow("dags", "trigger", train, "--conf", json.dumps(conf))
        airflow.airflow("dags", "unpause", train)
        airflow.wait_runs(train, 1, 900, _progress)

        _step(
            f"live days {train_end} .. {last}, one at a time: score, check drift, "
            "load labels, retrain when the rules allow"
        )
        for dag_id in (daily, labels):
            _backfill(airflow, dag_id, train_end, last, reprocess="completed", max_active=1)
        for dag_id in (daily, labels, train):
            airflow.wait_runs(dag_id, 1, 1800, _progress)
        airflow.airflow("dags", "pause", train)  # no further scheduled trainings during the demo
        _summary(airflow, url, started)
        if keep_up:
            airflow.stay_up()
    return 0


def _backfill(
    airflow: LocalAirflow,
    dag_id: str,
    start: dt.date,
    end: dt.date,
    reprocess: str = "none",
    max_active: int = 4,
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
        str(max_active),
        "--reprocess-behavior",
        reprocess,
    )


def _summary(airflow: LocalAirflow, url: str, started: float) -> None:
    print()
    _step(f"done in {(time.monotonic() - started) / 60:.1f} min; per day in the warehouse:")
    print_days(MODEL)
    _step("drift reports (warehouse.drift_reports) and retraining decisions")
    print_monitoring(MODEL)
    _step("model history (warehouse.model_events) and the champion")
    print_models(MODEL)
    psql = config.analyst_url(url).replace("+psycopg2", "")
    mlflow_uri = config.mlflow_tracking_uri()
    latest = "SELECT * FROM warehouse.predictions_latest ORDER BY score DESC LIMIT 10"
    print(f"""
== where to look
   Airflow UI   http://localhost:{airflow.port}   login: admin / {airflow.password()}
   MLflow UI    .venv/bin/mlflow ui --backend-store-uri {mlflow_uri} --port 5000
   predictions  psql {psql} -c "{latest}"   (the analysts' read-only role)
   state        {config.state_dir()}  (make reset deletes it)""")
