"""Attributions from XGBoost's own contributions (pure): they add up to the margin, a feature
the model never splits on gets none, slices keep only values with enough rows, and the top
reasons are the largest contributions of each row."""

from __future__ import annotations

import numpy as np
import pytest
from loopline.adapters.specs import get_spec
from loopline.core.explain import MIN_SLICE_ROWS, attributions, contributions, top_reasons
from loopline.core.features import input_columns
from loopline.core.metrics import calibrate
from loopline.core.training import base_pipeline, fit_xgboost, split_by_time

from ..frames import labelled_days

SPEC = get_spec("churn")


@pytest.fixture(scope="module")
def fitted():
    data = split_by_time(SPEC, labelled_days(SPEC, 24, seed=4))
    model, _ = fit_xgboost(SPEC, data, seed=0)
    return model, data


def test_contributions_add_up_to_the_margin(fitted):
    model, data = fitted
    values, names = contributions(SPEC, model, data.holdout)
    assert values.shape == (len(data.holdout), len(input_columns(SPEC)))
    assert set(names) == set(input_columns(SPEC))
    pipeline = base_pipeline(model)
    prepared = pipeline.named_steps["features"].transform(data.holdout[input_columns(SPEC)])
    margin = pipeline.named_steps["model"].predict(prepared, output_margin=True)
    bias = margin - values.sum(axis=1)
    assert np.allclose(bias, bias[0], atol=1e-4)  # one bias for every row: the rest is theirs


def test_a_calibrated_model_is_explained_through_its_booster(fitted):
    model, data = fitted
    calibrated = calibrate(model, data.validation, input_columns(SPEC))
    plain, _ = contributions(SPEC, model, data.holdout.head(50))
    through, _ = contributions(SPEC, calibrated, data.holdout.head(50))
    assert np.allclose(plain, through)


def test_global_attributions_rank_features_and_skip_small_slices(fitted):
    model, data = fitted
    found = attributions(SPEC, model, data.holdout)
    assert found.rows == len(data.holdout)
    assert set(found.overall) == set(input_columns(SPEC))
    assert all(v >= 0 for v in found.overall.values()) and max(found.overall.values()) > 0
    assert sum(found.shares().values()) == pytest.approx(1.0)
    ranked = list(found.to_dict()["overall"].values())
    assert ranked == sorted(ranked, reverse=True)
    counts = data.holdout["plan"].value_counts()
    assert set(found.slices["plan"]) == {v for v, n in counts.items() if n >= MIN_SLICE_ROWS}
    assert set(found.slices) == set(SPEC.slices)


def test_an_ignored_feature_gets_no_attribution(fitted):
    _, data = fitted
    constant = data.__class__(
        *(part.assign(age=40.0) for part in (data.train, data.validation, data.holdout))
    )
    model, _ = fit_xgboost(SPEC, constant, seed=0)  # a constant column is never split on
    found = attributions(SPEC, model, data.holdout)  # whatever age the rows have
    assert found.overall["age"] == 0.0
    assert max(found.overall.values()) > 0


def test_top_reasons_are_the_largest_contributions_of_each_row():
    values = np.array([[0.1, -0.5, 0.2, 0.0], [0.0, 0.0, 0.0, 0.3]])
    features, amounts = top_reasons(values, ["a", "b", "c", "d"], k=3)
    assert features.tolist() == [["b", "c", "a"], ["d", "a", "b"]]
    assert amounts.tolist() == [[-0.5, 0.2, 0.1], [0.3, 0.0, 0.0]]
    wide, _ = top_reasons(values[:, :2], ["a", "b"], k=3)
    assert wide.shape == (2, 2)


def test_approximate_contributions_add_up_too_and_mostly_agree_on_the_top_reason(fitted):
    model, data = fitted
    exact, names = contributions(SPEC, model, data.holdout)
    approx, same = contributions(SPEC, model, data.holdout, approximate=True)
    assert names == same
    assert np.allclose(exact.sum(axis=1) - approx.sum(axis=1), 0, atol=1e-3)  # same margins
    top = (np.abs(exact).argmax(axis=1) == np.abs(approx).argmax(axis=1)).mean()
    assert 0.6 < top < 1.0  # an approximation: mostly, not always, the same top feature
