"""Where things live. Everything comes from the environment; nothing is read from files in the
repository except the model specs. Without ``WAREHOUSE_URL`` / ``MLFLOW_TRACKING_URI`` the
embedded PostgreSQL under the state folder is used: its port and generated passwords are read
from the files it keeps there (``loopline.dev.pgserver`` writes them).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
# The embedded server's files under <state>/postgres/ (shared with loopline.dev.pgserver).
EMBEDDED_SERVER_FILE = "server.json"  # {"port": N}
EMBEDDED_SECRETS_FILE = "passwords.json"  # {role: password}, mode 0600
EMBEDDED_OWNERS = {"warehouse": "loopline_writer", "mlflow": "mlflow", "airflow": "airflow"}


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


def lake_root() -> str:
    """The lake of typed Parquet: clean rows under ``<root>/clean/<model>/date=.../``."""
    return os.environ.get("LOOPLINE_LAKE", str(state_dir() / "lake"))


def reports_root() -> str:
    """Where the drift reports (HTML) are written: a folder or ``s3://bucket/prefix``."""
    return os.environ.get("LOOPLINE_REPORTS", str(state_dir() / "reports"))


def s3_endpoint() -> str | None:
    """S3-API endpoint for ``s3://`` locations (MinIO, a test server); None means AWS."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or None


def scratch_dir() -> Path | None:
    """Local folder for temporary files (S3 downloads, spooled COPY output), if it exists."""
    folder = state_dir() / "tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return folder


def embedded_dir() -> Path:
    return state_dir() / "postgres"


def server_url(folder: Path, database: str, user: str | None = None) -> str:
    """SQLAlchemy URL of a database of the embedded-style server under ``folder`` (its port and
    passwords files), as the database's owner (or ``user``)."""
    from sqlalchemy.engine import URL

    port = int(json.loads((folder / EMBEDDED_SERVER_FILE).read_text())["port"])
    secrets_file = folder / EMBEDDED_SECRETS_FILE
    passwords = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    user = user or EMBEDDED_OWNERS.get(database, "postgres")
    url = URL.create("postgresql+psycopg2", user, passwords.get(user), "127.0.0.1", port, database)
    return url.render_as_string(hide_password=False)


def database_url(
    user: str | None,
    password: str | None,
    host: str,
    port: int,
    database: str,
    query: dict | None = None,
) -> str:
    """A psycopg2 SQLAlchemy URL (what every loopline engine uses)."""
    from sqlalchemy.engine import URL

    url = URL.create("postgresql+psycopg2", user, password, host, port, database, query or {})
    return url.render_as_string(hide_password=False)


def libpq_url(url: str) -> tuple[str, str | None]:
    """A SQLAlchemy URL as (a libpq URL without the password, the password): for psql."""
    from sqlalchemy.engine import URL, make_url

    p = make_url(url)
    bare = URL.create("postgresql", p.username, None, p.host, p.port, p.database, p.query)
    return bare.render_as_string(hide_password=False), p.password


def embedded_url(database: str = "warehouse", user: str | None = None) -> str:
    """URL of a database of the embedded server under the state folder, which must be running."""
    folder = embedded_dir()
    if not (folder / "data" / "postmaster.pid").exists():
        raise RuntimeError(
            "WAREHOUSE_URL / MLFLOW_TRACKING_URI are not set and the embedded PostgreSQL under "
            f"{folder} is not running: start it with `loopline db start`"
        )
    return server_url(folder, database, user)


def warehouse_url() -> str:
    """SQLAlchemy URL of the warehouse: ``WAREHOUSE_URL``, else the embedded server's."""
    return os.environ.get("WAREHOUSE_URL") or embedded_url("warehouse")


def analyst_url(url: str | None = None, *, with_password: bool = False) -> str:
    """The warehouse URL (default: this one) as the read-only analyst role; its password only
    when asked for and known (the embedded server's)."""
    from sqlalchemy.engine import URL, make_url

    base = make_url(url or warehouse_url())
    password = None
    secrets_file = embedded_dir() / EMBEDDED_SECRETS_FILE
    if with_password and secrets_file.exists():
        password = json.loads(secrets_file.read_text()).get("loopline_analyst")
    analyst = URL.create(
        base.drivername,
        "loopline_analyst",
        password,
        base.host,
        base.port,
        base.database,
        base.query,
    )
    return analyst.render_as_string(hide_password=False)


def mlflow_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI``, else the embedded server's ``mlflow`` database."""
    return os.environ.get("MLFLOW_TRACKING_URI") or embedded_url("mlflow")


def mlflow_artifacts() -> str:
    """Where new MLflow experiments keep their artifacts: a folder or ``s3://bucket/prefix``."""
    return os.environ.get("LOOPLINE_MLFLOW_ARTIFACTS", str(state_dir() / "mlflow-artifacts"))


def task_retries() -> int:
    """Retries of every task (``LOOPLINE_TASK_RETRIES``, default 2; the CLI runs with 0)."""
    return int(os.environ.get("LOOPLINE_TASK_RETRIES", 2))


def retry_delay_seconds() -> int:
    return int(os.environ.get("LOOPLINE_RETRY_DELAY_SECONDS", 300))


def generated_secret(folder: Path, name: str) -> str:
    """A random secret kept in ``folder/name`` (created 0600 on first use, in a 0700 folder):
    the same one for every process of the stack that shares the folder."""
    import secrets
    import tempfile

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if not path.exists():
        # Written whole under a name of its own, then linked into place: of processes that
        # start together (two CLI commands on a new home), the first link wins and the others
        # read its secret; none sees a file half written or fails on one that exists.
        descriptor, draft = tempfile.mkstemp(dir=folder, prefix=f".{name}.")  # 0600
        try:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_urlsafe(64))
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            os.unlink(draft)
    return path.read_text().strip()


def analyst_limits() -> tuple[int, int]:
    """Seconds an analyst's statement may run, and an analyst's transaction may sit idle,
    before the pipeline ends the session (``LOOPLINE_ANALYST_MAX_STATEMENT_MINUTES``, default
    30; ``LOOPLINE_ANALYST_MAX_IDLE_MINUTES``, default 10)."""
    statement = float(os.environ.get("LOOPLINE_ANALYST_MAX_STATEMENT_MINUTES", 30))
    idle = float(os.environ.get("LOOPLINE_ANALYST_MAX_IDLE_MINUTES", 10))
    return int(statement * 60), int(idle * 60)


def airflow_environment(home: Path | None = None) -> dict[str, str]:
    """Settings every local Airflow process of loopline shares (CLI, `make run`, tests,
    benchmarks): its home (default: under the state folder), the repo's dags and plugins, no
    example DAGs, and no telemetry from Great Expectations or MLflow (there is no network).

    XGBoost's OpenMP threads wait passively: spinning at a barrier, a thread whose core another
    process holds (a second task, PostgreSQL) stalls the others, and a 2-thread fit of 17k rows
    took 30 s instead of 0.3 s here (docs/benchmarks.md).

    The api-server signs its tokens with a key generated into the home (``jwt_secret``, 64
    random bytes, 0600), not Airflow's short default."""
    home = home or state_dir() / "airflow"
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API_AUTH__JWT_SECRET": generated_secret(home, "jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": generated_secret(home, "api_secret_key"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "False",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
