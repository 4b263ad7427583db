"""Retraining rules: whether a drift verdict or a performance drop may trigger a training (pure).

Retraining cannot storm: a signal triggers only if it persists (drift in ``persistence_k`` of the
last ``persistence_m`` checks), no training was triggered within ``cooldown_days`` data days
before, no training run is running or freshly queued, and enough new labelled rows exist since
the champion's training window. A run that has stayed queued for twice the cool-down (or two
days) of data has no scheduler to start it and no longer blocks. The first rule that fails names
the reason for suppression.
"""

from __future__ import annotations

from dataclasses import dataclass

from loopline.core.spec import Drift

SOURCES = ("drift", "performance")


@dataclass(frozen=True)
class RetrainDecision:
    triggered: bool
    reason: str


@dataclass(frozen=True)
class TrainingRuns:
    """Runs of the model's training DAG Airflow reports as running or queued."""

    running: int = 0
    queued: int = 0


def stuck_after_days(settings: Drift) -> int:
    return 2 * max(settings.cooldown_days, 1)


def decide(
    settings: Drift,
    *,
    source: str,
    signal: bool,
    signal_text: str,
    recent_flags: list[bool],
    days_since_trigger: int | None,
    training_runs: TrainingRuns,
    new_labels: int,
) -> RetrainDecision:
    """The rules, in order."""
    if source not in SOURCES:
        raise ValueError(f"unknown retraining source '{source}' (one of {SOURCES})")
    if not signal:
        return RetrainDecision(False, f"no {source} signal: {signal_text}")
    if source == "drift":
        window = recent_flags[: settings.persistence_m]
        if sum(window) < settings.persistence_k:
            return RetrainDecision(
                False,
                f"suppressed: {source} in {sum(window)} of the last {len(window)} checks, needs "
                f"{settings.persistence_k} of {settings.persistence_m} (drift.persistence_k/m)",
            )
    if days_since_trigger is not None and days_since_trigger < settings.cooldown_days:
        return RetrainDecision(
            False,
            f"suppressed: cool-down, a retraining was triggered {days_since_trigger} day(s) "
            f"before (drift.cooldown_days {settings.cooldown_days})",
        )
    if training_runs.running:
        return RetrainDecision(
            False, f"suppressed: {training_runs.running} training run(s) running"
        )
    stuck = days_since_trigger is not None and days_since_trigger >= stuck_after_days(settings)
    if training_runs.queued and not stuck:
        return RetrainDecision(False, f"suppressed: {training_runs.queued} training run(s) queued")
    if new_labels < settings.min_new_labels:
        return RetrainDecision(
            False,
            f"suppressed: {new_labels} new labelled rows since the champion's training window, "
            f"needs {settings.min_new_labels} (drift.min_new_labels)",
        )
    note = (
        f" ({training_runs.queued} run(s) queued for {days_since_trigger} days ignored: "
        "nothing starts them)"
        if training_runs.queued
        else ""
    )
    return RetrainDecision(True, f"{source}: {signal_text}{note}")
