"""Promote (or not): score the candidate version, the baseline and the current champion on the
candidate's holdout now, let the gate decide, move the alias, and record the decision with its
reasons and the three models' metrics in ``warehouse.model_events``."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from loopline.adapters import model_store, warehouse
from loopline.core import gate, model_card
from loopline.core.metrics import ece_noise, metrics, paired_noise, slice_metrics
from loopline.core.spec import ModelSpec
from loopline.core.training import LABEL, score
from loopline.steps.evaluate import save_card

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    version: int
    promoted: bool
    alias: str
    previous_champion: int | None
    reasons: list[str]

    def as_dict(self) -> dict:
        return asdict(self)


def _finite(values: dict) -> dict:
    return {k: v for k, v in values.items() if v == v}


def run_gate(spec: ModelSpec, version: int, *, dag_run_id: str | None = None) -> GateResult:
    candidate = model_store.model_version(spec.name, version)
    run_id = candidate.run_id
    holdout = model_store.load_frame(run_id, model_store.HOLDOUT)
    y = holdout[LABEL].to_numpy()
    load = model_store.load_model
    scored = {
        "candidate": score(spec, load(f"models:/{spec.name}/{version}", model=spec.name), holdout),
        "baseline": score(spec, load(f"runs:/{run_id}/{model_store.BASELINE}"), holdout),
    }
    current = model_store.champion_version(spec.name)
    if current is not None and int(current.version) != int(version):
        champion = load(f"models:/{spec.name}/{current.version}", model=spec.name)
        scored["champion"] = score(spec, champion, holdout)
    results = {name: metrics(spec, y, s) for name, s in scored.items()}
    slices = {name: slice_metrics(spec, holdout, s) for name, s in scored.items()}
    noise = {
        metric: paired_noise(spec, metric, y, scored["candidate"], scored["baseline"])
        for metric in spec.guardrails
    }
    decision = gate.decide(
        spec,
        results["candidate"],
        results["baseline"],
        results.get("champion"),
        slices["candidate"],
        slices.get("champion"),
        noise,
        ece_noise(scored["candidate"]) if spec.is_classifier else 0.0,
    )
    previous = int(current.version) if current is not None else None
    event, alias, reasons = route(spec, decision, previous)
    model_store.set_alias(spec.name, alias, version)
    warehouse.record_model_event(
        {
            "model": spec.name,
            "event": event,
            "version": int(version),
            "previous_champion": previous,
            "reasons": reasons,
            "metrics": {name: _finite(r) for name, r in results.items()},
            "mlflow_run_id": run_id,
            "dag_run_id": dag_run_id,
        }
    )
    card = model_store.load_dict(run_id, model_store.MODEL_CARD)
    save_card(
        spec.name,
        version,
        model_card.with_gate(
            card,
            {
                "promoted": event == "promoted",
                "previous_champion": previous,
                "reasons": reasons,
            },
        ),
    )
    log.info("model %s version %s: %s", spec.name, version, "; ".join(reasons))
    return GateResult(int(version), event == "promoted", alias, previous, reasons)


def route(spec: ModelSpec, decision: gate.Decision, previous: int | None):
    """(event, alias, reasons): with a shadow period in the spec, a candidate that passes the
    offline gate against a champion becomes challenger and waits for live evidence."""
    if not decision.promote:
        return "rejected", model_store.CHALLENGER, decision.reasons
    days = spec.shadow.required_days
    if days and previous is not None:
        note = (
            f"passed the offline gate: scored in shadow, champion only after {days} labelled "
            f"day(s) beating v{previous} on live data (shadow.required_days)"
        )
        return "shadowing", model_store.CHALLENGER, [*decision.reasons, note]
    return "promoted", model_store.CHAMPION, decision.reasons
