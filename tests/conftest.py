"""Test session setup: private state, a throwaway PostgreSQL server, a migrated Airflow DB, an
S3-API server on loopback, and the helpers every integration test shares (running a DAG for a
day, task states, simulated worlds).

Nothing here touches the developer's .loopline/ folder: every test session gets its own
LOOPLINE_HOME, AIRFLOW_HOME, landing zone, lake and PostgreSQL server, and stops them afterwards.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import pytest
import yaml
from loopline.adapters.settings import airflow_environment

REPO = Path(__file__).resolve().parents[1]
CHURN_SPEC = REPO / "include" / "specs" / "churn.yaml"
SESSION_DIR = Path(tempfile.mkdtemp(prefix="loopline-tests-"))

# Set before anything imports Airflow or loopline.adapters.settings reads the environment.
os.environ.update(
    {
        "LOOPLINE_HOME": str(SESSION_DIR / "home"),
        "LOOPLINE_LANDING": str(SESSION_DIR / "landing"),
        "LOOPLINE_LABELS": str(SESSION_DIR / "labels"),
        "LOOPLINE_LAKE": str(SESSION_DIR / "lake"),
        **airflow_environment(SESSION_DIR / "airflow"),
        # Retries stay on (as in production) but wait 1 s, so a retried task cannot stall a test.
        "LOOPLINE_RETRY_DELAY_SECONDS": "1",
    }
)
for variable in (
    "WAREHOUSE_URL",
    "MLFLOW_TRACKING_URI",
    "AWS_ENDPOINT_URL_S3",
    "LOOPLINE_SPECS_DIR",
    "LOOPLINE_TASK_RETRIES",
    "LOOPLINE_REPORTS",
    "LOOPLINE_MLFLOW_ARTIFACTS",
):
    os.environ.pop(variable, None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


# --- real components -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL 18 server for this session (throwaway: not durable, for speed)."""
    from loopline.dev.pgserver import LocalPostgres

    server = LocalPostgres(SESSION_DIR / "postgres", durable=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def airflow_metadata(pg_server, request):
    """A new, empty Airflow metadata database of this test's own (the CLI migrates it): runs
    another test left in the session's store never show up in this one's queries."""
    name = "airflow_" + re.sub(r"\W", "_", request.node.name)[:40].lower()
    pg_server.psql("postgres", f"DROP DATABASE IF EXISTS {name}")
    pg_server.psql("postgres", f"CREATE DATABASE {name} OWNER airflow")
    pg_server.psql("postgres", f"GRANT CONNECT ON DATABASE {name} TO airflow")
    yield pg_server.url("airflow").rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def warehouse_url(pg_server):
    """The session's warehouse, schema migrated with Alembic; loopline pointed at it."""
    from loopline.adapters import warehouse

    url = pg_server.url("warehouse")
    os.environ.update(pg_server.environment())
    warehouse.upgrade(url)
    yield url
    warehouse.engine(url).dispose()


def empty_tables(url: str) -> None:
    from loopline.adapters import warehouse

    tables = warehouse.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'warehouse' "
        "AND tablename <> 'alembic_version'",
        url=url,
    ).tablename
    with warehouse.engine(url).begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {', '.join('warehouse.' + t for t in tables)}")


@pytest.fixture
def empty_warehouse(warehouse_url):
    """The warehouse with every loopline table emptied (schema kept)."""
    empty_tables(warehouse_url)
    return warehouse_url


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata DB (SQLite under the session folder), migrated once."""
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture
def pipeline(empty_warehouse, airflow_db, tmp_path, monkeypatch):
    """A clean warehouse, Airflow ready, and a private landing zone, labels area and lake."""
    for key, folder in (
        ("LOOPLINE_LANDING", "landing"),
        ("LOOPLINE_LABELS", "labels"),
        ("LOOPLINE_LAKE", "lake"),
        ("LOOPLINE_REPORTS", "reports"),
    ):
        monkeypatch.setenv(key, str(tmp_path / folder))
    return tmp_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    """Until ``url`` answers (any HTTP status); fail with the log if the server died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s:\n{log.read_text()}")


@contextlib.contextmanager
def server_process(args: list[str], url: str, name: str, env: dict[str, str] | None = None):
    """A server as a child process, up when entered, stopped when left."""
    log = SESSION_DIR / f"{name}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        wait_http(url, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


S3_BUCKETS = ("loopline", "mlflow")


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3-API server on loopback (moto's server mode) with the compose file's buckets,
    and the AWS variables that point boto3 (loopline's storage, MLflow) at it."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with server_process(args, endpoint, "s3-server"):
        os.environ.update(
            AWS_ENDPOINT_URL_S3=endpoint,
            AWS_ACCESS_KEY_ID="loopline-test",
            AWS_SECRET_ACCESS_KEY="loopline-test-secret",
            AWS_DEFAULT_REGION="us-east-1",
        )
        from loopline.adapters import storage

        for bucket in S3_BUCKETS:
            storage.s3_client().create_bucket(Bucket=bucket)
        yield endpoint
        os.environ.pop("AWS_ENDPOINT_URL_S3")


# --- shared helpers -------------------------------------------------------------------------


@cache
def _dagbag(specs_dir: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag


def dag(dag_id: str):
    """A DAG of the repo's dags folder, parsed once per specs folder."""
    found = _dagbag(os.environ.get("LOOPLINE_SPECS_DIR", "")).get_dag(dag_id)
    assert found is not None, f"no DAG {dag_id}"
    return found


def run_day(dag_id: str, day: dt.date, **conf):
    """Run a DAG for one day through Airflow's own task execution; return the DagRun."""
    return dag(dag_id).test(run_conf={"partition_date": day.isoformat(), **conf})


def task_states(run) -> dict[str, str]:
    """``{task_id: state}``; a mapped task as ``task_id[i]``."""
    states = {}
    for ti in run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state)
    return states


def write_spec(folder: Path, name: str = "churn", **sections) -> Path:
    """churn.yaml as ``<folder>/<name>.yaml``, with whole sections replaced or merged
    (a dict value updates that section, anything else replaces it)."""
    data = yaml.safe_load(CHURN_SPEC.read_text())
    data["name"] = name
    for section, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **value}
        else:
            data[section] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def forget_models(*names: str) -> None:
    """Delete registered models (a test's own; absent ones are fine)."""
    from loopline.adapters import model_store

    for name in names:
        with contextlib.suppress(Exception):
            model_store.store().delete_model(name)


def train_runs(states: tuple[str, ...] = ("queued", "running"), model: str = "churn"):
    """``(run_id, conf, note)`` of the model's training runs in ``states``."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        runs = (
            session.query(DagRun)
            .filter(DagRun.dag_id == f"{model}_train", DagRun.state.in_(states))
            .all()
        )
        return [(r.run_id, dict(r.conf or {}), r.note) for r in runs]


def finish_queued_trainings(execute: bool = False, model: str = "churn") -> list[dict]:
    """Stand in for the scheduler: optionally run each queued training (same conf), then mark
    the queued run finished, so the "queued or running" rule sees what production would."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    confs = []
    for run_id, conf, _ in train_runs(model=model):
        if execute:
            assert dag(f"{model}_train").test(run_conf=conf).state == "success"
        with create_session() as session:
            session.query(DagRun).filter(DagRun.run_id == run_id).update(
                {DagRun.state: DagRunState.SUCCESS}
            )
        confs.append(conf)
    return confs
