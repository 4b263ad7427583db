"""The reliability suite: bad input, concurrency, crashes at every write step, a database that
stops, and the analysts' role, each against the real components, each followed by an account of
every row (read = clean + quarantined; predicted = clean; no entity twice).

``CASES`` is the suite's own list of what happens when...; docs/operations.md carries the same
table and ``test_the_operations_table_is_this_suite`` keeps the two equal. The figures (cases
tried, rows checked, lost, duplicated, mixed) are printed at the end of the session and written
to test-output/reliability.json. The other modules of this folder hold the races, exposure,
messages, healing and further input cases.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
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
    UnreadableFileError,
)
from loopline.steps.validate import validate_day

from ..conftest import REPO, SESSION_DIR
from .suite import (
    CASES,
    DAY,
    ROWS,
    account,
    case,
    connect,
    killed_at,
    landed,
    reasons,
    scored_world_of,
    secrets,
)

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


def test_a_missing_day_folder_is_transient_and_named(pipeline):
    case("missing-day-folder")
    with pytest.raises(LandingMissingError) as info:
        validate_day(get_spec("churn"), DAY, run_id="r1")
    assert info.value.retryable
    assert f"churn/date={DAY}" in str(info.value) and "upstream has not delivered" in str(
        info.value
    )


# --- crashes at every write step -----------------------------------------------------------------


@pytest.fixture(scope="module")
def scored_world(warehouse_url, airflow_db, tmp_path_factory):
    """A champion, and a day published and scored, for the crash and analyst cases. Its tests
    stay together below every `pipeline` test: that fixture empties the warehouse."""
    yield from scored_world_of(warehouse_url, tmp_path_factory)


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
        assert after.attempt != before.attempt  # committed: the new day is the day
        assert all(Path(f.path).exists() for f in after.files)
    else:
        assert after == before  # nothing of the dead run is visible
    account("churn", DAY)
    validate_day(get_spec("churn"), DAY, run_id="rerun")
    assert warehouse.published_partition("churn", DAY).run_id == "rerun"
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
    text = (REPO / "docs" / "operations.md").read_text()
    section = re.split(r"^## .*What happens when.*$", text, flags=re.M)[1].split("\n## ", 1)[0]
    rows = {
        cells[1].strip().strip("`"): cells[2].strip()
        for cells in (line.split("|") for line in section.splitlines() if line.startswith("| `"))
    }
    assert rows == CASES
