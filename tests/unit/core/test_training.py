"""Training on small in-memory frames: the time split, leakage guards, unseen categories."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from loopline.adapters.specs import get_spec
from loopline.core.errors import TrainingDataError
from loopline.core.features import input_columns, typed_frame
from loopline.core.training import (
    fit_baseline,
    fit_xgboost,
    score,
    split_by_time,
    training_window,
)
from loopline.dev.simulate import generate_day

SPEC = get_spec("churn")
START = dt.date(2026, 1, 1)


def labelled_days(n: int, rows: int = 300) -> pd.DataFrame:
    frames = []
    for i in range(n):
        day = START + dt.timedelta(days=i)
        frame, label = generate_day(day, i, rows=rows, seed=2)
        frames.append(frame.assign(partition_date=day, label=label.astype(float)))
    return typed_frame(SPEC, pd.concat(frames, ignore_index=True))


def test_split_is_by_time_and_never_shuffled():
    data = split_by_time(SPEC, labelled_days(24))
    assert max(data.train.partition_date) < min(data.validation.partition_date)
    assert max(data.validation.partition_date) < min(data.holdout.partition_date)
    assert data.validation.partition_date.nunique() == SPEC.training.validation_days
    assert data.holdout.partition_date.nunique() == SPEC.training.holdout_days
    assert data.counts() == {
        "rows_train": 12 * 300,
        "rows_validation": 5 * 300,
        "rows_holdout": 7 * 300,
    }


def test_too_few_days_is_a_clear_error_naming_the_setting_and_what_the_data_allows():
    with pytest.raises(TrainingDataError) as info:
        split_by_time(SPEC, labelled_days(10))
    message = str(info.value)
    assert message.startswith("model 'churn': 10 labelled day(s) in the training window")
    assert "the spec needs at least 21 (training.min_days)" in message
    assert "lower training.min_days to at most 13" in message
    assert not info.value.retryable


def test_training_window_ends_where_labels_have_arrived():
    start, last = training_window(SPEC, dt.date(2026, 3, 1))
    assert last == dt.date(2026, 3, 1) - dt.timedelta(days=SPEC.labels.delay_days)
    assert (last - start).days + 1 == SPEC.training.window_days


def test_candidate_beats_baseline_and_survives_unseen_categories():
    data = split_by_time(SPEC, labelled_days(24))
    model, params = fit_xgboost(SPEC, data, seed=0)
    baseline = fit_baseline(SPEC, data)
    assert "scale_pos_weight" not in params  # probabilities stay calibrated by default
    assert 0 < params["best_iteration"] < params["n_estimators"]
    balanced = SPEC.model_copy(
        update={"training": SPEC.training.model_copy(update={"balance_classes": True})}
    )
    assert fit_xgboost(balanced, data, seed=0)[1]["scale_pos_weight"] > 10  # a few % positives
    holdout = data.holdout.copy()
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(holdout.label, score(SPEC, model, holdout)) > 0.7
    assert roc_auc_score(holdout.label, score(SPEC, baseline, holdout)) == 0.5
    holdout.loc[holdout.index[:5], "plan"] = "platinum"  # never seen, not in the spec
    scores = score(SPEC, model, holdout)
    assert np.isfinite(scores).all()
    # Same seed, same model.
    again, _ = fit_xgboost(SPEC, data, seed=0)
    np.testing.assert_array_equal(score(SPEC, again, holdout), scores)


def test_columns_unavailable_at_prediction_never_become_features():
    features = [
        f.model_copy(update={"available_at_prediction": f.name != "nps_score"})
        for f in SPEC.features
    ]
    spec = SPEC.model_copy(update={"features": features})
    assert "nps_score" not in input_columns(spec)
    data = split_by_time(spec, labelled_days(24, rows=150))
    model, _ = fit_xgboost(spec, data)
    assert "nps_score" not in list(model.named_steps["features"].feature_names_in_)
