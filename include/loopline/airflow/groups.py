"""Reusable task groups of the daily pipeline. Task bodies are a few lines that call a step;
heavy imports (pandas, Great Expectations, XGBoost) happen inside the tasks, never at DAG-parse
time. A hand-written DAG composes them with its own tasks::

    ingest = ingest_group(spec)
    ingest >> my_task() >> validate_group(spec, ingest) >> predict_group(spec)

Validation and scoring are split into shards run as mapped tasks (``.expand()``), followed by
one publish / swap task, so a big day spreads over the workers.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from airflow.sdk import TaskGroup, XComArg, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from loopline.airflow.assets import clean_asset, predictions_asset, record
from loopline.airflow.context import loopline_errors, partition_date, run_id
from loopline.airflow.operators import DriftDetectionOperator, RetrainTriggerOperator
from loopline.core.spec import HOOK_POINTS, ModelSpec

if TYPE_CHECKING:
    from loopline.steps.approve import Answer

PLAN_TASK = "plan_day"


def every(results: Iterable) -> list:
    """A mapped task's results in one read: iterating Airflow's lazy sequence fetches them one
    at a time and finds the end by a miss, logged as an ``[error] XCom not found`` line in
    every successful run (an operator must be able to trust that ``error`` means one)."""
    return list(results[:]) if hasattr(results, "__getitem__") else list(results)


def resolve_hook(spec: ModelSpec, point: str, path: str):
    """The callable a spec's hook names; a hook that cannot be imported fails its task at once,
    saying which hook of which model, why, and where its module must live."""
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        top = module.split(".")[0]
        raise AirflowFailException(
            f"model '{spec.name}': hook '{path}' (hooks.{point}) cannot be imported: "
            f"{type(exc).__name__}: {exc}. What to do: the module must be importable by every "
            f"Airflow process: put it under the project's include/ folder "
            f"(include/{module.replace('.', '/')}.py, with an __init__.py in include/{top}/), "
            "or install it as a package in the image; then re-run the day"
        ) from exc


def hook_tasks(spec: ModelSpec, point: str) -> list:
    """One task per callable the spec names for ``point``, chained in the spec's order."""
    assert point in HOOK_POINTS, point
    tasks = []
    for path in getattr(spec.hooks, point):

        @task(task_id=f"{point}__{path.rpartition(':')[2]}")
        def run_hook(path: str = path) -> None:
            resolve_hook(spec, point, path)(model=spec.name, partition_date=partition_date())

        current = run_hook()
        if tasks:
            tasks[-1] >> current
        tasks.append(current)
    return tasks


def _then_hooks(first: XComArg, spec: ModelSpec, point: str) -> None:
    hooks = hook_tasks(spec, point)
    if hooks:
        first >> hooks[0]


def ingest_group(spec: ModelSpec, group_id: str = "ingest") -> TaskGroup:
    """List and check the day's landing files and cut the day into shards (the plan, in XCom),
    then the spec's ``after_ingest`` hooks."""
    with TaskGroup(group_id, tooltip=f"find and check {spec.name}'s landing files") as group:

        @task(task_id=PLAN_TASK)
        def plan() -> list[dict]:
            from loopline.steps.ingest import plan_day

            with loopline_errors():
                day_plan = plan_day(spec, partition_date(), run_id=run_id())
            return [shard.as_dict() for shard in day_plan.shards]

        _then_hooks(plan(), spec, "after_ingest")
    return group


def plan_of(ingest: TaskGroup) -> XComArg:
    """The ingest group's plan (a list of shards, each with its files), for tasks of one's own."""
    return XComArg(ingest.get_child_by_label(PLAN_TASK))


def validate_group(spec: ModelSpec, ingest: TaskGroup, group_id: str = "validate") -> TaskGroup:
    """Validate each shard of the ingest group's plan (mapped), publish the day atomically,
    then the spec's ``after_validate`` hooks."""
    shards = plan_of(ingest)
    with TaskGroup(group_id, tooltip=f"validate {spec.name} rows into the lake") as group:

        @task
        def validate_shard(shard: dict) -> dict:
            from loopline.steps.ingest import Shard
            from loopline.steps.validate import validate_shard as run

            with loopline_errors():
                return run(spec, Shard.from_dict(shard), run_id=run_id()).as_dict()

        @task(outlets=[clean_asset(spec.name)])
        def publish(shards: list[dict], results: list[dict]) -> dict:
            from loopline.steps.ingest import DayPlan, ShardResult
            from loopline.steps.publish import publish_day

            with loopline_errors():
                plan = DayPlan.from_shards(every(shards))
                reports = [ShardResult.from_dict(r) for r in every(results)]
                result = publish_day(spec, plan, reports, run_id=run_id())
            extra = {
                "partition_date": result.partition_date.isoformat(),
                "rows_clean": result.rows_clean,
                "rows_quarantined": result.rows_quarantined,
            }
            record(get_current_context(), clean_asset(spec.name), {**extra, "run_id": run_id()})
            return result.as_dict()

        published = publish(shards, validate_shard.expand(shard=shards))
        _then_hooks(published, spec, "after_validate")
    return group


