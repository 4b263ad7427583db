"""What crosses the steps' boundaries: no step spells an MLflow URI, entity or tag; the model
stores implement every verb of loopline's interface and hand back loopline's records only."""

from __future__ import annotations

import inspect
import re
import typing
from pathlib import Path

import loopline.steps
import pytest
from loopline.adapters import model_store
from loopline.adapters.memory_store import MemoryModelStore
from loopline.core import registry

STEPS = sorted(Path(loopline.steps.__file__).parent.glob("*.py"))
# What only the MLflow store may say: its URIs, its entities' attributes, its client.
MLFLOW_WORDS = re.compile(
    r"mlflow\.|import mlflow|models:/|runs:/|creation_timestamp|\.tags\b|"
    r"\.data\.(tags|params|metrics)\b|get_run\(|MlflowClient|run_data\(|load_dict\(|"
    r"list_artifacts\(|load_frame\("
)
VERBS = [
    name
    for name, _ in inspect.getmembers(registry.ModelStore, inspect.isfunction)
    if not name.startswith("_")
]


@pytest.mark.parametrize("path", STEPS, ids=lambda p: p.name)
def test_no_step_spells_mlflow(path: Path):
    found = [
        f"{path.name}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if MLFLOW_WORDS.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("store", [model_store.MlflowModelStore, MemoryModelStore])
def test_each_store_implements_every_verb(store):
    assert len(VERBS) >= 20
    missing = [v for v in VERBS if getattr(store, v) is getattr(registry.ModelStore, v)]
    assert not missing, f"{store.__name__} lacks {missing}"


@pytest.mark.parametrize("verb", VERBS)
def test_the_mlflow_store_answers_in_loopline_records(verb):
    hints = typing.get_type_hints(getattr(model_store.MlflowModelStore, verb))
    shown = str(hints.get("return"))
    assert "mlflow" not in shown.lower(), f"{verb} returns {shown}"
    assert hints.get("return") == typing.get_type_hints(getattr(registry.ModelStore, verb)).get(
        "return"
    ), f"{verb}: the MLflow store's answer differs from the interface's"


@pytest.mark.parametrize(
    "module", ["loopline.steps.digest", "loopline.airflow.ui.pages", "loopline.airflow.ui.app"]
)
def test_the_terminal_and_the_models_view_read_through_one_module(module: str):
    """What a model did reaches the CLI and the UI through ``steps.overview`` alone: neither
    reads the warehouse or the model store itself (or a column name)."""
    import ast
    import importlib.util

    source = Path(importlib.util.find_spec(module).origin).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    store_or_sql = {
        "loopline.adapters.warehouse",
        "loopline.adapters.model_store",
    }
    assert not {i for i in imported if any(i.startswith(s) for s in store_or_sql)}
    assert not any(i.endswith((".warehouse", ".model_store")) for i in imported), imported


def test_the_trigger_reads_each_checks_result_whole():
    """The retraining trigger receives the drift and performance checks' results through XCom
    (their ``as_dict``): every field it decides on comes back typed, and a skipped check is no
    signal."""
    import datetime as dt

    from loopline.core.retraining import Signal
    from loopline.steps.check_drift import DriftCheckResult
    from loopline.steps.labels import PerformanceSignal

    drift = DriftCheckResult(7, True, ["tenure"], 0.4, 2, "file:///r.html")
    assert Signal.from_result("drift", drift.as_dict()) == Signal(
        "drift", True, drift.text, report_id=7
    )
    below = PerformanceSignal(
        True, "0.71 < 0.80", change_date="2026-03-02", below_before=True, below_text="0.71"
    )
    assert Signal.from_result("performance", below.as_dict()) == Signal(
        "performance", True, "0.71 < 0.80", None, dt.date(2026, 3, 2), True, "0.71"
    )
    skipped = Signal.from_result("performance", None)
    assert not skipped.fired and "skipped" in skipped.text
    with pytest.raises(ValueError, match="unknown retraining source"):
        Signal.from_result("weather", drift.as_dict())
