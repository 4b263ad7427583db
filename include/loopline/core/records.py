"""The records loopline keeps in the warehouse, as typed values: steps build and read these, the
warehouse adapter alone knows the tables and columns they live in (so a migration that renames
a column changes the adapter, not every step that writes or reads the row)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class LakeFile:
    """One published clean file of a day and its rows."""

    path: str
    rows: int


@dataclass(frozen=True)
class PublishedDay:
    """The pointer to a day's published clean files (``lake_partitions``)."""

    attempt: str
    location: str
    files: tuple[LakeFile, ...]
    rows_clean: int
    run_id: str
    published_at: dt.datetime | None = None


@dataclass(frozen=True)
class ValidationOutcome:
    """What a validation of a day concluded (``validation_results``): the counts are those of
    the day as published, so read = clean + quarantined holds even after a failed attempt."""

    run_id: str
    published_run_id: str | None
    rows_read: int
    rows_clean: int
    rows_quarantined: int
    success: bool
    failed_expectations: Sequence[Mapping[str, Any]] = ()
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelEvent:
    """A line of a model's history (``model_events``): a promotion, a rejection, a rollback, a
    challenger set, kept or retired; written ahead as ``pending`` when it moves an alias."""

    model: str
    event: str
    version: int
    previous_champion: int | None
    reasons: Sequence[str]
    metrics: Mapping[str, Any]
    mlflow_run_id: str | None
    dag_run_id: str | None
    state: str = "done"
    alias: str | None = None
    removes_alias: bool = False
    decided_by: str | None = None  # who approved or rejected it (gate.approval: required)
    id: int | None = None  # known once recorded
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class PendingEvent:
    """An event written ahead of an alias move that has not been settled yet."""

    id: int
    event: str
    version: int
    alias: str | None
    removes_alias: bool


@dataclass(frozen=True)
class RetrainDecisionRecord:
    """A retraining decision of a day and source (``retrain_decisions``), triggered or not."""

    model: str
    partition_date: dt.date
    source: str
    triggered: bool
    reason: str
    report_id: int | None = None
    train_run_id: str | None = None
    dag_run_id: str | None = None
    change_date: dt.date | None = None
    follow_up: bool = False


@dataclass(frozen=True)
class ChangeRecord:
    """The newest change retrainings were triggered for: its first day, how many were
    triggered for it, and the day of the last."""

    first_day: dt.date
    retrainings: int
    last_trigger: dt.date


@dataclass(frozen=True)
class ShadowComparison:
    """Challenger against champion on one day's labelled rows and over the rolling window
    (``shadow_comparisons``); None where a figure is not defined (one class only)."""

    model: str
    partition_date: dt.date
    champion_version: int
    challenger_version: int
    metric: str
    rows: int
    champion_value: float | None
    challenger_value: float | None
    difference: float | None
    low: float | None
    high: float | None
    window_start: dt.date
    window_rows: int
    window_difference: float | None
    window_low: float | None
    window_high: float | None
    labelled_days: int
    verdict: str


# --- what the Models view and the terminal read back ------------------------------------------


@dataclass(frozen=True)
class DriftCheck:
    """One drift check of a day (``drift_reports``): its verdict, the features that drifted,
    the version it compared with, and where its HTML report is."""

    id: int
    partition_date: dt.date
    dataset_drift: bool
    drifted_share: float | None
    drifted_features: tuple[str, ...]
    report_uri: str | None
    model_version: int | None


@dataclass(frozen=True)
class PerformanceDay:
    """A version's realized performance on one scored day once its labels arrived
    (``model_performance``), beside the levels it is judged against."""

    partition_date: dt.date
    model_version: int
    rows: int
    primary_metric: str
    value: float | None
    reference: float | None  # the version's holdout value
    live_reference: float | None  # the live level before the change (or the window)
    degraded: bool
    metrics: Mapping[str, float] = field(default_factory=dict)  # every metric of the spec


@dataclass(frozen=True)
class ValidatedDay:
    """A validated day: rows read, clean and quarantined, whether its last validation
    succeeded, and how many of its rows were scored by which version."""

    partition_date: dt.date
    rows_read: int
    rows_clean: int
    rows_quarantined: int
    success: bool | None
    error: str | None = None
    predicted: int = 0
    scored_by: int | None = None


@dataclass(frozen=True)
class EstimatedDay:
    """A served version's performance on one scored day, estimated from its calibrated scores
    before the labels (``estimated_performance``), with its band and its holdout's estimate."""

    partition_date: dt.date
    model_version: int
    rows: int
    metric: str
    value: float | None
    low: float | None
    high: float | None
    reference: float | None
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    threshold: float
