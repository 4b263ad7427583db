"""Retraining rules: whether a drift verdict or a performance drop may trigger a training (pure).

Retraining cannot storm: a first signal of a change triggers only if it persists (drift in
``persistence_k`` of the last ``persistence_m`` checks), no training was triggered within
``cooldown_days`` data days before, no training run is running or freshly queued, and enough new
labelled rows exist since the champion's training window. A run that has stayed queued for twice
the cool-down (or two days) of data has no scheduler to start it and no longer blocks.

Every signal carries its evidence of *when* the world changed (:class:`Change`: the first day of
the run of drift verdicts, or the first degraded labelled day). Once a retraining was triggered
for a change, the change is *open*: later signals of it do not wait for the cool-down but are
**follow-ups**, allowed while realized performance stays below the level before the change and
``retraining.follow_up_rows`` new post-change labelled rows have arrived since the last
retraining, at most ``retraining.max_follow_ups`` per change. Inputs that still differ while
performance holds (a covariate shift the model copes with) never retrain the same change
again. The first rule that fails names the reason for suppression.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loopline.core.estimate import EstimatedDrop
from loopline.core.spec import Drift, Retraining

SOURCES = ("drift", "performance")


@dataclass(frozen=True)
class Change:
    """Evidence of when the world changed: the first day that looks changed, and how it shows."""

    first_day: dt.date
    source: str
    detail: str = ""


@dataclass(frozen=True)
class Signal:
    """What the upstream check told the trigger: whether it fired, why, the drift report it
    wrote, and (from the performance signal) the first day below the live level and whether
    realized performance is still below the level before the change."""

    source: str
    fired: bool
    text: str
    report_id: int | None = None
    change_date: dt.date | None = None
    below_before: bool = False
    below_text: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown retraining source '{self.source}' (one of {SOURCES})")

    @classmethod
    def from_result(cls, source: str, result: dict | None) -> Signal:
        """From the check's result as the trigger receives it (its ``as_dict``); no result (the
        check was skipped): no signal."""
        if not result:
            return cls(source, False, "no signal (upstream skipped)")
        change = result.get("change_date")
        return cls(
            source,
            fired=bool(result.get("signal")),
            text=str(result.get("text", "")),
            report_id=result.get("report_id"),
            change_date=dt.date.fromisoformat(str(change)) if change else None,
            below_before=bool(result.get("below_before")),
            below_text=str(result.get("below_text", "")),
        )


@dataclass(frozen=True)
class OpenChange:
    """A change a retraining was already triggered for."""

    first_day: dt.date
    retrainings: int
    last_trigger: dt.date
    # The newest labelled feature day the latest retraining for it could train on.
    labelled_until: dt.date

    @property
    def follow_ups(self) -> int:
        return self.retrainings - 1


@dataclass(frozen=True)
class Learning:
    """What the follow-up rules need: the open change (if any), the post-change labelled rows
    newer than its last retraining's data, whether realized performance is still below the
    level before the change, whether the change hurt it at all, and the post-change labelled
    rows the last retraining could use against those there are now."""

    open_change: OpenChange | None = None
    new_post_change_rows: int = 0
    below_before: bool = False
    below_text: str = ""
    hurt: bool = False
    post_change_rows_used: int = 0
    post_change_rows_now: int = 0

    def grown(self, growth: float) -> bool:
        """The change hurt, and what is known of the new world has grown ``growth``-fold since
        the last retraining: a model trained now learns from much more of it."""
        used = max(self.post_change_rows_used, 1)
        return self.hurt and self.post_change_rows_now >= growth * used


@dataclass(frozen=True)
class RetrainDecision:
    triggered: bool
    reason: str
    change_date: dt.date | None = None
    follow_up: bool = False


@dataclass(frozen=True)
class TrainingRuns:
    """Runs of the model's training DAG Airflow reports as running or queued."""

    running: int = 0
    queued: int = 0


def run_start(flags: list[tuple[dt.date, bool]], gap: int = 1) -> dt.date | None:
    """The first day of the run of flagged days that reaches the newest one (``flags`` newest
    first; up to ``gap`` unflagged days inside the run are tolerated, as persistence k of m
    tolerates them), or None when the newest day is not flagged."""
    if not flags or not flags[0][1]:
        return None
    start, misses = flags[0][0], 0
    for day, flagged in flags[1:]:
        if flagged:
            start, misses = day, 0
        else:
            misses += 1
            if misses > gap:
                break
    return start


def stuck_after_days(settings: Drift) -> int:
    return 2 * max(settings.cooldown_days, 1)


def belongs_to(change: Change | None, open_change: OpenChange | None) -> bool:
    """A signal belongs to the open change unless its evidence starts after the change did:
    a run of bad days that reaches back to the change is the same change; one that begins
    later, after good days, is a newer one (the world moved again)."""
    if open_change is None:
        return False
    return change is None or change.first_day <= open_change.first_day


