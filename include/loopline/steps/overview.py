"""Describe the models for operators (read-only): one summary per model — its champion and
holdout metrics, the last drift verdict and its report, the last retraining decision and its
reason, realized performance over time, quarantine per day — and per model its version history
and model cards. The Models view in the Airflow UI and the terminal (``steps.digest``) render
these typed views, and nothing else: neither knows a table or a column."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from loopline.adapters import model_store, storage, warehouse
from loopline.adapters.specs import get_spec, load_specs
from loopline.core.errors import PermanentError
from loopline.core.records import (
    DriftCheck,
    EstimatedDay,
    ModelEvent,
    PerformanceDay,
    RetrainDecisionRecord,
    ValidatedDay,
)
from loopline.core.spec import METRICS, ModelSpec


@dataclass(frozen=True)
class ModelSummary:
    """What the overview shows of one model."""

    name: str
    description: str
    task: str
    primary_metric: str
    champion: int | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)
    champion_run_id: str | None = None
    champion_calibrated: bool | None = None
    challenger: int | None = None
    # A candidate the gate passed that waits for a person (gate.approval: required).
    pending_approval: ModelEvent | None = None
    last_drift: DriftCheck | None = None
    last_decision: RetrainDecisionRecord | None = None
    performance: list[PerformanceDay] = field(default_factory=list)
    estimates: list[EstimatedDay] = field(default_factory=list)  # before the labels (CBPE)
    days: list[ValidatedDay] = field(default_factory=list)


@dataclass(frozen=True)
class VersionView:
    """A registered version with the aliases that point at it and its model card."""

    version: int
    aliases: tuple[str, ...]
    created: dt.datetime
    card: dict | None  # the card document (``loopline.core.model_card``), None before cards


@dataclass(frozen=True)
class ModelDetail:
    """What a model's page shows: its summary, history, versions and drift checks."""

    summary: ModelSummary
    events: list[ModelEvent]
    versions: list[VersionView]  # newest first
    drift_reports: list[DriftCheck]


def summary(spec: ModelSpec) -> ModelSummary:
    store = model_store.store()
    champion, challenger = store.champion(spec.name), store.challenger(spec.name)
    drift = warehouse.drift_checks(spec.name)
    decisions = warehouse.decision_records(spec.name)
    history = warehouse.history(spec.name)
    return ModelSummary(
        name=spec.name,
        description=spec.description,
        task=spec.target.task,
        primary_metric=spec.primary_metric,
        champion=champion.version if champion else None,
        champion_metrics=(
            {m: champion.holdout[m] for m in METRICS if m in champion.holdout} if champion else {}
        ),
        champion_run_id=champion.run_id if champion else None,
        champion_calibrated=champion.calibrated if champion else None,
        challenger=challenger.version if challenger else None,
        pending_approval=pending_approval(history),
        last_drift=drift[-1] if drift else None,
        last_decision=decisions[-1] if decisions else None,
        performance=warehouse.performance_days(spec.name),
        estimates=warehouse.estimated_days(spec.name),
        days=warehouse.validated_days(spec.name),
    )


def pending_approval(history: list[ModelEvent]) -> ModelEvent | None:
    """The newest version whose last event is the gate's ``awaiting_approval``, if any."""
    last: dict[int, ModelEvent] = {}
    for event in history:
        last[event.version] = event
    waiting = [e for e in last.values() if e.event == "awaiting_approval"]
    return max(waiting, key=lambda e: e.version) if waiting else None


def models() -> list[ModelSummary]:
    """Every model with a loadable spec, by name."""
    specs, _ = load_specs()
    return [summary(spec) for spec in sorted(specs, key=lambda s: s.name)]


def detail(name: str) -> ModelDetail:
    spec = get_spec(name)
    store = model_store.store()
    versions = [
        VersionView(v.version, v.aliases, v.created, store.card(v.run_id))
        for v in reversed(store.versions(spec.name))
    ]
    return ModelDetail(
        summary(spec),
        warehouse.history(spec.name),
        versions,
        warehouse.drift_checks(spec.name),
    )


def history(name: str) -> list[ModelEvent]:
    """The model's promotions, rejections, rollbacks and approvals, oldest first."""
    return warehouse.history(get_spec(name).name)


def monitoring(name: str) -> tuple[list[DriftCheck], list[RetrainDecisionRecord]]:
    """Every drift check and every retraining decision of the model, oldest first."""
    model = get_spec(name).name
    return warehouse.drift_checks(model), warehouse.decision_records(model)


def days(name: str) -> list[ValidatedDay]:
    """Every validated day with its counts and predictions, oldest first."""
    return warehouse.validated_days(get_spec(name).name)


def drift_report(name: str, report_id: int) -> bytes:
    """The HTML drift report of one check of a model."""
    found = [c for c in warehouse.drift_checks(get_spec(name).name) if c.id == int(report_id)]
    if not found or not found[0].report_uri:
        raise PermanentError(f"no drift report {report_id}", model=name)
    return storage.read_bytes(found[0].report_uri)
