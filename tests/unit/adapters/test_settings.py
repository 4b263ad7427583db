"""Settings derived from the environment."""

from __future__ import annotations

from loopline.adapters import settings as config


def test_the_analyst_url_is_the_warehouse_as_the_read_only_role_without_a_password():
    writer = (
        "postgresql+psycopg2://loopline_writer:secret@db.example:6432/warehouse?sslmode=require"
    )
    assert config.analyst_url(writer) == (
        "postgresql+psycopg2://loopline_analyst@db.example:6432/warehouse?sslmode=require"
    )


def test_locations_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOOPLINE_REPORTS", "s3://loopline/reports")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio:9000")
    assert config.reports_root() == "s3://loopline/reports"
    assert config.s3_endpoint() == "http://minio:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "")
    assert config.s3_endpoint() is None


def test_psql_gets_the_password_apart_from_the_url():
    url, password = config.libpq_url(
        "postgresql+psycopg2://ana:p%40ss@db:6432/warehouse?sslmode=require"
    )
    assert url == "postgresql://ana@db:6432/warehouse?sslmode=require" and password == "p@ss"


def test_processes_that_start_together_share_one_generated_secret(tmp_path):
    """Two CLI commands on a new home both created the stack's JWT secret: the second died on
    'File exists' before its first task (seen in a full test run)."""
    import subprocess
    import sys

    probe = (
        "import sys, time; from pathlib import Path; from loopline.adapters import settings; "
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
        "print(settings.generated_secret(Path(sys.argv[1]), 'jwt_secret'))"
    )
    import time

    start = str(time.time() + 1.5)  # every process asks at the same moment
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", probe, str(tmp_path / "home"), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(12)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * 12, [err for _, err in outputs]
    secrets = {out.strip() for out, _ in outputs}
    assert len(secrets) == 1 and len(secrets.pop()) >= 64
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["jwt_secret"]  # no drafts left
    assert ((tmp_path / "home" / "jwt_secret").stat().st_mode & 0o777) == 0o600


def test_a_secret_written_between_the_check_and_the_write_is_the_one_returned(
    tmp_path, monkeypatch
):
    """The race, forced: another process writes the secret after this one saw no file."""
    from pathlib import Path

    home = tmp_path / "home"
    first = config.generated_secret(home, "jwt_secret")
    monkeypatch.setattr(Path, "exists", lambda self: False)  # "no file yet", as it looked
    assert config.generated_secret(home, "jwt_secret") == first
    assert sorted(p.name for p in home.iterdir()) == ["jwt_secret"]
