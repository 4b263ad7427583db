"""The Models view (the ``loopline_ui`` plugin) inside Airflow's own api-server app: the plugin
loaded from the plugins folder, Airflow's login in front of it, and pages rendered from a real
world (PostgreSQL warehouse, MLflow registry) built by the library's steps: a champion and a
rejected challenger, scored days, drift reports, a retraining decision, realized performance
and quarantined rows.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ...conftest import REPO, forget_models

START, DAYS, ROWS = dt.date(2026, 1, 1), 40, 400
TRAIN_END = dt.date(2026, 2, 6)  # labels of Jan 1..30 have arrived (7-day delay)
SCORED = [START + dt.timedelta(days=i) for i in range(30, DAYS)]  # Jan 31 .. Feb 9
QUIET_CHECK = START + dt.timedelta(days=33)  # Feb 3: a drift check before the shift
SHIFT_DAY, BAD_DAYS = 36, range(33, 36)  # covariate shift from Feb 6; bad rows Feb 3..5
PASSWORDS = {"admin": "admin-pass", "viewer": "viewer-pass"}
WORLD_ENV = ("LOOPLINE_LANDING", "LOOPLINE_LABELS", "LOOPLINE_LAKE", "LOOPLINE_REPORTS")


def make_world(root: Path) -> dict:
    """churn's life through the library steps the DAGs run, into the current warehouse and
    MLflow store, with landing, labels, lake and reports under ``root`` (the caller points
    LOOPLINE_* there): v1 promoted, v2 rejected (same data), ten scored days, a quiet and a
    drifted check, a suppressed retraining decision, realized performance, bad rows."""
    from loopline.adapters.specs import get_spec
    from loopline.core.retraining import Signal, TrainingRuns
    from loopline.dev.simulate import Scenario, simulate
    from loopline.steps.check_drift import run_drift_check
    from loopline.steps.decide_retraining import decide_and_record
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.labels import realized_performance, sync_labels
    from loopline.steps.promote import run_gate
    from loopline.steps.score import score_day
    from loopline.steps.train import run_training
    from loopline.steps.validate import validate_day

    simulate(
        landing=str(root / "landing"),
        labels=str(root / "labels"),
        start=START,
        days=DAYS,
        rows_per_day=ROWS,
        seed=5,
        scenarios=[
            Scenario("covariate_shift", start_day=SHIFT_DAY, strength=1.5),
            Scenario("bad_rows", start_day=BAD_DAYS[0], strength=0.03, duration_days=3),
        ],
    )
    spec = get_spec("churn")
    for i in range(DAYS):
        validate_day(spec, START + dt.timedelta(days=i), run_id="world")
    sync_labels(spec, TRAIN_END, run_id="world")
    gates = []
    for reason in ("first model", "retrain on the same data"):
        trained = run_training(spec, TRAIN_END, dag_run_id="world", reason=reason)
        evaluated = run_evaluation(spec, trained.mlflow_run_id)
        gates.append(run_gate(spec, evaluated.version, dag_run_id="world"))
    for scored in SCORED:
        score_day(spec, scored, dag_run_id="world")
    checks = [run_drift_check(spec, d, dag_run_id="world") for d in (QUIET_CHECK, SCORED[-1])]
    decision = decide_and_record(
        spec,
        SCORED[-1],
        Signal.from_result("drift", checks[-1].as_dict()),
        training_runs=TrainingRuns(),
        dag_run_id="world",
    )
    sync_labels(spec, SCORED[-1] + dt.timedelta(days=7), run_id="world")
    performance = [realized_performance(spec, d) for d in SCORED]
    return {"gates": gates, "checks": checks, "decision": decision, "performance": performance}


@pytest.fixture(scope="module")
def world(warehouse_url, airflow_db, tmp_path_factory):
    from ...conftest import empty_tables

    root = tmp_path_factory.mktemp("ui-world")
    saved = {k: os.environ.get(k) for k in (*WORLD_ENV, "LOOPLINE_SPECS_DIR")}
    os.environ.update({k: str(root / k.removeprefix("LOOPLINE_").lower()) for k in WORLD_ENV})
    os.environ.pop("LOOPLINE_SPECS_DIR", None)
    empty_tables(warehouse_url)
    forget_models("churn")
    try:
        yield make_world(root)
    finally:
        forget_models("churn")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def airflow_app(airflow_db, tmp_path_factory):
    """Airflow's own api-server app (what `airflow api-server` serves), plugins included, with
    SimpleAuthManager users whose passwords we know."""
    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    try:
        with TestClient(create_app("core"), base_url="http://localhost") as client:
            yield client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def token(client, user: str = "admin") -> str:
    response = client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="module")
def client(airflow_app, world):
    """The api-server app with a logged-in admin (Bearer token), over the world."""
    airflow_app.headers["Authorization"] = f"Bearer {token(airflow_app)}"
    yield airflow_app
    airflow_app.headers.pop("Authorization", None)


def get(client, path: str, **kwargs):
    response = client.get(path, **kwargs)
    assert response.status_code == 200, (path, response.status_code, response.text[:2000])
    return response


def text_of(page: str) -> str:
    """The page's visible text, tags dropped and entities decoded, spaces collapsed."""
    page = re.sub(r"<(style|title)>.*?</\1>", " ", page, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


# --- the plugin -----------------------------------------------------------------------------


def test_importing_the_plugin_loads_nothing_heavy():
    """Every Airflow process (scheduler, dag-processor, each task) imports the plugins folder:
    the view's app and the data layer load on the api-server's first request, not here."""
    probe = (
        "import json, runpy, sys; import airflow.plugins_manager; before = set(sys.modules); "
        f"found = runpy.run_path({str(REPO / 'plugins' / 'loopline_ui.py')!r}); "
        "print(json.dumps({'new': sorted(set(sys.modules) - before), "
        "'plugin': found['LooplineUIPlugin'].name}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["plugin"] == "loopline_ui"
    heavy = ("fastapi", "starlette", "pandas", "numpy", "mlflow", "sklearn", "matplotlib")
    assert [m for m in found["new"] if m.split(".")[0] in heavy] == []
    assert [m for m in found["new"] if m.startswith("loopline")] == [
        "loopline",
        "loopline.airflow",
        "loopline.airflow.ui",
    ]


def test_airflow_lists_the_plugin_with_its_app_and_nav_entry(airflow_app):
    headers = {"Authorization": f"Bearer {token(airflow_app)}"}
    plugins = get(airflow_app, "/api/v2/plugins", headers=headers).json()["plugins"]
    ours = [p for p in plugins if p["name"] == "loopline_ui"]
    assert len(ours) == 1, [p["name"] for p in plugins]
    assert [(a["url_prefix"], a["name"]) for a in ours[0]["fastapi_apps"]] == [
        ("/loopline", "loopline models")
    ]
    view = ours[0]["external_views"][0]
    assert (view["name"], view["href"], view["url_route"]) == ("Models", "/loopline/", "loopline")
    assert view["destination"] == "nav" and view["nav_top_level"] is True
    errors = get(airflow_app, "/api/v2/plugins/importErrors", headers=headers).json()
    assert errors["total_entries"] == 0, errors


# --- Airflow's login in front of every page ---------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/loopline/", "/loopline/models/churn", "/loopline/models/churn/drift/1"]
)
def test_without_a_login_an_api_client_gets_401(airflow_app, path):
    airflow_app.cookies.clear()
    response = airflow_app.get(path, headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Not authenticated"}
    assert "churn" not in response.text


def test_without_a_login_a_browser_goes_to_the_login_page_and_back(airflow_app):
    airflow_app.cookies.clear()
    page = "/loopline/models/churn?x=1"
    response = airflow_app.get(page, headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/auth/login?next=%2Floopline%2Fmodels%2Fchurn%3Fx%3D1"
    stale = airflow_app.get(  # a cookie signed by another deployment (or tampered with)
        "/loopline/",
        headers={"Accept": "text/html"},
        cookies={"_token": "not-a-jwt"},
        follow_redirects=False,
    )
    assert stale.status_code == 303 and stale.headers["location"].startswith("/auth/login?")


def test_a_forged_bearer_token_is_refused(airflow_app):
    response = airflow_app.get(
        "/loopline/", headers={"Authorization": "Bearer forged", "Accept": "application/json"}
    )
    assert response.status_code == 403


def test_the_login_cookie_opens_the_view_for_any_reader(airflow_app, world):
    """What the browser has after Airflow's login form: the JWT in the ``_token`` cookie."""
    for user in ("viewer", "admin"):
        airflow_app.cookies.clear()
        airflow_app.cookies.set("_token", token(airflow_app, user))
        response = get(airflow_app, "/loopline/", headers={"Accept": "text/html"})
        assert "<h1>Models</h1>" in response.text
    airflow_app.cookies.clear()


def test_the_view_is_read_only(client):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert client.request(method, "/loopline/").status_code == 405
        assert client.request(method, "/loopline/models/churn").status_code == 405


# --- the overview ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overview(client):
    response = get(client, "/loopline/", headers={"Accept": "text/html"})
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    return response.text


def row_of(page: str, model: str) -> str:
    found = re.search(
        rf'<tr class="model" data-model="{model}">(.*?)</tr>\s*(?=<tr class="model"|'
        r"</tbody>)",
        page,
        flags=re.S,
    )
    assert found, f"no row for {model}"
    return found.group(1)


def cell(row: str, name: str) -> str:
    found = re.search(rf'<td class="{name}">(.*?)</td>\s*(?=<td class="|$)', row, flags=re.S)
    assert found, name
    return found.group(1)


def test_overview_shows_the_champion_and_its_holdout_metrics(overview, world):
    from loopline.adapters import model_store

    champion = model_store.store().champion("churn")
    assert [g.promoted for g in world["gates"]] == [True, False]
    row = row_of(overview, "churn")
    assert text_of(cell(row, "champion")) == "v1 challenger v2"
    holdout = text_of(cell(row, "holdout"))
    auc = champion.holdout["roc_auc"]
    assert f"roc_auc {auc:.4f}" in holdout
    assert f"log_loss {champion.holdout['log_loss']:.4f}" in holdout
    assert 'href="/loopline/models/churn"' in row


def test_overview_shows_the_last_drift_verdict_with_a_link_to_its_report(overview, world):
    last = world["checks"][-1]
    assert last.dataset_drift and not world["checks"][0].dataset_drift
    drift = cell(row_of(overview, "churn"), "drift")
    assert f'href="/loopline/models/churn/drift/{last.report_id}"' in drift
    shown = text_of(drift)
    assert shown.startswith(f"drift {SCORED[-1]} report")
    assert "monthly_charges" in shown and "against v1" in shown


def test_overview_shows_the_last_decision_and_its_reason(overview, world):
    decision = world["decision"]
    assert not decision.triggered and decision.reason.startswith("suppressed: drift in 1 of")
    shown = text_of(cell(row_of(overview, "churn"), "decision"))
    assert shown == f"not triggered {SCORED[-1]} (drift) {decision.reason}"


def test_overview_plots_realized_performance_per_day(overview, world):
    from loopline.adapters import warehouse

    measured = warehouse.performance("churn")
    assert len(measured) == len(SCORED) and set(measured.model_version) == {1}
    # What the step measured is what the view reads back: every metric, each level, each day.
    assert warehouse.performance_days("churn") == [p for day in world["performance"] for p in day]
    assert {"roc_auc", "log_loss"} <= set(world["performance"][0][0].metrics)
    plot = cell(row_of(overview, "churn"), "performance")
    assert plot.count("<circle") == len(SCORED)
    first = measured.iloc[0]
    assert f"{SCORED[0]} v1: roc_auc {first.value:.4f} (holdout {first.reference:.4f})" in plot
    assert "- - holdout" in text_of(plot)


def test_overview_counts_quarantined_rows_per_day(overview, world):
    from loopline.adapters import warehouse

    days = warehouse.validation_results("churn")
    bad = days[days.rows_quarantined > 0]
    assert sorted(d.day for d in bad.partition_date) == [
        (START + dt.timedelta(days=i)).day for i in BAD_DAYS
    ]
    shown = cell(row_of(overview, "churn"), "quarantine")
    assert shown.count("<rect") == 30  # the last 30 days
    third = bad.iloc[0]
    assert (
        f"{third.partition_date}: {third.rows_quarantined:,} of {third.rows_read:,} rows "
        "quarantined"
    ) in shown
    assert f"{int(days.rows_quarantined.sum())} quarantined over {DAYS} days" in text_of(shown)


def test_the_drift_link_serves_the_stored_report(client, overview, world):
    last = world["checks"][-1]
    link = re.search(r'href="(/loopline/models/churn/drift/\d+)"', overview).group(1)
    response = get(client, link)
    with open(last.report_uri, "rb") as stored:
        head, _, body = stored.read().partition(b"<body>")
    assert response.content.startswith(head + b"<body><nav") and response.content.endswith(body)
    nav = response.text.split("<nav", 1)[1].split("</nav>")[0]
    assert 'href="/loopline/"' in nav and 'href="/loopline/models/churn"' in nav
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert b"drift check of 2026-02-09" in response.content


def test_unknown_models_and_reports_are_404_pages(client):
    for path, says in (
        ("/loopline/models/nope", "There is no model by that name."),
        ("/loopline/models/Bad..Name", "There is no model by that name."),
        ("/loopline/models/churn/drift/999999", "no drift report 999999"),
        ("/loopline/models/churn/drift/x", "No such page."),
        ("/loopline/nowhere", "No such page."),
    ):
        response = client.get(path, headers={"Accept": "text/html"})
        assert response.status_code == 404, path
        assert says in text_of(response.text), (path, text_of(response.text))


# --- a model's page ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_page(client):
    return get(client, "/loopline/models/churn", headers={"Accept": "text/html"}).text


def section(page: str, title: str) -> str:
    found = re.search(rf"<h2>{title}</h2>(.*?)(?=<h2>|</body>)", page, flags=re.S)
    assert found, title
    return found.group(1)


def test_model_page_lists_promotions_and_rejections_with_their_reasons(model_page, world):
    from loopline.adapters import warehouse

    events = warehouse.model_events("churn")
    assert events[["event", "version"]].values.tolist() == [["promoted", 1], ["rejected", 2]]
    history = section(model_page, "Version history")
    rows = re.findall(r'<tr class="event (\w+)">(.*?)</tr>', history, flags=re.S)
    assert [kind for kind, _ in rows] == ["rejected", "promoted"]  # newest first
    rejected, promoted = (text_of(row) for _, row in rows)
    assert "rejected v2 v1" in rejected
    for reason in events.reasons[1]:
        assert reason in rejected
    assert any(r.startswith("does not beat the champion") for r in events.reasons[1])
    assert "no current champion" in promoted
    candidate = events.metrics[0]["candidate"]["roc_auc"]
    assert f"roc_auc: candidate {candidate:.4f}" in promoted


def test_model_page_shows_each_versions_card(model_page, world):
    from loopline.adapters import model_store

    cards = section(model_page, "Versions and model cards")
    v1 = re.search(r'<details class="card version-card" id="v1" open>(.*?)</details>', cards, re.S)
    v2 = re.search(r'<details class="card version-card" id="v2" open>(.*?)</details>', cards, re.S)
    assert v1 and v2, "champion and challenger cards are shown open"
    card = model_store.store().card(model_store.store().champion("churn").run_id)
    shown = text_of(v1.group(1))
    assert shown.startswith("v1 champion registered ")
    assert card["intended_use"]["description"] in shown
    assert "days 2026-01-01 to 2026-01-30" in shown and "reason: first model" in shown
    assert f"roc_auc (higher is better) {card['metrics']['roc_auc']:.4f}" in shown
    assert f"{card['baseline']['roc_auc']:.4f}" in shown
    assert "Gate promoted to champion champion before: none" in shown
    assert "Slices (holdout)" in shown and "plan" in shown
    rejected = text_of(v2.group(1))
    assert "v2 challenger" in rejected and "kept as challenger" in rejected
    assert "champion before: v1" in rejected and "does not beat the champion" in rejected


def test_model_page_lists_drift_checks_and_days(model_page, world):
    checks = section(model_page, "Drift checks")
    for check in world["checks"]:
        assert f"/loopline/models/churn/drift/{check.report_id}" in checks
    assert text_of(checks).count("no drift") == 1
    days = section(model_page, "Quarantine per day")
    assert days.count("<tr>") == DAYS + 1  # a header and a row per day
    performance = section(model_page, "Realized performance")
    assert performance.count("<circle") == len(SCORED)


def test_the_terminals_digest_tells_what_the_models_view_shows(world):
    """`loopline summary` / `history` and `make run`'s summary read the view's summary."""
    from loopline.adapters.specs import get_spec
    from loopline.steps import digest, overview

    shown = overview.summary(get_spec("churn"))
    first, second = world["gates"]
    assert shown.champion == first.version and shown.champion_run_id
    lines = digest.champion("churn")
    assert lines[-2] == f"  champion: churn v{first.version} (MLflow run {shown.champion_run_id})"
    assert f"roc_auc {shown.champion_metrics['roc_auc']:.4f}" in lines[-1]
    assert lines[-1].endswith(f"calibrated: {shown.champion_calibrated}")
    assert shown.champion_calibrated in (True, False)
    history = digest.history("churn")
    assert len(history) == len(lines) - 2 == 2  # v1 promoted, v2 rejected
    assert f"v{second.version} " in history[1] and "rejected" in history[1]
    days = digest.days("churn")
    assert len(days) == DAYS + 2  # a header, a line per day, the totals
    assert sum(int(line.split()[4]) for line in days[1:-1]) == int(days[-1].split()[4])


def test_a_rollback_shows_in_the_history_and_moves_the_champion(client, world):
    from loopline.steps.rollback import rollback

    rollback("churn", 2, reason="ui test: adopt v2")
    try:
        page = get(client, "/loopline/models/churn").text
        rows = re.findall(
            r'<tr class="event (\w+)">(.*?)</tr>', section(page, "Version history"), re.S
        )
        kind, row = rows[0]
        assert kind == "rolled_back"
        assert "rolled back v2 v1 ui test: adopt v2: champion v1 -> v2" in text_of(row)
        assert text_of(cell(row_of(get(client, "/loopline/").text, "churn"), "champion")) == "v2"
    finally:
        rollback("churn", 1, reason="ui test: back to v1")


# --- more than one model, and what a spec may contain -----------------------------------------


def test_every_spec_gets_a_row_and_its_text_is_escaped(client, world, tmp_path, monkeypatch):
    churn = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    (tmp_path / "churn.yaml").write_text(yaml.safe_dump(churn))
    churn.update(name="spend", description="<script>alert('x')</script> & <b>co</b>")
    (tmp_path / "spend.yaml").write_text(yaml.safe_dump(churn))
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(tmp_path))
    page = get(client, "/loopline/").text
    assert re.findall(r'data-model="(\w+)"', page) == ["churn", "spend"]
    spend = row_of(page, "spend")
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in spend
    shown = text_of(spend)
    for empty in ("no champion yet", "no drift check yet", "no decision yet"):
        assert empty in shown
    detail = get(client, "/loopline/models/spend").text
    assert "<script>" not in detail and "No registered versions yet." in detail


# --- the pages' pieces ---------------------------------------------------------------------


def test_charts_of_a_single_day_and_of_no_data():
    from loopline.airflow.ui.pages import performance_svg, quarantine_svg
    from loopline.core.records import PerformanceDay, ValidatedDay

    one = PerformanceDay(dt.date(2026, 1, 5), 3, 10, "rmse", 2.5, 2.5, None, True)
    svg = performance_svg([one], 200, 100)
    assert svg.count("<circle") == 1 and "degraded (1)" in svg and "nan" not in svg
    assert svg.count("<text") == 5  # three value ticks, one day, the holdout's label
    unmeasured = PerformanceDay(dt.date(2026, 1, 5), 3, 10, "rmse", None, 2.5, None, False)
    assert "no labelled predictions yet" in performance_svg([unmeasured], 200, 100)
    bars = quarantine_svg([ValidatedDay(dt.date(2026, 1, 5), 0, 0, 0, True)], 100, 20)
    assert bars.count("<rect") == 1 and "0 of 0 rows" in bars
    assert quarantine_svg([], 100, 20) == ""
