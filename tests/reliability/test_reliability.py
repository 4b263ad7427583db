"""The reliability suite: bad input, concurrency, crashes at every write step, a database that
stops, and the analysts' role, each against the real components, each followed by an account of
every row (read = clean + quarantined; predicted = clean; no entity twice).

``CASES`` is the suite's own list of what happens when...; docs/operations.md carries the same
table and ``test_the_operations_table_is_this_suite`` keeps the two equal. The figures (cases
tried, rows checked, lost, duplicated) are printed at the end of the session and written to
test-output/reliability.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loopline.adapters import warehouse
from loopline.adapters.specs import get_spec
from loopline.core.errors import (
    BatchValidationError,
    LandingMissingError,
    ModelArtifactError,
    StoreUnavailableError,
    UnreadableFileError,
)
from loopline.dev.simulate import simulate
from loopline.steps.validate import validate_day
from sqlalchemy.engine import make_url

from ..conftest import REPO, SESSION_DIR, forget_models, write_spec

DAY = dt.date(2026, 5, 1)
ROWS = 200
FIGURES = {"cases": set(), "rows_checked": 0, "lost": 0, "duplicated": 0}
CASES = {
    "empty-file": "a 0-row file: the day fails as empty, naming the file; nothing is published",
    "header-only-csv": "a CSV with a header and no rows: as an empty file",
    "zero-byte-file": "fails at once (no retries): the file cannot be read, named with the fix",
    "truncated-parquet": "as a 0-byte file; the day published before stays whole",
    "renamed-column": "fails at once naming the file and the column (a likely rename); the "
    "published day stays whole",
    "text-in-numeric": "those rows are quarantined with reason type and their original record",
    "duplicate-ids": "the later rows (across files too) are quarantined with reason unique",
    "timestamps-outside-day": "those rows are quarantined with reason in_partition",
    "nan": "NaN is null: quarantined (not_null) where the spec says not nullable, else clean",
    "inf-parquet": '±inf is quarantined with reason finite; the record keeps "Infinity"',
    "inf-csv": "the same as in Parquet",
    "thousand-columns": "extra columns are ignored (a warning); a bad row's record keeps them all",
    "odd-feature-names": "feature names with quotes and % run end to end (no SQL identifier)",
    "same-day-at-once": "two runs of one day at once: one run's rows, whole, never both",
    "kill-validate.shard_written": "kill -9 after a shard wrote its files: the published day "
    "stays; the re-run publishes; the dead attempt's files are never read",
    "kill-publish.in_transaction": "kill -9 inside the publish transaction: rolled back, the "
    "published day stays; the re-run publishes",
    "kill-publish.committed": "kill -9 after the commit: the new day is published and readable; "
    "the re-run removes what was left",
    "kill-score.staged": "kill -9 after a shard was staged: predictions stay the old ones; the "
    "re-run swaps exactly one copy",
    "kill-swap.in_transaction": "kill -9 inside the predictions swap: rolled back, the old "
    "predictions stay; the re-run swaps",
    "database-stopped": "the warehouse stops mid-run: a transient error saying what to do "
    "(Airflow retries); after a restart the re-run publishes",
    "missing-day-folder": "a transient error naming the folder (upstream may be late): retried",
    "unreadable-model-artifact": "fails at once: the artifact is named, with roll back or "
    "retrain as the fix",
    "analyst-advisory-lock": "the analysts' role cannot take the pipeline's locks",
    "analyst-long-read": "an analyst's open transaction on predictions does not delay the swap",
    "analyst-writes": "analysts cannot write, create or read input tables (tests/integration)",
    "superuser-password": "nobody connects without a password, the superuser included",
    "passwords-off-the-command-line": "role passwords never appear in a process's arguments",
    "durable-by-default": "the embedded server runs with fsync on",
}


@pytest.fixture(scope="session", autouse=True)
def figures():
    yield FIGURES
    out = REPO / "test-output" / "reliability.json"
    out.parent.mkdir(exist_ok=True)
    summary = {**FIGURES, "cases": sorted(FIGURES["cases"])}
    out.write_text(json.dumps(summary, indent=2))
    print(
        f"\nreliability suite: {len(FIGURES['cases'])} cases, {FIGURES['rows_checked']} rows "
        f"checked, lost {FIGURES['lost']}, duplicated {FIGURES['duplicated']}"
    )


def case(name: str) -> None:
    assert name in CASES, name
    FIGURES["cases"].add(name)


def account(model: str, day: dt.date) -> dict:
    """Every row of a published day in exactly one place; no entity twice; every clean row
    predicted at most once. Adds to the suite's figures."""
    result = warehouse.query(
        "SELECT rows_read, rows_clean, rows_quarantined FROM warehouse.validation_results "
        "WHERE model = %(m)s AND partition_date = %(d)s",
        {"m": model, "d": day},
    ).iloc[0]
    pointer = warehouse.published_partition(model, day)
    ids = (
        pd.concat(
            [pq.read_table(f["path"], columns=["entity_id"]).to_pandas() for f in pointer["files"]]
        )
        if pointer
        else pd.DataFrame({"entity_id": []})
    )
    quarantined = warehouse.count_rows("quarantine", model, [day])
    predicted = warehouse.predictions(model, day)
    read = int(result.rows_read)
    lost = read - len(ids) - quarantined
    duplicated = int(ids.entity_id.duplicated().sum()) + int(predicted.entity_id.duplicated().sum())
    FIGURES["rows_checked"] += read
    FIGURES["lost"] += max(lost, 0)
    FIGURES["duplicated"] += duplicated
    assert lost == 0, (read, len(ids), quarantined)
    assert duplicated == 0
    assert len(ids) == int(result.rows_clean) and quarantined == int(result.rows_quarantined)
    assert len(predicted) in (0, len(ids))
    return {
        "read": read,
        "clean": len(ids),
        "quarantined": quarantined,
        "predicted": len(predicted),
    }


