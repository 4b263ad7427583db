"""DAG factories: one DAG of each kind per model spec, built from the task groups. The DAG files
in dags/ call :func:`build_dags` and nothing else.

A broken spec never breaks the other models: the daily factory reports it as a failing
``broken_spec__<file>`` DAG (whatever the file is called) and the other factories skip it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from loopline.adapters.specs import load_specs
from loopline.airflow.context import (
    default_args,
    loopline_errors,
    partition_date,
    run_id,
    training_end,
)
from loopline.airflow.groups import (
    approval_group,
    ingest_group,
    monitor_group,
    predict_group,
    validate_group,
)
from loopline.airflow.notify import send
from loopline.airflow.operators import RetrainTriggerOperator
from loopline.core.errors import SpecError
from loopline.core.spec import ModelSpec

# Every loopline DAG carries "loopline", one kind tag, and its model's name.
KIND_TAGS = frozenset({"daily", "train", "labels", "broken-spec", "example"})
DAILY_DOC = """
### Daily pipeline of model `{name}`

{description}

1. **ingest.plan_day**: lists `<landing>/{name}/date=<day>/*.parquet|csv`, checks each file's
   columns, records their checksums, and cuts the day into shards.
2. **validate.validate_shard** (one mapped task per shard): streams the rows through the Great
   Expectations suite generated from `include/specs/{name}.yaml` into typed Parquet in the lake;
   **validate.publish** judges the whole day and publishes it in one transaction (clean files,
   `warehouse.quarantine` with every reason, `warehouse.validation_results`). A broken day
   (missing column, empty, too many bad rows) fails and leaves the published day untouched.
3. **predict**: the champion scores each published file (mapped), then the day's
   `warehouse.predictions` are swapped in one transaction (re-runs never duplicate).
4. **monitor**: drift check against the champion's reference, then the retraining trigger.

The day processed is the run's data interval start, or the `partition_date` param of a manual run.
"""


def model_dag(spec: ModelSpec, kind: str, *, schedule: str | None, tag: str, **kwargs: Any) -> DAG:
    """A DAG of one model with the house defaults: id ``<model>_<kind>``, static start date,
    UTC cron data intervals, owner/retries/timeouts, tags ``loopline``, the kind and the model."""
    kwargs.setdefault("default_args", default_args(spec))
    return DAG(
        dag_id=f"{spec.name}_{kind}",
        schedule=CronDataIntervalTimetable(schedule, timezone="UTC") if schedule else None,
        start_date=dt.datetime.combine(spec.schedule.start_date, dt.time(), tzinfo=dt.UTC),
        tags=["loopline", tag, spec.name],
        **kwargs,
    )


def daily_params() -> dict:
    return {
        "partition_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Process this day instead of the run's data interval (YYYY-MM-DD).",
        )
    }


def daily_dag(spec: ModelSpec) -> DAG:
    """``<model>_daily``: ingest >> validate >> predict >> monitor, one run per day of data."""
    with model_dag(
        spec,
        "daily",
        schedule=spec.schedule.cron,
        tag="daily",
        description=spec.description or f"daily pipeline of {spec.name}",
        doc_md=DAILY_DOC.format(name=spec.name, description=spec.description),
        catchup=spec.schedule.catchup,
        max_active_runs=4,
        params=daily_params(),
    ) as dag:
        ingest = ingest_group(spec)
        ingest >> validate_group(spec, ingest) >> predict_group(spec) >> monitor_group(spec)
    return dag


TRAIN_DOC = """
### Training pipeline of model `{name}`

Weekly, by hand (params below), or triggered by another DAG with `{{"reason": ...}}` in its conf.

1. **load_labels**: loads label files that have arrived into `warehouse.labels`.
2. **train**: reads the labelled window from the lake (capped at `training.max_rows`), splits by
   time (train / validation / holdout), fits a baseline and an XGBoost candidate, logs both to
   MLflow (experiment `loopline-{name}`).
3. **evaluate**: holdout metrics, per slice, calibration if needed, plots; registers the model as
   a new version of `{name}`.
4. **gate**: scores candidate, baseline and champion on the same holdout now; promotes alias
   `champion` only if the spec's gate passes (primary metric, guardrails, calibration,
   slices), else `challenger`; writes `warehouse.model_events`.
