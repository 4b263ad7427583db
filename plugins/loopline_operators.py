"""loopline's custom Airflow operators: drift detection and the retraining trigger.

The logic lives in the library (``loopline.drift``, ``loopline.monitor``, ``loopline.retrain``);
these operators only connect it to Airflow: the day a run works on, XCom, skipping, triggering.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowSkipException


def _day(context) -> dt.date:
    from loopline.tasks import partition_date

    return partition_date(context)


class DriftDetectionOperator(BaseOperator):
    """Compare the last ``drift.window_days`` days of a model's clean rows (and its scores and
    labels) with the champion's training profile; persist the report, then return a summary:
    ``{report_id, dataset_drift, drifted_features, drifted_share, report_uri}``.
    Skipped while the model has no champion (nothing to compare with)."""

    ui_color = "#fde2c4"

    def __init__(self, *, model: str, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def execute(self, context):
        from loopline.monitor import NoReferenceError, run_drift_check
        from loopline.spec import get_spec

        try:
            return run_drift_check(
                get_spec(self.model), _day(context), dag_run_id=context["run_id"]
            )
        except NoReferenceError as exc:
            raise AirflowSkipException(str(exc)) from exc


class RetrainTriggerOperator(TriggerDagRunOperator):
    """Trigger ``<model>_train`` on a drift verdict or a performance drop, unless the cool-down,
    persistence, active-run or new-label rules suppress it. The decision is recorded in
    ``warehouse.retrain_decisions`` either way; the triggered run carries ``{reason, report_id,
    end_date, source}`` in its conf and the reason as its note."""

    ui_color = "#f6c1c1"

    def __init__(self, *, model: str, source: str, signal_task_id: str, **kwargs):
        super().__init__(trigger_dag_id=f"{model}_train", skip_when_already_exists=True, **kwargs)
        self.model, self.source, self.signal_task_id = model, source, signal_task_id

    def execute(self, context):
        from loopline.retrain import decide_and_record
        from loopline.spec import get_spec

        ti, day = context["ti"], _day(context)
        signal = ti.xcom_pull(task_ids=self.signal_task_id) or {}
        if self.source == "drift":
            flag = bool(signal.get("dataset_drift"))
            text = (
                f"drifted features {signal.get('drifted_features')}, weighted share "
                f"{signal.get('drifted_share', 0):.2f} (report {signal.get('report_id')})"
            )
        else:
            flag, text = bool(signal.get("degraded")), str(signal.get("text", ""))
        run_id = f"retrain__{self.model}__{day.isoformat()}__{self.source}"
        active = ti.get_dr_count(dag_id=self.trigger_dag_id, states=["queued", "running"])
        decision = decide_and_record(
            get_spec(self.model),
            day,
            source=self.source,
            signal=flag,
            signal_text=text,
            report_id=signal.get("report_id"),
            active_training_runs=active,
            dag_run_id=context["run_id"],
            train_run_id=run_id,
        )
        self.log.info("retrain decision for %s on %s: %s", self.model, day, decision.reason)
        if not decision.triggered:
            return {"triggered": False, "reason": decision.reason}
        self.trigger_run_id = run_id
        self.conf = {
            "reason": decision.reason,
            "report_id": signal.get("report_id"),
            "end_date": (day + dt.timedelta(days=1)).isoformat(),
            "source": self.source,
        }
        self.note = f"Retraining triggered by {self.source} on {day}: {decision.reason}"
        return super().execute(context)