def predict_group(spec: ModelSpec, group_id: str = "predict") -> TaskGroup:
    """Score the day's published files with the champion (mapped, one task per file), swap the
    day's predictions in one transaction, then the spec's ``after_predict`` hooks. Without a
    champion the tasks are skipped with a message, not failed."""
    no_champion = f"the first promotion by {spec.name}_train fixes this"
    with TaskGroup(group_id, tooltip=f"batch-predict {spec.name}") as group:

        @task
        def plan_scoring() -> list[dict]:
            from loopline.steps.score import plan_scoring as plan

            with loopline_errors(skip_without_champion=no_champion):
                return [s.as_dict() for s in plan(spec, partition_date())]

        @task
        def score_shard(shard: dict) -> int:
            from loopline.steps.score import ScoringShard
            from loopline.steps.score import score_shard as run

            with loopline_errors():
                return run(spec, ScoringShard(**shard))

        @task(outlets=[predictions_asset(spec.name)])
        def swap(shards: list[dict], scored: list[int]) -> dict:
            import pandas as pd

            from loopline.steps.score import ScoringShard, swap_day

            scored_at = pd.Timestamp.now(tz="UTC")  # audit time of the write, not logic
            with loopline_errors():
                result = swap_day(
                    spec,
                    [ScoringShard(**s) for s in shards],
                    dag_run_id=run_id(),
                    scored_at=scored_at,
                )
            summary = result.as_dict()
            extra = {k: summary[k] for k in ("partition_date", "rows", "model_version")}
            record(
                get_current_context(), predictions_asset(spec.name), {**extra, "run_id": run_id()}
            )
            return summary

        planned = plan_scoring()
        swapped = swap(planned, score_shard.expand(shard=planned))
        _then_hooks(swapped, spec, "after_predict")
    return group


def monitor_group(spec: ModelSpec, group_id: str = "monitor") -> TaskGroup:
    """Performance estimated from the day's scores (before its labels), the drift check
    against the champion's profile, then the retraining trigger (which may ask for both)."""
    with TaskGroup(group_id, tooltip=f"drift check of {spec.name}") as group:

        @task
        def estimate_performance() -> list[dict]:
            from loopline.steps.estimate import estimate_day

            with loopline_errors():
                found = estimate_day(spec, partition_date())
            return [{"version": e.model_version, "value": e.value, "low": e.low} for e in found]

        check = DriftDetectionOperator(task_id="drift_check", model=spec.name)
        estimate_performance() >> check
        check >> RetrainTriggerOperator(
            task_id="retrain_trigger",
            model=spec.name,
            source="drift",
            signal_task_id=f"{group_id}.drift_check",
        )
    return group


APPROVAL_TASK = "approval"


def approval_group(
    spec: ModelSpec, gated: XComArg, gate_task: str = "gate", group_id: str = "approve"
) -> TaskGroup:
    """``gate.approval: required``: when the gate passed a candidate, a person approves or
    rejects it (Airflow's human-in-the-loop operator: Required Actions in the UI and the REST
    API; `loopline approve`), within ``gate.approval_timeout_hours``; the answer, or its
    absence, is then recorded. Skipped when the gate did not pass the candidate."""
    import datetime as dt

    from airflow.providers.standard.operators.hitl import HITLOperator
    from airflow.sdk import Param

    with TaskGroup(group_id, tooltip=f"a person approves {spec.name}'s candidate") as group:

        @task.short_circuit
        def needs_approval(result: dict) -> bool:
            return bool(result.get("awaiting_approval"))

        pulled = f"ti.xcom_pull(task_ids='{gate_task}')"
        approval = HITLOperator(
            task_id=APPROVAL_TASK,
            subject=f"Promote {spec.name} v{{{{ {pulled}['version'] }}}} to champion?",
            body=f"{{{{ {pulled}['approval_text'] }}}}",
            options=["Approve", "Reject"],
            defaults=["Reject"],  # nobody answered in time: not promoted, the run stays green
            params={"comment": Param("", type="string", description="why (kept in the history)")},
            response_timeout=dt.timedelta(hours=spec.gate.approval_timeout_hours),
            retries=0,
        )

        @task(trigger_rule="all_done")
        def record_answer(result: dict) -> dict:
            from loopline.steps.approve import settle

            ti = get_current_context()["ti"]
            reply = ti.xcom_pull(task_ids=f"{group_id}.{APPROVAL_TASK}")
            with loopline_errors():
                answer = answer_of(reply)
                return settle(spec, result["version"], answer, dag_run_id=run_id()).as_dict()

        needs_approval(gated) >> approval >> record_answer(gated)
    return group


def answer_of(reply: dict | None) -> Answer | None:
    """The human-in-the-loop operator's reply as loopline's answer (None: no reply)."""
    from loopline.steps.approve import Answer

    user = (reply or {}).get("responded_by_user")
    if not reply or not reply.get("chosen_options") or not user:
        return None  # no reply, or the defaults the timeout applied (nobody answered)
    comment = str((reply.get("params_input") or {}).get("comment") or "")
    by = str(user.get("name") or user.get("id") or "unknown")
    return Answer(reply["chosen_options"][0] == "Approve", by, comment)