"""


def train_params() -> dict:
    return {
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Train on data available this day (default: run date).",
        ),
        "reason": Param(
            "scheduled", type="string", description="Why this training runs (audited)."
        ),
        "seed": Param(0, type="integer", description="Seed for every random source."),
        "change_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="The day the world changed (default: the change the loop is learning, "
            "if any): the newest days after it are the holdout, and candidates emphasise them.",
        ),
    }


def train_dag(spec: ModelSpec) -> DAG:
    """``<model>_train``: load labels >> train >> evaluate >> gate."""
    with model_dag(
        spec,
        "train",
        schedule=spec.training.cron,
        tag="train",
        description=f"train, evaluate and gate {spec.name}",
        doc_md=TRAIN_DOC.format(name=spec.name),
        catchup=False,
        max_active_runs=1,
        params=train_params(),
    ) as dag:

        @task
        def load_labels() -> int:
            from loopline.steps.labels import sync_labels

            with loopline_errors():
                return sync_labels(spec, training_end(), run_id=run_id())

        @task
        def train() -> dict:
            from loopline.steps.train import known_change, run_training

            params = get_current_context()["params"]
            with loopline_errors(skip_too_few_days=True):
                end = training_end()
                return run_training(
                    spec,
                    end,
                    dag_run_id=run_id(),
                    reason=str(params.get("reason") or "scheduled"),
                    seed=int(params.get("seed") or 0),
                    change_date=known_change(spec, end, params.get("change_date")),
                ).as_dict()

        @task
        def evaluate(trained: dict) -> dict:
            from loopline.steps.evaluate import run_evaluation

            with loopline_errors():
                return run_evaluation(spec, trained["mlflow_run_id"]).as_dict()

        @task
        def gate(evaluated: dict) -> dict:
            from loopline.steps.promote import run_gate

            with loopline_errors():
                result = run_gate(spec, evaluated["version"], dag_run_id=run_id())
            if not result.promoted:
                reasons = "; ".join(result.reasons)
                message = f"v{result.version} stays challenger: {reasons}"
                send(spec, "gate_rejected", message, get_current_context())
            return result.as_dict()

        trained = train()
        load_labels() >> trained
        gated = gate(evaluate(trained))
        if spec.gate is not None and spec.gate.approval == "required":
            approval_group(spec, gated)
    return dag


LABELS_DOC = """
### Late labels and realized performance of model `{name}`

Daily, one run per arrival day of labels:
1. **load_labels**: loads `<labels>/{name}/date=<day>/` into `warehouse.labels` (idempotent).
2. **realized_performance**: joins the labels to the predictions of the day they label
   (`<day> - labels.delay_days`), stores metrics per model version in `warehouse.model_performance`,
   and compares the champion's realized metric over the last `drift.window_days` mature days with
   its holdout metric (concept drift).
3. **retrain_trigger**: a drop beyond `labels.performance_tolerance` may trigger `{name}_train`,
   subject to the cool-down, active-run and new-label rules; every decision is recorded.
"""


def labels_dag(spec: ModelSpec) -> DAG:
    """``<model>_labels``: load the day's late labels, realized performance, retrain trigger."""
    with model_dag(
        spec,
        "labels",
        schedule=spec.schedule.cron,
        tag="labels",
        description=f"late labels and realized performance of {spec.name}",
        doc_md=LABELS_DOC.format(name=spec.name),
        catchup=spec.schedule.catchup,
        max_active_runs=1,
        params=daily_params(),
    ) as dag:

        @task
        def load_labels() -> int:
            from loopline.steps.labels import ingest_labels

            with loopline_errors():
                return ingest_labels(spec, partition_date(), run_id=run_id())

        @task
        def realized_performance() -> dict:
            from loopline.steps.labels import performance_signal
            from loopline.steps.labels import realized_performance as measure

            scored = partition_date() - dt.timedelta(days=spec.labels.delay_days)
            with loopline_errors():
                measure(spec, scored)
                return performance_signal(spec, scored).as_dict()

        @task
        def compare_shadow() -> dict | None:
            from loopline.steps.shadow import compare

            scored = partition_date() - dt.timedelta(days=spec.labels.delay_days)
            with loopline_errors():
                result = compare(spec, scored, dag_run_id=run_id())
            return result.as_dict() if result is not None else None

        measured = load_labels() >> realized_performance()
        measured >> RetrainTriggerOperator(
            task_id="retrain_trigger",
            model=spec.name,
            source="performance",
            signal_task_id="realized_performance",
        )
        measured >> compare_shadow()
    return dag