def landed(pipeline, rows: int = ROWS, file_format: str = "parquet") -> Path:
    [written] = simulate(
        landing=str(pipeline / "landing"),
        labels=str(pipeline / "labels"),
        start=DAY,
        days=1,
        rows_per_day=rows,
        seed=9,
        file_format=file_format,
    )
    return Path(written.path)


def reasons(day: dt.date = DAY) -> dict[int, list[str]]:
    frame = warehouse.query(
        "SELECT row_number, reasons FROM warehouse.quarantine WHERE partition_date = %(d)s",
        {"d": day},
    )
    return {
        int(r): sorted(x["check"] for x in rs)
        for r, rs in zip(frame.row_number, frame.reasons, strict=True)
    }


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("empty-file", lambda p, f: f.iloc[:0].to_parquet(p, index=False)),
        ("header-only-csv", lambda p, f: f.iloc[:0].to_csv(p.with_suffix(".csv"), index=False)),
    ],
)
def test_an_empty_day_fails_as_empty_and_publishes_nothing(pipeline, name, write):
    case(name)
    path = landed(pipeline)
    frame = pd.read_parquet(path)
    path.unlink()
    write(path, frame)
    with pytest.raises(BatchValidationError, match="empty day: the landing files hold no rows"):
        validate_day(get_spec("churn"), DAY, run_id="r1")
    assert warehouse.published_partition("churn", DAY) is None


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("zero-byte-file", lambda data: b""),
        ("truncated-parquet", lambda data: data[: len(data) // 2]),
    ],
)
def test_an_unreadable_file_fails_at_once_and_the_published_day_stays(pipeline, name, damage):
    case(name)
    path = landed(pipeline)
    validate_day(get_spec("churn"), DAY, run_id="good")
    before = account("churn", DAY)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(UnreadableFileError) as info:
        validate_day(get_spec("churn"), DAY, run_id="r2")
    assert not info.value.retryable
    assert str(info.value).startswith(f"model 'churn', date {DAY}, file {path}: cannot be read")
    assert "What to do: replace the file upstream" in str(info.value)
    assert account("churn", DAY) == before


