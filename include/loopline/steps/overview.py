"""Describe the models for operators (read-only): one summary per model — its champion and
holdout metrics, the last drift verdict and its report, the last retraining decision and its
reason, realized performance over time, quarantine per day — and per model its version history
and model cards. The Models view in the Airflow UI and the CLI render these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from loopline.adapters import model_store, storage, warehouse
from loopline.adapters.specs import get_spec, load_specs
from loopline.core.errors import PermanentError
from loopline.core.spec import METRICS, ModelSpec


@dataclass
class ModelSummary:
    name: str
    description: str
    task: str
    primary_metric: str
    champion: int | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)
    champion_run_id: str | None = None
    champion_calibrated: bool | None = None
    challenger: int | None = None
    last_drift: dict | None = None
    last_decision: dict | None = None
    performance: list[dict] = field(default_factory=list)
    days: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelDetail:
    summary: ModelSummary
    events: list[dict]
    versions: list[dict]  # {version, aliases, created, card}
    drift_reports: list[dict]


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()})
    return out


def summary(spec: ModelSpec) -> ModelSummary:
    found = ModelSummary(spec.name, spec.description, spec.target.task, spec.primary_metric)
    store = model_store.store()
    champion = store.champion(spec.name)
    if champion is not None:
        found.champion = champion.version
        found.champion_metrics = {m: champion.holdout[m] for m in METRICS if m in champion.holdout}
        found.champion_run_id = champion.run_id
        found.champion_calibrated = champion.calibrated
    challenger = store.challenger(spec.name)
    found.challenger = challenger.version if challenger is not None else None
    drift = warehouse.drift_reports(spec.name)
    if not drift.empty:
        found.last_drift = _records(drift.tail(1))[0]
    decisions = warehouse.retrain_decisions(spec.name)
    if not decisions.empty:
        found.last_decision = _records(decisions.tail(1))[0]
    found.performance = _records(warehouse.performance(spec.name))
    found.days = _records(warehouse.validation_results(spec.name))
    return found


def models() -> list[ModelSummary]:
    """Every model with a loadable spec, by name."""
    specs, _ = load_specs()
    return [summary(spec) for spec in sorted(specs, key=lambda s: s.name)]


def detail(name: str) -> ModelDetail:
    spec = get_spec(name)
    store = model_store.store()
    versions = [
        {
            "version": v.version,
            "aliases": list(v.aliases),
            "created": v.created.isoformat(),
            "card": store.card(v.run_id),
        }
        for v in reversed(store.versions(spec.name))
    ]
    return ModelDetail(
        summary(spec),
        _records(warehouse.model_events(spec.name)),
        versions,
        _records(warehouse.drift_reports(spec.name)),
    )


def drift_report(name: str, report_id: int) -> bytes:
    """The HTML drift report of one check of a model."""
    reports = warehouse.drift_reports(get_spec(name).name)
    found = reports[reports["id"] == int(report_id)]
    if found.empty or not found.iloc[0]["report_uri"]:
        raise PermanentError(f"no drift report {report_id}", model=name)
    return storage.read_bytes(found.iloc[0]["report_uri"])
