"""Promotions a person approves (``gate.approval: required``), on a running Airflow: the local
stack (scheduler, api-server, LocalExecutor) runs three models' first training; each passes the
gate and waits in Airflow's human-in-the-loop operator. One is approved (by `loopline
approve`'s code: Airflow's REST API), one rejected (the REST API, as the UI's Required Actions
page does), one left unanswered until its timeout. The pending action shows in headless
Chromium (Airflow's Required Actions page) and in the Models view; each answer, with who and
why, lands in the model's history and its card.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time

import pytest
import yaml
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from ..conftest import CHURN_SPEC, empty_tables, forget_models
from .conftest import local_airflow, log_in

START, DAYS, ROWS = dt.date(2026, 1, 1), 14, 400
TRAIN_END = START + dt.timedelta(days=DAYS - 1)
TIMEOUT_HOURS = 0.005  # 18 s; the scheduler's sweep resolves it within 15 s more
MODELS = {"appr": 24.0, "rejc": 24.0, "tout": TIMEOUT_HOURS}
PLACES = ("LOOPLINE_LANDING", "LOOPLINE_LABELS", "LOOPLINE_LAKE", "LOOPLINE_REPORTS")


def write_specs(folder, models: dict[str, float]) -> None:
    base = yaml.safe_load(CHURN_SPEC.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for name, hours in models.items():
        spec = {
            **base,
            "name": name,
            "schedule": {"cron": "0 2 * * *", "start_date": "2030-01-01", "catchup": False},
            "training": {"window_days": 14, "min_days": 8, "validation_days": 2, "holdout_days": 3},
            "labels": {"delay_days": 0, "performance_tolerance": 0.05},
            "gate": {**base["gate"], "approval": "required", "approval_timeout_hours": hours},
        }
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))


@pytest.fixture(scope="module")
def stack(warehouse_url, tmp_path_factory):
    """Three models' days in the warehouse and lake, their trainings started on the stack."""
    import os

    from loopline.adapters.specs import get_spec
    from loopline.dev.simulate import simulate
    from loopline.steps.validate import validate_day

    root = tmp_path_factory.mktemp("approvals")
    saved = {k: os.environ.get(k) for k in (*PLACES, "LOOPLINE_SPECS_DIR")}
    os.environ.update({k: str(root / k.removeprefix("LOOPLINE_").lower()) for k in PLACES})
    os.environ["LOOPLINE_SPECS_DIR"] = str(root / "specs")
    write_specs(root / "specs", MODELS)
    empty_tables(warehouse_url)
    forget_models(*MODELS)
    simulate(
        landing=str(root / "landing"),
        labels=str(root / "labels"),
        start=START,
        days=DAYS,
        rows_per_day=ROWS,
        seed=3,
        label_delay_days=0,
    )
    for name in MODELS:
        for area in ("landing", "labels"):
            shutil.copytree(root / area / "churn", root / area / name)
        for i in range(DAYS):
            validate_day(get_spec(name), START + dt.timedelta(days=i), run_id="seed")
    try:
        with local_airflow(root) as airflow:
            dags = [f"{name}_train" for name in MODELS]
            airflow.wait_dags(dags)
            runs = {}
            for name in MODELS:
                airflow.set_paused(f"{name}_train", False)
                conf = {"end_date": TRAIN_END.isoformat(), "reason": "first model"}
                runs[name] = airflow.trigger(f"{name}_train", conf)
            yield airflow, runs
    finally:
        forget_models(*MODELS)
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def wait_for(what, check, timeout: float = 600, airflow=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if airflow is not None:
            airflow.check_alive()
        found = check()
        if found:
            return found
        time.sleep(2)
    raise TimeoutError(f"{what} not within {timeout:.0f}s")


def pending_request(airflow, name: str) -> dict:
    from loopline.dev.approvals import pending

    return wait_for(f"{name}'s approval request", lambda: pending(airflow, name), airflow=airflow)[
        -1
    ]


def finished(airflow, name: str, run: str) -> dict:
    def done():
        found = airflow.api("GET", f"dags/{name}_train/dagRuns/{run}")
        return found if found["state"] in ("success", "failed") else None

    return wait_for(f"{name}_train {run}", done, airflow=airflow)


def events(name: str) -> list:
    from loopline.adapters import warehouse

    return warehouse.history(name)


@pytest.mark.timeout(1500)
def test_an_approved_candidate_becomes_champion_with_who_and_why(stack, browser):
    from loopline.adapters import model_store
    from loopline.adapters.specs import get_spec
    from loopline.airflow.ui import pages
    from loopline.dev.approvals import answer
    from loopline.steps import overview

    airflow, runs = stack
    request = pending_request(airflow, "appr")
    assert request["subject"] == "Promote appr v1 to champion?"
    assert "passed the gate and waits for your approval" in request["body"]
    assert "no current champion" in request["body"]  # the gate's reasons, then the card
    assert model_store.store().champion("appr") is None  # nothing serves before the answer
    waiting = overview.summary(get_spec("appr"))
    assert waiting.pending_approval is not None and waiting.pending_approval.version == 1
    shown = pages.overview_page("/loopline", [waiting])
    assert "v1 awaiting approval" in shown
    link = pages.approval_url("", "appr", runs["appr"])
    assert link.endswith("/tasks/approve.approval/required_actions") and link in shown

    # The pending action in Airflow's own UI, as an approver sees it.
    log_in(browser, airflow.url, airflow.password())
    browser.get(f"{airflow.url}/required_actions?response_received=false")
    WebDriverWait(browser, 60).until(
        lambda d: "Promote appr v1 to champion?" in d.find_element(By.TAG_NAME, "body").text
    )

    answer(airflow, "appr", approve=True, comment="holdout and slices look right")
    assert finished(airflow, "appr", runs["appr"])["state"] == "success"
    champion = model_store.store().champion("appr")
    assert champion is not None and champion.version == 1, events("appr")
    found = events("appr")
    assert [e.event for e in found] == ["awaiting_approval", "promoted"]
    assert found[-1].decided_by == "admin"
    assert list(found[-1].reasons) == ["approved by admin: holdout and slices look right"]
    card = model_store.store().card(champion.run_id)
    assert card["gate"]["promoted"] and card["gate"]["reasons"][-1].startswith("approved by")


@pytest.mark.timeout(1500)
def test_a_rejected_candidate_is_not_promoted_and_the_history_says_who(stack):
    from loopline.adapters import model_store
    from loopline.dev.approvals import REJECT

    airflow, runs = stack
    request = pending_request(airflow, "rejc")
    ti = request["task_instance"]
    airflow.api(  # what the Required Actions page sends
        "PATCH",
        f"dags/rejc_train/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/-1/hitlDetails",
        {"chosen_options": [REJECT], "params_input": {"comment": "not before the audit"}},
    )
    assert finished(airflow, "rejc", runs["rejc"])["state"] == "success"
    assert model_store.store().champion("rejc") is None
    found = events("rejc")
    assert [e.event for e in found] == ["awaiting_approval", "rejected"]
    assert (found[-1].decided_by, list(found[-1].reasons)) == (
        "admin",
        ["rejected by admin: not before the audit"],
    )


@pytest.mark.timeout(1500)
def test_an_unanswered_candidate_is_not_promoted_after_the_timeout(stack):
    from loopline.adapters import model_store

    airflow, runs = stack
    run = finished(airflow, "tout", runs["tout"])
    assert run["state"] == "success"  # nobody answered: the defaults (Reject), a green run
    assert model_store.store().champion("tout") is None
    found = events("tout")
    assert [e.event for e in found] == ["awaiting_approval", "rejected"]
    assert found[-1].decided_by is None
    assert list(found[-1].reasons) == [
        f"no answer within {TIMEOUT_HOURS:g} h (gate.approval_timeout_hours): not promoted"
    ]
