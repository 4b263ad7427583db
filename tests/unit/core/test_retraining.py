"""The retraining rules (pure): first triggers, follow-ups of a change, their bounds, and the
evidence of when the world changed."""

from __future__ import annotations

import datetime as dt

import pytest
from loopline.core.retraining import (
    Change,
    Learning,
    OpenChange,
    Signal,
    TrainingRuns,
    decide,
    run_start,
)
from loopline.core.spec import Drift, Retraining

D = dt.date(2026, 3, 1)
DRIFT = Drift(cooldown_days=4, persistence_k=2, persistence_m=3, min_new_labels=100)
POLICY = Retraining(follow_up_rows=1000, max_follow_ups=2)


def day(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


def rule(
    source: str = "performance", fired: bool = True, text: str = "realized 0.70 vs 0.80", **kwargs
):
    args = {
        "recent_flags": [],
        "days_since_trigger": None,
        "training_runs": TrainingRuns(),
        "new_labels": 5000,
        "policy": POLICY,
    } | kwargs
    return decide(DRIFT, Signal(source, fired, text), **args)


def opened(retrainings: int = 1, labelled_until: int = 5) -> OpenChange:
    return OpenChange(day(0), retrainings, day(labelled_until + 1), day(labelled_until))


def test_a_first_signal_triggers_and_carries_its_change_day():
    decision = rule(change=Change(day(0), "performance"), trainable_until=day(2))
    assert decision.triggered and not decision.follow_up
    assert decision.change_date == day(0)


def test_the_first_rules_still_hold_persistence_cooldown_runs_and_labels():
    drift = rule(source="drift", recent_flags=[True, False, False])
    assert not drift.triggered and "persistence" in drift.reason
    assert "cool-down" in rule(days_since_trigger=2).reason
    assert "running" in rule(training_runs=TrainingRuns(running=1)).reason
    assert "min_new_labels" in rule(new_labels=10).reason
    assert rule(fired=False).reason.startswith("no performance signal")


def test_a_first_trigger_waits_until_a_training_would_see_labels_after_the_change():
    waiting = rule(change=Change(day(5), "drift"), trainable_until=day(4))
    assert not waiting.triggered
    assert "waiting for labels after the change of 2026-03-06" in waiting.reason
    assert waiting.change_date == day(5)
    assert rule(change=Change(day(5), "drift"), trainable_until=day(5)).triggered


def test_a_follow_up_skips_the_cooldown_while_performance_stays_below_the_level_before():
    learning = Learning(opened(), new_post_change_rows=1500, below_before=True, below_text="x")
    # the run of bad days reaches back to the change: the same change, learned again
    decision = rule(change=Change(day(0), "performance"), learning=learning, days_since_trigger=1)
    assert decision.triggered and decision.follow_up
    assert decision.change_date == day(0)
    assert "follow-up 1 of 2" in decision.reason


def test_follow_ups_wait_for_new_post_change_labels():
    learning = Learning(opened(), new_post_change_rows=999, below_before=True)
    decision = rule(change=Change(day(0), "performance"), learning=learning)
    assert not decision.triggered
    assert "999 new post-change labelled rows" in decision.reason


def test_follow_ups_are_bounded_per_change():
    learning = Learning(opened(retrainings=3), new_post_change_rows=5000, below_before=True)
    decision = rule(change=None, learning=learning)
    assert not decision.triggered
    assert "at most 2 per change" in decision.reason


def test_no_follow_up_once_performance_is_back():
    learning = Learning(opened(), new_post_change_rows=5000, below_before=False, below_text="ok")
    decision = rule(change=None, learning=learning, fired=False, text="fine")
    assert not decision.triggered and decision.reason.startswith("no performance signal")


def test_drift_of_an_open_change_that_does_not_hurt_never_retrains_again():
    learning = Learning(opened(), new_post_change_rows=9000, below_before=False, below_text="ok")
    decision = rule(
        source="drift",
        recent_flags=[True, True, True],
        change=Change(day(0), "drift"),
        learning=learning,
        days_since_trigger=30,
    )
    assert not decision.triggered
    assert "the shift does not hurt" in decision.reason


def test_drift_while_learning_leaves_follow_ups_to_the_labels():
    learning = Learning(opened(), new_post_change_rows=9000, below_before=True)
    decision = rule(source="drift", recent_flags=[True] * 3, change=None, learning=learning)
    assert not decision.triggered and "follow-ups come with its labels" in decision.reason


def test_follow_ups_go_on_while_the_change_hurt_and_its_data_doubles():
    grown = Learning(opened(), hurt=True, post_change_rows_used=3000, post_change_rows_now=6000)
    decision = rule(change=None, learning=grown, fired=False)
    assert decision.triggered and decision.follow_up
    assert "grew from 3000 to 6000" in decision.reason
    not_yet = Learning(opened(), hurt=True, post_change_rows_used=3000, post_change_rows_now=5000)
    assert not rule(change=None, learning=not_yet, fired=False).triggered
    harmless = Learning(opened(), hurt=False, post_change_rows_used=3000, post_change_rows_now=9000)
    assert not rule(change=None, learning=harmless, fired=False).triggered


def test_a_run_of_bad_days_that_begins_after_the_change_is_a_new_change():
    learning = Learning(opened(labelled_until=5), new_post_change_rows=0, below_before=True)
    decision = rule(change=Change(day(9), "performance"), learning=learning, trainable_until=day(9))
    assert decision.triggered and not decision.follow_up
    assert decision.change_date == day(9)
    # ...which the cool-down still guards
    assert not rule(
        change=Change(day(9), "performance"), learning=learning, days_since_trigger=1
    ).triggered


def test_run_start_finds_the_first_day_of_the_run_reaching_today():
    flags = [(day(9), True), (day(8), True), (day(7), False), (day(6), True), (day(5), False)]
    assert run_start(flags) == day(6)  # one calm day inside the run is tolerated
    assert run_start(flags, gap=0) == day(8)
    assert run_start([(day(9), False), (day(8), True)]) is None
    assert run_start([]) is None
    gone = [(day(9), True), (day(8), False), (day(7), False), (day(6), True)]
    assert run_start(gone) == day(9)


def test_unknown_sources_are_refused():
    with pytest.raises(ValueError, match="unknown retraining source"):
        rule(source="weather")
    with pytest.raises(ValueError, match="unknown retraining source"):
        Signal.from_result("weather", {"signal": True})


def test_a_drift_that_asks_for_an_estimated_drop_retrains_only_on_one():
    from loopline.core.estimate import EstimatedDrop

    asking = DRIFT.model_copy(update={"require_estimated_drop": True})
    drifted = Signal("drift", True, "drifted features ['monthly_charges']")
    context = {
        "recent_flags": [True, True, True],
        "days_since_trigger": None,
        "training_runs": TrainingRuns(),
        "new_labels": 5000,
        "policy": POLICY,
    }
    holds = EstimatedDrop("roc_auc", 0.84, 0.85, standard_error=0.01, tolerance=0.03)
    drops = EstimatedDrop("roc_auc", 0.75, 0.85, standard_error=0.01, tolerance=0.03)
    kept = decide(asking, drifted, **context, estimated=holds)
    assert not kept.triggered and "require_estimated_drop" in kept.reason
    assert "estimated roc_auc 0.8400 (CBPE) is not clearly below" in kept.reason
    assert decide(asking, drifted, **context, estimated=drops).triggered
    blind = decide(asking, drifted, **context, estimated=None)
    assert not blind.triggered and "no estimate of the day" in blind.reason
    assert decide(DRIFT, drifted, **context, estimated=holds).triggered  # not asked: drift suffices
    labelled = Signal("performance", True, drifted.text)
    performance = decide(asking, labelled, **context, estimated=holds)
    assert performance.triggered  # the labels' own verdict needs no estimate
