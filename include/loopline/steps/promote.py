"""Promote (or not): score the candidate version, the baseline and the current champion on the
candidate's holdout now, let the gate decide, move the alias, and record the decision with its
reasons and the three models' metrics in ``warehouse.model_events``."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from loopline.adapters import model_store
from loopline.core import gate, model_card
from loopline.core.columns import LABEL
from loopline.core.metrics import ece_noise, metrics, paired_noise, slice_metrics
from loopline.core.records import ModelEvent
from loopline.core.registry import BASELINE, CHALLENGER, CHAMPION
from loopline.core.spec import ModelSpec
from loopline.core.training import score
from loopline.steps import aliases
from loopline.steps.evaluate import save_card

log = logging.getLogger(__name__)
AWAITING = "awaiting_approval"


@dataclass(frozen=True)
class GateResult:
    version: int
    promoted: bool
    alias: str | None
    previous_champion: int | None
    reasons: list[str]
    # gate.approval: required: passed, and waits for a person (what to show them).
    awaiting_approval: bool = False
    approval_text: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _finite(values: dict) -> dict:
    return {k: v for k, v in values.items() if v == v}


def run_gate(spec: ModelSpec, version: int, *, dag_run_id: str | None = None) -> GateResult:
    store = model_store.store()
    run_id = store.version(spec.name, version).run_id
    holdout = store.holdout(run_id)
    y = holdout[LABEL].to_numpy()
    scored = {
        "candidate": score(spec, store.load_version(spec.name, version), holdout),
        "baseline": score(spec, store.load_trained(spec.name, run_id, BASELINE), holdout),
    }
    current = store.champion(spec.name)
    unjudged = None
    if current is not None and current.version != int(version):
        champion = store.load_version(spec.name, current.version)
        try:
            scored["champion"] = score(spec, champion, holdout)
        except ValueError as exc:  # scikit-learn: "columns are missing: {...}"
            unjudged = (
                f"champion v{current.version} cannot score the candidate's holdout ({exc}): the "
                "spec's features changed since it was trained, so the gate cannot compare the "
                f"two; not promoted: `loopline challenger promote {spec.name}` once reviewed"
            )
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
    if unjudged:
        kept = [r for r in decision.reasons if r != "no current champion"]
        decision = gate.Decision(False, [*kept, unjudged])
    judged = current.version if current is not None else None
    with aliases.changing(spec.name):  # one alias change at a time, this one write-ahead
        now = store.champion(spec.name)
        previous = now.version if now is not None else None
        if previous != judged:
            decision = gate.Decision(
                False,
                [
                    *decision.reasons,
                    f"the champion changed from v{judged} to v{previous} while the gate judged "
                    "(a rollback or another promotion): not promoted over a version it was "
                    "not judged against",
                ],
            )
        event, alias, reasons = route(spec, decision, previous)
        reasons = [*store.training_choice(run_id), *reasons]
        decided = ModelEvent(
            model=spec.name,
            event=event,
            version=int(version),
            previous_champion=previous,
            reasons=reasons,
            metrics={name: _finite(r) for name, r in results.items()},
            mlflow_run_id=run_id,
            dag_run_id=dag_run_id,
        )
        if alias is None:
            aliases.record_without_alias(decided)
        else:
            aliases.record(decided, alias=alias, version=version)
    card = store.card(run_id)
    if card is not None:  # a version registered before model cards has none to complete
        decided = {"promoted": event == "promoted", "previous_champion": previous}
        card = model_card.with_gate(card, {**decided, "reasons": reasons})
        save_card(spec.name, version, card)
    log.info("model %s version %s: %s", spec.name, version, "; ".join(reasons))
    waiting = event == AWAITING
    text = approval_request(spec, int(version), previous, reasons, card) if waiting else ""
    return GateResult(int(version), event == "promoted", alias, previous, reasons, waiting, text)


def approval_request(
    spec: ModelSpec, version: int, previous: int | None, reasons: list[str], card: dict | None
) -> str:
    """What the person asked to approve reads (Markdown): the gate's reasons and the card."""
    before = f"v{previous}" if previous is not None else "none"
    lines = [
        f"**{spec.name} v{version}** passed the gate and waits for your approval to become the "
        f"champion (now: {before}). Unanswered within {spec.gate.approval_timeout_hours:g} h it "
        "is not promoted.",
        "",
        "**The gate's reasons**",
        "",
        *[f"- {r}" for r in reasons],
        "",
    ]
    return "\n".join(lines) + ("\n" + model_card.markdown(card) if card else "")


def route(
    spec: ModelSpec, decision: gate.Decision, previous: int | None
) -> tuple[str, str | None, list[str]]:
    """(event, alias, reasons): a candidate that passes the gate waits for a person where the
    spec asks for approval (no alias moves); with a shadow period in the spec, one that passes
    against a champion becomes challenger and waits for live evidence."""
    if not decision.promote:
        return "rejected", CHALLENGER, decision.reasons
    if spec.gate.approval == "required":
        note = (
            "passed the gate: waits for a person's approval (gate.approval), champion only "
            f"once approved within {spec.gate.approval_timeout_hours:g} h"
        )
        return AWAITING, None, [*decision.reasons, note]
    days = spec.shadow.required_days
    if days and previous is not None:
        note = (
            f"passed the offline gate: scored in shadow, champion only after {days} labelled "
            f"day(s) beating v{previous} on live data (shadow.required_days)"
        )
        return "shadowing", CHALLENGER, [*decision.reasons, note]
    return "promoted", CHAMPION, decision.reasons
