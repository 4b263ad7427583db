"""Test session setup: private state, a throwaway PostgreSQL server, a migrated Airflow DB.

Nothing here touches the developer's .loopline/ folder: every test session gets its own
LOOPLINE_HOME, AIRFLOW_HOME, landing zone and PostgreSQL server, and stops them afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from loopline.config import airflow_environment

REPO = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="loopline-tests-"))

# Set before anything imports Airflow or loopline.config reads the environment.
os.environ.update(
    {
        "LOOPLINE_HOME": str(SESSION_DIR / "home"),
        "LOOPLINE_LANDING": str(SESSION_DIR / "landing"),
        "LOOPLINE_LABELS": str(SESSION_DIR / "labels"),
        **airflow_environment(SESSION_DIR / "airflow"),
        # Retries stay on (as in production) but wait 1 s, so a retried task cannot stall a test.
        "LOOPLINE_RETRY_DELAY_SECONDS": "1",
    }
)
for variable in ("WAREHOUSE_URL", "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(variable, None)
os.environ.pop("LOOPLINE_SPECS_DIR", None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def warehouse_url():
    """A real PostgreSQL 18 server for this session, schema migrated with Alembic."""
    from loopline import warehouse
    from loopline.pgserver import LocalPostgres

    server = LocalPostgres(SESSION_DIR / "postgres")
    url = server.start()
    os.environ.update(server.environment())
    warehouse.upgrade(url)
    yield url
    warehouse.engine(url).dispose()
    server.stop()


@pytest.fixture
def empty_warehouse(warehouse_url):
    """The warehouse with every loopline table emptied (schema kept)."""
    from loopline import warehouse
    from sqlalchemy import text

    with warehouse.engine(warehouse_url).begin() as conn:
        tables = (
            conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'warehouse' "
                    "AND tablename <> 'alembic_version'"
                )
            )
            .scalars()
            .all()
        )
        conn.execute(text(f"TRUNCATE {', '.join('warehouse.' + t for t in tables)}"))
    return warehouse_url


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata DB (SQLite under the session folder), migrated once."""
    Path(os.environ["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True)
    return os.environ["AIRFLOW_HOME"]


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
        from loopline import storage

        for bucket in S3_BUCKETS:
            storage.s3_client().create_bucket(Bucket=bucket)
        yield endpoint
        os.environ.pop("AWS_ENDPOINT_URL_S3")