def challenger_dag(spec: ModelSpec) -> DAG:
    """``<model>_challenger``: put a version in shadow, promote the challenger, or retire it."""
    with model_dag(
        spec,
        "challenger",
        schedule=None,
        tag="train",
        description=f"operate the challenger of {spec.name} by hand",
        doc_md=f"### The challenger of `{spec.name}`\n\nTrigger with `action` (`set` with a "
        "`version`, `promote` or `retire`) and a `reason`. Recorded in `warehouse.model_events`.",
        default_args={**default_args(spec), "retries": 0},
        params={
            "action": Param("promote", enum=["set", "promote", "retire"]),
            "version": Param(None, type=["null", "integer"], description="for set"),
            "reason": Param("by hand", type="string"),
        },
    ) as dag:

        @task
        def operate() -> dict:
            from loopline.steps import shadow

            params = get_current_context()["params"]
            reason, action = params["reason"], params["action"]
            with loopline_errors():
                if action == "set":
                    shadow.set_challenger(spec.name, params["version"], reason=reason)
                    return {"challenger": params["version"]}
                done = getattr(shadow, action)(spec.name, reason=reason, dag_run_id=run_id())
            return {action: done}

        operate()
    return dag


def rollback_dag(spec: ModelSpec) -> DAG:
    """``<model>_rollback``: point ``champion`` back at the previous (or a given) version."""
    with model_dag(
        spec,
        "rollback",
        schedule=None,
        tag="train",
        description=f"roll the champion of {spec.name} back",
        doc_md=f"### Roll back `{spec.name}`\n\nTrigger with `to_version` (empty: the previous "
        "champion) and a `reason`. Recorded in `warehouse.model_events`.",
        default_args={**default_args(spec), "retries": 0},
        params={
            "to_version": Param(None, type=["null", "integer"], description="version to restore"),
            "reason": Param("manual rollback", type="string"),
        },
    ) as dag:

        @task
        def rollback() -> dict:
            from loopline.steps.rollback import rollback as do_rollback

            context = get_current_context()
            params = context["params"]
            with loopline_errors():
                result = do_rollback(
                    spec.name,
                    params.get("to_version"),
                    reason=params["reason"],
                    dag_run_id=run_id(),
                )
            message = (
                f"champion v{result.previous_champion} -> v{result.champion}: {params['reason']}"
            )
            send(spec, "rollback", message, context)
            return result.as_dict()

        rollback()
    return dag


def broken_spec_dag_id(error: SpecError) -> str:
    """A valid DAG id for any spec file name: its safe characters, plus a short hash of the
    name so two odd names never collide (``my model.yaml`` -> ``broken_spec__my_model_1a2b3c``)."""
    stem = error.path.stem
    safe = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_")[:60] or "spec"
    if safe == stem:
        return f"broken_spec__{stem}"
    return f"broken_spec__{safe}_{hashlib.sha1(stem.encode()).hexdigest()[:6]}"


def spec_error_dag(error: SpecError) -> DAG:
    """Stands in for a model whose spec is broken: visible in the UI, failing with the message."""
    with DAG(
        dag_id=broken_spec_dag_id(error),
        description=str(error)[:200],
        doc_md=f"### Broken model spec\n\n```\n{error}\n```\n\nFix the file; the DAGs return.",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        default_args={
            "owner": "loopline",
            "retries": 0,
            "execution_timeout": dt.timedelta(minutes=1),
        },
        tags=["loopline", "broken-spec"],
    ) as dag:

        @task
        def report_spec_error() -> None:
            raise AirflowFailException(str(error))

        report_spec_error()
    return dag


def build_dags(
    factory: Callable[[ModelSpec], DAG], *, report_broken_specs: bool = False
) -> dict[str, DAG]:
    """One DAG per loadable spec. A broken spec never breaks the others: one DAG file (the
    daily one) reports it as a failing stand-in DAG, the other factories skip it."""
    specs, errors = load_specs()
    dags = [factory(spec) for spec in specs]
    if report_broken_specs:
        dags += [spec_error_dag(error) for error in errors]
    return {dag.dag_id: dag for dag in dags}
