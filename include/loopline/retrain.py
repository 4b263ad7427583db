"""Retraining decisions: when a drift verdict or a performance drop may trigger ``<model>_train``.

Retraining cannot storm: a signal triggers only if it persists (drift in ``persistence_k`` of the
last ``persistence_m`` checks), no training was triggered within ``cooldown_days`` before this
day, no training run is queued or running, and enough new labelled rows exist since the
champion's training window. Days are data days (the partition), never the wall clock, so a
backfill decides exactly as the live run did. Every decision is recorded with its reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import text

from loopline import warehouse
from loopline.spec import Drift, ModelSpec

SOURCES = ("drift", "performance")


@dataclass(frozen=True)
class RetrainDecision:
    triggered: bool
    reason: str


def decide(
    settings: Drift,
    *,
    source: str,
    signal: bool,
    signal_text: str,
    recent_flags: list[bool],
    days_since_trigger: int | None,
    active_training_runs: int,
    new_labels: int,
) -> RetrainDecision:
    """The rules, in order; the first that fails names the reason for suppression."""
    if not signal:
        return RetrainDecision(False, f"no {source} signal: {signal_text}")
    if source == "drift":
        window = recent_flags[: settings.persistence_m]
        if sum(window) < settings.persistence_k:
            return RetrainDecision(
                False,
                f"suppressed: {source} in {sum(window)} of the last {len(window)} "
                f"checks, needs {settings.persistence_k} of {settings.persistence_m}",
            )
    if days_since_trigger is not None and days_since_trigger < settings.cooldown_days:
        return RetrainDecision(
            False,
            f"suppressed: cool-down, a retraining was triggered {days_since_trigger} "
            f"day(s) before (cool-down {settings.cooldown_days} days)",
        )
    if active_training_runs:
        return RetrainDecision(
            False, f"suppressed: {active_training_runs} training run(s) queued or running"
        )
    if new_labels < settings.min_new_labels:
        return RetrainDecision(
            False,
            f"suppressed: {new_labels} new labelled rows since the champion's "
            f"training window, needs {settings.min_new_labels}",
        )
    return RetrainDecision(True, f"{source}: {signal_text}")


def recent_drift_flags(model: str, day: dt.date, m: int) -> list[bool]:
    frame = warehouse.query(
        "SELECT dataset_drift FROM warehouse.drift_reports "
        "WHERE model = :m AND partition_date <= :d "
        "ORDER BY partition_date DESC LIMIT :n",
        {"m": model, "d": day, "n": m},
    )
    return [bool(v) for v in frame["dataset_drift"]]


def days_since_last_trigger(model: str, day: dt.date) -> int | None:
    """Data days since the last triggered retraining strictly before ``day`` (any source)."""
    frame = warehouse.query(
        "SELECT max(partition_date) AS last FROM warehouse.retrain_decisions "
        "WHERE model = :m AND triggered AND partition_date < :d",
        {"m": model, "d": day},
    )
    last = frame["last"].iloc[0]
    return None if last is None or last != last else (day - last).days


def new_labelled_rows(spec: ModelSpec, day: dt.date) -> int:
    """Labels for days after the champion's training window, up to ``day``."""
    from loopline import registry

    champion = registry.champion_version(spec.name)
    if champion is None:
        return 0
    window_end = registry.client().get_run(champion.run_id).data.tags.get("window_end")
    since = dt.date.fromisoformat(window_end) if window_end else dt.date.min
    frame = warehouse.query(
        "SELECT count(*) AS n FROM warehouse.labels WHERE model = :m "
        "AND partition_date > :s AND partition_date <= :d",
        {"m": spec.name, "s": since, "d": day},
    )
    return int(frame["n"].iloc[0])


def decide_and_record(
    spec: ModelSpec,
    day: dt.date,
    *,
    source: str,
    signal: bool,
    signal_text: str,
    report_id: int | None,
    active_training_runs: int,
    dag_run_id: str | None,
    train_run_id: str | None = None,
) -> RetrainDecision:
    assert source in SOURCES, source
    decision = decide(
        spec.drift,
        source=source,
        signal=signal,
        signal_text=signal_text,
        recent_flags=recent_drift_flags(spec.name, day, spec.drift.persistence_m),
        days_since_trigger=days_since_last_trigger(spec.name, day),
        active_training_runs=active_training_runs,
        new_labels=new_labelled_rows(spec, day),
    )
    with warehouse.engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO warehouse.retrain_decisions (model, partition_date, source, "
                "triggered, reason, report_id, train_run_id, dag_run_id) "
                "VALUES (:m, :d, :s, :t, :r, :rep, :tr, :dag) "
                "ON CONFLICT (model, partition_date, source) DO UPDATE SET "
                "triggered = EXCLUDED.triggered, "
                "reason = EXCLUDED.reason, report_id = EXCLUDED.report_id, "
                "train_run_id = EXCLUDED.train_run_id, dag_run_id = EXCLUDED.dag_run_id, "
                "created_at = now()"
            ),
            {
                "m": spec.name,
                "d": day,
                "s": source,
                "t": decision.triggered,
                "r": decision.reason,
                "rep": report_id,
                "tr": train_run_id if decision.triggered else None,
                "dag": dag_run_id,
            },
        )
    return decision
