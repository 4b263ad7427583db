"""Answering a promotion that waits for a person (``gate.approval: required``) from the
terminal: ``loopline approve <model>`` finds the model's pending approval in the local
Airflow's human-in-the-loop requests and answers it through Airflow's REST API, as the Required
Actions page of the UI does (so the answer is Airflow's record too, with the user who gave it).
"""

from __future__ import annotations

from loopline.dev.stack import LocalAirflow

APPROVE, REJECT = "Approve", "Reject"


WAITING = ("awaiting_input", "deferred")  # the task is parked and an answer resumes it


def pending(airflow: LocalAirflow, model: str) -> list[dict]:
    """The model's unanswered approval requests whose task waits for the answer, oldest first
    (Airflow's hitlDetails; the operator writes its request a moment before its task parks,
    and only a parked task is resumed by the answer itself, so a request is answered once its
    task waits)."""
    found = airflow.api(
        "GET", f"dags/{model}_train/dagRuns/~/hitlDetails?response_received=false&limit=100"
    )
    return [d for d in found.get("hitl_details", []) if d["task_instance"].get("state") in WAITING]


def answer(airflow: LocalAirflow, model: str, *, approve: bool, comment: str) -> dict:
    """Answer the model's newest pending approval; returns Airflow's updated request."""
    waiting = pending(airflow, model)
    if not waiting:
        raise LookupError(f"nothing of {model} waits for approval")
    ti = waiting[-1]["task_instance"]
    path = (
        f"dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
        f"{ti['map_index']}/hitlDetails"
    )
    body = {
        "chosen_options": [APPROVE if approve else REJECT],
        "params_input": {"comment": comment},
    }
    return airflow.api("PATCH", path, body)
