"""Training on small in-memory frames: the time split, leakage guards, unseen categories."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from loopline.adapters.specs import get_spec
from loopline.core.columns import EVENT_TS, LABEL, PARTITION_DATE
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

from ..frames import labelled_days as simulated_days

SPEC = get_spec("churn")
START = dt.date(2026, 1, 1)


def labelled_days(n: int, rows: int = 300) -> pd.DataFrame:
    return simulated_days(SPEC, n, rows, seed=2)


def test_split_is_by_time_and_never_shuffled():
    data = split_by_time(SPEC, labelled_days(24))
    assert max(data.train[PARTITION_DATE]) < min(data.validation[PARTITION_DATE])
    assert max(data.validation[PARTITION_DATE]) < min(data.holdout[PARTITION_DATE])
    assert data.validation[PARTITION_DATE].nunique() == SPEC.training.validation_days
    assert data.holdout[PARTITION_DATE].nunique() == SPEC.training.holdout_days
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
    # 10 days cannot hold validation (5) + holdout (7) + 1: lowering min_days alone cannot help,
    # and the hint must not suggest a number above the days there are (it said "at most 13").
    assert "lowering training.min_days is not enough" in message
    assert "validation_days + holdout_days + 1 = 13 days" in message
    assert "at most 13" not in message and "with training.min_days at most 10" in message
    assert not info.value.retryable
    with pytest.raises(TrainingDataError) as info:
        split_by_time(SPEC, labelled_days(15))
    assert "lower training.min_days to at most 15 (the days there are)" in str(info.value)


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

    assert roc_auc_score(holdout[LABEL], score(SPEC, model, holdout)) > 0.7
    assert roc_auc_score(holdout[LABEL], score(SPEC, baseline, holdout)) == 0.5
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


# --- after a change: the post-change holdout and the candidates ----------------------------------


def changed_days(n: int, change_at: int, rows: int = 400) -> pd.DataFrame:
    """``n`` labelled days, the concept changed from day ``change_at`` on (strength 2)."""
    from loopline.dev.simulate import Scenario

    drift = [Scenario("concept_drift", start_day=change_at, strength=2.0)]
    frames = []
    for i in range(n):
        day = START + dt.timedelta(days=i)
        frame, label = generate_day(day, i, rows=rows, seed=4, scenarios=drift)
        frame = frame.rename(columns={"snapshot_ts": EVENT_TS})
        frames.append(frame.assign(**{PARTITION_DATE: day, LABEL: label.astype(float)}))
    return typed_frame(SPEC, pd.concat(frames, ignore_index=True))


def test_one_post_change_day_is_split_by_event_time_newest_half_held_out():
    from loopline.core.training import post_change_holdout

    frame = changed_days(12, change_at=11)
    change = START + dt.timedelta(days=11)
    rest, holdout = post_change_holdout(SPEC, frame, change)
    assert set(holdout[PARTITION_DATE]) == {change}
    assert len(holdout) == 200  # the newest half of the day's 400 rows
    post_rest = rest[rest[PARTITION_DATE] == change]
    assert post_rest[EVENT_TS].max() <= holdout[EVENT_TS].min()
    assert len(rest) + len(holdout) == len(frame)


def test_the_holdout_is_the_newest_share_of_post_change_days():
    from loopline.core.training import post_change_holdout

    frame = changed_days(16, change_at=10)  # six post-change days: a third is two
    rest, holdout = post_change_holdout(SPEC, frame, START + dt.timedelta(days=10))
    assert sorted(set(holdout[PARTITION_DATE])) == [START + dt.timedelta(days=i) for i in (14, 15)]
    assert max(rest[PARTITION_DATE]) < min(holdout[PARTITION_DATE])
    assert post_change_holdout(SPEC, frame, START + dt.timedelta(days=20)) is None  # no day after


def test_candidates_share_the_holdout_and_differ_in_what_they_learn_from():
    from loopline.core.training import change_candidates

    change = START + dt.timedelta(days=10)
    built, skipped = change_candidates(SPEC, changed_days(16, change_at=10), change)
    assert [c.name for c in built] == ["window", "recent", "post_change"] and not skipped
    holdouts = {id(c.data.holdout) for c in built}
    assert len(holdouts) == 1
    post = next(c for c in built if c.name == "post_change")
    assert min(post.data.train[PARTITION_DATE]) == change
    recent = next(c for c in built if c.name == "recent")
    after = (recent.data.train[PARTITION_DATE] >= change).to_numpy()
    share = recent.weights[after].sum() / recent.weights.sum()
    assert share == pytest.approx(SPEC.retraining.recent_weight_share)
    assert (recent.weights[~after] == 1).all()
    window = next(c for c in built if c.name == "window")
    assert min(window.data.train[PARTITION_DATE]) == START


def test_a_post_change_candidate_needs_enough_rows():
    from loopline.core.training import change_candidates

    spec = SPEC.model_copy(
        update={"retraining": SPEC.retraining.model_copy(update={"min_post_change_rows": 5000})}
    )
    built, skipped = change_candidates(spec, changed_days(14, 12), START + dt.timedelta(days=12))
    assert "post_change" not in [c.name for c in built]
    assert any("needs 5000 (retraining.min_post_change_rows)" in s for s in skipped)


def test_the_post_change_candidate_learns_the_new_concept_the_window_does_not():
    from loopline.core.gate import choose
    from loopline.core.metrics import metrics
    from loopline.core.training import change_candidates

    change = START + dt.timedelta(days=10)
    built, _ = change_candidates(SPEC, changed_days(16, 10, rows=800), change)
    results = {}
    for candidate in built:
        model, _ = fit_xgboost(SPEC, candidate.data, weights=candidate.weights)
        holdout = candidate.data.holdout
        results[candidate.name] = metrics(SPEC, holdout[LABEL], score(SPEC, model, holdout))
    name, reasons = choose(SPEC, results, {c.name: c.describe() for c in built})
    assert name in ("recent", "post_change")
    assert results[name]["roc_auc"] > results["window"]["roc_auc"] + 0.03
    assert any("chosen (best of 3)" in r for r in reasons)
    assert any(r.startswith("candidate window (") and "lost to" in r for r in reasons)
