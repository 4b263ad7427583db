"""The README's "Adding a model" path with the `loopline` command, on two models unlike churn: a
regression with an abrupt covariate shift and a small binary panel with integer ids. Spec file,
daily files and labels of one's own; `run`, `train`, `history` and `replay` (the closed loop, day
by day, as the scheduler would); and the errors a new user meets, said at once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
from loopline.adapters import warehouse

from ..conftest import empty_tables, forget_models
from .datasets import PANEL_SPEC, PRICES_SPEC, write_panel, write_prices, write_spec

START = dt.date(2026, 1, 1)


def day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


@pytest.fixture(scope="module")
def own_models(warehouse_url, tmp_path_factory):
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

    outside = own_models["root"] / "x_daily.log"
    result = loopline(own_models, "run", "../../x", "--start", day(0), "--end", day(0))
    assert result.returncode == 2 and "is not a model name" in result.stderr
    assert not outside.exists()

    started = time.monotonic()
    result = loopline(own_models, "run", "panel", "--start", day(30), "--end", day(30))
    assert result.returncode == 1
    assert time.monotonic() - started < 120  # no retries at a terminal
    assert f"panel/date={day(30)}" in result.stdout and "What to do:" in result.stdout


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