def test_a_renamed_column_fails_naming_file_and_column(pipeline):
    case("renamed-column")
    path = landed(pipeline)
    validate_day(get_spec("churn"), DAY, run_id="good")
    pd.read_parquet(path).rename(columns={"plan": "plan_name"}).to_parquet(path, index=False)
    with pytest.raises(
        BatchValidationError, match=r"column 'plan': required column\(s\) \['plan'\]"
    ):
        validate_day(get_spec("churn"), DAY, run_id="r2")
    account("churn", DAY)


def bad_cells(pipeline, file_format: str):
    """A day with one defect of each kind, in Parquet or CSV."""
    path = landed(pipeline)
    frame = pd.read_parquet(path)
    frame = frame.astype({"num_devices": object, "snapshot_ts": object})
    frame.loc[1, "num_devices"] = "three"
    frame.loc[2, "customer_id"] = frame.loc[3, "customer_id"]
    frame.loc[4, "snapshot_ts"] = pd.Timestamp(DAY + dt.timedelta(days=1), tz="UTC")
    frame.loc[5, "tenure_months"] = np.nan  # not nullable
    frame.loc[6, "total_charges"] = np.nan  # nullable: clean
    frame.loc[7, "monthly_charges"] = np.inf
    frame.loc[8, "age"] = -np.inf
    path.unlink()
    if file_format == "csv":
        frame.to_csv(path.with_suffix(".csv"), index=False)
    else:
        frame["num_devices"] = frame["num_devices"].astype(str)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    return frame


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_bad_cells_are_quarantined_with_their_reason_in_every_format(pipeline, file_format):
    for name in ("text-in-numeric", "duplicate-ids", "timestamps-outside-day", "nan"):
        case(name)
    case(f"inf-{file_format}")
    bad_cells(pipeline, file_format)
    validate_day(get_spec("churn"), DAY, run_id="r1")
    found = reasons()
    assert found == {
        1: ["type"],
        3: ["unique"],
        4: ["in_partition"],
        5: ["not_null"],
        7: ["finite"],
        8: ["finite"],
    }
    records = warehouse.query(
        "SELECT row_number, record FROM warehouse.quarantine WHERE row_number IN (7, 8)"
    ).set_index("row_number")["record"]
    assert records[7]["monthly_charges"] in ("Infinity", "inf")  # as sent: a JSON-safe spelling
    assert records[8]["age"] in ("-Infinity", "-inf")
    assert account("churn", DAY)["quarantined"] == 6


def test_a_thousand_extra_columns_are_ignored_and_kept_in_records(pipeline):
    case("thousand-columns")
    path = landed(pipeline)
    frame = pd.read_parquet(path)
    extra = pd.DataFrame(np.ones((len(frame), 1000)), columns=[f"x{i}" for i in range(1000)])
    wide = pd.concat([frame, extra], axis=1)
    wide.loc[0, "plan"] = "gold"
    wide.to_parquet(path, index=False)
    validate_day(get_spec("churn"), DAY, run_id="r1")
    [record] = warehouse.query("SELECT record FROM warehouse.quarantine").record
    assert len(record) == len(wide.columns) and record["x999"] == 1.0
    assert account("churn", DAY) == {
        "read": ROWS,
        "clean": ROWS - 1,
        "quarantined": 1,
        "predicted": 0,
    }


