"""Where things live. Everything is overridable from the environment; nothing is read from files
in the repository except the model specs."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def state_dir() -> Path:
    """Git-ignored folder holding the embedded PostgreSQL, Airflow home and local data."""
    return Path(os.environ.get("LOOPLINE_HOME", REPO_ROOT / ".loopline")).resolve()


def specs_dir() -> Path:
    return Path(os.environ.get("LOOPLINE_SPECS_DIR", REPO_ROOT / "include" / "specs")).resolve()


def landing_root() -> str:
    """Root of the landing zone: files land under ``<root>/<model>/date=YYYY-MM-DD/``."""
    return os.environ.get("LOOPLINE_LANDING", str(state_dir() / "landing"))


def labels_root() -> str:
    return os.environ.get("LOOPLINE_LABELS", str(state_dir() / "labels"))


def reports_root() -> str:
    """Where the drift reports (HTML) are written: a folder or ``s3://bucket/prefix``."""
    return os.environ.get("LOOPLINE_REPORTS", str(state_dir() / "reports"))


def s3_endpoint() -> str | None:
    """S3-API endpoint for ``s3://`` locations (MinIO, a test server); None means AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or None


def warehouse_url() -> str:
    """SQLAlchemy URL of the warehouse: ``WAREHOUSE_URL``, else the embedded server's."""
    return os.environ.get("WAREHOUSE_URL") or _embedded().url("warehouse")


def analyst_url(url: str | None = None) -> str:
    """The warehouse URL (default: this one) as the read-only analyst role, without password."""
    from sqlalchemy.engine import URL, make_url

    base = make_url(url or warehouse_url())
    analyst = URL.create(
        base.drivername, "loopline_analyst", None, base.host, base.port, base.database, base.query
    )
    return analyst.render_as_string(hide_password=False)


def _embedded():
    from loopline.pgserver import LocalPostgres

    server = LocalPostgres(state_dir() / "postgres")
    if not server.is_running():
        raise RuntimeError(
            "WAREHOUSE_URL / MLFLOW_TRACKING_URI are not set and the embedded PostgreSQL under "
            f"{server.data_dir} is not running: start it with `loopline db start`"
        )
    return server


def mlflow_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the embedded server's ``mlflow`` database."""
    return os.environ.get("MLFLOW_TRACKING_URI") or _embedded().url("mlflow")


def mlflow_artifacts() -> str:
    """Where new MLflow experiments keep their artifacts: a folder or ``s3://bucket/prefix``."""
    return os.environ.get("LOOPLINE_MLFLOW_ARTIFACTS", str(state_dir() / "mlflow-artifacts"))


def airflow_environment(home: Path | None = None) -> dict[str, str]:
    """Settings every local Airflow process of loopline shares (CLI, `make run`, tests,
    benchmarks): its home (default: under the state folder), the repo's dags and plugins, no
    example DAGs, and no telemetry from Great Expectations or MLflow (there is no network)."""
    return {
        "AIRFLOW_HOME": str(home or state_dir() / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
