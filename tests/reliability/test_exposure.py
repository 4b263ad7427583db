"""What the pipeline exposes and who can stop it: files outside the landing zone, files and
ports anyone on the machine could read, the analysts' role flooding connections or running
without end, and a day from the future."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg2
import pytest
from loopline.adapters import warehouse
from loopline.adapters.specs import get_spec
from loopline.core.errors import LabelFileError, UnreadableFileError
from loopline.steps.validate import validate_day

from ..conftest import SESSION_DIR, free_port, run_day, task_states
from .suite import DAY, account, case, connect, landed, scored_world_of, secrets

SECRET_LINE = "db_password=hunter2-do-not-leak"


def test_a_landing_link_to_a_file_outside_the_zone_is_not_read(pipeline, tmp_path):
    """The first line of an owner-only file outside the landing zone once surfaced in
    validation_results.error, the task log and the Models view."""
    case("landing-link-outside")
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text(SECRET_LINE + "\n")
    secret.chmod(0o600)
    path = landed(pipeline)
    link = path.parent / "evil.csv"
    link.symlink_to(secret)
    with pytest.raises(UnreadableFileError) as info:
        validate_day(get_spec("churn"), DAY, run_id="link")
    assert "symbolic link to a file outside the landing zone" in str(info.value)
    assert SECRET_LINE not in str(info.value)
    stored = warehouse.query(
        "SELECT coalesce(string_agg(error, ''), '') AS e FROM warehouse.validation_results"
    ).e[0]
    assert SECRET_LINE not in stored
    link.unlink()
    # a link to a file elsewhere in the zone is read like the file itself
    kept = pipeline / "landing" / "churn" / "store" / path.name
    kept.parent.mkdir()
    path.rename(kept)
    path.symlink_to(kept)
    validate_day(get_spec("churn"), DAY, run_id="inside")
    account("churn", DAY)


def test_a_label_link_outside_the_labels_folder_is_not_read(pipeline, tmp_path):
    case("labels-link-outside")
    from loopline.steps.labels import ingest_labels

    secret = tmp_path / "secret.parquet"
    secret.write_text(SECRET_LINE)
    arrival = DAY + dt.timedelta(days=7)
    folder = pipeline / "labels" / "churn" / f"date={arrival}"
    folder.mkdir(parents=True)
    (folder / "labels.parquet").symlink_to(secret)
    with pytest.raises(LabelFileError, match="outside the labels folder") as info:
        ingest_labels(get_spec("churn"), arrival, run_id="link")
    assert SECRET_LINE not in str(info.value)
    assert warehouse.count_rows("labels", "churn") == 0


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if not p.is_symlink()
    }


def test_what_the_cli_writes_is_owner_only(tmp_path):
    """Landing, lake, reports and task logs hold raw records: 0700 folders, 0600 files."""
    case("owner-only-files")
    home = tmp_path / "home"
    env = {
        **os.environ,
        "LOOPLINE_HOME": str(home),
        "LOOPLINE_LANDING": str(home / "landing"),
        "LOOPLINE_LABELS": str(home / "labels"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "loopline.cli", "simulate", "--days", "2", "--rows", "50"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    modes = _modes(home)
    assert modes, "the CLI wrote nothing"
    loose = {p: oct(m) for p, m in modes.items() if m & 0o077}
    assert not loose, loose


def test_the_local_stack_listens_on_loopback_only_and_keeps_its_secrets_private(pg_server):
    """The api-server and the log servers listened on 0.0.0.0; the admin password file was
    0644. Started as `loopline up` starts it."""
    case("loopback-only")
    from loopline.dev.pgserver import LocalPostgres

    folder = Path(os.path.realpath(SESSION_DIR)) / f"expose-{os.getpid()}"
    folder.mkdir()
    folder.chmod(0o711)
    home = folder / "home"
    home.mkdir()
    (home / "postgres").symlink_to(SESSION_DIR / "postgres")
    port = free_port()
    log = folder / "up.log"
    loopline = str(Path(sys.executable).with_name("loopline"))
    with open(log, "w") as out:
        process = subprocess.Popen(
            [loopline, "up", "--port", str(port)],
            env={**os.environ, "LOOPLINE_HOME": str(home)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 420
        while "Airflow UI http://127.0.0.1:" not in log.read_text():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        listening = [
            (c.laddr.ip, c.laddr.port, p.name())
            for p in psutil.Process(process.pid).children(recursive=True)
            for c in p.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening and any(port_ == port for _, port_, _ in listening), listening
        assert all(ip in ("127.0.0.1", "::1") for ip, _, _ in listening), listening
        secret_files = [
            home / "airflow" / "simple_auth_manager_passwords.json.generated",
            home / "airflow" / "jwt_secret",
            home / "airflow" / "api_secret_key",
        ]
        for path in secret_files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert len((home / "airflow" / "jwt_secret").read_text()) >= 64
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=120)
    assert LocalPostgres(SESSION_DIR / "postgres").is_running()


def test_analysts_flooding_connections_cannot_stop_the_pipeline(scored_analysts):
    """196 analyst connections were accepted, then the daily run failed: `remaining connection
    slots are reserved`. Now the role is limited, and slots are kept for the pipeline."""
    case("analyst-connection-flood")
    password = secrets()["loopline_analyst"]
    opened, refused = [], None
    try:
        for _ in range(200):
            try:
                opened.append(connect("loopline_analyst", password))
            except psycopg2.OperationalError as exc:
                refused = str(exc)
                break
        assert refused is not None and "too many connections for role" in refused, refused
        assert len(opened) == 40
        limit = warehouse.query(
            "SELECT rolconnlimit FROM pg_roles WHERE rolname = 'loopline_analyst'"
        ).rolconnlimit[0]
        assert limit == 40
        assert warehouse.query("SHOW reserved_connections").iloc[0, 0] == "20"
        validate_day(get_spec("churn"), DAY, run_id="while-flooded")  # the pipeline goes on
        account("churn", DAY)
    finally:
        for connection in opened:
            connection.close()


def test_an_analyst_statement_past_its_limit_is_ended_by_the_pipeline(scored_analysts, monkeypatch):
    case("analyst-overlong-statement")
    from loopline.steps.score import score_day

    analyst = connect("loopline_analyst", secrets()["loopline_analyst"])
    cursor = analyst.cursor()
    cursor.execute("SET statement_timeout = 0")  # the role's default may be lifted...
    monkeypatch.setenv("LOOPLINE_ANALYST_MAX_STATEMENT_MINUTES", "0.02")  # ...the limit holds
    import threading

    errors = []

    def long_read() -> None:
        try:
            cursor.execute("SELECT pg_sleep(120)")
        except psycopg2.Error as exc:
            errors.append(exc)

    reader = threading.Thread(target=long_read)
    reader.start()
    time.sleep(3)  # the statement is past its (1.2 s) limit
    started = time.monotonic()
    score_day(get_spec("churn"), DAY, dag_run_id="reaper")
    reader.join(30)
    assert not reader.is_alive() and errors, "the analyst's statement was not ended"
    assert time.monotonic() - started < 60
    account("churn", DAY, predicted=True)


@pytest.fixture(scope="module")
def scored_analysts(warehouse_url, airflow_db, tmp_path_factory):
    """A published, scored day for the analysts' cases (this module's own world)."""
    yield from scored_world_of(warehouse_url, tmp_path_factory)


def test_analysts_cannot_write_create_or_read_what_is_not_theirs(scored_analysts):
    """Counted where it can fail (it was counted in the operations table test)."""
    case("analyst-writes")
    analyst = connect("loopline_analyst", secrets()["loopline_analyst"]).cursor()
    analyst.execute("SELECT count(*) FROM warehouse.predictions")
    assert analyst.fetchone()[0] > 0  # their table, readable
    attempts = {
        "DELETE FROM warehouse.predictions": psycopg2.errors.ReadOnlySqlTransaction,
        "CREATE TABLE warehouse.mine (x int)": psycopg2.errors.ReadOnlySqlTransaction,
        "SELECT * FROM warehouse.labels LIMIT 1": psycopg2.errors.InsufficientPrivilege,
        "SELECT * FROM warehouse.quarantine LIMIT 1": psycopg2.errors.InsufficientPrivilege,
        "SELECT * FROM warehouse.shadow_predictions LIMIT 1": psycopg2.errors.InsufficientPrivilege,
    }
    for sql, error in attempts.items():
        with pytest.raises(error):
            analyst.execute(sql)
    analyst.execute("SET default_transaction_read_only = off")  # lifting the default...
    for sql in ("DELETE FROM warehouse.predictions", "CREATE TABLE warehouse.mine (x int)"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):  # ...the grants hold
            analyst.execute(sql)
    account("churn", DAY, predicted=True)


# Below every test of this module's world (a `pipeline` test empties the warehouse).
def test_a_day_in_the_future_is_refused(pipeline):
    """2027-06-01, given on 2026-12-02, became the analysts' newest prediction."""
    case("future-day")
    landed(pipeline)
    future = dt.date.today() + dt.timedelta(days=200)
    run = run_day("churn_daily", future)
    assert run.state == "failed", task_states(run)
    assert warehouse.published_partition("churn", future) is None
    assert (
        warehouse.query(
            "SELECT count(*) AS n FROM warehouse.predictions WHERE partition_date = %(d)s",
            {"d": future},
        ).n[0]
        == 0
    )
