"""The champion/challenger gate: pure rules, no I/O.

A candidate is promoted only if it beats the baseline by the spec's lift, beats the current
champion (both scored now on the same holdout) by the spec's margin, and no slice is worse than
the champion's by more than the spec's tolerance. No gate config: never promote (fails closed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loopline.evaluate import GREATER_IS_BETTER
from loopline.spec import Gate


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return "champion" if self.promote else "challenger"


def gain(metric: str, new: float, old: float) -> float:
    """How much better ``new`` is than ``old`` (positive = better), in the metric's direction."""
    return new - old if GREATER_IS_BETTER[metric] else old - new


def decide(
    gate: Gate | None,
    metric: str,
    candidate: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None = None,
    candidate_slices: dict | None = None,
    champion_slices: dict | None = None,
) -> Decision:
    if gate is None:
        return Decision(False, ["the spec has no gate config: promotion fails closed"])
    if metric not in GREATER_IS_BETTER:
        return Decision(False, [f"unknown primary metric '{metric}': promotion fails closed"])
    value = candidate.get(metric, math.nan)
    if math.isnan(value):
        return Decision(False, [f"candidate {metric} is undefined on the holdout"])
    reasons, ok = [], True

    lift = gain(metric, value, baseline[metric])
    passed = lift >= gate.min_lift_over_baseline
    ok &= passed
    reasons.append(
        f"{'beats' if passed else 'does not beat'} the baseline: {metric} {value:.4f} vs "
        f"{baseline[metric]:.4f} (gain {lift:+.4f}, needs {gate.min_lift_over_baseline:+.4f})"
    )
    if champion is None:
        reasons.append("no current champion")
        return Decision(ok, reasons)

    margin = gain(metric, value, champion[metric])
    passed = margin >= gate.champion_margin
    ok &= passed
    reasons.append(
        f"{'beats' if passed else 'does not beat'} the champion: {metric} {value:.4f} vs "
        f"{champion[metric]:.4f} (gain {margin:+.4f}, needs {gate.champion_margin:+.4f})"
    )
    for column, values in (candidate_slices or {}).items():
        for name, result in values.items():
            before = (champion_slices or {}).get(column, {}).get(name, {}).get(metric, math.nan)
            after = result.get(metric, math.nan)
            if math.isnan(before) or math.isnan(after):
                continue
            change = gain(metric, after, before)
            if change < -gate.slice_tolerance:
                ok = False
                reasons.append(
                    f"slice {column}={name} gets worse: {metric} {after:.4f} vs {before:.4f} "
                    f"(change {change:+.4f}, tolerance {gate.slice_tolerance:.4f})"
                )
    return Decision(ok, reasons)
