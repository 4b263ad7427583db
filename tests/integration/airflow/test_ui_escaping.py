"""What a spec or its data may hold is text on every page: a model description, a feature name
and a category value written as markup (``<script>``, both quotes, ``&``) come out escaped on
the overview, on the model's page (its cards' slices) and in the stored drift report, through
the real steps (warehouse, lake, MLflow store) of a small world whose shifted feature bears
the odd name."""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pytest
import yaml
from markupsafe import escape

from ...conftest import CHURN_SPEC, forget_models

DESCRIPTION = '<script>alert("d\'1")</script> & co'
FEATURE = "<script>\"charges'</script>"  # renames monthly_charges, the shifted feature
CATEGORY = "<b onmouseover=\"x('1')\">basic</b>"  # a value of plan, a slice of the cards
START, DAYS, ROWS, SHIFT = dt.date(2026, 1, 1), 20, 300, 16


def odd_spec(folder) -> None:
    spec = yaml.safe_load(CHURN_SPEC.read_text())
    spec["description"] = DESCRIPTION
    for feature in spec["features"]:
        if feature["name"] == "monthly_charges":
            feature["name"] = FEATURE
        if feature["name"] == "plan":
            feature["categories"] = [CATEGORY if c == "basic" else c for c in feature["categories"]]
    spec.update(
        training={"window_days": 14, "min_days": 8, "validation_days": 2, "holdout_days": 3},
        labels={"delay_days": 2, "performance_tolerance": 0.05},
        drift={"window_days": 2, "min_rows": 200, "dataset_threshold": 0.05},
        gate={"min_lift_over_baseline": 0.0, "champion_margin": 0.0, "slice_tolerance": 1.0},
    )
    (folder / "churn.yaml").write_text(yaml.safe_dump(spec))


def rename_landing(landing) -> None:
    """The simulator's files, with the odd feature name and category value."""
    for path in sorted((landing / "churn").rglob("*.parquet")):
        frame = pd.read_parquet(path).rename(columns={"monthly_charges": FEATURE})
        frame["plan"] = frame["plan"].replace({"basic": CATEGORY})
        frame.to_parquet(path, index=False)


@pytest.fixture(scope="module")
def pages(warehouse_url, airflow_db, tmp_path_factory):
    from loopline.adapters.specs import get_spec
    from loopline.airflow.ui import pages as rendering
    from loopline.dev.simulate import Scenario, simulate
    from loopline.steps import overview
    from loopline.steps.check_drift import run_drift_check
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.labels import sync_labels
    from loopline.steps.promote import run_gate
    from loopline.steps.score import score_day
    from loopline.steps.train import run_training
    from loopline.steps.validate import validate_day

    from ...conftest import empty_tables

    root = tmp_path_factory.mktemp("odd-world")
    places = ("LOOPLINE_LANDING", "LOOPLINE_LABELS", "LOOPLINE_LAKE", "LOOPLINE_REPORTS")
    saved = {k: os.environ.get(k) for k in (*places, "LOOPLINE_SPECS_DIR")}
    os.environ.update({k: str(root / k.removeprefix("LOOPLINE_").lower()) for k in places})
    (root / "specs").mkdir()
    odd_spec(root / "specs")
    os.environ["LOOPLINE_SPECS_DIR"] = str(root / "specs")
    empty_tables(warehouse_url)
    forget_models("churn")
    try:
        simulate(
            landing=str(root / "landing"),
            labels=str(root / "labels"),
            start=START,
            days=DAYS,
            rows_per_day=ROWS,
            seed=9,
            label_delay_days=2,
            scenarios=[Scenario("covariate_shift", start_day=SHIFT, strength=2.0)],
        )
        rename_landing(root / "landing")
        spec = get_spec("churn")
        days = [START + dt.timedelta(days=i) for i in range(DAYS)]
        for day in days:
            validate_day(spec, day, run_id="odd")
        sync_labels(spec, days[14], run_id="odd")
        trained = run_training(spec, days[12], dag_run_id="odd", reason="odd names")
        version = run_evaluation(spec, trained.mlflow_run_id).version
        assert run_gate(spec, version, dag_run_id="odd").promoted
        for day in days[13:]:
            score_day(spec, day, dag_run_id="odd")
        check = run_drift_check(spec, days[-1], dag_run_id="odd")
        assert FEATURE in check.drifted_features, check.text
        yield {
            "overview": rendering.overview_page("/loopline", overview.models()),
            "model": rendering.model_page("/loopline", overview.detail("churn")),
            "report": overview.drift_report("churn", check.report_id).decode(),
        }
    finally:
        forget_models("churn")
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.mark.parametrize("page", ["overview", "model", "report"])
def test_no_value_comes_out_as_markup(pages, page):
    shown = pages[page]
    for raw in (DESCRIPTION, FEATURE, CATEGORY, "<script", 'onmouseover="x'):
        assert raw not in shown, (page, raw)


@pytest.mark.parametrize(
    ("page", "values"),
    [
        ("overview", [DESCRIPTION, FEATURE]),  # the description, the drifted features
        ("model", [DESCRIPTION, FEATURE, CATEGORY]),  # the drift checks, the cards' slices
        ("report", [FEATURE]),  # the feature's row and its plot's heading
    ],
)
def test_each_value_is_shown_as_text(pages, page, values):
    for value in values:
        assert str(escape(value)) in pages[page], (page, value)
