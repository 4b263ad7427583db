"""What the daily DAGs tell Airflow and the people around it: Assets for the published clean
data and the predictions (and a DAG scheduled on them), Airflow Connections for the warehouse
and MLflow winning over the environment, and notifications by e-mail and webhook, received by a
real SMTP server and a real HTTP server on loopback."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer

import pandas as pd
import pytest
from loopline.adapters import warehouse
from loopline.adapters.specs import get_spec
from loopline.dev.simulate import Scenario, simulate
from loopline.steps.validate import validate_day

from ...conftest import dag, forget_models, free_port, run_day, task_states, write_spec

START = dt.date(2026, 3, 1)
DAYS, SHIFT = 16, 13


class Inbox:
    """A real SMTP server (aiosmtpd) on loopback, keeping every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((self.headers.get("Authorization"), json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def world(warehouse_url, airflow_db, tmp_path_factory):
    """churn with notifications on, a champion, days that shift from SHIFT; an SMTP server and a
    webhook on loopback wired through Airflow Connections."""
    from ...conftest import empty_tables

    root = tmp_path_factory.mktemp("wiring")
    inbox = Inbox()
    inbox.controller.start()
    web = HTTPServer(("127.0.0.1", free_port()), Hook)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    specs = root / "specs"
    write_spec(
        specs,
        training={"window_days": 12, "min_days": 8, "validation_days": 2, "holdout_days": 3},
        labels={"delay_days": 0},
        drift={"window_days": 1, "min_rows": 300, "alpha": 0.01, "dataset_threshold": 0.1},
        notify={"email": ["oncall@loopline.test"], "webhook": True},
    )
    env = {
        "LOOPLINE_SPECS_DIR": str(specs),
        "LOOPLINE_LANDING": str(root / "landing"),
        "LOOPLINE_LABELS": str(root / "labels"),
        "LOOPLINE_LAKE": str(root / "lake"),
        "LOOPLINE_REPORTS": str(root / "reports"),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": inbox.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "loopline@test"},
            }
        ),
        "AIRFLOW_CONN_LOOPLINE_WEBHOOK": json.dumps(
            {
                "conn_type": "http",
                "host": f"http://127.0.0.1:{web.server_port}/hook",
                "password": "secret-token",
            }
        ),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    empty_tables(warehouse_url)
    forget_models("churn")
    simulate(
        landing=env["LOOPLINE_LANDING"],
        labels=env["LOOPLINE_LABELS"],
        start=START,
        days=DAYS,
        rows_per_day=800,
        seed=6,
        label_delay_days=0,
        scenarios=[Scenario("covariate_shift", start_day=SHIFT, strength=1.5)],
    )
    spec = get_spec("churn")
    for i in range(12):
        validate_day(spec, START + dt.timedelta(days=i), run_id="seed")
    trained = dag("churn_train").test(
        run_conf={"end_date": str(START + dt.timedelta(days=12)), "reason": "first"}
    )
    assert trained.state == "success", task_states(trained)
    yield {"inbox": inbox, "root": root}
    inbox.controller.stop()
    web.shutdown()
    forget_models("churn")
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def asset_events(name: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == name)
            .order_by(AssetEvent.id)
            .all()
        )
        return [dict(r.extra or {}) for r in rows]


def test_the_daily_dag_declares_assets_and_a_dag_runs_on_new_predictions(world):
    day = START + dt.timedelta(days=12)
    run = run_day("churn_daily", day)
    assert run.state == "success", task_states(run)
    [clean] = asset_events("loopline.churn.clean")[-1:]
    assert clean["partition_date"] == day.isoformat() and clean["rows_clean"] == 800
    predictions = asset_events("loopline.churn.predictions")[-1]
    assert predictions == {
        "partition_date": day.isoformat(),
        "rows": 800,
        "model_version": 1,
        "run_id": run.run_id,
    }
    consumer = dag("churn_on_new_predictions")
    assert [a.name for a in consumer.timetable.asset_condition.objects] == [
        "loopline.churn.predictions"
    ]
    ran = consumer.test()
    assert ran.state == "success"
    [ti] = ran.get_task_instances()
    assert ti.xcom_pull(task_ids="summarize")["rows"] == 800


