"""The champion/challenger gate: pure rules, no I/O.

A candidate is promoted only if, on the same holdout scored now,
1. it beats the baseline on the primary metric by ``gate.min_lift_over_baseline``;
2. it is not worse than the baseline on any guardrail metric (log loss and Brier score for a
   classifier, MAE for a regression, or the spec's list) by more than ``gate.guardrail_tolerance``
   plus two standard errors of the paired per-row difference (what sampling alone explains);
3. a classifier's calibration error (after calibration) is within ``metric.max_calibration_error``,
   or within what a perfectly calibrated model shows on a holdout this small;
4. it beats the current champion by ``gate.champion_margin``;
5. no slice is worse than the champion's by more than ``gate.slice_tolerance``.
Every rule's outcome is a reason in the decision. No gate config: never promote (fails closed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from loopline.core.metrics import GREATER_IS_BETTER, gain
from loopline.core.spec import ModelSpec


@dataclass
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def alias(self) -> str:
        return "champion" if self.promote else "challenger"


def _compare(metric: str, label: str, value: float, other: float, needs: float) -> tuple[bool, str]:
    change = gain(metric, value, other)
    passed = change >= needs
    verb = "beats" if passed else "does not beat"
    return passed, (
        f"{verb} {label}: {metric} {value:.4f} vs {other:.4f} "
        f"(gain {change:+.4f}, needs {needs:+.4f})"
    )


def _guardrails(
    spec: ModelSpec, candidate: dict, baseline: dict, noise: dict
) -> tuple[bool, list[str]]:
    ok, reasons = True, []
    for metric in spec.guardrails:
        value, floor = candidate.get(metric, math.nan), baseline.get(metric, math.nan)
        if math.isnan(value) or math.isnan(floor):
            continue
        change = gain(metric, value, floor)
        allowed = spec.gate.guardrail_tolerance + 2 * noise.get(metric, 0.0)
        if change < -allowed:
            ok = False
            reasons.append(
                f"worse than the baseline on guardrail {metric}: {value:.4f} vs {floor:.4f} "
                f"(change {change:+.4f}, allowed -{allowed:.4f}: tolerance "
                f"{spec.gate.guardrail_tolerance:.4f} + 2 standard errors)"
            )
        else:
            reasons.append(f"guardrail {metric} holds: {value:.4f} vs baseline {floor:.4f}")
    return ok, reasons


def _calibration(spec: ModelSpec, candidate: dict, floor: float) -> tuple[bool, list[str]]:
    if not (spec.is_classifier and spec.gate.enforce_calibration) or "ece" not in candidate:
        return True, []
    limit, ece = spec.metric.max_calibration_error, candidate["ece"]
    if ece <= limit:
        return True, [f"calibration error {ece:.4f} within the limit {limit:.4f}"]
    if ece <= floor:
        return True, [
            f"calibration error {ece:.4f} is above the limit {limit:.4f} but within what a "
            f"perfectly calibrated model shows on this holdout ({floor:.4f}): not judged"
        ]
    return False, [f"calibration error {ece:.4f} is above the spec's limit {limit:.4f}"]


def _slices(spec: ModelSpec, metric: str, candidate: dict, champion: dict) -> tuple[bool, list]:
    ok, reasons = True, []
    for column, values in (candidate or {}).items():
        for name, result in values.items():
            before = (champion or {}).get(column, {}).get(name, {}).get(metric, math.nan)
            after = result.get(metric, math.nan)
            if math.isnan(before) or math.isnan(after):
                continue
            change = gain(metric, after, before)
            if change < -spec.gate.slice_tolerance:
                ok = False
                reasons.append(
                    f"slice {column}={name} gets worse: {metric} {after:.4f} vs {before:.4f} "
                    f"(change {change:+.4f}, tolerance {spec.gate.slice_tolerance:.4f})"
                )
    return ok, reasons


def choose(spec: ModelSpec, results: dict[str, dict[str, float]], windows: dict[str, str]):
    """The candidate a training registers: the best on the shared holdout by the primary metric
    (a tie goes to the one listed first). Returns ``(name, reasons)`` with a line per candidate:
    its window, its holdout metric, and why it won or lost."""
    metric = spec.primary_metric
    valid = {n: r[metric] for n, r in results.items() if r.get(metric, math.nan) == r.get(metric)}
    if not valid:
        name = next(iter(results))
        return name, [f"no candidate has a defined {metric} on the holdout: {name} kept"]
    best = max(valid, key=lambda n: (gain(metric, valid[n], 0.0), -list(results).index(n)))
    reasons = []
    for name in results:
        value = results[name].get(metric, math.nan)
        head = f"candidate {windows[name]}: {metric} {value:.4f} on the holdout"
        if name == best:
            reasons.append(f"{head}: chosen (best of {len(results)})")
        elif name in valid:
            behind = gain(metric, valid[best], value)
            reasons.append(f"{head}: lost to {best} by {behind:.4f}")
        else:
            reasons.append(f"{head}: undefined, not chosen")
    return best, reasons


def decide(
    spec: ModelSpec,
    candidate: dict[str, float],
    baseline: dict[str, float],
    champion: dict[str, float] | None = None,
    candidate_slices: dict | None = None,
    champion_slices: dict | None = None,
    guardrail_noise: dict[str, float] | None = None,
    calibration_floor: float = 0.0,
) -> Decision:
    """``guardrail_noise``: per guardrail metric, the standard error of the candidate's paired
    difference from the baseline on the holdout (:func:`loopline.core.metrics.paired_noise`);
    ``calibration_floor``: the ECE a perfectly calibrated model shows on this holdout
    (:func:`loopline.core.metrics.ece_noise`)."""
    if spec.gate is None:
        return Decision(False, ["the spec has no gate config: promotion fails closed"])
    metric = spec.primary_metric
    if metric not in GREATER_IS_BETTER:
        return Decision(False, [f"unknown primary metric '{metric}': promotion fails closed"])
    value = candidate.get(metric, math.nan)
    if math.isnan(value):
        return Decision(False, [f"candidate {metric} is undefined on the holdout"])

    ok, reason = _compare(
        metric, "the baseline", value, baseline[metric], spec.gate.min_lift_over_baseline
    )
    reasons = [reason]
    guardrails = _guardrails(spec, candidate, baseline, guardrail_noise or {})
    for passed, more in (guardrails, _calibration(spec, candidate, calibration_floor)):
        ok &= passed
        reasons += more
    if champion is None:
        reasons.append("no current champion")
        return Decision(ok, reasons)
    passed, reason = _compare(
        metric, "the champion", value, champion[metric], spec.gate.champion_margin
    )
    ok &= passed
    reasons.append(reason)
    passed, more = _slices(spec, metric, candidate_slices, champion_slices)
    return Decision(ok and passed, reasons + more)
