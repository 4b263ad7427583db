"""The team setup's data path, run here: the MLflow server with the command and settings of
docker-compose.yaml (PostgreSQL backend, S3 artifacts), a real S3-API server in MinIO's place,
and loopline's S3 locations from the compose file. The simulator writes to S3, the daily DAG
ingests from it, training logs its model through the MLflow server into S3, and scoring loads
the champion back from S3.

Only host names, ports and the database name differ from the compose file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from loopline.adapters import model_store, storage, warehouse
from loopline.adapters.specs import get_spec
from loopline.dev.pgserver import LocalPostgres
from loopline.dev.simulate import simulate
from loopline.steps.validate import validate_day

from ..conftest import (
    REPO,
    SESSION_DIR,
    dag,
    empty_tables,
    free_port,
    run_day,
    server_process,
    task_states,
)

START, DAYS, ROWS = dt.date(2026, 1, 1), 36, 400
TRAIN_END = dt.date(2026, 2, 6)
SCORE_DAY = dt.date(2026, 2, 2)
MIGRATIONS = REPO / "include" / "loopline" / "adapters" / "migrations" / "versions"
ROLES = ("airflow", "mlflow", "loopline_writer", "loopline_analyst")
LOOPLINE_S3 = (
    "LOOPLINE_LANDING",
    "LOOPLINE_LAKE",
    "LOOPLINE_LABELS",
    "LOOPLINE_REPORTS",
    "LOOPLINE_MLFLOW_ARTIFACTS",
)


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def options(command: list[str]) -> dict[str, str | None]:
    """``--flag value`` pairs of a command list (flags without a value map to None)."""
    found, args = {}, list(command)
    while args:
        arg = args.pop(0)
        if arg.startswith("--"):
            found[arg] = args.pop(0) if args and not args[0].startswith("--") else None
    return found


def mlflow_server_command(port: int, backend: str) -> list[str]:
    """compose's mlflow command, pointed at this machine's PostgreSQL and a free port."""
    command = compose()["services"]["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"], command
    flags = options(command[2:])
    assert flags["--backend-store-uri"].endswith("@postgres:5432/mlflow"), flags
    assert flags["--artifacts-destination"].startswith("s3://"), flags
    flags.update({"--host": "127.0.0.1", "--port": str(port), "--backend-store-uri": backend})
    args = [arg for flag, value in flags.items() for arg in (flag, value) if arg is not None]
    return [str(Path(sys.executable).with_name("mlflow")), "server", *args]


@pytest.fixture(scope="module")
def team_setup(warehouse_url, airflow_db, s3_endpoint):
    """The MLflow server running compose's command; loopline configured as compose's Airflow
    services are; 36 simulated days written to S3."""
    server = LocalPostgres(SESSION_DIR / "postgres")
    exists = "SELECT 1 FROM pg_database WHERE datname = 'mlflow_compose'"
    if not server.psql("postgres", exists).strip():
        server.psql("postgres", "CREATE DATABASE mlflow_compose OWNER mlflow")
    port = free_port()
    airflow_env = compose()["x-airflow-common"]["environment"]
    settings = {key: airflow_env[key] for key in LOOPLINE_S3}
    assert all(value.startswith("s3://") for value in settings.values()), settings
    command = mlflow_server_command(
        port, server.url("mlflow_compose", "mlflow").replace("+psycopg2", "")
    )
    url = f"http://127.0.0.1:{port}"
    with (
        server_process(
            command, f"{url}/health", "mlflow-server", env={"MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
        ),
        pytest.MonkeyPatch.context() as patch,
    ):
        for key, value in {**settings, "MLFLOW_TRACKING_URI": url}.items():
            patch.setenv(key, value)
        empty_tables(warehouse_url)
        simulate(
            landing=settings["LOOPLINE_LANDING"],
            labels=settings["LOOPLINE_LABELS"],
            start=START,
            days=DAYS,
            rows_per_day=ROWS,
            seed=5,
        )
        yield settings


def test_the_simulator_writes_the_landing_zone_and_labels_to_s3(team_setup):
    days = storage.list_folders(storage.join(team_setup["LOOPLINE_LANDING"], "churn"))
    assert days == [f"date={START + dt.timedelta(days=i)}" for i in range(DAYS)]
    arrivals = storage.list_folders(storage.join(team_setup["LOOPLINE_LABELS"], "churn"))
    assert arrivals[0] == f"date={START + dt.timedelta(days=7)}" and len(arrivals) == DAYS


def test_the_daily_dag_ingests_from_s3_and_accounts_for_every_row(team_setup):
    day = START
    run = run_day("churn_daily", day)
    assert run.state == "success", task_states(run)
    files = warehouse.query(
        "SELECT source_file, sha256, rows FROM warehouse.ingested_files "
        "WHERE model = 'churn' AND partition_date = %(d)s",
        {"d": day},
    )
    expected = storage.join(
        team_setup["LOOPLINE_LANDING"], "churn", f"date={day}", "part-000.parquet"
    )
    assert files["source_file"].tolist() == [expected]
    assert files["sha256"][0] == hashlib.sha256(storage.read_bytes(expected)).hexdigest()
    pointer = warehouse.published_partition("churn", day)
    assert all(f.path.startswith(team_setup["LOOPLINE_LAKE"]) for f in pointer.files)
    import pyarrow.parquet as pq

    with storage.local_copy(pointer.files[0].path) as local:
        clean = pq.ParquetFile(local).metadata.num_rows
    quarantined = warehouse.count_rows("quarantine", "churn", [day])
    assert clean + quarantined == files["rows"][0] == ROWS


def test_a_rerun_on_s3_retires_the_attempt_it_replaced_until_a_later_sweep(team_setup):
    from loopline.adapters import lake

    old = warehouse.published_partition("churn", START)
    validate_day(get_spec("churn"), START, run_id="rerun-on-s3")
    new = warehouse.published_partition("churn", START)
    assert new.location.startswith(team_setup["LOOPLINE_LAKE"]) and new.attempt != old.attempt
    assert sorted(lake.attempts_of_day("churn", START)) == sorted([old.attempt, new.attempt])
    assert storage.list_files(old.location)  # still whole for a reader that resolved it before
    lake.after_publish("churn", START, new.attempt, None, time.time() + lake.RETIRED_SECONDS + 1)
    assert lake.attempts_of_day("churn", START) == [new.attempt]
    assert storage.list_tree(lake.retired_folder("churn")) == []


def test_training_logs_the_model_through_the_mlflow_server_into_s3(team_setup):
    spec = get_spec("churn")
    for i in range(DAYS):
        validate_day(spec, START + dt.timedelta(days=i), run_id="seed")
    run = dag("churn_train").test(
        run_conf={"end_date": TRAIN_END.isoformat(), "reason": "compose test"}
    )
    assert run.state == "success", task_states(run)

    labels = warehouse.query(
        "SELECT DISTINCT source_file FROM warehouse.labels WHERE model = 'churn'"
    )
    assert labels["source_file"].str.startswith(team_setup["LOOPLINE_LABELS"]).all()
    version = model_store.store().champion("churn")
    assert version is not None
    experiment = storage.join(team_setup["LOOPLINE_MLFLOW_ARTIFACTS"], "churn")
    run_info = model_store.client().get_run(version.run_id).info
    assert run_info.artifact_uri.startswith(experiment), run_info.artifact_uri
    bucket, prefix = experiment.removeprefix("s3://").split("/", 1)
    pages = (
        storage.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert any(key.endswith("/MLmodel") for key in keys), (version.source, keys)
    assert any(key.endswith("/reference/profile.json") for key in keys), keys


def test_scoring_loads_the_champion_from_s3_and_reports_drift_to_s3(team_setup):
    run = run_day("churn_daily", SCORE_DAY)
    assert run.state == "success", task_states(run)
    scored = warehouse.query(
        "SELECT model_version, count(*) AS n FROM warehouse.predictions "
        "WHERE model = 'churn' AND partition_date = %(d)s GROUP BY 1",
        {"d": SCORE_DAY},
    )
    champion = model_store.store().champion("churn")
    assert scored["model_version"].tolist() == [int(champion.version)]
    assert scored["n"][0] == warehouse.published_partition("churn", SCORE_DAY).rows_clean
    report = warehouse.query(
        "SELECT report_uri FROM warehouse.drift_reports "
        "WHERE model = 'churn' AND partition_date = %(d)s",
        {"d": SCORE_DAY},
    )["report_uri"][0]
    assert report == storage.join(
        team_setup["LOOPLINE_REPORTS"], "churn", f"drift-{SCORE_DAY}.html"
    )
    assert b"churn: drift check of 2026-02-02" in storage.read_bytes(report)


def test_the_postgres_init_script_applies_the_passwords_from_the_environment(warehouse_url):
    """compose's postgres init script, run here with this server's psql: it runs roles.sql
    (again: it is idempotent) and sets every role's password from the environment."""
    from loopline.dev.pgserver import _bin_dir

    server = LocalPostgres(SESSION_DIR / "postgres")
    hashes = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN " + str(ROLES)
    before = dict(line.split("|") for line in server.psql("postgres", hashes).split())
    postgres = compose()["services"]["postgres"]
    env = {
        **os.environ,
        "PATH": f"{_bin_dir()}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(server.port),
        "POSTGRES_USER": "postgres",
        "PGPASSWORD": server.passwords()["postgres"],
        "LOOPLINE_ROLES_SQL": str(REPO / "include" / "sql" / "roles.sql"),
        **{name: f"new-{name.lower()}" for name in postgres["environment"] if "PASSWORD" in name},
    }
    script = REPO / "docker" / "postgres" / "10-loopline.sh"
    try:
        result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        after = dict(line.split("|") for line in server.psql("postgres", hashes).split())
    finally:
        server.create_roles()  # the session's own passwords back, for the tests that follow
    assert sorted(after) == sorted(ROLES)
    assert all(after[role].startswith("SCRAM-SHA-256$") for role in ROLES), after
    assert all(after[role] != before[role] for role in ROLES), "a password was not changed"


INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?::?[-?][^}]*)?\}")


def interpolate(text: str, values: dict[str, str]) -> str:
    """What compose does to ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name is None:  # $$, an escaped $
            return "$"
        if name in values:
            return values[name]
        rest = match.group(0)[len(name) + 2 : -1]
        assert rest.startswith(":-"), f"compose needs {name}, the test does not set it"
        return rest[2:]

    return INTERPOLATION.sub(value, text)


def airflow_init(tmp_path, server: LocalPostgres, dotenv: dict[str, str]):
    """compose's airflow-init command, run here: /opt/airflow is a temp folder, the databases
    are this server's, Airflow's entrypoint is plain ``airflow``."""
    service = compose()["services"]["airflow-init"]
    script = interpolate(service["command"][1], dotenv)
    script = script.replace("/entrypoint airflow", "airflow").replace("/opt/airflow", str(tmp_path))
    env = {key: interpolate(str(value), dotenv) for key, value in service["environment"].items()}
    env = {key: value.replace("/opt/airflow", str(tmp_path)) for key, value in env.items()}
    env.update(
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=server.url("airflow"),
        WAREHOUSE_URL=server.url("warehouse"),
        PYTHONPATH=str(REPO / "include"),
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"),
    )
    return subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=300
    )


def test_airflow_init_migrates_both_databases_and_writes_the_admin_login(warehouse_url, tmp_path):
    from cryptography.fernet import Fernet

    server = LocalPostgres(SESSION_DIR / "postgres")
    dotenv = {
        "AIRFLOW_DB_PASSWORD": "a",
        "WAREHOUSE_WRITER_PASSWORD": "w",
        "MINIO_ROOT_USER": "loopline",
        "MINIO_ROOT_PASSWORD": "m" * 8,
        "AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_JWT_SECRET": "j",
        "AIRFLOW_API_SECRET_KEY": "k",
        "AIRFLOW_ADMIN_PASSWORD": "the-admin-password",
    }
    result = airflow_init(tmp_path, server, dotenv)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    login = json.loads((tmp_path / "auth" / "simple_auth_manager_passwords.json").read_text())
    assert login == {"admin": "the-admin-password"}
    heads = server.psql("warehouse", "SELECT version_num FROM warehouse.alembic_version").split()
    assert heads == [sorted(p.name[:4] for p in MIGRATIONS.glob("0*.py"))[-1]]
    assert server.psql("airflow", "SELECT count(*) FROM dag").strip().isdigit()

    refused = airflow_init(tmp_path, server, {**dotenv, "AIRFLOW_JWT_SECRET": "change-me"})
    assert refused.returncode != 0
    assert "change-me placeholder" in refused.stderr + refused.stdout
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in refused.stderr + refused.stdout
