"""DAG integrity: every DAG file imports, parses fast, touches no database, and is configured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from loopline.airflow.dags import KIND_TAGS

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
HEAVY = ("pandas", "sklearn", "xgboost", "mlflow", "great_expectations", "scipy", "psycopg2")

# Parses the dags folder in a fresh interpreter with every network connection refused, and
# reports what it found. A DAG file that opens a connection at parse time fails here.
PROBE = textwrap.dedent(
    """
    import json, socket, sys

    HEAVY = HEAVY_MODULES

    def refuse(*args, **kwargs):
        raise RuntimeError("network access at DAG parse time")

    socket.socket.connect = refuse
    socket.create_connection = refuse
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(sys.argv[1])
    print(json.dumps({
        "dags": {
            dag_id: {
                "tags": sorted(dag.tags),
                "doc": bool(dag.doc_md),
                "start_date": str(dag.start_date),
                "tasks": {
                    t.task_id: {"owner": t.owner, "retries": t.retries,
                                "retry_delay": t.retry_delay.total_seconds(),
                                "timeout": t.execution_timeout.total_seconds()
                                if t.execution_timeout else None}
                    for t in dag.tasks
                },
            }
            for dag_id, dag in bag.dags.items()
        },
        "errors": {k: str(v) for k, v in bag.import_errors.items()},
        "durations": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
        "heavy": sorted(m for m in sys.modules if m.split(".")[0] in HEAVY),
    }))
    """
).replace("HEAVY_MODULES", repr(HEAVY))


def parse(dags_folder: Path, **env: str) -> dict:
    environment = {**os.environ, "WAREHOUSE_URL": "postgresql://nobody@192.0.2.1:1/none", **env}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(dags_folder)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def parsed() -> dict:
    return parse(DAGS)


def test_every_dag_file_imports_without_errors(parsed):
    assert parsed["errors"] == {}
    assert {
        "churn_daily",
        "churn_train",
        "churn_labels",
        "churn_rollback",
        "churn_custom_daily",
    } <= set(parsed["dags"])


def test_each_file_parses_well_under_a_second(parsed):
    assert set(Path(f).name for f in parsed["durations"]) == {p.name for p in DAGS.glob("*.py")}
    slow = {f: d for f, d in parsed["durations"].items() if d >= 1.0}
    assert slow == {}


def test_parsing_imports_no_heavy_library(parsed):
    # Nothing heavy at module level: pandas, GE, ML libraries load inside tasks only.
    assert parsed["heavy"] == []


def test_owner_retries_timeouts_and_tags_are_set(parsed):
    specs = {p.stem for p in (REPO / "include" / "specs").glob("*.yaml")}
    for dag_id, dag in parsed["dags"].items():
        assert dag["doc"], dag_id
        assert "loopline" in dag["tags"], dag_id
        assert set(dag["tags"]) - {"loopline"} <= KIND_TAGS | specs, dag_id
        assert dag["start_date"].startswith("2026-01-01"), dag_id
        for task_id, task in dag["tasks"].items():
            assert task["owner"] not in ("", "airflow"), (dag_id, task_id)
            assert task["timeout"] and task["timeout"] > 0, (dag_id, task_id)
            # A rollback (or a challenger action) is not retried: a retry after a half-done one
            # would act twice.
            if not dag_id.startswith("broken_spec__") and not dag_id.endswith(
                ("_rollback", "_challenger")
            ):
                assert task["retries"] >= 1 and task["retry_delay"] > 0, (dag_id, task_id)


def test_daily_dag_wiring(parsed):
    tasks = parsed["dags"]["churn_daily"]["tasks"]
    assert set(tasks) == {
        "ingest.plan_day",
        "validate.validate_shard",
        "validate.publish",
        "predict.plan_scoring",
        "predict.score_shard",
        "predict.swap",
        "monitor.estimate_performance",
        "monitor.drift_check",
        "monitor.retrain_trigger",
    }
    labels = parsed["dags"]["churn_labels"]["tasks"]
    assert set(labels) == {
        "load_labels",
        "realized_performance",
        "retrain_trigger",
        "compare_shadow",
    }
    train = parsed["dags"]["churn_train"]["tasks"]
    assert set(train) == {"load_labels", "train", "evaluate", "gate"}


@pytest.mark.parametrize("file_name", ["broken", "my model", "x; drop table"])
def test_broken_spec_becomes_a_failing_dag_and_spares_the_others(tmp_path, file_name):
    """Whatever the broken file is called, it stays a broken-spec DAG and churn keeps its DAGs."""
    churn = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(churn))
    churn["name"] = "broken"
    churn["features"][2]["type"] = "decimal"
    (tmp_path / f"{file_name}.yaml").write_text(yaml.safe_dump(churn))
    result = parse(DAGS, LOOPLINE_SPECS_DIR=str(tmp_path))
    assert result["errors"] == {}
    broken = [d for d in result["dags"] if d.startswith("broken_spec__")]
    assert len(broken) == 1, result["dags"].keys()
    assert {"churn_daily", "churn_train", "churn_labels"} <= set(result["dags"])
    assert "broken_daily" not in result["dags"]
    assert "broken-spec" in result["dags"][broken[0]]["tags"]


def test_broken_spec_message_names_file_and_field(tmp_path):
    from loopline.adapters.specs import load_specs
    from loopline.airflow.dags import spec_error_dag

    (tmp_path / "broken.yaml").write_text("name: broken\nfeatures: []\n")
    _, errors = load_specs(tmp_path)
    dag = spec_error_dag(errors[0])
    assert dag.dag_id == "broken_spec__broken"
    assert f"{tmp_path / 'broken.yaml'}: field 'entity_id'" in dag.doc_md


def test_a_specs_folder_without_churn_has_no_example_dag_and_no_import_error(tmp_path):
    churn = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    churn["name"] = "prices"
    (tmp_path / "prices.yaml").write_text(yaml.safe_dump(churn))
    result = parse(DAGS, LOOPLINE_SPECS_DIR=str(tmp_path))
    assert result["errors"] == {}
    assert "prices_daily" in result["dags"] and "churn_custom_daily" not in result["dags"]
