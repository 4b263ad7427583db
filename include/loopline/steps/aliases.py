"""Moving a model's aliases with its history: a promotion, a rollback, a challenger set or
retired is two writes to two stores (the alias in the model store, the event in
``warehouse.model_events``), so it is done write-ahead, one at a time per model:

1. under the model's lock (an advisory lock in the warehouse, held for the whole change), any
   change a crash left half done is settled first (:func:`reconcile`);
2. the event is written as ``pending``, naming the alias it moves;
3. the alias is moved;
4. the event is marked ``done``.

A crash after 2 leaves a pending event whose alias did not move: it is marked ``abandoned``. A
crash after 3 leaves one whose alias moved: it is marked ``done``. So the alias and the history
never disagree for longer than until the next change or read, and two changes (a gate judging
while an operator rolls back) cannot interleave: the second waits, and sees the first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from loopline.adapters import model_store, warehouse
from loopline.core import faults
from loopline.core.records import ModelEvent

log = logging.getLogger(__name__)


@contextmanager
def changing(model: str) -> Iterator[None]:
    """The model's aliases may be changed inside this block only: the model's lock is held, and
    what an earlier crash left half done is settled first."""
    with warehouse.model_lock(model):
        reconcile(model)
        yield


def reconcile(model: str) -> int:
    """Settle pending events: done if their alias points where they said, else abandoned.
    Returns how many were settled."""
    settled = 0
    store = model_store.store()
    for event in warehouse.pending_model_events(model):
        found = store.alias(model, event.alias) if event.alias else None
        now = found.version if found is not None else None
        moved = now == (None if event.removes_alias else event.version)
        state = "done" if moved else "abandoned"
        warehouse.set_model_event_state(event.id, state)
        log.warning(
            "model %s: event %s (%s v%s) left pending by a crash: %s",
            model,
            event.id,
            event.event,
            event.version,
            state,
        )
        settled += 1
    return settled


def record(
    event: ModelEvent, *, alias: str | None, version: int | None, removes: str | None = None
) -> None:
    """Write-ahead: ``event`` as pending, then ``alias`` -> ``version`` (and ``removes``
    deleted), then done. Call inside :func:`changing`."""
    model = event.model
    pending = replace(event, state="pending", alias=alias or removes, removes_alias=alias is None)
    event_id = warehouse.record_model_event(pending)
    faults.point("alias.pending")
    store = model_store.store()
    if alias is not None:
        store.set_alias(model, alias, version)
    if removes is not None and removes != alias:
        store.remove_alias(model, removes)
    faults.point("alias.moved")
    warehouse.set_model_event_state(event_id, "done")


def record_without_alias(event: ModelEvent) -> None:
    """An event that moves no alias (a challenger kept after its shadow period): done at once."""
    warehouse.record_model_event(replace(event, state="done", alias=None, removes_alias=False))
