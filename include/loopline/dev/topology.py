"""The team setup's topology in one place: what every Airflow service gets in its environment,
how the MLflow tracking server is started, which buckets exist. docker-compose.yaml spells the
same out for its containers, and a test renders this module with compose's host names and
``${VARIABLE}`` placeholders and compares it with the file, so the compose file and the
loopback cluster (``loopline.dev.cluster``) cannot drift apart.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass

# The lake, landing zone, labels and reports in bucket `loopline`; MLflow's artifacts in `mlflow`.
BUCKETS = ("loopline", "mlflow")
LAKE_URLS = {
    "LOOPLINE_LANDING": "s3://loopline/landing",
    "LOOPLINE_LAKE": "s3://loopline/lake",
    "LOOPLINE_LABELS": "s3://loopline/labels",
    "LOOPLINE_REPORTS": "s3://loopline/reports",
    "LOOPLINE_MLFLOW_ARTIFACTS": "s3://mlflow/artifacts",
}
REGION = "us-east-1"


@dataclass(frozen=True)
class Endpoints:
    """Where each service listens, as the Airflow services reach it (``host:port``, URLs)."""

    postgres: str  # host:port
    redis: str  # host:port
    s3: str  # http://host:port
    mlflow: str  # http://host:port
    api: str  # http://host:port (Airflow's api-server)


@dataclass(frozen=True)
class Secrets:
    """The passwords and keys the services share (values, or compose's ``${...}`` spellings)."""

    airflow_db: str
    writer: str
    s3_user: str
    s3_password: str
    mlflow_db: str


def s3_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """How loopline (boto3) and MLflow reach object storage."""
    return {
        "AWS_ENDPOINT_URL_S3": e.s3,
        "MLFLOW_S3_ENDPOINT_URL": e.s3,
        "AWS_ACCESS_KEY_ID": s.s3_user,
        "AWS_SECRET_ACCESS_KEY": s.s3_password,
        "AWS_DEFAULT_REGION": REGION,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def airflow_environment(e: Endpoints, s: Secrets) -> dict[str, str]:
    """What every Airflow service of the team setup gets: CeleryExecutor with a Redis broker and
    its results in the metadata database, the lake, landing zone, labels, reports and MLflow
    artifacts on S3, MLflow's tracking server over HTTP, and the same as Airflow Connections."""
    postgres_host, postgres_port = e.postgres.rsplit(":", 1)
    return {
        **s3_environment(e, s),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (
            f"postgresql+psycopg2://airflow:{s.airflow_db}@{e.postgres}/airflow"
        ),
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://airflow:{s.airflow_db}@{e.postgres}/airflow",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://:@{e.redis}/0",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{e.api}/execution/",
        "GX_ANALYTICS_ENABLED": "False",
        "OMP_WAIT_POLICY": "PASSIVE",
        "WAREHOUSE_URL": (
            f"postgresql+psycopg2://loopline_writer:{s.writer}@{e.postgres}/warehouse"
        ),
        "MLFLOW_TRACKING_URI": e.mlflow,
        **LAKE_URLS,
        "AIRFLOW_CONN_LOOPLINE_WAREHOUSE": json.dumps(
            {
                "conn_type": "postgres",
                "host": postgres_host,
                "port": int(postgres_port),
                "login": "loopline_writer",
                "password": s.writer,
                "schema": "warehouse",
            }
        ),
        "AIRFLOW_CONN_LOOPLINE_MLFLOW": json.dumps({"conn_type": "http", "host": e.mlflow}),
        "AIRFLOW_CONN_LOOPLINE_S3": json.dumps(
            {
                "conn_type": "aws",
                "login": s.s3_user,
                "password": s.s3_password,
                "extra": {"endpoint_url": e.s3, "region_name": REGION},
            }
        ),
    }


def mlflow_server_command(e: Endpoints, s: Secrets, host: str, port: int) -> list[str]:
    """The MLflow tracking server: runs and registry in PostgreSQL, artifacts proxied to S3."""
    return [
        "mlflow",
        "server",
        "--host",
        host,
        "--port",
        str(port),
        "--backend-store-uri",
        f"postgresql://mlflow:{s.mlflow_db}@{e.postgres}/mlflow",
        "--artifacts-destination",
        LAKE_URLS["LOOPLINE_MLFLOW_ARTIFACTS"],
        "--serve-artifacts",
    ]


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` on the loopback cluster: each worker's own name
    (``LOOPLINE_WORKER_HOST``, a 127.0.0.N of its own), so a task instance says which worker
    ran it; any other process: the machine's name, as Airflow's default."""
    return os.environ.get("LOOPLINE_WORKER_HOST") or socket.getfqdn()
