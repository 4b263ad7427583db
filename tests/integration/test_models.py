"""Train, gate and batch-predict end to end: real PostgreSQL, a real MLflow store, dag.test()."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from loopline import registry, warehouse
from loopline.ingest import ingest_day
from loopline.simulate import simulate
from loopline.spec import get_spec
from loopline.storage import read_frame, write_frame
from loopline.validate import validate_day

from .conftest import REPO, run_day, task_states

START, DAYS, ROWS = dt.date(2026, 1, 1), 36, 400
TRAIN_END = dt.date(2026, 2, 6)  # labels of Jan 1..30 have arrived (7-day delay)
SCORE_DAY = dt.date(2026, 2, 2)


def seed(spec_name: str, days: int = DAYS) -> None:
    """Ingest and validate every simulated day (the library path the daily DAG runs)."""
    spec = get_spec(spec_name)
    for i in range(days):
        day = START + dt.timedelta(days=i)
        ingest_day(spec, day, run_id="seed")
        validate_day(spec, day, run_id="seed")


def run_train(model: str, **conf):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(REPO / "dags")).get_dag(f"{model}_train")
    return dag.test(run_conf={"end_date": TRAIN_END.isoformat(), "reason": "test", **conf})


def events(model: str) -> pd.DataFrame:
    return warehouse.query(
        "SELECT event, version, previous_champion, reasons FROM warehouse.model_events "
        "WHERE model = :m ORDER BY id",
        {"m": model},
    )


def predictions(model: str, day: dt.date) -> pd.DataFrame:
    return warehouse.query(
        "SELECT * FROM warehouse.predictions WHERE model = :m AND partition_date = :d "
        "ORDER BY entity_id",
        {"m": model, "d": day},
    )


@pytest.fixture(scope="module")
def churn_world(warehouse_url, airflow_db, tmp_path_factory):
    """36 simulated days ingested and validated, labels waiting in their folder."""
    root = tmp_path_factory.mktemp("models")
    saved = {
        k: os.environ.get(k) for k in ("LOOPLINE_LANDING", "LOOPLINE_LABELS", "LOOPLINE_SPECS_DIR")
    }
    os.environ.update(LOOPLINE_LANDING=str(root / "landing"), LOOPLINE_LABELS=str(root / "labels"))
    with warehouse.engine(warehouse_url).begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text(
                "DELETE FROM warehouse.clean_rows; DELETE FROM warehouse.quarantine; "
                "DELETE FROM warehouse.predictions; DELETE FROM warehouse.model_events; "
                "DELETE FROM warehouse.labels"
            )
        )
    simulate(
        landing=str(root / "landing"),
        labels=str(root / "labels"),
        start=START,
        days=DAYS,
        rows_per_day=ROWS,
        seed=5,
    )
    seed("churn")
    yield root
    for name in ("churn", "spend"):
        with contextlib.suppress(Exception):  # not registered if its test failed early
            registry.client().delete_registered_model(name)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def first_training(churn_world):
    run = run_train("churn")
    assert run.state == "success", task_states(run)
    return run


def test_training_registers_a_champion_with_its_evidence(first_training):
    client = registry.client()
    champion = registry.champion_version("churn")
    assert champion is not None and int(champion.version) == 1
    tags = champion.tags
    assert float(tags["holdout_roc_auc"]) > float(tags["baseline_holdout_roc_auc"]) + 0.05
    run = client.get_run(champion.run_id)
    assert run.data.tags["reason"] == "test"
    assert run.data.tags["window_start"] == "2026-01-01"
    assert run.data.tags["window_end"] == "2026-01-30"
    assert len(run.data.tags["git_commit"]) in (40, 7) or run.data.tags["git_commit"] == "unknown"
    assert run.data.metrics["rows_holdout"] == 7 * ROWS
    assert run.data.params["early_stopping_rounds"] == "30"
    artifacts = {a.path for a in client.list_artifacts(champion.run_id, "plots")}
    assert {
        "plots/roc_pr.png",
        "plots/calibration.png",
        "plots/slices_plan.png",
        "plots/feature_importance.png",
    } <= artifacts
    model = registry.load_model("models:/churn@champion")
    assert list(model.feature_names_in_) == get_spec("churn").feature_names  # signature order

    history = events("churn")
    assert history[["event", "version", "previous_champion"]].values.tolist() == [
        ["promoted", 1, None]
    ]
    assert history.reasons[0][-1] == "no current champion"


def test_retraining_on_the_same_data_is_not_promoted_and_says_why(first_training):
    run = run_train("churn")
    assert run.state == "success"
    assert int(registry.champion_version("churn").version) == 1
    challenger = registry.client().get_model_version_by_alias("churn", "challenger")
    assert int(challenger.version) == 2
    last = events("churn").iloc[-1]
    assert (last.event, last.version, last.previous_champion) == ("rejected", 2, 1)
    assert any(
        r.startswith("does not beat the champion") and "gain +0.0000" in r for r in last.reasons
    )


def test_daily_dag_scores_every_clean_row_with_the_champion(first_training):
    run = run_day("churn_daily", SCORE_DAY)
    assert run.state == "success", task_states(run)
    clean = warehouse.count_rows("clean_rows", "churn", [SCORE_DAY])
    scored = predictions("churn", SCORE_DAY)
    assert len(scored) == clean == ROWS
    assert scored.entity_id.is_unique
    champion = registry.champion_version("churn")
    assert set(scored.model_version) == {int(champion.version)}
    assert set(scored.mlflow_run_id) == {champion.run_id}
    assert set(scored.dag_run_id) == {run.run_id}
    assert scored.score.between(0, 1).all()
    threshold = get_spec("churn").metric.decision_threshold
    assert (scored.predicted_label == (scored.score >= threshold).astype(int)).all()
    latest = warehouse.query(
        "SELECT count(*) AS n FROM warehouse.predictions_latest WHERE model = 'churn' "
        "AND partition_date = :d",
        {"d": SCORE_DAY},
    )
    assert latest.n[0] == ROWS

    again = run_day("churn_daily", SCORE_DAY)
    rescored = predictions("churn", SCORE_DAY)
    assert len(rescored) == ROWS
    assert set(rescored.dag_run_id) == {again.run_id}
    np.testing.assert_allclose(rescored.score, scored.score)


def test_concurrent_scoring_of_one_day_never_duplicates(first_training):
    import threading

    from loopline.predict import load_champion, predict_day

    spec = get_spec("churn")
    champion, errors = load_champion(spec), []

    def score(i: int) -> None:
        try:
            predict_day(spec, SCORE_DAY, dag_run_id=f"copy-{i}", champion=champion, chunk_rows=97)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=score, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    scored = predictions("churn", SCORE_DAY)
    assert len(scored) == ROWS and scored.dag_run_id.nunique() == 1  # one copy's rows, whole


def test_a_missing_model_column_fails_the_prediction_clearly(first_training, tmp_path, monkeypatch):
    from loopline.predict import PredictionInputError, predict_day

    spec = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    spec["features"] = [f for f in spec["features"] if f["name"] != "age"]
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(tmp_path))
    before = predictions("churn", SCORE_DAY)
    with pytest.raises(PredictionInputError) as info:
        predict_day(get_spec("churn"), SCORE_DAY, dag_run_id="manual")
    assert str(info.value).startswith(
        f"model 'churn' version 1, date {SCORE_DAY}: column 'age' needed by the model is missing"
    )
    run = run_day("churn_daily", SCORE_DAY)
    assert task_states(run)["predict.score_day"] == "failed"
    ti = next(t for t in run.get_task_instances() if t.task_id == "predict.score_day")
    assert ti.try_number == 1  # failed fast, no retries
    pd.testing.assert_frame_equal(predictions("churn", SCORE_DAY), before)  # day untouched


def test_regression_spec_end_to_end(churn_world, tmp_path, monkeypatch):
    """A second model, a regression on integer-free string ids, from spec file to predictions."""
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(REPO / "include/specs/churn.yaml", specs / "churn.yaml")
    spend = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    spend.update(
        name="spend",
        target={"column": "spend_next_30d", "task": "regression"},
        metric={"primary": "rmse"},
        gate={"min_lift_over_baseline": 1.0, "champion_margin": 0.1, "slice_tolerance": 5.0},
    )
    (specs / "spend.yaml").write_text(yaml.safe_dump(spend))
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(specs))
    landing, labels = Path(os.environ["LOOPLINE_LANDING"]), Path(os.environ["LOOPLINE_LABELS"])
    rng = np.random.default_rng(0)
    for i in range(DAYS):
        day = START + dt.timedelta(days=i)
        source = landing / "churn" / f"date={day}" / "part-000.parquet"
        target = landing / "spend" / f"date={day}" / "part-000.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        frame = read_frame(str(source))
        spend_value = (
            1.2 * frame.monthly_charges + 8 * frame.support_calls_30d + rng.normal(0, 5, len(frame))
        )
        arrival = day + dt.timedelta(days=7)
        write_frame(
            pd.DataFrame(
                {
                    "customer_id": frame.customer_id,
                    "partition_date": day.isoformat(),
                    "spend_next_30d": spend_value,
                }
            ),
            str(labels / "spend" / f"date={arrival}" / f"labels-{day}.parquet"),
        )
    seed("spend")

    run = run_train("spend")
    assert run.state == "success", task_states(run)
    champion = registry.champion_version("spend")
    assert champion is not None
    assert (
        float(champion.tags["holdout_rmse"]) < float(champion.tags["baseline_holdout_rmse"]) - 1.0
    )
    assert "holdout_roc_auc" not in champion.tags
    assert events("spend").event.tolist() == ["promoted"]

    assert run_day("spend_daily", SCORE_DAY).state == "success"
    scored = predictions("spend", SCORE_DAY)
    assert len(scored) == ROWS and scored.predicted_label.isna().all()
    truth = read_frame(str(landing / "spend" / f"date={SCORE_DAY}" / "part-000.parquet"))
    expected = (1.2 * truth.monthly_charges + 8 * truth.support_calls_30d).to_numpy()
    joined = scored.set_index("entity_id").loc[truth.customer_id, "score"].to_numpy()
    assert np.sqrt(np.mean((joined - expected) ** 2)) < 10  # learned, not the mean (sd ~30)
