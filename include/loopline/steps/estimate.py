"""Estimate a scored day's performance before its labels (binary classifiers): the day's
served scores stream, per version, into a histogram; CBPE (``loopline.core.estimate``), with
the version's score-to-rate map fitted on its holdout, turns it into an estimated primary
metric and accuracy at the decision threshold, each with its sampling band; the same estimate
on the version's holdout scores (its reference profile) is the level a drop is judged against.
Stored in ``warehouse.estimated_performance``, beside the realized performance the labels bring
later."""

from __future__ import annotations

import datetime as dt
import logging

from loopline.adapters import model_store, warehouse
from loopline.core.estimate import (
    Calibration,
    EstimatedDrop,
    ScoreHistogram,
    estimate,
    expected_roc_auc,
    sketch_histogram,
)
from loopline.core.records import EstimatedDay
from loopline.core.spec import ModelSpec

log = logging.getLogger(__name__)


def reference(spec: ModelSpec, version: int) -> tuple[Calibration | None, float | None]:
    """The version's score-to-rate map fitted on its holdout, and its holdout scores (its
    profile's sketch) estimated the same way: the level a day's estimate is judged against."""
    store = model_store.store()
    profile = store.reference_profile(store.version(spec.name, version).run_id)
    calibration = Calibration.from_dict(profile.calibration)
    sketch = profile.score
    if spec.primary_metric != "roc_auc" or sketch is None or not sketch.n:
        return calibration, None
    holdout = sketch_histogram(sketch.points, sketch.cdf, sketch.below, sketch.n)
    return calibration, expected_roc_auc(holdout, calibration)


def estimate_day(spec: ModelSpec, day: dt.date) -> list[EstimatedDay]:
    """The day's estimate per served version (none for a regression, or a day not scored)."""
    if not spec.is_classifier:
        return []
    histograms: dict[int, ScoreHistogram] = {}
    for chunk in warehouse.day_scores(spec.name, day, spec.processing.batch_rows):
        for version, part in chunk.groupby("model_version"):
            histograms.setdefault(int(version), ScoreHistogram()).add(part["score"].to_numpy())
    found = []
    for version, histogram in sorted(histograms.items()):
        calibration, level = reference(spec, version)
        result = estimate(
            histogram,
            threshold=spec.metric.decision_threshold,
            metric=spec.primary_metric,
            calibration=calibration,
            seed=day.toordinal(),
        )
        row = EstimatedDay(
            partition_date=day,
            model_version=version,
            rows=result.rows,
            metric=result.metric,
            value=result.value,
            low=result.low,
            high=result.high,
            reference=level,
            accuracy=result.accuracy,
            accuracy_low=result.accuracy_low,
            accuracy_high=result.accuracy_high,
            threshold=result.threshold,
        )
        warehouse.replace_estimate(spec.name, row)
        log.info("model %s v%d, %s: %s", spec.name, version, day, drop_of(spec, row).text)
        found.append(row)
    return found


def drop_of(spec: ModelSpec, day: EstimatedDay) -> EstimatedDrop:
    se = (day.high - day.low) / (2 * 1.96) if day.low is not None and day.high is not None else 0
    return EstimatedDrop(
        day.metric, day.value, day.reference, se, spec.labels.performance_tolerance
    )


def estimated_drop(spec: ModelSpec, day: dt.date) -> EstimatedDrop | None:
    """The day's estimate of its newest served version against its reference, if estimated."""
    found = warehouse.estimated_days(spec.name, day, day)
    return drop_of(spec, found[-1]) if found else None
