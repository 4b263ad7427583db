"""The Airflow adapter: reusable task groups and the per-spec DAG factories.

This is the only library module that imports Airflow. Task bodies are a few lines that call
plain library functions; heavy imports (pandas, Great Expectations) happen inside the tasks,
never at DAG-parse time.

A hand-written DAG composes the same groups with its own tasks::

    from loopline.spec import get_spec
    from loopline.tasks import ingest_group, validate_group

    spec = get_spec("churn")
    with DAG("churn_custom", ...):
        ingest_group(spec) >> my_task() >> validate_group(spec)
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, TaskGroup, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from loopline.spec import HOOK_POINTS, ModelSpec, SpecError, load_specs

# Every loopline DAG carries "loopline", one kind tag, and its model's name.
KIND_TAGS = frozenset({"daily", "train", "labels", "broken-spec", "example"})
DAILY_DOC = """
### Daily pipeline of model `{name}`

{description}

1. **ingest**: reads `<landing>/{name}/date=<day>/*.parquet|csv` into `warehouse.raw_rows`,
   replacing the day (re-runs never duplicate).
2. **validate**: Great Expectations suite generated from `include/specs/{name}.yaml`; bad rows go
   to `warehouse.quarantine` with every reason, good rows to `warehouse.clean_rows`, counts to
   `warehouse.validation_results`. A broken day (missing column, empty, too many bad rows) fails
   without touching the day's clean rows.

The day processed is the run's data interval start, or the `partition_date` param of a manual run.
"""


def default_args(spec: ModelSpec) -> dict:
    # Airflow 3.3 defaults retries to 0 and execution_timeout to none: set both on purpose.
    # LOOPLINE_RETRY_DELAY_SECONDS shortens the wait (tests use 1 s so a retry path stays fast).
    return {
        "owner": spec.owner,
        "retries": 2,
        "retry_delay": dt.timedelta(
            seconds=int(os.environ.get("LOOPLINE_RETRY_DELAY_SECONDS", 300))
        ),
        "retry_exponential_backoff": True,
        "execution_timeout": dt.timedelta(hours=1),
    }


def model_dag(spec: ModelSpec, kind: str, *, schedule: str | None, tag: str, **kwargs) -> DAG:
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


def partition_date(context=None) -> dt.date:
    """The day a task works on: the ``partition_date`` param if given, else the data interval.
    A run triggered without either (``airflow dags trigger`` without a logical date) fails at
    once: guessing a day would load or score the wrong one."""
    context = context or get_current_context()
    override = (context.get("params") or {}).get("partition_date")
    if override:
        return dt.date.fromisoformat(str(override))
    start = context.get("data_interval_start")
    if start is None:
        raise AirflowFailException(
            f"{context['dag'].dag_id}, run {context['run_id']}: no data interval (triggered "
            "without a logical date) and no partition_date param: give the day to process, "
            'e.g. --conf \'{"partition_date": "2026-01-31"}\''
        )
    return start.date()


def run_id() -> str:
    return str(get_current_context()["run_id"])


@contextmanager
def fail_fast() -> Iterator[None]:
    """Errors a retry cannot fix fail the task at once instead of burning its retries."""
    from loopline.ingest import UnreadableFileError
    from loopline.predict import PredictionInputError
    from loopline.registry import RollbackError
    from loopline.train import TrainingDataError
    from loopline.validate import BatchValidationError

    permanent = (
        BatchValidationError,
        SpecError,
        UnreadableFileError,
        PredictionInputError,
        TrainingDataError,
        RollbackError,
    )
    try:
        yield
    except permanent as exc:
        raise AirflowFailException(str(exc)) from exc


def resolve_hook(path: str):
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise AirflowFailException(f"hook '{path}' cannot be imported: {exc}") from exc


def hook_tasks(spec: ModelSpec, point: str) -> list:
    """One task per callable the spec names for ``point``, chained in the spec's order."""
    assert point in HOOK_POINTS, point
    tasks = []
    for path in getattr(spec.hooks, point):

        @task(task_id=f"{point}__{path.rpartition(':')[2]}")
        def run_hook(path: str = path) -> None:
            resolve_hook(path)(model=spec.name, partition_date=partition_date())

        current = run_hook()
        if tasks:
            tasks[-1] >> current
        tasks.append(current)
    return tasks


def _then_hooks(first, spec: ModelSpec, point: str) -> None:
    hooks = hook_tasks(spec, point)
    if hooks:
        first >> hooks[0]


def ingest_group(spec: ModelSpec, group_id: str = "ingest") -> TaskGroup:
    """Land the day's files in ``warehouse.raw_rows``, then the spec's ``after_ingest`` hooks."""
    with TaskGroup(group_id, tooltip=f"ingest {spec.name} landing files") as group:

        @task
        def ingest_files() -> dict:
            from loopline.ingest import ingest_day

            with fail_fast():
                return ingest_day(spec, partition_date(), run_id=run_id()).as_dict()

        _then_hooks(ingest_files(), spec, "after_ingest")
    return group


def validate_group(spec: ModelSpec, group_id: str = "validate") -> TaskGroup:
    """Split the day into clean rows and quarantine, then the spec's ``after_validate`` hooks."""
    with TaskGroup(group_id, tooltip=f"validate {spec.name} rows") as group:

        @task
        def validate_rows() -> dict:
            from loopline.validate import validate_day

            with fail_fast():
                return validate_day(spec, partition_date(), run_id=run_id())

        _then_hooks(validate_rows(), spec, "after_validate")
    return group


