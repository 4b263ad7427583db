"""State that must heal, and models that must serve whatever their store or names: a killed CLI
training, a killed run's attempt folder, a read-only model store, and feature names XGBoost
refuses, trained and scored end to end."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from loopline.adapters import lake, model_store, warehouse
from loopline.adapters.specs import get_spec
from loopline.steps.validate import validate_day

from ..conftest import CHURN_SPEC, write_spec
from .suite import DAY, account, case, killed_at, scored_world_of


@pytest.fixture(scope="module")
def world(warehouse_url, airflow_db, tmp_path_factory):
    yield from scored_world_of(warehouse_url, tmp_path_factory)


def test_a_killed_run_s_attempt_folder_goes_once_its_lease_runs_out(world, monkeypatch):
    """Killed runs' folders stayed for 6 hours though the docs said the re-run removes them:
    now a live attempt renews a lease as its shards write, and the first publish after the
    lease ran out (15 minutes) removes a dead one."""
    case("killed-attempt-folder")
    killed = killed_at("validate.shard_written", "validate")
    assert killed.returncode == -9, killed.stderr[-2000:]
    published = warehouse.published_partition("churn", DAY).attempt
    dead = [a for a in lake.attempts_of_day("churn", DAY) if a != published]
    assert dead, "the killed run left no attempt folder"
    validate_day(get_spec("churn"), DAY, run_id="soon-after")  # its lease is fresh: kept
    assert set(dead) <= set(lake.attempts_of_day("churn", DAY))
    soon_after = warehouse.published_partition("churn", DAY).attempt
    monkeypatch.setattr(lake, "LEASE_SECONDS", 0.0)  # ... as if 15 minutes had passed
    validate_day(get_spec("churn"), DAY, run_id="later")
    later = warehouse.published_partition("churn", DAY).attempt
    assert not set(dead) & set(lake.attempts_of_day("churn", DAY))
    # left: the day and the two attempts it replaced, retired (readable for a while)
    assert set(lake.attempts_of_day("churn", DAY)) == {published, soon_after, later}
    account("churn", DAY)


TRAIN_SCRIPT = """
import sys
from loopline.cli import main
sys.exit(main(["train", "churn", "--end-date", sys.argv[1], "--reason", "to be killed"]))
"""


def test_a_killed_cli_training_does_not_stay_running_for_ever(world, airflow_metadata, tmp_path):
    """A killed `loopline train` stayed `running` in the metadata, and the retrain trigger then
    suppressed retraining on six drifted days ("2 training run(s) running"). The next command
    marks it failed."""
    case("killed-cli-training")
    from sqlalchemy import create_engine, inspect, text

    metadata = airflow_metadata
    env = {
        **os.environ,
        "LOOPLINE_HOME": str(tmp_path / "home"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
    }
    env.pop("AIRFLOW_HOME", None)
    engine = create_engine(metadata)

    def running() -> list[tuple]:
        with engine.connect() as conn:
            if not inspect(conn).has_table("dag_run"):
                return []  # the command has not migrated the new store yet
            return conn.execute(
                text(
                    "SELECT run_id, conf FROM dag_run WHERE dag_id = 'churn_train' "
                    "AND state = 'running'"
                )
            ).all()

    process = subprocess.Popen(
        [sys.executable, "-c", TRAIN_SCRIPT, str(DAY)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not running():
            assert process.poll() is None, process.stdout.read()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        process.kill()
        process.wait()
        [(run_id, conf)] = running()
        assert conf["_loopline_cli"]["pid"] == process.pid
        after = subprocess.run(
            [
                sys.executable,
                "-m",
                "loopline.cli",
                "dag",
                "churn_labels",
                "--start",
                str(DAY),
                "--end",
                str(DAY),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert f"marked failed: {run_id}" in after.stdout, after.stdout + after.stderr
        assert running() == []
    finally:
        engine.dispose()


def test_a_read_only_model_store_still_serves_scoring(world):
    """MLflow wrote `registered_model_meta` into the store on every load: with the artifacts on
    a read-only mount scoring failed (200 read, 200 clean, 0 predicted)."""
    case("read-only-model-store")
    from loopline.steps.score import score_day

    root = Path(os.environ["LOOPLINE_HOME"]) / "mlflow-artifacts"
    subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(root)], check=True)
        with pytest.raises(OSError):
            (root / "probe").write_text("x")  # truly read-only, root included
        score_day(get_spec("churn"), DAY, dag_run_id="read-only")
    finally:
        subprocess.run(["umount", str(root)], check=True)
    assert set(warehouse.predictions("churn", DAY).dag_run_id) == {"read-only"}
    account("churn", DAY, predicted=True)


@pytest.mark.parametrize(
    ("name", "renamed"),
    [
        ("odd-feature-names", {"tenure_months": 'tenure "months"', "monthly_charges": "charges %"}),
        (
            "xgboost-refused-names",
            {"tenure_months": "tenure <months>", "monthly_charges": "eur[1]"},
        ),
    ],
)
def test_odd_feature_names_train_and_score_end_to_end(pipeline, monkeypatch, name, renamed):
    """Quotes and % once broke SQL; '<', '[' and ']' passed the spec and validation, then
    XGBoost refused them at training, naming no model or feature. Trained, gated, scored."""
    case(name)
    from loopline.dev.simulate import simulate
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.labels import sync_labels
    from loopline.steps.promote import run_gate
    from loopline.steps.score import score_day
    from loopline.steps.train import run_training

    features = [
        {**f, "name": renamed.get(f["name"], f["name"])}
        for f in yaml.safe_load(CHURN_SPEC.read_text())["features"]
    ]
    specs = pipeline / "specs"
    write_spec(
        specs,
        features=features,
        training={"window_days": 10, "min_days": 8, "validation_days": 2, "holdout_days": 3},
        labels={"delay_days": 0},
    )
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(specs))
    # a model store of its own: the session's churn champion knows the features by other names
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{pipeline / 'mlflow.db'}")
    monkeypatch.setenv("LOOPLINE_MLFLOW_ARTIFACTS", str(pipeline / "mlflow-artifacts"))
    spec = get_spec("churn")
    start = DAY - dt.timedelta(days=9)
    written = simulate(
        landing=str(pipeline / "landing"),
        labels=str(pipeline / "labels"),
        start=start,
        days=10,
        rows_per_day=1000,
        seed=5,
        label_delay_days=0,
    )
    for day in written:
        frame = pd.read_parquet(day.path).rename(columns=renamed)
        frame.to_parquet(day.path, index=False)
        validate_day(spec, day.date, run_id="odd")
    sync_labels(spec, DAY, run_id="odd")
    trained = run_training(spec, DAY, dag_run_id="odd")
    version = run_evaluation(spec, trained.mlflow_run_id).version
    gated = run_gate(spec, version)
    assert gated.promoted, "; ".join(gated.reasons)
    score_day(spec, DAY, dag_run_id="odd")
    assert len(warehouse.predictions("churn", DAY)) == 1000
    account("churn", DAY, predicted=True)
    assert model_store.store().champion("churn") is not None
    # The spec drops a feature: the champion cannot score the next candidate's holdout. The
    # gate once failed inside scikit-learn ("columns are missing"); it says why and waits.
    dropped = next(iter(renamed.values()))
    write_spec(
        specs,
        features=[f for f in features if f["name"] != dropped],
        training={"window_days": 10, "min_days": 8, "validation_days": 2, "holdout_days": 3},
        labels={"delay_days": 0},
    )
    spec = get_spec("churn")
    trained = run_training(spec, DAY, dag_run_id="odd-2")
    version = run_evaluation(spec, trained.mlflow_run_id).version
    gated = run_gate(spec, version)
    assert not gated.promoted and gated.alias == model_store.CHALLENGER
    assert f"champion v{gated.previous_champion} cannot score" in gated.reasons[-1]
    assert dropped in gated.reasons[-1] and "no current champion" not in gated.reasons
