"""The live promotion rule (pure): a challenger waits for enough labelled days, is promoted only
when the lower bound of its paired gain clears the margin, and is kept once, not re-tested."""

from __future__ import annotations

import math

import pytest
from loopline.core.shadow import DECIDED, KEEP, MONITOR, PROMOTE, WAITING, verdict
from loopline.core.spec import Shadow

DECIDING = Shadow(required_days=3, margin=0.01)
WINDOW = {"low": 0.02, "difference": 0.03, "high": 0.04, "rows": 900}


def judge(settings: Shadow = DECIDING, **kwargs) -> tuple[str, str]:
    args = {"eligible": True, "decided": False, "labelled_days": 3, "window": WINDOW} | kwargs
    return verdict(settings, **args)


def test_a_clear_gain_over_enough_days_promotes_and_says_by_how_much():
    outcome, reason = judge()
    assert outcome == PROMOTE
    assert "+0.0300 over 900 labelled rows" in reason
    assert "interval +0.0200 .. +0.0400" in reason and "3 labelled day(s)" in reason
    assert "margin 0.01 (shadow.margin)" in reason


@pytest.mark.parametrize("days", [0, 1, 2])
def test_fewer_labelled_days_than_required_waits(days):
    outcome, reason = judge(labelled_days=days)
    assert outcome == WAITING
    assert "needs 3 labelled days (shadow.required_days)" in reason


@pytest.mark.parametrize(
    "low",
    [0.01, 0.005, -0.02, math.nan],  # at the margin, under it, worse, not computable
)
def test_a_lower_bound_not_above_the_margin_keeps_the_champion(low):
    outcome, reason = judge(window=WINDOW | {"low": low})
    assert outcome == KEEP
    assert "needs the lower bound above 0.01" in reason


def test_a_challenger_kept_once_is_not_tested_again_whatever_the_figures():
    assert judge(decided=True)[0] == DECIDED
    assert judge(decided=True, window=WINDOW | {"low": -1.0})[0] == DECIDED


def test_without_required_days_or_eligibility_it_only_compares():
    assert judge(Shadow(required_days=0, margin=0.01))[0] == MONITOR
    assert judge(eligible=False)[0] == MONITOR
    outcome, reason = judge(eligible=False, decided=True, labelled_days=0)
    assert outcome == MONITOR and reason.startswith("compared, not deciding")


def test_an_empty_window_is_described_not_a_crash():
    outcome, reason = judge(window={})
    assert outcome == KEEP
    assert "over 0 labelled rows" in reason and "nan" in reason
