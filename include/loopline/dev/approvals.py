"""Answering a promotion that waits for a person (``gate.approval: required``) from the
terminal: ``loopline approve <model>`` finds the model's pending approval in the local
Airflow's human-in-the-loop requests and answers it through Airflow's REST API, as the Required
Actions page of the UI does (so the answer is Airflow's record too, with the user who gave it).
"""

from __future__ import annotations

from loopline.dev.stack import LocalAirflow

APPROVE, REJECT = "Approve", "Reject"


def pending(airflow: LocalAirflow, model: str) -> list[dict]:
    """The model's unanswered approval requests, oldest first (Airflow's hitlDetails)."""
    found = airflow.api(
        "GET", f"dags/{model}_train/dagRuns/~/hitlDetails?response_received=false&limit=100"
    )
    return found.get("hitl_details", [])


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