def test_feature_names_with_quotes_and_percent_run_end_to_end(pipeline, monkeypatch):
    case("odd-feature-names")
    specs = pipeline / "specs"
    path = write_spec(specs)
    spec_text = path.read_text()
    spec_text = spec_text.replace("name: tenure_months", "name: 'tenure \"months\"'")
    spec_text = spec_text.replace("name: monthly_charges", "name: charges %")
    path.write_text(spec_text)
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(specs))
    spec = get_spec("churn")
    assert spec.feature_names[:2] == ['tenure "months"', "charges %"]
    file = landed(pipeline)
    renamed = {"tenure_months": 'tenure "months"', "monthly_charges": "charges %"}
    pd.read_parquet(file).rename(columns=renamed).to_parquet(file, index=False)
    validate_day(spec, DAY, run_id="r1")
    [published] = warehouse.published_partition("churn", DAY)["files"]
    columns = pq.read_schema(published["path"]).names
    assert 'tenure "months"' in columns and "charges %" in columns
    assert account("churn", DAY)["clean"] == ROWS


def test_the_same_day_twice_at_once_publishes_one_run_whole(pipeline):
    case("same-day-at-once")
    landed(pipeline)
    errors = []

    def run(i: int) -> None:
        try:
            validate_day(get_spec("churn"), DAY, run_id=f"twin-{i}")
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    pointer = warehouse.published_partition("churn", DAY)
    [file] = pointer["files"]
    assert set(pq.read_table(file["path"], columns=["_run_id"]).column(0).to_pylist()) == {
        pointer["run_id"]
    }
    account("churn", DAY)


def test_a_missing_day_folder_is_transient_and_named(pipeline):
    case("missing-day-folder")
    with pytest.raises(LandingMissingError) as info:
        validate_day(get_spec("churn"), DAY, run_id="r1")
    assert info.value.retryable
    assert f"churn/date={DAY}" in str(info.value) and "upstream has not delivered" in str(
        info.value
    )


def test_a_database_stopped_mid_run_is_transient_and_the_rerun_publishes(tmp_path, monkeypatch):
    case("database-stopped")
    from loopline.dev.pgserver import LocalPostgres

    server = LocalPostgres(tmp_path / "pg", durable=False)
    server.start()
    url = server.url("warehouse")
    monkeypatch.setenv("WAREHOUSE_URL", url)
    for key, folder in (
        ("LOOPLINE_LANDING", "landing"),
        ("LOOPLINE_LABELS", "labels"),
        ("LOOPLINE_LAKE", "lake"),
    ):
        monkeypatch.setenv(key, str(tmp_path / folder))
    warehouse.upgrade(url)
    try:
        landed(tmp_path)
        server.stop()
        with pytest.raises(StoreUnavailableError) as info:
            validate_day(get_spec("churn"), DAY, run_id="down")
        assert info.value.retryable
        assert "the warehouse cannot be reached" in str(info.value)
        assert "start it (`loopline db start` for the embedded one)" in str(info.value)
        server.start()
        validate_day(get_spec("churn"), DAY, run_id="up")
        account("churn", DAY)
    finally:
        warehouse.engine(url).dispose()
        server.stop()


# --- crashes at every write step -----------------------------------------------------------------


KILL_SCRIPT = """
import datetime as dt, sys
from loopline.adapters.specs import get_spec
spec, day = get_spec("churn"), dt.date.fromisoformat(sys.argv[2])
if sys.argv[1] == "validate":
    from loopline.steps.validate import validate_day
    validate_day(spec, day, run_id="killed")
else:
    from loopline.steps.score import score_day
    score_day(spec, day, dag_run_id="killed")
"""


