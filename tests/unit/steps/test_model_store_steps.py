"""Steps on the in-memory model store: what a training logs, what the evaluation registers
with its card and reference, and how the stateful mode finds the champion's window, with no
MLflow behind them (the store's verbs are loopline's, so any store serves)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from loopline.adapters import model_store
from loopline.adapters.memory_store import MemoryModelStore
from loopline.adapters.specs import get_spec
from loopline.core.columns import LABEL
from loopline.core.drift import build_profile
from loopline.core.errors import PermanentError
from loopline.core.features import input_columns
from loopline.core.registry import BASELINE, CANDIDATE, CHAMPION, TrainingLog
from loopline.core.training import fit_baseline, fit_xgboost, score, split_by_time

from ..frames import labelled_days as simulated_days

SPEC = get_spec("churn")
START = dt.date(2026, 1, 1)


def labelled_days(n: int, rows: int = 300) -> pd.DataFrame:
    return simulated_days(SPEC, n, rows, seed=3)


@pytest.fixture(scope="module")
def training() -> TrainingLog:
    data = split_by_time(SPEC, labelled_days(24))
    candidate, params = fit_xgboost(SPEC, data, seed=0)
    baseline = fit_baseline(SPEC, data)
    sample = data.validation[input_columns(SPEC)].head(50)
    return TrainingLog(
        title="churn until 2026-01-24",
        reason="unit",
        dag_run_id="manual__unit",
        window=data.window,
        task=SPEC.target.task,
        candidate_name="window",
        change_date=None,
        params={**params, "mode": "stateless"},
        counts=data.counts(),
        baseline=baseline,
        candidate=candidate,
        sample=sample,
        sample_scores={
            BASELINE: score(SPEC, baseline, sample),
            CANDIDATE: score(SPEC, candidate, sample),
        },
        validation=data.validation,
        holdout=data.holdout,
        choice={"reasons": ["the sliding window"]},
        profile=build_profile(SPEC, data.train, labels=data.train[LABEL].to_numpy()),
        drifting=[],
    )


@pytest.fixture
def store():
    with model_store.using(MemoryModelStore()) as memory:
        yield memory


def test_evaluation_registers_a_version_with_its_card_and_reference(store, training):
    from loopline.steps.evaluate import run_evaluation

    run_id = store.log_training("churn", training)
    result = run_evaluation(SPEC, run_id)
    assert result.version == 1
    version = store.version("churn", 1)
    assert version.run_id == run_id and version.aliases == ()
    # The version's holdout figures are the evaluation's, and the card says where they came from.
    assert version.holdout["roc_auc"] == pytest.approx(result.metrics["holdout_roc_auc"])
    assert version.holdout["roc_auc"] > result.metrics["baseline_holdout_roc_auc"] + 0.05
    card = store.card(run_id)
    assert card["version"] == 1 and card["mlflow_run_id"] == run_id
    assert card["training"]["window"] == [d.isoformat() for d in training.window]
    assert card["training"]["rows"] == dict(training.counts)
    assert card["training"]["reason"] == "unit" and card["gate"] is None
    assert store.descriptions[("churn", 1)].startswith("#")  # the card's Markdown
    # The reference every drift check compares with has the final model's holdout scores.
    reference = store.reference_profile(run_id)
    assert reference.score is not None and reference.score.n == len(training.holdout)
    assert set(reference.numeric) == set(training.profile.numeric)
    # ... and weighs each feature by its share of the final model's attributions.
    assert reference.importance_kind == "attribution"
    assert sum(reference.importance.values()) == pytest.approx(1.0)
    explained = card["attributions"]
    assert explained["rows"] == len(training.holdout)
    top = next(iter(explained["overall"]))
    assert reference.importance[top] == max(reference.importance.values())
    assert set(explained["slices"]) == set(SPEC.slices)


def test_a_second_evaluation_is_the_next_version_and_aliases_follow_the_store(store, training):
    from loopline.steps.evaluate import run_evaluation

    first = run_evaluation(SPEC, store.log_training("churn", training)).version
    second = run_evaluation(SPEC, store.log_training("churn", training)).version
    assert (first, second) == (1, 2)
    store.set_alias("churn", CHAMPION, 2)
    assert store.champion("churn").version == 2 and store.challenger("churn") is None
    assert [v.aliases for v in store.versions("churn")] == [(), (CHAMPION,)]
    store.remove_alias("churn", CHAMPION)
    assert store.champion("churn") is None
    with pytest.raises(PermanentError, match=r"no version 3 \(versions: v1..v2\)"):
        store.version("churn", 3)


def test_stateful_training_continues_after_the_champions_window(store, training):
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.train import _stateful_base

    stateful = SPEC.model_copy(
        update={"training": SPEC.training.model_copy(update={"mode": "stateful"})}
    )
    assert _stateful_base(stateful, START) == (None, START)  # no champion: from the start
    version = run_evaluation(SPEC, store.log_training("churn", training)).version
    store.set_alias("churn", CHAMPION, version)
    (champion, base), start = _stateful_base(stateful, START)
    assert champion.version == version
    assert start == training.window[1] + dt.timedelta(days=1)
    rows = training.holdout[input_columns(SPEC)].head(20)
    assert list(score(SPEC, base, rows)) == list(
        score(SPEC, store.load_version("churn", version), rows)
    )
    # A stateless spec ignores the champion.
    assert _stateful_base(SPEC, START) == (None, START)
