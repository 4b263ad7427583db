"""Train, gate and batch-predict end to end: real PostgreSQL, a real MLflow store, dag.test()."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from loopline.adapters import model_store, warehouse
from loopline.adapters.specs import get_spec
from loopline.adapters.storage import read_frame, write_frame
from loopline.core.columns import ENTITY_ID, LABEL, PARTITION_DATE
from loopline.core.errors import PredictionInputError
from loopline.dev.simulate import simulate
from loopline.steps.validate import validate_day

from ...conftest import REPO, dag, forget_models, run_day, task_states

START, DAYS, ROWS = dt.date(2026, 1, 1), 36, 400
TRAIN_END = dt.date(2026, 2, 6)  # labels of Jan 1..30 have arrived (7-day delay)
SCORE_DAY = dt.date(2026, 2, 2)


def seed(spec_name: str, days: int = DAYS) -> None:
    """Validate and publish every simulated day (the steps the daily DAG runs)."""
    spec = get_spec(spec_name)
    for i in range(days):
        validate_day(spec, START + dt.timedelta(days=i), run_id="seed")


def run_train(model: str, **conf):
    return dag(f"{model}_train").test(
        run_conf={"end_date": TRAIN_END.isoformat(), "reason": "test", **conf}
    )


def events(model: str) -> pd.DataFrame:
    return warehouse.model_events(model)


@pytest.fixture(scope="module")
def churn_world(warehouse_url, airflow_db, tmp_path_factory):
    """36 simulated days validated into the lake, labels waiting in their folder."""
    from ...conftest import empty_tables

    root = tmp_path_factory.mktemp("models")
    keys = ("LOOPLINE_LANDING", "LOOPLINE_LABELS", "LOOPLINE_LAKE", "LOOPLINE_SPECS_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(
        LOOPLINE_LANDING=str(root / "landing"),
        LOOPLINE_LABELS=str(root / "labels"),
        LOOPLINE_LAKE=str(root / "lake"),
    )
    empty_tables(warehouse_url)
    forget_models("churn", "spend")
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
    forget_models("churn", "spend")
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
    champion = model_store.store().champion("churn")
    assert champion is not None and int(champion.version) == 1
    data = model_store.run_data(champion.run_id)  # what MLflow holds of the training run
    assert champion.holdout["roc_auc"] > data.metrics["baseline_holdout_roc_auc"] + 0.05
    assert data.tags["reason"] == "test"
    assert data.tags["window_start"] == "2026-01-01"
    assert data.tags["window_end"] == "2026-01-30"
    training = model_store.store().training(champion.run_id)  # the same, as loopline reads it
    assert training.window == (dt.date(2026, 1, 1), dt.date(2026, 1, 30))
    assert training.reason == "test" and training.counts["rows_holdout"] == 7 * ROWS
    assert len(data.tags["git_commit"]) in (40, 7) or data.tags["git_commit"] == "unknown"
    assert data.metrics["rows_holdout"] == 7 * ROWS
    assert data.params["early_stopping_rounds"] == "30"
    artifacts = set(model_store.list_artifacts(champion.run_id, "plots"))
    assert {
        "plots/roc_pr.png",
        "plots/calibration.png",
        "plots/slices_plan.png",
        "plots/feature_importance.png",
    } <= artifacts
    model = model_store.store().load_version("churn", champion.version)
    assert list(model.feature_names_in_) == get_spec("churn").feature_names  # signature order

    history = events("churn")
    assert history[["event", "version"]].values.tolist() == [["promoted", 1]]
    assert history.previous_champion[0] is None
    assert history.reasons[0][-1] == "no current champion"
    assert any(r.startswith("guardrail log_loss holds") for r in history.reasons[0])


def test_training_reads_at_most_max_rows_a_seeded_sample_of_every_day(churn_world, monkeypatch):
    from loopline.steps.published import read_labelled

    spec = get_spec("churn")
    spec = spec.model_copy(update={"training": spec.training.model_copy(update={"max_rows": 3000})})
    columns = ["plan", "tenure_months"]
    frame = read_labelled(
        spec, START, START + dt.timedelta(days=29), columns, max_rows=3000, seed=1
    )
    again = read_labelled(
        spec, START, START + dt.timedelta(days=29), columns, max_rows=3000, seed=1
    )
    pd.testing.assert_frame_equal(frame, again)  # seeded
    assert 2500 < len(frame) < 3500  # ~3,000 of 12,000
    per_day = frame.groupby(PARTITION_DATE).size()
    assert len(per_day) == 30 and per_day.min() > 40  # every day, at the same rate
    assert set(frame.columns) == {ENTITY_ID, *columns, LABEL, PARTITION_DATE}


def test_retraining_on_the_same_data_is_not_promoted_and_says_why(first_training):
    run = run_train("churn")
    assert run.state == "success"
    assert int(model_store.store().champion("churn").version) == 1
    challenger = model_store.store().challenger("churn")
    assert int(challenger.version) == 2
    last = events("churn").iloc[-1]
    assert (last.event, last.version, last.previous_champion) == ("rejected", 2, 1)
    assert any(
        r.startswith("does not beat the champion") and "gain +0.0000" in r for r in last.reasons
    )


def test_daily_dag_scores_every_clean_row_with_the_champion(first_training):
    run = run_day("churn_daily", SCORE_DAY)
    assert run.state == "success", task_states(run)
    scored = warehouse.predictions("churn", SCORE_DAY)
    assert len(scored) == ROWS == warehouse.published_partition("churn", SCORE_DAY).rows_clean
    assert scored.entity_id.is_unique
    champion = model_store.store().champion("churn")
    assert set(scored.model_version) == {int(champion.version)}
    assert set(scored.mlflow_run_id) == {champion.run_id}
    assert set(scored.dag_run_id) == {run.run_id}
    assert scored.score.between(0, 1).all()
    threshold = get_spec("churn").metric.decision_threshold
    assert (scored.predicted_label == (scored.score >= threshold).astype(int)).all()
    assert warehouse.count_rows("predictions_staging", "churn") == 0  # swapped, then cleared

    again = run_day("churn_daily", SCORE_DAY)
    rescored = warehouse.predictions("churn", SCORE_DAY)
    assert len(rescored) == ROWS
    assert set(rescored.dag_run_id) == {again.run_id}
    np.testing.assert_allclose(rescored.score, scored.score)


def test_concurrent_scoring_of_one_day_never_duplicates(first_training):
    from loopline.steps.score import load_champion, plan_scoring, score_day

    spec = get_spec("churn")
    shard = plan_scoring(spec, SCORE_DAY)[0]
    champion, errors = load_champion(spec, shard.version, shard.mlflow_run_id), []

    def score(i: int) -> None:
        try:
            score_day(spec, SCORE_DAY, dag_run_id=f"copy-{i}", champion=champion)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=score, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    scored = warehouse.predictions("churn", SCORE_DAY)
    assert len(scored) == ROWS and scored.dag_run_id.nunique() == 1  # one copy's rows, whole


def test_opt_in_reasons_are_each_predictions_top_contributions(first_training, tmp_path):
    """With explain.reasons the day's predictions each get their top 3 features by
    |contribution| (TreeSHAP), swapped with the predictions; a re-run replaces them, and a spec
    that stops asking leaves the day without reasons, never with stale ones."""
    from loopline.core.explain import contributions
    from loopline.core.features import input_columns
    from loopline.steps.score import score_day

    from ...conftest import write_spec

    specs = tmp_path / "specs"
    write_spec(specs, explain={"reasons": True, "top": 3})
    os.environ["LOOPLINE_SPECS_DIR"] = str(specs)
    try:
        spec = get_spec("churn")
        score_day(spec, SCORE_DAY, dag_run_id="reasons")
        score_day(spec, SCORE_DAY, dag_run_id="reasons-again")
        scored = warehouse.predictions("churn", SCORE_DAY)
        reasons = warehouse.prediction_reasons("churn", SCORE_DAY)
        assert reasons.entity_id.tolist() == scored.entity_id.tolist()  # one row each, no more
        assert set(reasons.model_version) == set(scored.model_version)
        amounts = reasons[["contribution_1", "contribution_2", "contribution_3"]].abs()
        assert (amounts.diff(axis=1).iloc[:, 1:] <= 1e-12).all().all()  # largest first
        assert set(reasons.feature_1) <= set(input_columns(spec))
        # The same contributions as the model's own TreeSHAP on the published rows.
        rows = read_labelled_day(spec)
        model = model_store.store().load_version("churn", int(scored.model_version[0]))
        values, names = contributions(spec, model, rows)
        first = rows[ENTITY_ID].astype(str).tolist().index(reasons.entity_id[0])
        top = int(np.argmax(np.abs(values[first])))
        assert reasons.feature_1[0] == names[top]
        assert reasons.contribution_1[0] == pytest.approx(values[first, top], abs=1e-5)
        # Saabas's approximation, much cheaper: the same kind of rows, one per prediction.
        write_spec(specs, explain={"reasons": True, "method": "approximate"})
        score_day(get_spec("churn"), SCORE_DAY, dag_run_id="approximate")
        approx = warehouse.prediction_reasons("churn", SCORE_DAY)
        assert approx.entity_id.tolist() == scored.entity_id.tolist()
        assert (approx.feature_1 == reasons.feature_1).mean() > 0.6  # mostly the same top one
        write_spec(specs, explain={"reasons": False})
        score_day(get_spec("churn"), SCORE_DAY, dag_run_id="no-reasons")
        assert warehouse.prediction_reasons("churn", SCORE_DAY).empty
    finally:
        os.environ.pop("LOOPLINE_SPECS_DIR", None)


def read_labelled_day(spec) -> pd.DataFrame:
    from loopline.adapters import lake
    from loopline.core.features import typed_frame

    pointer = warehouse.published_partition(spec.name, SCORE_DAY)
    frames = [frame for f in pointer.files for frame in lake.read_batches(f.path)]
    return typed_frame(spec, pd.concat(frames, ignore_index=True))


def test_a_missing_model_column_fails_the_prediction_clearly(first_training, tmp_path, monkeypatch):
    from loopline.steps.score import score_day

    spec = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    spec["features"] = [f for f in spec["features"] if f["name"] != "age"]
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(tmp_path))
    validate_day(get_spec("churn"), SCORE_DAY, run_id="without-age")  # the lake loses 'age'
    before = warehouse.predictions("churn", SCORE_DAY)
    with pytest.raises(PredictionInputError) as info:
        score_day(get_spec("churn"), SCORE_DAY, dag_run_id="manual")
    assert str(info.value).startswith(f"model 'churn', date {SCORE_DAY}, file ")
    assert "version 1: column 'age' needed by the model is missing" in str(info.value)
    run = run_day("churn_daily", SCORE_DAY)
    assert task_states(run)["predict.score_shard[0]"] == "failed"
    ti = next(t for t in run.get_task_instances() if t.task_id == "predict.score_shard")
    assert ti.try_number == 1  # failed fast, no retries
    pd.testing.assert_frame_equal(warehouse.predictions("churn", SCORE_DAY), before)  # untouched
    monkeypatch.delenv("LOOPLINE_SPECS_DIR")
    validate_day(get_spec("churn"), SCORE_DAY, run_id="seed")  # as it was, for the next tests


def test_regression_spec_end_to_end(churn_world, tmp_path, monkeypatch):
    """A second model, a regression with no metric section, from spec file to predictions."""
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(REPO / "include/specs/churn.yaml", specs / "churn.yaml")
    spend = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    spend.update(
        name="spend",
        target={"column": "spend_next_30d", "task": "regression"},
        gate={"min_lift_over_baseline": 1.0, "champion_margin": 0.1, "slice_tolerance": 5.0},
    )
    spend.pop("metric")  # the task's defaults: rmse, guarded by mae
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
    champion = model_store.store().champion("spend")
    assert champion is not None
    baseline = model_store.run_data(champion.run_id).metrics["baseline_holdout_rmse"]
    assert champion.holdout["rmse"] < baseline - 1.0
    assert "roc_auc" not in champion.holdout
    assert events("spend").event.tolist() == ["promoted"]

    daily = run_day("spend_daily", SCORE_DAY)
    assert daily.state == "success", task_states(daily)
    scored = warehouse.predictions("spend", SCORE_DAY)
    assert len(scored) == ROWS and scored.predicted_label.isna().all()
    truth = read_frame(str(landing / "spend" / f"date={SCORE_DAY}" / "part-000.parquet"))
    expected = (1.2 * truth.monthly_charges + 8 * truth.support_calls_30d).to_numpy()
    joined = scored.set_index("entity_id").loc[truth.customer_id, "score"].to_numpy()
    assert np.sqrt(np.mean((joined - expected) ** 2)) < 10  # learned, not the mean (sd ~30)
