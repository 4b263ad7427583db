"""loopline's custom Airflow operators: drift detection and the retraining trigger.

Airflow glue only: the day a run works on, XCom, skipping, triggering. What is checked and
decided lives in ``loopline.steps.check_drift`` and ``loopline.steps.decide_retraining``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import (
    XCOM_RUN_ID,
    TriggerDagRunOperator,
)
from airflow.sdk import BaseOperator, Context

from loopline.airflow.context import loopline_errors, partition_date
from loopline.airflow.notify import send


class DriftDetectionOperator(BaseOperator):
    """Compare the last ``drift.window_days`` days of a model's published rows (and its scores
    and labels) with the champion's reference profile; persist the report, then return
    ``{signal, text, report_id, dataset_drift, drifted_features, drifted_share, report_uri}``.
    Skipped while the model has no champion (nothing to compare with)."""

    ui_color = "#fde2c4"

    def __init__(self, *, model: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model

    def execute(self, context: Context) -> dict:
        from loopline.adapters.specs import get_spec
        from loopline.steps.check_drift import run_drift_check

        spec = get_spec(self.model)
        with loopline_errors(skip_without_champion="the first promotion gives a reference"):
            result = run_drift_check(spec, partition_date(context), dag_run_id=context["run_id"])
        if result.dataset_drift:
            send(spec, "drift", f"{spec.name}, {partition_date(context)}: {result.text}", context)
        return result.as_dict()


class RetrainTriggerOperator(TriggerDagRunOperator):
    """Trigger ``<model>_train`` on the upstream task's signal (a drift verdict or a performance
    drop) unless the persistence, cool-down, active-run or new-label rules suppress it. The
    decision is recorded in ``warehouse.retrain_decisions`` either way; the triggered run
    carries ``{reason, report_id, end_date, source, change_date}`` in its conf (the day the
    world changed, by the signal's evidence) and the reason as its note,
    and has a deterministic run id, so a re-run of this task cannot trigger twice."""

    ui_color = "#f6c1c1"

    def __init__(self, *, model: str, source: str, signal_task_id: str, **kwargs: Any) -> None:
        super().__init__(trigger_dag_id=f"{model}_train", skip_when_already_exists=True, **kwargs)
        self.model, self.source, self.signal_task_id = model, source, signal_task_id

    def execute(self, context: Context) -> dict | None:
        from loopline.adapters.specs import get_spec
        from loopline.core.retraining import Signal, TrainingRuns
        from loopline.steps.decide_retraining import decide_and_record

        ti, day = context["ti"], partition_date(context)
        signal = Signal.from_result(self.source, ti.xcom_pull(task_ids=self.signal_task_id))
        run_id = f"retrain__{self.model}__{day.isoformat()}__{self.source}"
        runs = TrainingRuns(
            running=ti.get_dr_count(dag_id=self.trigger_dag_id, states=["running"]),
            queued=ti.get_dr_count(dag_id=self.trigger_dag_id, states=["queued"]),
        )
        with loopline_errors():
            decision = decide_and_record(
                get_spec(self.model),
                day,
                signal,
                training_runs=runs,
                dag_run_id=context["run_id"],
                train_run_id=run_id,
            )
        self.log.info("retrain decision for %s on %s: %s", self.model, day, decision.reason)
        if not decision.triggered:
            # The "Triggered DAG" link reads this key when the task ends: without it every
            # suppressed decision logs an "[error] XCom not found".
            ti.xcom_push(key=XCOM_RUN_ID, value=None)
            return {"triggered": False, "reason": decision.reason}
        send(get_spec(self.model), "retrain_triggered", f"{day}: {decision.reason}", context)
        self.trigger_run_id = run_id
        self.conf = {
            "reason": decision.reason,
            "report_id": signal.report_id,
            "end_date": (day + dt.timedelta(days=1)).isoformat(),
            "source": self.source,
            "change_date": decision.change_date.isoformat() if decision.change_date else None,
        }
        self.note = f"Retraining triggered by {self.source} on {day}: {decision.reason}"
        # A run after now with no logical date, as a manual run from the UI: with the default
        # (logical date = now) a DAG whose start_date lies ahead (a model not live yet, a spec
        # with scheduled runs held back) got a run with no task instances, "success" at once.
        self.run_after = dt.datetime.now(dt.UTC)
        return super().execute(context)
