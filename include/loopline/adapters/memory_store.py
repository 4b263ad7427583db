"""A model store held in memory: the verbs of :class:`loopline.core.registry.ModelStore` on
dicts, for unit tests of steps (``with model_store.using(MemoryModelStore()): ...``) and for
trying a step without a tracking server. Fitted models are kept as the objects they are;
nothing outlives the process."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from loopline.core.drift import Profile
from loopline.core.errors import PermanentError
from loopline.core.registry import (
    BASELINE,
    CANDIDATE,
    CHALLENGER,
    CHAMPION,
    ModelStore,
    ModelVersion,
    Registration,
    TrainingLog,
    TrainingRun,
)


@dataclass
class _Run:
    model: str
    training: TrainingLog
    record: TrainingRun
    profile: Profile | None = None  # the version's reference, once registered
    card: dict | None = None


@dataclass
class MemoryModelStore(ModelStore):
    """Runs, versions and aliases in dicts; versions numbered from 1 per model."""

    runs: dict[str, _Run] = field(default_factory=dict)
    registered: dict[str, list[tuple[ModelVersion, object]]] = field(default_factory=dict)
    pointers: dict[tuple[str, str], int] = field(default_factory=dict)
    descriptions: dict[tuple[str, int], str] = field(default_factory=dict)
    clock: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- versions and aliases ----------------------------------------------------------------

    def _with_aliases(self, found: ModelVersion) -> ModelVersion:
        names = tuple(
            alias
            for (model, alias), number in sorted(self.pointers.items())
            if model == found.model and number == found.version
        )
        return replace(found, aliases=names)

    def alias(self, model: str, alias: str) -> ModelVersion | None:
        number = self.pointers.get((model, alias))
        return None if number is None else self.version(model, number)

    def champion(self, model: str) -> ModelVersion | None:
        return self.alias(model, CHAMPION)

    def challenger(self, model: str) -> ModelVersion | None:
        return self.alias(model, CHALLENGER)

    def version(self, model: str, version: int) -> ModelVersion:
        known = self.registered.get(model, [])
        if not 1 <= int(version) <= len(known):
            shown = f"v1..v{len(known)}" if known else "none yet"
            raise PermanentError(f"there is no version {version} (versions: {shown})", model=model)
        return self._with_aliases(known[int(version) - 1][0])

    def versions(self, model: str) -> list[ModelVersion]:
        return [self._with_aliases(v) for v, _ in self.registered.get(model, [])]

    def set_alias(self, model: str, alias: str, version: int) -> None:
        self.version(model, version)
        self.pointers[(model, alias)] = int(version)

    def remove_alias(self, model: str, alias: str) -> None:
        self.pointers.pop((model, alias), None)

    # --- fitted models -----------------------------------------------------------------------

    def load_version(self, model: str, version: int) -> Any:
        self.version(model, version)
        return copy.deepcopy(self.registered[model][int(version) - 1][1])

    def load_trained(self, model: str, run_id: str, which: str) -> Any:
        training = self._run(run_id).training
        fitted = {BASELINE: training.baseline, CANDIDATE: training.candidate}
        return copy.deepcopy(fitted[which])

    # --- training runs -----------------------------------------------------------------------

    def _run(self, run_id: str) -> _Run:
        if run_id not in self.runs:
            raise PermanentError(f"no training run {run_id}")
        return self.runs[run_id]

    def log_training(self, model: str, training: TrainingLog) -> str:
        run_id = f"run{next(self._ids):04d}"
        record = TrainingRun(
            run_id=run_id,
            reason=training.reason,
            dag_run_id=training.dag_run_id,
            git_commit="in-memory",
            window=training.window,
            task=training.task,
            candidate=training.candidate_name,
            change_date=training.change_date,
            mode=str(training.params.get("mode", "stateless")),
            counts=dict(training.counts),
        )
        self.runs[run_id] = _Run(model, training, record)
        return run_id

    def training(self, run_id: str) -> TrainingRun:
        return self._run(run_id).record

    def validation_split(self, run_id: str) -> pd.DataFrame:
        return self._run(run_id).training.validation.copy()

    def holdout(self, run_id: str) -> pd.DataFrame:
        return self._run(run_id).training.holdout.copy()

    def training_choice(self, run_id: str) -> list[str]:
        return list(self._run(run_id).training.choice.get("reasons", []))

    def training_profile(self, run_id: str) -> Profile:
        return Profile.from_dict(self._run(run_id).training.profile.to_dict())

    def training_drift(self, run_id: str) -> list[str]:
        return list(self._run(run_id).training.drifting)

    # --- versions' records -------------------------------------------------------------------

    def register(self, model: str, registration: Registration) -> int:
        run = self._run(registration.run_id)
        run.profile = Profile.from_dict(registration.profile.to_dict())
        known = self.registered.setdefault(model, [])
        holdout = {
            k.removeprefix("holdout_"): float(v)
            for k, v in registration.metrics.items()
            if k.startswith("holdout_")
        }
        found = ModelVersion(
            model=model,
            version=len(known) + 1,
            run_id=registration.run_id,
            created=self.clock + dt.timedelta(minutes=len(known)),
            holdout=holdout,
            calibrated=registration.calibrated,
        )
        known.append((found, copy.deepcopy(registration.model)))
        return found.version

    def reference_profile(self, run_id: str) -> Profile:
        profile = self._run(run_id).profile
        if profile is None:
            raise PermanentError(f"training run {run_id} has no registered version yet")
        return Profile.from_dict(profile.to_dict())

    def card(self, run_id: str) -> dict | None:
        found = self._run(run_id).card
        return copy.deepcopy(found) if found is not None else None

    def save_card(self, model: str, version: int, card: dict, description: str) -> None:
        self._run(card["mlflow_run_id"]).card = copy.deepcopy(card)
        self.descriptions[(model, int(version))] = description

    # --- the store itself --------------------------------------------------------------------

    def prepare(self) -> None:
        return None

    def delete_model(self, model: str) -> None:
        self.registered.pop(model, None)
        for key in [k for k in self.pointers if k[0] == model]:
            del self.pointers[key]
