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