def predict_group(spec: ModelSpec, group_id: str = "predict") -> TaskGroup:
    """Score the day's clean rows with the champion, then the spec's ``after_predict`` hooks.
    Without a champion the task is skipped with a message, not failed."""
    with TaskGroup(group_id, tooltip=f"batch-predict {spec.name}") as group:

        @task
        def score_day() -> dict:
            import pandas as pd

            from loopline.predict import NoChampionError, predict_day

            scored_at = pd.Timestamp.now(tz="UTC")  # audit time of the write, not logic
            with fail_fast():
                try:
                    return predict_day(
                        spec, partition_date(), dag_run_id=run_id(), scored_at=scored_at
                    )
                except NoChampionError as exc:
                    raise AirflowSkipException(
                        f"{exc}; the first promotion by {spec.name}_train fixes this"
                    ) from exc

        _then_hooks(score_day(), spec, "after_predict")
    return group


def monitor_group(spec: ModelSpec, group_id: str = "monitor") -> TaskGroup:
    """Drift check against the champion's profile, then the retraining trigger (custom
    operators from plugins/)."""
    from loopline_operators import DriftDetectionOperator, RetrainTriggerOperator

    with TaskGroup(group_id, tooltip=f"drift check of {spec.name}") as group:
        check = DriftDetectionOperator(task_id="drift_check", model=spec.name)
        check >> RetrainTriggerOperator(
            task_id="retrain_trigger",
            model=spec.name,
            source="drift",
            signal_task_id=f"{group_id}.drift_check",
        )
    return group


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
    """``<model>_daily``: ingest >> validate, one run per day of data."""
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
        ingest_group(spec) >> validate_group(spec) >> predict_group(spec) >> monitor_group(spec)
    return dag


TRAIN_DOC = """
### Training pipeline of model `{name}`

Weekly, by hand (params below), or triggered by another DAG with `{{"reason": ...}}` in its conf.

1. **load_labels**: loads label files that have arrived into `warehouse.labels`.
2. **train**: builds the training set from `warehouse.clean_rows` joined to labels over the spec's
   window, splits by time (train / validation / holdout), fits a baseline and an XGBoost candidate,
   logs both to MLflow (experiment `loopline-{name}`).
3. **evaluate**: holdout metrics, per slice, calibration if needed, plots; registers the model as a
   new version of `{name}`.
4. **gate**: scores candidate, baseline and champion on the same holdout now; promotes alias
   `champion` only if the spec's gate passes, else `challenger`; writes `warehouse.model_events`.
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
    }


def training_end() -> dt.date:
    context = get_current_context()
    override = (context.get("params") or {}).get("end_date")
    if override:
        return dt.date.fromisoformat(str(override))
    end = context.get("data_interval_end")
    # A manual run without a logical date trains on what is available on the day it runs.
    return end.date() if end is not None else context["dag_run"].run_after.date()


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
            from loopline.labels import sync_labels

            return sync_labels(spec, training_end(), run_id=run_id())

        @task
        def train() -> dict:
            from loopline.train import run_training

            params = get_current_context()["params"]
            with fail_fast():
                return run_training(
                    spec,
                    training_end(),
                    dag_run_id=run_id(),
                    reason=str(params.get("reason") or "scheduled"),
                    seed=int(params.get("seed") or 0),
                )

        @task
        def evaluate(trained: dict) -> dict:
            from loopline.evaluate import run_evaluation

            return run_evaluation(spec, trained["mlflow_run_id"])

        @task
        def gate(evaluated: dict) -> dict:
            from loopline.registry import run_gate

            return run_gate(spec, evaluated["version"], dag_run_id=run_id())

        trained = train()
        load_labels() >> trained
        gate(evaluate(trained))
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
    from loopline_operators import RetrainTriggerOperator

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
            from loopline.labels import ingest_labels

            return ingest_labels(spec, partition_date(), run_id=run_id())

        @task
        def realized_performance() -> dict:
            from loopline.labels import performance_signal, realized_performance

            scored = partition_date() - dt.timedelta(days=spec.labels.delay_days)
            realized_performance(spec, scored)
            return performance_signal(spec, scored)

        (
            load_labels()
            >> realized_performance()
            >> RetrainTriggerOperator(
                task_id="retrain_trigger",
                model=spec.name,
                source="performance",
                signal_task_id="realized_performance",
            )
        )
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
            from loopline.registry import rollback as do_rollback

            params = get_current_context()["params"]
            with fail_fast():
                return do_rollback(
                    spec.name,
                    params.get("to_version"),
                    reason=params["reason"],
                    dag_run_id=run_id(),
                )

        rollback()
    return dag


def spec_error_dag(error: SpecError) -> DAG:
    """Stands in for a model whose spec is broken: visible in the UI, failing with the message."""
    with DAG(
        dag_id=f"{error.path.stem}_broken_spec",
        description=str(error)[:200],
        doc_md=f"### Broken model spec\n\n```\n{error}\n```\n\nFix the file; the DAGs return.",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        default_args={
            "owner": "loopline",
            "retries": 0,
            "execution_timeout": dt.timedelta(minutes=1),
        },
        tags=["loopline", "broken-spec", error.path.stem],
    ) as dag:

        @task
        def report_spec_error() -> None:
            raise AirflowFailException(str(error))

        report_spec_error()
    return dag


def build_dags(factory, *, report_broken_specs: bool = False) -> dict[str, DAG]:
    """One DAG per loadable spec. A broken spec never breaks the others: one DAG file (the
    daily one) reports it as a failing stand-in DAG, the other factories skip it."""
    specs, errors = load_specs()
    dags = [factory(spec) for spec in specs]
    if report_broken_specs:
        dags += [spec_error_dag(error) for error in errors]
    return {dag.dag_id: dag for dag in dags}
