"""Model specs: one YAML file per model, validated into a typed object (pure: no file I/O here;
``loopline.adapters.specs`` reads the files).

Defaults follow the task: a regression model is judged by RMSE (lower is better) and guarded by
MAE, a binary classifier by ROC-AUC and guarded by log loss and Brier score. Settings that
cannot work together (a minimum of more days than the window holds, persistence k > m) are
refused when the spec loads, naming the field.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from loopline.core.errors import SpecError

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
HOOK_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
HOOK_POINTS = ("after_ingest", "after_validate", "after_predict")
CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece")
REGRESSION_METRICS = ("rmse", "mae", "r2")
METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS  # every metric loopline computes
DEFAULT_PRIMARY = {"binary_classification": "roc_auc", "regression": "rmse"}
DEFAULT_GUARDRAILS = {"binary_classification": ["log_loss", "brier"], "regression": ["mae"]}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _column_name(name: str) -> str:
    """Any name a file can carry (``entity_id``, ``label``, ``_run_id`` too: loopline's own
    columns cannot collide, see ``loopline.core.columns``), except empty names, names with
    leading or trailing spaces, and control characters. Names compare in Unicode NFC, the form
    most files write: a spec typed in another form still matches the file."""
    if not name or name != name.strip():
        raise ValueError(f"column name {name!r} is empty or has leading/trailing spaces")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValueError(f"column name {name!r} holds a control character")
    return unicodedata.normalize("NFC", name)


ColumnName = Annotated[str, AfterValidator(_column_name)]


class EntityId(_Strict):
    column: ColumnName
    dtype: Literal["string", "integer"] = "string"


class Target(_Strict):
    column: ColumnName
    task: Literal["binary_classification", "regression"]


class Feature(_Strict):
    name: ColumnName
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


class Processing(_Strict):
    """How a day is cut for the data plane: memory depends on ``batch_rows``, not on the day;
    a day of more than ``shard_rows`` rows is validated and scored as several mapped tasks."""

    batch_rows: int = Field(250_000, ge=1_000)
    shard_rows: int = Field(2_000_000, ge=1_000)


class Training(_Strict):
    # Weekly, Monday 03:00 UTC; null or "": no schedule (by hand and triggered runs only).
    cron: str | None = "0 3 * * 1"
    # stateless: from scratch on the sliding window; stateful: continue boosting the champion's
    # booster on the days after its training window only. Both go through the same gate.
    mode: Literal["stateless", "stateful"] = "stateless"
    window_days: int = Field(42, ge=3)
    min_days: int = Field(21, ge=3)
    validation_days: int = Field(5, ge=1)
    holdout_days: int = Field(7, ge=1)
    # Classification: weigh the classes equally (scale_pos_weight). Off by default: it skews
    # probabilities, and the gate guards log loss and Brier score against the baseline.
    balance_classes: bool = False
    # At most this many labelled rows are read from the window (a seeded sample with the same
    # rate on every day), so memory stays bounded on long windows; null: every row.
    max_rows: int | None = Field(1_000_000, ge=100)

    @model_validator(mode="after")
    def _check_days(self) -> Training:
        if self.min_days > self.window_days:
            raise ValueError(
                f"min_days {self.min_days} > window_days {self.window_days}: the window can "
                "never hold enough days"
            )
        if self.validation_days + self.holdout_days >= self.min_days:
            raise ValueError(
                f"validation_days + holdout_days ({self.validation_days + self.holdout_days}) "
                f"must be below min_days ({self.min_days}) to leave days to train on"
            )
        return self


class Metric(_Strict):
    # Default by task: roc_auc (binary_classification) or rmse (regression).
    primary: str | None = None
    # Expected calibration error, in probability units (0..1); classification only.
    max_calibration_error: float = Field(0.05, gt=0, le=1)
    # Classification: predicted_label = score >= decision_threshold.
    decision_threshold: float = Field(0.5, gt=0, lt=1)
    # A service level for the realized primary metric (a floor for ROC-AUC, a ceiling for
    # RMSE): a served model that falls beyond it asks for a retraining. null: no SLO.
    slo: float | None = None


class Gate(_Strict):
    """All gains are in the primary metric's own units, positive = better (for a metric where
    lower is better, e.g. RMSE, a gain of 2.0 means 2.0 lower)."""

    min_lift_over_baseline: float
    champion_margin: float
    slice_tolerance: float
    # Metrics the candidate may not be worse on than the baseline (default by task: log_loss
    # and brier for classification, mae for regression), with this much slack (metric units).
    guardrails: list[str] | None = None
    guardrail_tolerance: float = Field(0.0, ge=0)
    # Classification: refuse a candidate whose (calibrated) holdout ECE is above
    # metric.max_calibration_error.
    enforce_calibration: bool = True
    # "required": a candidate that passes the gate waits in the train DAG for a person to
    # approve it (Airflow's Required Actions, its REST API, or `loopline approve`); rejected,
    # or unanswered within approval_timeout_hours, it is not promoted. Every answer, with who
    # and why, goes to the model's history.
    approval: Literal["none", "required"] = "none"
    approval_timeout_hours: float = Field(24.0, gt=0)


class Drift(_Strict):
    window_days: int = Field(7, ge=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    psi_threshold: float = Field(0.2, gt=0)
    wasserstein_threshold: float = Field(0.1, gt=0)
    # Categorical features: Jensen-Shannon distance (0..1, base 2) between the proportions.
    js_threshold: float = Field(0.1, gt=0, le=1)
    unseen_share_threshold: float = Field(0.05, gt=0)
    # Missing data: absolute change of a feature's share of nulls (0.05 -> 0.40 is 0.35).
    null_share_threshold: float = Field(0.1, gt=0, le=1)
    min_rows: int = Field(500, ge=1)
    dataset_threshold: float = Field(0.3, gt=0, le=1)
    # What the current window is compared with: "recent" = the days the model was last
    # validated on (its validation + holdout days), "training" = its training split.
    reference: Literal["recent", "training"] = "recent"
    cooldown_days: int = Field(7, ge=0)
    persistence_k: int = Field(2, ge=1)
    persistence_m: int = Field(3, ge=1)
    # A retraining needs at least this many labelled rows newer than the champion's window.
    min_new_labels: int = Field(1000, ge=0)
    # Binary classifiers: a drift verdict triggers a retraining only when the performance
    # estimated from the day's calibrated scores (CBPE) dropped below the champion's holdout
    # estimate by more than labels.performance_tolerance + 2 SE (docs/monitoring.md).
    require_estimated_drop: bool = False

    @model_validator(mode="after")
    def _check_persistence(self) -> Drift:
        if self.persistence_k > self.persistence_m:
            raise ValueError(
                f"persistence_k {self.persistence_k} > persistence_m {self.persistence_m}: "
                "drift could never persist"
            )
        return self


class Labels(_Strict):
    delay_days: int = Field(7, ge=0)
    # How far the champion's realized primary metric may fall below its holdout value before
    # the labels DAG asks for a retraining (metric units).
    performance_tolerance: float = Field(0.05, ge=0)


class Shadow(_Strict):
    """Shadow deployment: a challenger scores every day beside the champion (its predictions
    kept apart from the analysts'), and is compared with it on the same labelled rows. With
    ``required_days``, a candidate that passes the offline gate becomes champion only after that
    many labelled days of beating the champion on live data by ``margin`` (the primary metric's
    units), the lower bound of the difference's confidence interval above the margin."""

    enabled: bool = True
    required_days: int = Field(0, ge=0)
    margin: float = Field(0.0, ge=0)
    window_days: int = Field(7, ge=1)
    confidence: float = Field(0.95, gt=0.5, lt=1)


class Explain(_Strict):
    """Why the model says what it says. Every version's card holds its global attributions
    (mean |SHAP| per feature on the holdout, by slice) and the drift verdict weighs features by
    them, always. Opt-in: with ``reasons``, every prediction of the champion gets its ``top``
    features by |contribution| (and the contributions, in the booster's margin units) in
    ``warehouse.prediction_reasons``, which analysts may read (it costs scoring time:
    docs/benchmarks.md)."""

    reasons: bool = False
    top: int = Field(3, ge=1, le=3)
    # "exact": TreeSHAP (199 s per million rows on a 300-tree model, 12x its scoring);
    # "approximate": Saabas contributions (15 s per million), the same top feature for ~9 rows
    # in 10 (docs/benchmarks.md).
    method: Literal["exact", "approximate"] = "exact"


CANDIDATES = ("window", "recent", "post_change")


class Retraining(_Strict):
    """How the loop learns after a known change (docs/models.md, "After a change"): the day the
    world changed travels with the trigger; the training then builds a candidate per window
    below on what it has, holds out the newest days after the change, and lets the gate choose
    among the candidates and the champion on them. While realized performance stays below the
    level before the change, follow-up retrainings run as post-change labels arrive, without
    waiting for the cool-down, at most ``max_follow_ups`` per change."""

    # window: the usual sliding window; recent: the same rows with the post-change rows weighted
    # to ``recent_weight_share`` of the total; post_change: the post-change rows only, once the
    # training part holds ``min_post_change_rows``.
    candidates: list[Literal["window", "recent", "post_change"]] = list(CANDIDATES)
    recent_weight_share: float = Field(0.5, gt=0, lt=1)
    min_post_change_rows: int = Field(500, ge=1)
    # The newest share of the post-change labelled days is held out (at least one day, and the
    # newest half of the rows while there is only one; at most training.holdout_days days).
    holdout_share: float = Field(1 / 3, gt=0, lt=1)
    # Follow-ups: while performance stays below the level before the change, every
    # ``follow_up_rows`` new post-change labelled rows; once it is back, while the change hurt
    # it and the post-change labelled rows have grown ``growth``-fold since the last retraining.
    follow_up_rows: int = Field(1000, ge=1)
    growth: float = Field(2.0, gt=1)
    max_follow_ups: int = Field(3, ge=0)
    # The live level to get back to: realized performance over this many labelled days before
    # the change (before the monitored window when no change is known).
    reference_days: int = Field(14, ge=1)

    @field_validator("candidates")
    @classmethod
    def _some_candidates(cls, names: list[str]) -> list[str]:
        if "window" not in names:
            raise ValueError("candidates must include 'window' (the usual sliding window)")
        if len(set(names)) != len(names):
            raise ValueError(f"candidates repeat: {names}")
        return names


NOTIFY_EVENTS = ("drift", "retrain_triggered", "gate_rejected", "rollback", "task_failure")


class Notify(_Strict):
    """Who hears about which events of this model (Airflow notifiers; see docs/operations.md)."""

    email: list[str] = []
    webhook: bool = False
    on: list[Literal["drift", "retrain_triggered", "gate_rejected", "rollback", "task_failure"]] = (
        list(NOTIFY_EVENTS)
    )
    smtp_connection: str = "smtp_default"
    webhook_connection: str = "loopline_webhook"


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
    event_timestamp: ColumnName
    target: Target
    features: list[Feature] = Field(min_length=1)
    slices: list[str] = []
    schedule: Schedule
    validation: Validation = Validation()
    processing: Processing = Processing()
    training: Training = Training()
    metric: Metric = Metric()
    # No default: a spec without a gate can never promote a model (fails closed).
    gate: Gate | None = None
    drift: Drift = Drift()
    labels: Labels = Labels()
    retraining: Retraining = Retraining()
    shadow: Shadow = Shadow()
    explain: Explain = Explain()
    notify: Notify = Notify()
    hooks: Hooks = Hooks()

    @model_validator(mode="after")
    def _check_columns(self) -> ModelSpec:
        names = [f.name for f in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"feature names repeat: {repeated}")
        if self.gate and self.gate.approval == "required" and self.shadow.required_days:
            raise ValueError(
                "gate.approval: required cannot be combined with shadow.required_days (a "
                "promotion on live evidence happens in the labels DAG, where nobody is asked)"
            )
        if self.drift.require_estimated_drop and self.target.task != "binary_classification":
            raise ValueError(
                "drift.require_estimated_drop needs a binary classifier (performance is "
                "estimated from calibrated probabilities)"
            )
        reserved = {self.entity_id.column, self.event_timestamp, self.target.column}
        clash = reserved & set(names)
        if clash:
            raise ValueError(
                f"id/timestamp/target columns cannot also be features: {sorted(clash)}"
            )
        unknown = [s for s in self.slices if s not in names]
        if unknown:
            raise ValueError(f"slices name columns that are not features: {unknown}")
        allowed = (
            CLASSIFICATION_METRICS
            if self.target.task == "binary_classification"
            else REGRESSION_METRICS
        )
        if self.metric.primary is not None and self.metric.primary not in allowed:
            raise ValueError(
                f"metric.primary '{self.metric.primary}' is not a {self.target.task} metric "
                f"(one of {list(allowed)})"
            )
        bad_guards = (
            [g for g in (self.gate.guardrails or []) if g not in allowed] if self.gate else []
        )
        if bad_guards:
            raise ValueError(
                f"gate.guardrails {bad_guards} are not {self.target.task} metrics "
                f"(one of {list(allowed)})"
            )
        return self

    @property
    def primary_metric(self) -> str:
        """``metric.primary``, or the task's default (roc_auc / rmse)."""
        return self.metric.primary or DEFAULT_PRIMARY[self.target.task]

    @property
    def guardrails(self) -> list[str]:
        """Metrics the gate checks against the baseline besides the primary one."""
        if self.gate is not None and self.gate.guardrails is not None:
            return list(self.gate.guardrails)
        return list(DEFAULT_GUARDRAILS[self.target.task])

    @property
    def is_classifier(self) -> bool:
        return self.target.task == "binary_classification"

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def required_columns(self) -> list[str]:
        """Columns every landing file must carry."""
        return [self.entity_id.column, self.event_timestamp, *self.feature_names]

    def feature(self, name: str) -> Feature:
        return next(f for f in self.features if f.name == name)


def spec_from_mapping(raw: object, path: Path | str) -> ModelSpec:
    """Validate a parsed YAML document; the model name must match the file name."""
    path = Path(path)
    if not isinstance(raw, dict):
        raise SpecError(path, "<file>", "the top level must be a mapping")
    try:
        spec = ModelSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "<root>"
        message = str(first["msg"]).removeprefix("Value error, ")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise SpecError(path, field, f"{message}{more}") from exc
    if spec.name != path.stem:
        raise SpecError(path, "name", f"'{spec.name}' must match the file name '{path.stem}'")
    return spec
