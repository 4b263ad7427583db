"""Airflow Connections for the outside systems, which operators manage in the UI or a secrets
backend (``AIRFLOW_CONN_<ID>`` in compose); the environment variables stay the fallback for the
CLI and the embedded default.

- ``loopline_warehouse`` (postgres): host, port, login, password and schema (the database), with
  the extra ``sqlalchemy_query`` for URL options (e.g. ``{"sslmode": "require"}``), become
  ``WAREHOUSE_URL``;
- ``loopline_mlflow`` (http): the tracking server (``http://mlflow:5000``; in JSON form the host
  may hold any tracking URI) becomes ``MLFLOW_TRACKING_URI``;
- ``loopline_s3`` (aws): login and password (access key and secret) and the extras
  ``endpoint_url`` and ``region_name`` become the ``AWS_*`` variables.

A task applies them to its own process environment before its step runs (:func:`apply`), so the
library below reads one set of settings whatever provided them.
"""

from __future__ import annotations

import logging
import os
from functools import cache
from typing import TYPE_CHECKING

from loopline.adapters import settings

if TYPE_CHECKING:
    from airflow.sdk import Connection

log = logging.getLogger(__name__)
WAREHOUSE, MLFLOW, S3 = "loopline_warehouse", "loopline_mlflow", "loopline_s3"


def _connection(conn_id: str):
    """The connection, or None if it is not defined (then the environment decides)."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def warehouse_url(conn: Connection) -> str:
    """A psycopg2 SQLAlchemy URL from a postgres connection (Airflow's own ``get_uri`` gives a
    ``postgres://`` URL SQLAlchemy refuses, and its hook picks psycopg 3)."""
    query = dict((conn.extra_dejson or {}).get("sqlalchemy_query") or {})
    return settings.database_url(
        conn.login or None,
        conn.password or None,
        conn.host or "localhost",
        conn.port or 5432,
        conn.schema or "warehouse",
        query,
    )


def mlflow_uri(conn: Connection) -> str:
    """The tracking URI: the host if it is a whole URI (JSON form), else built from the
    connection's type, host, port and path (URI form ``http://mlflow:5000``)."""
    if "://" in (conn.host or ""):
        return conn.host
    scheme = conn.conn_type if conn.conn_type in ("http", "https") else "http"
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema}" if conn.schema else ""
    return f"{scheme}://{conn.host}{port}{path}"


def s3_environment(conn: Connection) -> dict[str, str]:
    extra = conn.extra_dejson or {}
    found = {
        "AWS_ACCESS_KEY_ID": conn.login,
        "AWS_SECRET_ACCESS_KEY": conn.password,
        "AWS_ENDPOINT_URL_S3": extra.get("endpoint_url"),
        "MLFLOW_S3_ENDPOINT_URL": extra.get("endpoint_url"),
        "AWS_DEFAULT_REGION": extra.get("region_name"),
    }
    return {k: str(v) for k, v in found.items() if v}


@cache
def apply() -> tuple[str, ...]:
    """Put the defined connections into this process's environment (once per process); returns
    the connection ids that were used."""
    used = []
    conn = _connection(WAREHOUSE)
    if conn is not None:
        os.environ["WAREHOUSE_URL"] = warehouse_url(conn)
        used.append(WAREHOUSE)
    conn = _connection(MLFLOW)
    if conn is not None and conn.host:
        os.environ["MLFLOW_TRACKING_URI"] = mlflow_uri(conn)
        used.append(MLFLOW)
    conn = _connection(S3)
    if conn is not None:
        os.environ.update(s3_environment(conn))
        used.append(S3)
    if used:
        log.info("settings from Airflow connections: %s", ", ".join(used))
    return tuple(used)
