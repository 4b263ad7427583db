"""A person's answer to a promotion the gate passed (``gate.approval: required``): approved, the
version becomes champion; rejected, or unanswered within ``gate.approval_timeout_hours``, it is
not promoted. The answer, with who gave it and why, is recorded in ``warehouse.model_events``
(write-ahead, under the model's lock, as every alias change) and in the version's card."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from loopline.adapters import model_store, warehouse
from loopline.core import model_card
from loopline.core.errors import PermanentError
from loopline.core.records import ModelEvent
from loopline.core.registry import CHAMPION
from loopline.core.spec import ModelSpec
from loopline.steps import aliases
from loopline.steps.evaluate import save_card
from loopline.steps.promote import AWAITING

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """What a person answered: approve or reject, who, and why."""

    approved: bool
    by: str
    comment: str = ""


@dataclass(frozen=True)
class ApprovalResult:
    model: str
    version: int
    promoted: bool
    previous_champion: int | None
    reasons: list[str]
    decided_by: str | None

    def as_dict(self) -> dict:
        return asdict(self)


def waiting_event(model: str, version: int) -> ModelEvent:
    """The gate's ``awaiting_approval`` event of ``version`` (the champion it was judged
    against, its metrics)."""
    found = [e for e in warehouse.history(model) if e.version == version and e.event == AWAITING]
    if not found:
        raise PermanentError(
            f"v{version} is not waiting for approval",
            model=model,
            hint="`loopline history <model>` shows what the gate decided",
        )
    return found[-1]


def _verdict(
    spec: ModelSpec, answer: Answer | None, judged: int | None, previous: int | None
) -> tuple[bool, str]:
    if answer is None:
        hours = spec.gate.approval_timeout_hours
        return False, f"no answer within {hours:g} h (gate.approval_timeout_hours): not promoted"
    why = answer.comment.strip() or "no reason given"
    if not answer.approved:
        return False, f"rejected by {answer.by}: {why}"
    if previous != judged:
        return False, (
            f"approved by {answer.by} ({why}), but the champion changed from v{judged} to "
            f"v{previous} while it waited: not promoted over a version it was not judged against"
        )
    return True, f"approved by {answer.by}: {why}"


def settle(
    spec: ModelSpec, version: int, answer: Answer | None, *, dag_run_id: str | None = None
) -> ApprovalResult:
    """Record the answer to ``version``'s approval (None: nobody answered in time)."""
    waiting = waiting_event(spec.name, version)
    store = model_store.store()
    with aliases.changing(spec.name):
        champion = store.champion(spec.name)
        previous = champion.version if champion is not None else None
        promoted, reason = _verdict(spec, answer, waiting.previous_champion, previous)
        event = ModelEvent(
            model=spec.name,
            event="promoted" if promoted else "rejected",
            version=version,
            previous_champion=previous,
            reasons=[reason],
            metrics=dict(waiting.metrics),
            mlflow_run_id=waiting.mlflow_run_id,
            dag_run_id=dag_run_id,
            decided_by=answer.by if answer is not None else None,
        )
        if promoted:
            aliases.record(event, alias=CHAMPION, version=version)
        else:
            aliases.record_without_alias(event)
    card = store.card(waiting.mlflow_run_id) if waiting.mlflow_run_id else None
    if card is not None:
        gate = {"promoted": promoted, "previous_champion": previous}
        reasons = [*waiting.reasons, reason]
        save_card(spec.name, version, model_card.with_gate(card, {**gate, "reasons": reasons}))
    log.info("model %s v%d: %s", spec.name, version, reason)
    by = answer.by if answer is not None else None
    return ApprovalResult(spec.name, version, promoted, previous, [reason], by)
