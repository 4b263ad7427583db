from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_day(dag_id: str, day: dt.date):
    """Run a DAG for one day through Airflow's own task execution; return the DagRun."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.get_dag(dag_id).test(run_conf={"partition_date": day.isoformat()})


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.fixture
def pipeline(empty_warehouse, airflow_db, tmp_path, monkeypatch):
    """A clean warehouse, Airflow ready, and a private landing zone for this test."""
    monkeypatch.setenv("LOOPLINE_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("LOOPLINE_LABELS", str(tmp_path / "labels"))
    return tmp_path
