"""Decide a retraining: gather what the rules need (recent drift verdicts, the last trigger,
new labels since the champion's window, the evidence of when the world changed, the change being
learned and the labels that arrived since its last retraining), apply them, and record the
decision, triggered or suppressed, with its reason and change day in
``warehouse.retrain_decisions``. Days are data days (the partition), never the wall clock, so a
backfill decides exactly as the live run did."""

from __future__ import annotations

import datetime as dt

from loopline.adapters import model_store, warehouse
from loopline.core.records import RetrainDecisionRecord
from loopline.core.retraining import (
    Change,
    Learning,
    RetrainDecision,
    Signal,
    TrainingRuns,
    decide,
    run_start,
)
from loopline.core.spec import ModelSpec
from loopline.steps.estimate import estimated_drop
from loopline.steps.labels import level_before, open_change_of


def new_labelled_rows(spec: ModelSpec, day: dt.date) -> int:
    """Labels of feature days after the champion's training window, up to ``day``."""
    store = model_store.store()
    champion = store.champion(spec.name)
    if champion is None:
        return 0
    since = store.training(champion.run_id).window_end or dt.date.min
    return warehouse.count_labels_after(spec.name, since, day)


def change_of(spec: ModelSpec, day: dt.date, signal: Signal) -> Change | None:
    """When the world changed, by the signal's own evidence: the first day of the run of drift
    verdicts, or the first labelled day below the live level (the performance signal's)."""
    if signal.source == "drift":
        verdicts = warehouse.drift_verdicts(spec.name, day, spec.training.window_days)
        first = run_start(verdicts)
        return Change(first, "drift", "first day of the run of drift verdicts") if first else None
    if signal.change_date is None:
        return None
    return Change(signal.change_date, "performance", "first labelled day below the live level")


def learning_state(spec: ModelSpec, day: dt.date, signal: Signal) -> Learning:
    """The change being learned, the post-change labelled rows newer than its last retraining's
    data, and whether realized performance is still below the level before it."""
    open_change = open_change_of(spec, day)
    if open_change is None:
        return Learning()
    first, until = open_change.first_day, open_change.labelled_until
    before_first = first - dt.timedelta(days=1)
    if signal.source == "performance":
        below, text = signal.below_before, signal.below_text
    else:
        below, text = _latest_below(spec, day)
    since = warehouse.performance(spec.name, first, day)
    return Learning(
        open_change,
        new_post_change_rows=warehouse.count_labels_after(spec.name, until, day),
        below_before=below,
        below_text=text,
        hurt=bool(since["degraded"].any()),
        post_change_rows_used=warehouse.count_labels_after(spec.name, before_first, until),
        post_change_rows_now=warehouse.count_labels_after(spec.name, before_first, day),
    )


def _latest_below(spec: ModelSpec, day: dt.date) -> tuple[bool, str]:
    """For a drift signal: whether the newest scored day with labels was below the live level."""
    start = day - dt.timedelta(days=spec.training.window_days)
    found = warehouse.performance(spec.name, start, day).dropna(subset=["value"])
    if found.empty:
        return False, "no labelled day yet"
    last = found.iloc[-1]
    live = level_before(spec, last.partition_date)
    return bool(last.degraded), f"realized {last.value:.4f} on {last.partition_date} vs {live.text}"


def decide_and_record(
    spec: ModelSpec,
    day: dt.date,
    signal: Signal,
    *,
    training_runs: TrainingRuns,
    dag_run_id: str | None,
    train_run_id: str | None = None,
) -> RetrainDecision:
    """Decide on the day's signal and record the decision; ``train_run_id``: the run id a
    triggered training will have."""
    change = change_of(spec, day, signal) if signal.fired else None
    decision = decide(
        spec.drift,
        signal,
        recent_flags=warehouse.recent_drift_flags(spec.name, day, spec.drift.persistence_m),
        days_since_trigger=warehouse.days_since_last_trigger(spec.name, day),
        training_runs=training_runs,
        new_labels=new_labelled_rows(spec, day) if signal.fired else 0,
        change=change,
        learning=learning_state(spec, day, signal),
        policy=spec.retraining,
        trainable_until=day + dt.timedelta(days=1 - spec.labels.delay_days),
        estimated=estimated_drop(spec, day) if spec.drift.require_estimated_drop else None,
    )
    warehouse.record_retrain_decision(
        RetrainDecisionRecord(
            model=spec.name,
            partition_date=day,
            source=signal.source,
            triggered=decision.triggered,
            reason=decision.reason,
            report_id=signal.report_id,
            train_run_id=train_run_id if decision.triggered else None,
            dag_run_id=dag_run_id,
            change_date=decision.change_date,
            follow_up=decision.follow_up,
        )
    )
    return decision
