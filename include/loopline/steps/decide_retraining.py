"""Decide a retraining: gather what the rules need (recent drift verdicts, the last trigger,
new labels since the champion's window), apply them, and record the decision, triggered or
suppressed, with its reason in ``warehouse.retrain_decisions``. Days are data days (the
partition), never the wall clock, so a backfill decides exactly as the live run did."""

from __future__ import annotations

import datetime as dt

from loopline.adapters import model_store, warehouse
from loopline.core.retraining import RetrainDecision, TrainingRuns, decide
from loopline.core.spec import ModelSpec


def new_labelled_rows(spec: ModelSpec, day: dt.date) -> int:
    """Labels of feature days after the champion's training window, up to ``day``."""
    champion = model_store.champion_version(spec.name)
    if champion is None:
        return 0
    window_end = model_store.run_tags(champion.run_id).get("window_end")
    since = dt.date.fromisoformat(window_end) if window_end else dt.date.min
    return warehouse.count_labels_after(spec.name, since, day)


def decide_and_record(
    spec: ModelSpec,
    day: dt.date,
    *,
    source: str,
    signal: bool,
    signal_text: str,
    report_id: int | None,
    training_runs: TrainingRuns,
    dag_run_id: str | None,
    train_run_id: str | None = None,
) -> RetrainDecision:
    decision = decide(
        spec.drift,
        source=source,
        signal=signal,
        signal_text=signal_text,
        recent_flags=warehouse.recent_drift_flags(spec.name, day, spec.drift.persistence_m),
        days_since_trigger=warehouse.days_since_last_trigger(spec.name, day),
        training_runs=training_runs,
        new_labels=new_labelled_rows(spec, day) if signal else 0,
    )
    warehouse.record_retrain_decision(
        {
            "model": spec.name,
            "partition_date": day,
            "source": source,
            "triggered": decision.triggered,
            "reason": decision.reason,
            "report_id": report_id,
            "train_run_id": train_run_id if decision.triggered else None,
            "dag_run_id": dag_run_id,
        }
    )
    return decision
