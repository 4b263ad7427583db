"""The model store as loopline speaks of it: the records a step reads and writes (a registered
version, a training run, what a training logs, what an evaluation registers) and the verbs of
the store (:class:`ModelStore`). No step knows where or how they are kept: the MLflow store
(``loopline.adapters.model_store``) keeps them as runs, artifacts, tags and aliases; the
in-memory store (``loopline.adapters.memory_store``) in dicts, for unit tests of steps.

A version's number and its training run's id are loopline's own words (every prediction row
carries both, for lineage); URIs, entities and tag names are the store's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from loopline.core.drift import Profile

CHAMPION, CHALLENGER = "champion", "challenger"
ALIASES = (CHAMPION, CHALLENGER)
# The two models every training run holds beside the registered one.
BASELINE, CANDIDATE = "baseline", "candidate"


@dataclass(frozen=True)
class ModelVersion:
    """A registered version: its number, the training run it came from, when, the aliases that
    point at it, and its holdout metrics as evaluated (after calibration)."""

    model: str
    version: int
    run_id: str
    created: dt.datetime
    aliases: tuple[str, ...] = ()
    holdout: Mapping[str, float] = field(default_factory=dict)
    calibrated: bool | None = None

    def holdout_value(self, metric: str) -> float | None:
        """The version's holdout value of ``metric``, or None (evaluated before it was kept)."""
        return self.holdout.get(metric)


@dataclass(frozen=True)
class TrainingRun:
    """What a training run was: why and where it ran, on which days, which candidate it chose,
    and how many rows each split held."""

    run_id: str
    reason: str | None = None
    dag_run_id: str | None = None
    git_commit: str | None = None
    window: tuple[dt.date, dt.date] | None = None
    task: str | None = None
    candidate: str | None = None
    change_date: dt.date | None = None
    mode: str = "stateless"
    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def window_end(self) -> dt.date | None:
        return self.window[1] if self.window else None


@dataclass(frozen=True)
class TrainingLog:
    """Everything one training leaves in the store (a new run): the two fitted models with a
    sample of inputs and their scores (their signature), the validation and holdout splits the
    evaluation and the gate score again, the candidates the training chose among, and the drift
    reference of the training split."""

    title: str
    reason: str
    dag_run_id: str
    window: tuple[dt.date, dt.date]
    task: str
    candidate_name: str
    change_date: dt.date | None
    params: Mapping[str, Any]
    counts: Mapping[str, int]
    baseline: Any
    candidate: Any
    sample: pd.DataFrame
    sample_scores: Mapping[str, np.ndarray]  # BASELINE and CANDIDATE -> scores of the sample
    validation: pd.DataFrame
    holdout: pd.DataFrame
    choice: Mapping[str, Any]  # the candidates' windows, holdout metrics and the reasons
    profile: Profile
    drifting: list[str]  # features that drift within the training window already


@dataclass(frozen=True)
class Registration:
    """What an evaluation adds to a training run and registers as a new version: the final
    model (calibrated or not), its holdout metrics and slices, its figures, and the drift
    reference every check of the version compares with."""

    run_id: str
    model: Any
    sample: pd.DataFrame
    sample_scores: np.ndarray
    profile: Profile
    metrics: Mapping[str, float]
    slices: Mapping[str, Any]
    figures: Mapping[str, Any]  # file name -> matplotlib figure
    calibrated: bool


class ModelStore(Protocol):
    """The verbs of the model store. Versions are numbered from 1 per model; a version or run
    that does not exist is a :class:`~loopline.core.errors.PermanentError` naming what there is;
    a store that cannot be reached a :class:`~loopline.core.errors.StoreUnavailableError`."""

    # versions and aliases
    def champion(self, model: str) -> ModelVersion | None: ...
    def challenger(self, model: str) -> ModelVersion | None: ...
    def alias(self, model: str, alias: str) -> ModelVersion | None: ...
    def version(self, model: str, version: int) -> ModelVersion: ...
    def versions(self, model: str) -> list[ModelVersion]: ...  # oldest first, aliases filled
    def set_alias(self, model: str, alias: str, version: int) -> None: ...
    def remove_alias(self, model: str, alias: str) -> None: ...  # no-op when not set
    # fitted models
    def load_version(self, model: str, version: int) -> Any: ...
    def load_trained(self, model: str, run_id: str, which: str) -> Any: ...  # BASELINE|CANDIDATE
    # training runs
    def log_training(self, model: str, training: TrainingLog) -> str: ...  # -> run id
    def training(self, run_id: str) -> TrainingRun: ...
    def validation_split(self, run_id: str) -> pd.DataFrame: ...
    def holdout(self, run_id: str) -> pd.DataFrame: ...
    def training_choice(self, run_id: str) -> list[str]: ...  # [] for runs from before
    def training_profile(self, run_id: str) -> Profile: ...
    def training_drift(self, run_id: str) -> list[str]: ...
    # versions' records
    def register(self, model: str, registration: Registration) -> int: ...  # -> version
    def reference_profile(self, run_id: str) -> Profile: ...
    def card(self, run_id: str) -> dict | None: ...  # None: not evaluated, or from before cards
    def save_card(self, model: str, version: int, card: dict, description: str) -> None: ...
    # the store itself
    def prepare(self) -> None: ...
    def delete_model(self, model: str) -> None: ...
