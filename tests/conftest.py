"""Test session setup: private state, a throwaway PostgreSQL server, a migrated Airflow DB.

Nothing here touches the developer's .loopline/ folder: every test session gets its own
LOOPLINE_HOME, AIRFLOW_HOME, landing zone and PostgreSQL server, and stops them afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
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
os.environ.pop("WAREHOUSE_URL", None)
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
    os.environ["WAREHOUSE_URL"] = url
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