def killed_at(point: str, step: str) -> subprocess.CompletedProcess:
    """Run a step in a fresh process that SIGKILLs itself at the fault point."""
    env = {**os.environ, "LOOPLINE_FAULT_POINT": point}
    return subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, step, DAY.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def scored_world(warehouse_url, airflow_db, tmp_path_factory):
    """A champion, and a day published and scored, for the crash and analyst cases. Its tests
    stay together below every `pipeline` test: that fixture empties the warehouse."""
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.labels import sync_labels
    from loopline.steps.promote import run_gate
    from loopline.steps.train import run_training

    from ..conftest import empty_tables

    root = tmp_path_factory.mktemp("crash")
    specs = root / "specs"
    write_spec(
        specs,
        training={"window_days": 12, "min_days": 8, "validation_days": 2, "holdout_days": 3},
        labels={"delay_days": 0},
    )
    env = {
        "LOOPLINE_LANDING": str(root / "landing"),
        "LOOPLINE_LABELS": str(root / "labels"),
        "LOOPLINE_LAKE": str(root / "lake"),
        "LOOPLINE_SPECS_DIR": str(specs),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    empty_tables(warehouse_url)
    forget_models("churn")
    start = DAY - dt.timedelta(days=12)
    simulate(
        landing=env["LOOPLINE_LANDING"],
        labels=env["LOOPLINE_LABELS"],
        start=start,
        days=13,
        rows_per_day=600,
        seed=3,
        label_delay_days=0,
    )
    spec = get_spec("churn")
    for i in range(13):
        validate_day(spec, start + dt.timedelta(days=i), run_id="seed")
    sync_labels(spec, DAY, run_id="seed")
    version = run_evaluation(spec, run_training(spec, DAY, dag_run_id="seed").mlflow_run_id).version
    assert run_gate(spec, version).promoted
    from loopline.steps.score import score_day

    score_day(spec, DAY, dag_run_id="seed")
    yield root
    forget_models("churn")
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.mark.parametrize(
    "point", ["validate.shard_written", "publish.in_transaction", "publish.committed"]
)
def test_a_validation_killed_at_any_write_step_loses_and_doubles_nothing(scored_world, point):
    case(f"kill-{point}")
    before = warehouse.published_partition("churn", DAY)
    killed = killed_at(point, "validate")
    assert killed.returncode == -9, killed.stderr[-2000:]
    after = warehouse.published_partition("churn", DAY)
    if point == "publish.committed":
        assert after["attempt"] != before["attempt"]  # committed: the new day is the day
        assert all(Path(f["path"]).exists() for f in after["files"])
    else:
        assert after == before  # nothing of the dead run is visible
    account("churn", DAY)
    validate_day(get_spec("churn"), DAY, run_id="rerun")
    assert warehouse.published_partition("churn", DAY)["run_id"] == "rerun"
    account("churn", DAY)


@pytest.mark.parametrize("point", ["score.staged", "swap.in_transaction"])
def test_a_scoring_killed_at_any_write_step_keeps_one_copy(scored_world, point):
    case(f"kill-{point}")
    from loopline.steps.score import score_day

    before = warehouse.predictions("churn", DAY)
    killed = killed_at(point, "score")
    assert killed.returncode == -9, killed.stderr[-2000:]
    pd.testing.assert_frame_equal(warehouse.predictions("churn", DAY), before)
    score_day(get_spec("churn"), DAY, dag_run_id="rerun")
    after = warehouse.predictions("churn", DAY)
    assert set(after.dag_run_id) == {"rerun"} and len(after) == len(before)
    account("churn", DAY)


def test_an_unreadable_model_artifact_fails_at_once_saying_what_to_do(scored_world):
    case("unreadable-model-artifact")
    from loopline.steps.score import score_day

    root = Path(os.environ["LOOPLINE_HOME"]) / "mlflow-artifacts" / "churn"
    damaged = [p for p in root.rglob("model.skops")]  # every logged model's pickle
    assert damaged, f"no model artifacts under {root}"
    saved = {p: p.read_bytes() for p in damaged}
    try:
        for p in damaged:
            p.write_bytes(b"not a model")
        with pytest.raises(ModelArtifactError) as info:
            score_day(get_spec("churn"), DAY, dag_run_id="broken")
        assert not info.value.retryable
        assert "model 'churn': the model artifact models:/churn/" in str(info.value)
        assert "roll back to a version that loads" in str(info.value)
    finally:
        for p, data in saved.items():
            p.write_bytes(data)


# --- the analysts' role and the server ----------------------------------------------------------


def connect(user: str, password: str | None, database: str = "warehouse"):
    url = make_url(os.environ["WAREHOUSE_URL"])
    connection = psycopg2.connect(
        host=url.host,
        port=url.port,
        user=user,
        password=password,
        dbname=database,
        connect_timeout=10,
    )
    connection.autocommit = True
    return connection


def secrets() -> dict[str, str]:
    from loopline.dev.pgserver import LocalPostgres

    return LocalPostgres(SESSION_DIR / "postgres").passwords()


def test_analysts_cannot_take_the_pipelines_locks(scored_world):
    case("analyst-advisory-lock")
    analyst = connect("loopline_analyst", secrets()["loopline_analyst"]).cursor()
    for call in (
        "pg_advisory_lock(hashtextextended('churn/2026-05-01', 0))",
        "pg_try_advisory_lock(1)",
        "pg_advisory_xact_lock(1)",
        "pg_advisory_lock_shared(1)",
    ):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            analyst.execute(f"SELECT {call}")


def test_an_analysts_open_read_does_not_delay_the_swap(scored_world):
    case("analyst-long-read")
    import time

    from loopline.steps.score import score_day

    analyst = connect("loopline_analyst", secrets()["loopline_analyst"])
    analyst.autocommit = False
    cursor = analyst.cursor()
    cursor.execute("SET statement_timeout = 0")  # lifting the default is allowed, and harmless
    cursor.execute("SELECT count(*) FROM warehouse.predictions")  # holds its snapshot and lock
    started = time.monotonic()
    score_day(get_spec("churn"), DAY, dag_run_id="while-reading")
    assert time.monotonic() - started < 60
    analyst.rollback()
    analyst.close()
    account("churn", DAY)


def test_nobody_connects_without_a_password(warehouse_url):
    case("superuser-password")
    for user in ("postgres", "loopline_writer", "loopline_analyst"):
        with pytest.raises(psycopg2.OperationalError, match="password"):
            connect(user, None, "postgres" if user == "postgres" else "warehouse").close()
    connect("postgres", secrets()["postgres"], "postgres").close()


def test_role_passwords_never_appear_in_a_process_s_arguments(warehouse_url, monkeypatch):
    case("passwords-off-the-command-line")
    from loopline.dev import pgserver

    seen = []
    real = subprocess.run

    def watching(args, *rest, **kwargs):
        seen.append(list(args))
        return real(args, *rest, **kwargs)

    monkeypatch.setattr(pgserver.subprocess, "run", watching)
    server = pgserver.LocalPostgres(SESSION_DIR / "postgres")
    server.create_roles()
    assert seen, "create_roles ran no program"
    words = " ".join(" ".join(map(str, args)) for args in seen)
    assert not [p for p in secrets().values() if p in words]


def test_the_embedded_server_is_durable_by_default(tmp_path):
    case("durable-by-default")
    from loopline.dev.pgserver import LocalPostgres

    server = LocalPostgres(tmp_path / "pg")
    server.start()
    try:
        assert server.setting("fsync") == "on"
        assert server.setting("synchronous_commit") == "on"
        assert (tmp_path / "pg" / "passwords.json").stat().st_mode & 0o777 == 0o600
        hba = (tmp_path / "pg" / "data" / "pg_hba.conf").read_text()
        rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
        assert rules and all(rule[-1] == "scram-sha-256" for rule in rules)
    finally:
        server.stop()


def test_the_operations_table_is_this_suite():
    """docs/operations.md's "what happens when..." table lists exactly these cases, in words."""
    case("analyst-writes")  # held by tests/integration/adapters/test_access.py
    text = (REPO / "docs" / "operations.md").read_text()
    section = re.split(r"^## .*What happens when.*$", text, flags=re.M)[1].split("\n## ", 1)[0]
    rows = {
        cells[1].strip().strip("`"): cells[2].strip()
        for cells in (line.split("|") for line in section.splitlines() if line.startswith("| `"))
    }
    assert rows == CASES
