"""Model specs: one YAML file per model, loaded into a typed, validated object.

A broken spec raises :class:`SpecError` naming the file and the field, so that the DAG factory
can report it without breaking the DAGs of the other models.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loopline import config

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
HOOK_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
HOOK_POINTS = ("after_ingest", "after_validate", "after_predict")


class SpecError(ValueError):
    """A spec file that cannot be loaded; the message names the file and the field."""

    def __init__(self, path: Path | str, field: str, message: str):
        self.path, self.field = Path(path), field
        super().__init__(f"{path}: field '{field}': {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntityId(_Strict):
    column: str
    dtype: Literal["string", "integer"] = "string"


class Target(_Strict):
    column: str
    task: Literal["binary_classification", "regression"]


class Feature(_Strict):
    name: str
    type: Literal["numeric", "categorical"]
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None
    # False for columns known only after the fact (leakage): never used as a model input.
    available_at_prediction: bool = True

    @model_validator(mode="after")
    def _check_domain(self) -> Feature:
        if self.type == "numeric" and self.categories is not None:
            raise ValueError(f"feature '{self.name}' is numeric but lists categories")
        if self.type == "categorical" and (self.min is not None or self.max is not None):
            raise ValueError(f"feature '{self.name}' is categorical but has a min/max range")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature '{self.name}': min {self.min} > max {self.max}")
        if self.categories is not None and len(set(self.categories)) != len(self.categories):
            raise ValueError(f"feature '{self.name}': categories repeat")
        return self


class Schedule(_Strict):
    cron: str = "0 0 * * *"
    start_date: dt.date
    catchup: bool = False


class Validation(_Strict):
    # A day whose share of quarantined rows is above this fails as a whole (batch-level).
    max_bad_row_share: float = Field(0.05, ge=0, le=1)


class Training(_Strict):
    cron: str = "0 3 * * 1"  # weekly, Monday 03:00 UTC
    # stateless: from scratch on the sliding window; stateful: continue boosting the champion's
    # booster on the days after its training window only. Both go through the same gate.
    mode: Literal["stateless", "stateful"] = "stateless"
    window_days: int = Field(42, ge=3)
    min_days: int = Field(21, ge=3)
    validation_days: int = Field(5, ge=1)
    holdout_days: int = Field(7, ge=1)


class Metric(_Strict):
    primary: str = "roc_auc"
    max_calibration_error: float = 0.05
    # Classification: predicted_label = score >= decision_threshold.
    decision_threshold: float = Field(0.5, gt=0, lt=1)


class Gate(_Strict):
    min_lift_over_baseline: float
    champion_margin: float
    slice_tolerance: float


class Drift(_Strict):
    window_days: int = Field(7, ge=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    psi_threshold: float = Field(0.2, gt=0)
    wasserstein_threshold: float = Field(0.1, gt=0)
    unseen_share_threshold: float = Field(0.05, gt=0)
    min_rows: int = Field(500, ge=1)
    dataset_threshold: float = Field(0.3, gt=0, le=1)
    cooldown_days: int = Field(7, ge=0)
    persistence_k: int = Field(2, ge=1)
    persistence_m: int = Field(3, ge=1)
    # A retraining needs at least this many labelled rows newer than the champion's window.
    min_new_labels: int = Field(1000, ge=0)


class Labels(_Strict):
    delay_days: int = Field(7, ge=0)
    performance_tolerance: float = 0.05


class Hooks(_Strict):
    """Extra callables, ``package.module:function``, run as tasks at fixed points of the daily DAG.

    Each is called as ``function(model=<name>, partition_date=<datetime.date>)``.
    """

    after_ingest: list[str] = []
    after_validate: list[str] = []
    after_predict: list[str] = []

    @field_validator("after_ingest", "after_validate", "after_predict")
    @classmethod
    def _import_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not HOOK_PATTERN.match(path):
                raise ValueError(
                    f"'{path}' is not an import path of the form 'package.module:function'"
                )
        return paths


class ModelSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    owner: str = "loopline"
    entity_id: EntityId
    event_timestamp: str
    target: Target
    features: list[Feature] = Field(min_length=1)
    slices: list[str] = []
    schedule: Schedule
    validation: Validation = Validation()
    training: Training = Training()
    metric: Metric = Metric()
    # No default: a spec without a gate can never promote a model (fails closed).
    gate: Gate | None = None
    drift: Drift = Drift()
    labels: Labels = Labels()
    hooks: Hooks = Hooks()

    @model_validator(mode="after")
    def _check_columns(self) -> ModelSpec:
        names = [f.name for f in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature names repeat: {repeated}")
        reserved = {self.entity_id.column, self.event_timestamp, self.target.column}
        clash = reserved & set(names)
        if clash:
            raise ValueError(
                f"id/timestamp/target columns cannot also be features: {sorted(clash)}"
            )
        unknown = [s for s in self.slices if s not in names]
        if unknown:
            raise ValueError(f"slices name columns that are not features: {unknown}")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def required_columns(self) -> list[str]:
        """Columns every landing file must carry."""
        return [self.entity_id.column, self.event_timestamp, *self.feature_names]

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)


def load_spec(path: Path | str) -> ModelSpec:
    """Load one spec file; the model name must match the file name."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(path, "<file>", f"cannot read YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(path, "<file>", "the top level must be a mapping")
    try:
        spec = ModelSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "<root>"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise SpecError(path, field, f"{first['msg']}{more}") from exc
    if spec.name != path.stem:
        raise SpecError(path, "name", f"'{spec.name}' must match the file name '{path.stem}'")
    return spec


def spec_paths(directory: Path | None = None) -> list[Path]:
    directory = directory or config.specs_dir()
    return sorted(p for p in directory.glob("*.y*ml") if p.suffix in {".yaml", ".yml"})


def load_specs(directory: Path | None = None) -> tuple[list[ModelSpec], list[SpecError]]:
    """Every spec in the folder; broken ones are returned as errors, not raised."""
    specs, errors = [], []
    for path in spec_paths(directory):
        try:
            specs.append(load_spec(path))
        except SpecError as exc:
            errors.append(exc)
    return specs, errors


def get_spec(name: str, directory: Path | None = None) -> ModelSpec:
    directory = directory or config.specs_dir()
    for suffix in (".yaml", ".yml"):
        path = directory / f"{name}{suffix}"
        if path.exists():
            return load_spec(path)
    raise SpecError(directory / f"{name}.yaml", "<file>", f"no spec for model '{name}'")
