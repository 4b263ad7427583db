"""The README's "Adding a model" path with the `loopline` command, on two models unlike churn: a
regression with an abrupt covariate shift and a small binary panel with integer ids. Spec file,
daily files and labels of one's own; `run`, `train`, `history` and `replay` (the closed loop, day
by day, as the scheduler would); and the errors a new user meets, said at once."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loopline.adapters import warehouse

from ..conftest import empty_tables, forget_models
from .datasets import PANEL_SPEC, PRICES_SPEC, write_panel, write_prices, write_spec

# The panel's data under column names loopline once reserved for itself (refused until now).
SURVEY_SPEC = {
    **PANEL_SPEC,
    "name": "survey",
    "entity_id": {"column": "entity_id", "dtype": "integer"},
    "event_timestamp": "event_ts",
    "target": {"column": "label", "task": "binary_classification"},
    "features": [
        {"name": "_run_id", "type": "numeric", "nullable": False, "min": 0, "max": 4},
        {"name": "partition_date", "type": "numeric", "min": 0, "max": 1000},
        {"name": "income_k", "type": "numeric", "min": 0, "max": 1000},
    ],
}
SURVEY_NAMES = {
    "member": "entity_id",
    "observed_at": "event_ts",
    "answered_last_4": "_run_id",
    "days_since_answer": "partition_date",
    "answers": "label",
}

START = dt.date(2026, 1, 1)


def day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


@pytest.fixture(scope="module")
def own_models(warehouse_url, pg_server, tmp_path_factory):
    """A user's own specs folder, landing zone and labels; the CLI's state in its own home."""
    root = tmp_path_factory.mktemp("own")
    specs, landing, labels = root / "specs", root / "landing", root / "labels"
    write_spec(specs, PRICES_SPEC)
    write_spec(specs, PANEL_SPEC)
    write_prices(landing, labels, START, days=16, shift_day=11)
    write_panel(landing, labels, START, days=14)
    empty_tables(warehouse_url)
    forget_models("prices", "panel")
    env = {
        **os.environ,
        "LOOPLINE_HOME": str(root / "home"),
        "LOOPLINE_SPECS_DIR": str(specs),
        "LOOPLINE_LANDING": str(landing),
        "LOOPLINE_LABELS": str(labels),
        "LOOPLINE_LAKE": str(root / "lake"),
        "LOOPLINE_REPORTS": str(root / "reports"),
        # The one Airflow metadata store of the CLI's runs and `loopline airflow ...` (a user's
        # is the embedded server's; here the session's, so no second server outlives the test).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_server.url("airflow"),
    }
    for key in ("AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "LOOPLINE_RETRY_DELAY_SECONDS"):
        env.pop(key, None)
    yield {"root": root, "specs": specs, "env": env}
    forget_models("prices", "panel")


def loopline(own: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loopline.cli", *args],
        env=own["env"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_regression_model_from_spec_to_the_closed_loop(own_models):
    ran = loopline(own_models, "run", "prices", "--start", day(0), "--end", day(7))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.count("prices_daily") == 8 and "success" in ran.stdout
    trained = loopline(own_models, "train", "prices", "--end-date", day(9), "--reason", "first")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert "v1   promoted" in trained.stdout and "guardrail mae holds" in trained.stdout
    history = loopline(own_models, "history", "prices")  # a model with only its first promotion
    assert history.returncode == 0 and "v1   promoted" in history.stdout, history.stderr

    replay = loopline(own_models, "replay", "prices", "--start", day(8), "--end", day(15))
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
    # Labels of the window's days arrive a day late: the drift check has labelled days in its
    # window, and a regression's labels are compared as numbers, not as a 0/1 rate.
    reports = warehouse.query(
        "SELECT partition_date, dataset_drift, drifted_features, label_drift, label_rate "
        "FROM warehouse.drift_reports WHERE model = 'prices' ORDER BY partition_date"
    )
    assert reports.label_rate.isna().all() and reports.label_drift.notna().any()
    shifted = reports[reports.partition_date >= START + dt.timedelta(days=11)]
    before = reports[reports.partition_date < START + dt.timedelta(days=11)]
    assert not before.dataset_drift.any() and shifted.dataset_drift.iloc[0]
    assert "sqft" in shifted.drifted_features.iloc[0]
    decisions = warehouse.retrain_decisions("prices")
    assert decisions[decisions.source == "drift"].triggered.any()
    events = warehouse.model_events("prices")
    assert len(events) >= 2  # the retraining the trigger queued was run by replay and judged
    assert "loopline replay" not in replay.stderr


def test_a_small_binary_panel_with_integer_ids(own_models):
    ran = loopline(own_models, "run", "panel", "--start", day(0), "--end", day(9))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    trained = loopline(own_models, "train", "panel", "--end-date", day(10))
    assert trained.returncode == 0, trained.stdout + trained.stderr
    replay = loopline(own_models, "replay", "panel", "--start", day(10), "--end", day(13))
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-3000:]
    scored = warehouse.predictions("panel", START + dt.timedelta(days=12))
    assert len(scored) == 110 and scored.entity_id.str.isdigit().all()
    labels = warehouse.query("SELECT DISTINCT label FROM warehouse.labels WHERE model = 'panel'")
    assert sorted(labels.label) == [0.0, 1.0]  # sent as yes / no


def test_the_cli_says_what_is_wrong_at_once(own_models):
    broken = own_models["specs"] / "broken.yaml"
    broken.write_text(
        (own_models["specs"] / "panel.yaml")
        .read_text()
        .replace("name: panel", "name: broken")
        .replace("type: numeric", "type: number", 1)
    )
    try:
        result = loopline(own_models, "run", "broken", "--start", day(0), "--end", day(0))
        assert result.returncode == 1
        assert f"{broken}: field 'features.0.type': Input should be" in result.stderr
    finally:
        broken.unlink()

    hooked = own_models["specs"] / "hooked.yaml"
    hooked.write_text(
        (own_models["specs"] / "panel.yaml").read_text().replace("name: panel", "name: hooked")
        + 'hooks:\n  after_ingest: ["my_team.checks:count_rows"]\n'
    )
    landing = own_models["root"] / "landing"
    shutil.copytree(landing / "panel" / f"date={day(0)}", landing / "hooked" / f"date={day(0)}")
    try:  # it said only `No module named 'my_team'`
        result = loopline(own_models, "run", "hooked", "--start", day(0), "--end", day(0))
        said = result.stdout + result.stderr
        assert result.returncode == 1, said[-3000:]
        assert "model 'hooked': hook 'my_team.checks:count_rows' (hooks.after_ingest)" in said
        assert "include/my_team/checks.py" in said, said[-3000:]
    finally:
        hooked.unlink()
        shutil.rmtree(landing / "hooked")

    outside = own_models["root"] / "x_daily.log"
    result = loopline(own_models, "run", "../../x", "--start", day(0), "--end", day(0))
    assert result.returncode == 2 and "is not a model name" in result.stderr
    assert not outside.exists()

    started = time.monotonic()
    result = loopline(own_models, "run", "panel", "--start", day(30), "--end", day(30))
    assert result.returncode == 1
    assert time.monotonic() - started < 120  # no retries at a terminal
    assert f"panel/date={day(30)}" in result.stdout and "What to do:" in result.stdout

    # An approval with no Airflow running: said at once, with where to answer instead.
    started = time.monotonic()
    result = loopline(own_models, "approve", "panel", "--port", "9", "--comment", "ok")
    assert result.returncode == 1 and time.monotonic() - started < 60
    assert "no local Airflow answers on port 9" in result.stderr
    assert "Required Actions" in result.stderr


def test_anyones_columns_from_the_first_day_with_replay_alone(own_models):
    """A new model whose columns are called entity_id, event_ts, label, _run_id and
    partition_date, replayed from its first day: the scheduled training runs as the scheduler
    would (it used to train nothing and say nothing), skips while too few days are labelled and
    says so, then promotes a champion that scores the last days."""
    root = own_models["root"]
    write_spec(own_models["specs"], SURVEY_SPEC)
    write_panel(root / "landing", root / "labels", START, 14, model="survey", names=SURVEY_NAMES)
    replay = loopline(own_models, "replay", "survey", "--start", day(0), "--end", day(13))
    out = replay.stdout
    assert replay.returncode == 0, out[-3000:] + replay.stderr[-3000:]
    assert "skipped predict.plan_scoring: model 'survey', date 2026-01-01: no champion yet" in out
    # 2026-01-05 is a Monday (training.cron): four labelled days, eight needed
    assert "survey_train 2026-01-05 (scheduled): success" in out
    assert "skipped train: not trained yet: model 'survey': 4 labelled day(s)" in out
    assert "survey_train 2026-01-12 (scheduled): success" in out
    assert "v1   promoted" in out and "task(s) skipped, reasons above" in out
    log = Path(re.search(r"\(Airflow task logs: (\S+)\)", out).group(1)).read_text()
    # 92 `[error] XCom not found` lines in successful runs once: `error` means an error
    assert "XCom not found" not in log and "[error" not in log, log[-3000:]
    # and 1,160 `DeprecatedImportWarning` lines per task that loaded a model (skops's import)
    warned = [line for line in log.splitlines() if "Warning" in line]
    assert "DeprecatedImportWarning" not in log and len(warned) <= 2, warned[:10]
    scored = warehouse.predictions("survey", START + dt.timedelta(days=13))
    assert len(scored) == 110 and scored.model_version.eq(1).all()
    listed = loopline(own_models, "airflow", "dags", "list", "-o", "plain")
    assert listed.returncode == 0, listed.stderr  # one metadata store for runs and the stack
    assert "survey_daily" in listed.stdout


def test_the_cli_refuses_what_it_would_not_do(own_models):
    """Options that did nothing, raw MLflow errors, a misleading hint: each said plainly."""
    promote = loopline(own_models, "challenger", "promote", "panel", "--version", "3")
    assert promote.returncode != 0
    # --version once did nothing: the challenger, whichever it was, was promoted
    assert "v3 is not panel's challenger (" in promote.stderr, promote.stderr
    assert "`loopline challenger set panel --version 3` makes it one" in promote.stderr
    missing = loopline(own_models, "challenger", "set", "panel", "--version", "9")
    assert missing.returncode == 1 and "RESOURCE_DOES_NOT_EXIST" not in missing.stderr
    assert "model 'panel': there is no version 9 (versions: v1.." in missing.stderr
    nobody = loopline(own_models, "history", "nosuchmodel")
    assert nobody.returncode == 1 and "<file>" not in nobody.stderr
    assert "no model 'nosuchmodel': no spec file nosuchmodel.yaml" in nobody.stderr
    history = loopline(own_models, "history", "prices")
    assert "(was vnan)" not in history.stdout and "(was v1.0)" not in history.stdout
    assert "(was v1)" in history.stdout, history.stdout
    anything = loopline(own_models, "dag", "panel_daily", "--start", day(13), "--end", day(13))
    assert anything.returncode == 0 and "panel_daily 2026-01-14: success" in anything.stdout


def test_sigterm_stops_a_replay_cleanly(own_models):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loopline.cli",
            "replay",
            "panel",
            "--start",
            day(0),
            "--end",
            day(13),
        ],
        env=own_models["env"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = process.stdout.readline()  # the log file line: the replay has begun
    assert "Airflow task logs" in first
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert "loopline: stopped" in process.stderr.read()
