"""Performance estimated from calibrated scores (CBPE, pure): the expected ROC-AUC is the mean
of the realized one over labels drawn from the scores, its band covers the realized metric as
often as it says, a day streams into a fixed histogram in chunks, a reference sketch estimates
like its rows, and degenerate days give defined answers."""

from __future__ import annotations

import numpy as np
import pytest
from loopline.core.drift import NumericSketch
from loopline.core.estimate import (
    EstimatedDrop,
    ScoreHistogram,
    estimate,
    expected_accuracy,
    expected_roc_auc,
    sketch_histogram,
)
from sklearn.metrics import roc_auc_score


def calibrated_day(rng, rows: int) -> tuple[np.ndarray, np.ndarray]:
    scores = rng.beta(1, 8, rows)
    return scores, rng.uniform(size=rows) < scores


def test_the_expected_auc_is_the_mean_realized_auc_of_calibrated_labels():
    rng = np.random.default_rng(3)
    scores = rng.beta(1, 6, 4000)
    realized = [roc_auc_score(rng.uniform(size=len(scores)) < scores, scores) for _ in range(300)]
    found = expected_roc_auc(ScoreHistogram.of(scores))
    assert found == pytest.approx(np.mean(realized), abs=0.002)


def test_the_band_covers_the_realized_metric_about_as_often_as_it_says():
    rng = np.random.default_rng(11)
    covered = accuracy_covered = 0
    days = 200
    for seed in range(days):
        scores, labels = calibrated_day(rng, 3000)
        found = estimate(ScoreHistogram.of(scores), threshold=0.1, seed=seed)
        covered += found.low <= roc_auc_score(labels, scores) <= found.high
        realized = ((scores >= 0.1) == labels).mean()
        accuracy_covered += found.accuracy_low <= realized <= found.accuracy_high
    assert 0.90 <= covered / days <= 0.99
    assert 0.90 <= accuracy_covered / days <= 0.995


def test_a_day_streams_in_chunks_and_a_bigger_day_has_a_narrower_band():
    rng = np.random.default_rng(5)
    scores, _ = calibrated_day(rng, 400_000)
    streamed = ScoreHistogram()
    for chunk in np.array_split(scores, 7):
        streamed.add(chunk)
    whole = estimate(streamed, threshold=0.1)
    assert whole == estimate(ScoreHistogram.of(scores), threshold=0.1)
    part = estimate(ScoreHistogram.of(scores[:20_000]), threshold=0.1)
    assert whole.rows == 400_000
    assert (whole.high - whole.low) < (part.high - part.low) / 3  # ~ sqrt(20) narrower
    assert whole.low < whole.value < whole.high
    assert whole.expected_positive_rate == pytest.approx(scores.mean())


def test_a_reference_sketch_estimates_like_its_rows():
    rng = np.random.default_rng(8)
    scores = rng.beta(1, 6, 50_000)
    sketch = NumericSketch.build(scores)
    from_sketch = sketch_histogram(sketch.points, sketch.cdf, sketch.below, sketch.n)
    assert from_sketch.total == pytest.approx(len(scores))
    assert expected_roc_auc(from_sketch) == pytest.approx(
        expected_roc_auc(ScoreHistogram.of(scores)), abs=0.002
    )


def test_accuracy_at_the_threshold():
    found = expected_accuracy(ScoreHistogram.of([0.9, 0.2, 0.5]), threshold=0.5)
    assert found == pytest.approx((0.9 + 0.8 + 0.5) / 3, abs=1e-4)


def test_degenerate_days_give_defined_answers():
    assert expected_roc_auc(ScoreHistogram.of([0.0, 0.0])) is None
    assert expected_roc_auc(ScoreHistogram.of([1.0])) is None
    nothing = estimate(ScoreHistogram(), threshold=0.5)
    assert nothing.rows == 0 and nothing.value is None and nothing.accuracy is None
    certain = estimate(ScoreHistogram.of([0.0, 1.0, np.nan]), threshold=0.5)
    assert certain.rows == 2 and certain.value == 1.0 and certain.accuracy == 1.0


def test_a_drop_counts_beyond_the_tolerance_and_two_standard_errors():
    drop = EstimatedDrop("roc_auc", value=0.78, reference=0.85, standard_error=0.01, tolerance=0.03)
    assert drop.dropped and "is below the reference's 0.8500" in drop.text
    near = EstimatedDrop("roc_auc", value=0.80, reference=0.85, standard_error=0.01, tolerance=0.03)
    assert not near.dropped and "not clearly below" in near.text
    unknown = EstimatedDrop("roc_auc", value=None, reference=0.85, standard_error=0, tolerance=0)
    assert not unknown.dropped and unknown.text.startswith("no estimate")


def test_overconfident_scores_are_estimated_through_the_references_map():
    """A model whose scores are twice too confident: taken as calibrated, CBPE overstates its
    ROC-AUC; through the map fitted on a labelled reference of the same model it does not."""
    from loopline.core.estimate import Calibration

    rng = np.random.default_rng(21)
    truth = rng.beta(1, 8, 60_000)
    labels = rng.uniform(size=len(truth)) < truth
    scores = truth**0.5  # same ranking, overconfident probabilities
    reference, day = slice(0, 30_000), slice(30_000, None)
    realized = roc_auc_score(labels[day], scores[day])
    naive = estimate(ScoreHistogram.of(scores[day]), threshold=0.3)
    mapped = Calibration.fit(scores[reference], labels[reference])
    calibrated = estimate(ScoreHistogram.of(scores[day]), threshold=0.3, calibration=mapped)
    assert abs(naive.value - realized) > 0.05
    assert abs(calibrated.value - realized) < 0.02
    accuracy = ((scores[day] >= 0.3) == labels[day]).mean()
    assert abs(calibrated.accuracy - accuracy) < 0.01 < abs(naive.accuracy - accuracy)
    assert Calibration.from_dict(mapped.to_dict()) == mapped
    assert Calibration.fit([0.1, 0.2], [0, 0]) is None  # one class: nothing to map to
