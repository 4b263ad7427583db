"""Roll back: point ``champion`` at an earlier version (by default the one the current champion
replaced, walking back through promotions and rollbacks), recorded in ``model_events``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from loopline.adapters import model_store, warehouse
from loopline.core.errors import PermanentError, RollbackError
from loopline.core.records import ModelEvent
from loopline.core.registry import CHAMPION
from loopline.steps import aliases


@dataclass(frozen=True)
class RollbackResult:
    model: str
    champion: int
    previous_champion: int

    def as_dict(self) -> dict:
        return asdict(self)


def history(model: str) -> pd.DataFrame:
    """The append-only promotion / rejection / rollback history, oldest first."""
    return warehouse.model_events(model)


def previous_champion(model: str, current: int) -> int:
    events = history(model)
    done = events[events.state == "done"]
    made = done[(done.version == current) & done.event.isin(["promoted", "rolled_back"])]
    previous = [p for p in made.previous_champion if p is not None]
    if not previous:
        raise RollbackError(
            f"v{current} replaced no earlier champion",
            model=model,
            hint="name the version to restore with --to-version",
        )
    return int(previous[-1])


def rollback(
    model: str,
    to_version: int | None = None,
    *,
    reason: str = "manual rollback",
    dag_run_id: str | None = None,
) -> RollbackResult:
    with aliases.changing(model):  # a gate judging now waits, then sees the rollback
        store = model_store.store()
        current = store.champion(model)
        if current is None:
            raise RollbackError("no champion to roll back", model=model)
        to_version = (
            to_version if to_version is not None else previous_champion(model, current.version)
        )
        try:
            target = store.version(model, to_version)
        except PermanentError as exc:
            raise RollbackError(
                f"no version {to_version}",
                model=model,
                hint="`loopline history` lists the versions",
            ) from exc
        event = ModelEvent(
            model=model,
            event="rolled_back",
            version=target.version,
            previous_champion=current.version,
            reasons=[f"{reason}: champion v{current.version} -> v{target.version}"],
            metrics={},
            mlflow_run_id=target.run_id,
            dag_run_id=dag_run_id,
        )
        aliases.record(event, alias=CHAMPION, version=target.version)
    return RollbackResult(model, target.version, current.version)