def test_airflow_connections_win_over_the_environment(world, monkeypatch):
    """With the warehouse and MLflow given as Connections, the environment's settings are not
    used (here they point nowhere)."""
    from loopline.airflow import connections

    real_warehouse, real_mlflow = os.environ["WAREHOUSE_URL"], os.environ["MLFLOW_TRACKING_URI"]
    from sqlalchemy.engine import make_url

    url = make_url(real_warehouse)
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOOPLINE_WAREHOUSE",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": url.host,
                "port": url.port,
                "login": url.username,
                "password": url.password,
                "schema": url.database,
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_LOOPLINE_MLFLOW", json.dumps({"conn_type": "http", "host": real_mlflow})
    )
    monkeypatch.setenv("WAREHOUSE_URL", "postgresql+psycopg2://nobody@192.0.2.1:1/none")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://192.0.2.1:1")
    connections.apply.cache_clear()
    try:
        run = run_day("churn_daily", START + dt.timedelta(days=11))
        assert run.state == "success", task_states(run)
        assert connections.apply() == ("loopline_warehouse", "loopline_mlflow")
        assert make_url(os.environ["WAREHOUSE_URL"]).host == url.host
    finally:
        connections.apply.cache_clear()
        os.environ["WAREHOUSE_URL"], os.environ["MLFLOW_TRACKING_URI"] = real_warehouse, real_mlflow


def wait_for(found, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not found():
        time.sleep(0.2)
    return found()


def test_drift_rejections_rollbacks_and_failures_notify_by_mail_and_webhook(world):
    inbox, Hook.received = world["inbox"], []
    inbox.messages.clear()
    for i in range(SHIFT, DAYS):  # the shift: drift, and (persistence 2 of 3) a trigger
        assert run_day("churn_labels", START + dt.timedelta(days=i)).state == "success"
        run = run_day("churn_daily", START + dt.timedelta(days=i))
        assert run.state == "success", task_states(run)
    retrain = dag("churn_train").test(
        run_conf={"end_date": str(START + dt.timedelta(days=12)), "reason": "same data"}
    )
    assert retrain.state == "success"  # the same window again: the gate keeps v1
    assert dag("churn_rollback").test(run_conf={"to_version": 2, "reason": "try"}).state == (
        "success"
    )
    broken = world["root"] / "landing" / "churn" / f"date={START + dt.timedelta(days=14)}"
    frame = pd.read_parquet(broken / "part-000.parquet").drop(columns=["plan"])
    frame.to_parquet(broken / "part-000.parquet", index=False)
    failed = run_day("churn_daily", START + dt.timedelta(days=14))
    assert failed.state == "failed"

    events = {body["event"] for _, body in Hook.received}
    assert {"drift", "retrain_triggered", "gate_rejected", "rollback", "task_failure"} <= events
    assert all(auth == "Bearer secret-token" for auth, _ in Hook.received)
    drift = next(body for _, body in Hook.received if body["event"] == "drift")
    assert drift["model"] == "churn" and "drifted features" in drift["text"]
    failure = next(body for _, body in Hook.received if body["event"] == "task_failure")
    assert "ingest.plan_day failed" in failure["text"] and "column 'plan'" in failure["text"]
    assert wait_for(lambda: len(inbox.messages) >= 5)
    subjects = sorted({m["Subject"] for m in inbox.messages})
    assert "[loopline] churn: drift" in subjects and "[loopline] churn: gate rejected" in subjects
    assert all(m["To"] == "oncall@loopline.test" for m in inbox.messages)
    assert warehouse.retrain_decisions("churn").triggered.any()