def decide(
    settings: Drift,
    signal: Signal,
    *,
    recent_flags: list[bool],
    days_since_trigger: int | None,
    training_runs: TrainingRuns,
    new_labels: int,
    change: Change | None = None,
    learning: Learning | None = None,
    policy: Retraining | None = None,
    trainable_until: dt.date | None = None,
    estimated: EstimatedDrop | None = None,
) -> RetrainDecision:
    """The rules, in order: a signal of an open change goes to :func:`follow_up`, any other to
    the first-trigger rules, and a first trigger waits until a training would have labelled
    rows after the change (``trainable_until``: the newest labelled day a training triggered
    now could use): before that it could learn nothing of the new world."""
    learning, policy = learning or Learning(), policy or Retraining()
    if belongs_to(change, learning.open_change):
        return follow_up(
            signal,
            training_runs=training_runs,
            learning=learning,
            policy=policy,
        )
    decision = first_trigger(
        settings,
        signal,
        recent_flags=recent_flags,
        days_since_trigger=days_since_trigger,
        training_runs=training_runs,
        new_labels=new_labels,
        estimated=estimated,
    )
    first_day = change.first_day if change is not None and signal.fired else None
    if decision.triggered and first_day and trainable_until and trainable_until < first_day:
        return RetrainDecision(
            False,
            f"suppressed: waiting for labels after the change of {first_day}: a training now "
            f"would see labelled days up to {trainable_until} only ({signal.text})",
            first_day,
        )
    return RetrainDecision(decision.triggered, decision.reason, first_day)


def first_trigger(
    settings: Drift,
    signal: Signal,
    *,
    recent_flags: list[bool],
    days_since_trigger: int | None,
    training_runs: TrainingRuns,
    new_labels: int,
    estimated: EstimatedDrop | None = None,
) -> RetrainDecision:
    """Persistence, an estimated drop where the spec asks for one (a covariate shift the model
    copes with does not retrain), cool-down, active runs and new labels, for the first signal
    of a change."""
    source = signal.source
    if not signal.fired:
        return RetrainDecision(False, f"no {source} signal: {signal.text}")
    if source == "drift":
        window = recent_flags[: settings.persistence_m]
        if sum(window) < settings.persistence_k:
            return RetrainDecision(
                False,
                f"suppressed: {source} in {sum(window)} of the last {len(window)} checks, needs "
                f"{settings.persistence_k} of {settings.persistence_m} (drift.persistence_k/m)",
            )
        if settings.require_estimated_drop and not (estimated and estimated.dropped):
            evidence = estimated.text if estimated else "no estimate of the day"
            return RetrainDecision(
                False, f"suppressed: drift, but {evidence} (drift.require_estimated_drop)"
            )
    if days_since_trigger is not None and days_since_trigger < settings.cooldown_days:
        return RetrainDecision(
            False,
            f"suppressed: cool-down, a retraining was triggered {days_since_trigger} day(s) "
            f"before (drift.cooldown_days {settings.cooldown_days})",
        )
    stuck = days_since_trigger is not None and days_since_trigger >= stuck_after_days(settings)
    busy = _busy(training_runs, stuck=stuck)
    if busy:
        return RetrainDecision(False, busy)
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
    return RetrainDecision(True, f"{source}: {signal.text}{note}")


def follow_up(
    signal: Signal,
    *,
    training_runs: TrainingRuns,
    learning: Learning,
    policy: Retraining,
) -> RetrainDecision:
    """A later signal of a change already retrained for: learn again as post-change labels
    arrive while performance stays below the level before the change, bounded per change."""
    change = learning.open_change
    assert change is not None
    since = f"the change of {change.first_day} (retrained for {change.retrainings} time(s))"

    def suppressed(why: str) -> RetrainDecision:
        return RetrainDecision(False, f"suppressed: {why}", change.first_day)

    if signal.source == "drift":
        if not signal.fired:
            return RetrainDecision(False, f"no drift signal: {signal.text}", change.first_day)
        if learning.below_before:
            return suppressed(
                f"drift of {since}: follow-ups come with its labels (the labels DAG), "
                f"{learning.below_text}"
            )
        return suppressed(
            f"drift of {since}, but realized performance is not below the level before it "
            f"({learning.below_text}): the shift does not hurt, no retraining"
        )
    grown = learning.grown(policy.growth)
    if not learning.below_before and not grown:
        return RetrainDecision(
            False,
            f"no performance signal: {signal.text}; {learning.below_text}; post-change labelled "
            f"rows {learning.post_change_rows_now}, {learning.post_change_rows_used} when last "
            f"retrained ({since})",
            change.first_day,
        )
    if change.follow_ups >= policy.max_follow_ups:
        return suppressed(
            f"{since}: {change.follow_ups} follow-up(s), at most {policy.max_follow_ups} "
            "per change (retraining.max_follow_ups)"
        )
    if not grown and learning.new_post_change_rows < policy.follow_up_rows:
        return suppressed(
            f"{since}: {learning.new_post_change_rows} new post-change labelled rows since its "
            f"last retraining, a follow-up needs {policy.follow_up_rows} "
            "(retraining.follow_up_rows)"
        )
    busy = _busy(training_runs, stuck=False)
    if busy:
        return suppressed(busy.removeprefix("suppressed: "))
    why = (
        learning.below_text
        if learning.below_before
        else f"the change hurt, and its labelled rows grew from {learning.post_change_rows_used} "
        f"to {learning.post_change_rows_now} (retraining.growth {policy.growth:g})"
    )
    return RetrainDecision(
        True,
        f"follow-up {change.follow_ups + 1} of {policy.max_follow_ups} for {since}: {why}; "
        f"{learning.new_post_change_rows} new post-change labelled rows",
        change.first_day,
        follow_up=True,
    )


def _busy(training_runs: TrainingRuns, *, stuck: bool) -> str:
    if training_runs.running:
        return f"suppressed: {training_runs.running} training run(s) running"
    if training_runs.queued and not stuck:
        return f"suppressed: {training_runs.queued} training run(s) queued"
    return ""
