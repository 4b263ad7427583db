"""Messages that said the wrong thing: a database that stops in the middle of a run, a model
whose files were deleted, a disk that fills up, a header in another Unicode form, and two
commands failing at the same time, each of which must print its own error."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pandas as pd
import pytest
import yaml
from loopline.adapters import model_store, storage, warehouse
from loopline.adapters.specs import get_spec
from loopline.core import faults
from loopline.core.errors import DiskFullError, ModelArtifactError, StoreUnavailableError
from loopline.steps.validate import validate_day

from ..conftest import CHURN_SPEC, write_spec
from .suite import DAY, account, case, landed, scored_world_of


def test_a_database_that_stops_in_the_middle_of_a_run_says_so_and_the_rerun_publishes(
    tmp_path, monkeypatch
):
    """Stopped after the shards wrote their files, before the publish: said within seconds
    (it took ~100 s, with a traceback), transient; after a restart the re-run publishes."""
    case("database-stopped")
    import time

    from loopline.dev.pgserver import LocalPostgres

    server = LocalPostgres(tmp_path / "pg", durable=False)
    server.start()
    url = server.url("warehouse")
    monkeypatch.setenv("WAREHOUSE_URL", url)
    for key, folder in (("LANDING", "landing"), ("LABELS", "labels"), ("LAKE", "lake")):
        monkeypatch.setenv(f"LOOPLINE_{key}", str(tmp_path / folder))
    warehouse.upgrade(url)
    real = faults.point

    def stop_between(name: str) -> None:
        if name == "validate.shard_written":
            server.stop()
        real(name)

    try:
        landed(tmp_path)
        monkeypatch.setattr(faults, "point", stop_between)
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as info:
            validate_day(get_spec("churn"), DAY, run_id="down")
        assert time.monotonic() - started < 60
        assert info.value.retryable and "the warehouse cannot be reached" in str(info.value)
        monkeypatch.setattr(faults, "point", real)
        server.start()
        validate_day(get_spec("churn"), DAY, run_id="up")
        account("churn", DAY)
    finally:
        warehouse.engine(url).dispose()
        server.stop()


@pytest.fixture(scope="module")
def world(warehouse_url, airflow_db, tmp_path_factory):
    yield from scored_world_of(warehouse_url, tmp_path_factory)


def test_a_champion_whose_files_were_deleted_is_named_with_the_fix(world):
    """It said `No such artifact: ''`."""
    case("champion-files-deleted")
    from loopline.steps.score import score_day

    champion = model_store.store().champion("churn")
    root = Path(os.environ["LOOPLINE_HOME"]) / "mlflow-artifacts" / "churn"
    moved = root.parent / "churn-away"
    shutil.move(root, moved)
    try:
        with pytest.raises(ModelArtifactError) as info:
            score_day(get_spec("churn"), DAY, dag_run_id="deleted")
        text = str(info.value)
        assert f"models:/churn/{champion.version}" in text and "cannot be loaded" in text
        assert "What to do: roll back to a version that loads" in text
        assert "No such artifact: ''" not in text.split(": ", 2)[-1][:40]
    finally:
        shutil.move(moved, root)
    account("churn", DAY, predicted=True)


def test_a_full_disk_names_model_day_and_folder_and_leaves_nothing_half_written(world, monkeypatch):
    """`[Errno 28]` named no model, day or fix, and left partial .tmp and _work files."""
    case("disk-full")
    real = shutil.copyfile

    def full(source, target, *args, **kwargs):
        if "part-" in str(target):
            with open(target, "wb") as out:  # half a file, then the disk is full
                out.write(Path(source).read_bytes()[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(source, target, *args, **kwargs)

    monkeypatch.setattr(storage.shutil, "copyfile", full)
    before = warehouse.published_partition("churn", DAY)
    with pytest.raises(DiskFullError) as info:
        validate_day(get_spec("churn"), DAY, run_id="full")
    text = str(info.value)
    assert text.startswith(f"model 'churn', date {DAY}: no space left on the disk")
    assert "What to do: free space on the lake's disk" in text and "/clean/churn/" in text
    lake = Path(os.environ["LOOPLINE_LAKE"])
    attempt = lake / "clean" / "churn" / f"date={DAY}"
    assert not list(attempt.rglob("*.tmp")), list(attempt.rglob("*.tmp"))
    left = [p for p in attempt.rglob("*") if p.is_file() and "_work" in p.parts]
    assert not [p for p in left if "lease" not in p.name], left
    assert warehouse.published_partition("churn", DAY) == before
    monkeypatch.undo()
    account("churn", DAY, predicted=True)


def test_a_header_in_another_unicode_form_is_the_same_column(pipeline, monkeypatch):
    """`required column(s) ['größe_月'] missing (present but unexpected: ['größe_月'])`: the
    file wrote the name decomposed (NFD), the spec composed (NFC)."""
    case("nfd-column-name")
    name = unicodedata.normalize("NFC", "größe_月")
    specs = pipeline / "specs"
    features = [
        {**f, "name": name} if f["name"] == "age" else f
        for f in yaml.safe_load(CHURN_SPEC.read_text())["features"]
    ]
    write_spec(specs, features=features)
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(specs))
    file = landed(pipeline)
    frame = pd.read_parquet(file).rename(columns={"age": unicodedata.normalize("NFD", name)})
    frame.to_csv(file.with_suffix(".csv"), index=False)
    file.unlink()
    assert unicodedata.normalize("NFD", name) != name
    result = validate_day(get_spec("churn"), DAY, run_id="nfd")
    assert result.outcome.success and result.rows_quarantined == 0
    account("churn", DAY)


def test_two_commands_failing_together_each_print_their_own_error(pipeline, airflow_metadata):
    """All CLI runs shared one task log and read the first error after their offset: one
    printed the other model's error."""
    case("two-commands-fail-together")
    specs = pipeline / "specs"
    write_spec(specs, name="alpha")
    write_spec(specs, name="beta")
    env = {
        **os.environ,
        "LOOPLINE_SPECS_DIR": str(specs),
        "LOOPLINE_HOME": str(pipeline / "home"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_metadata,
    }
    env.pop("AIRFLOW_HOME", None)
    # alpha: no day folder at all; beta: a file whose column was renamed
    beta = pipeline / "landing" / "beta" / f"date={DAY}"
    beta.mkdir(parents=True)
    frame = pd.read_parquet(landed(pipeline)).rename(columns={"plan": "plan_name"})
    frame.to_parquet(beta / "part-000.parquet", index=False)
    commands = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "loopline.cli",
                "run",
                model,
                "--start",
                str(DAY),
                "--end",
                str(DAY),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for model in ("alpha", "beta")
    ]
    outputs = [c.communicate(timeout=600) for c in commands]
    (alpha_out, alpha_err), (beta_out, beta_err) = outputs
    assert commands[0].returncode == 1 and commands[1].returncode == 1
    assert f"model 'alpha', date {DAY}: no .parquet or .csv files" in alpha_out, (
        alpha_out + alpha_err[-3000:]
    )
    assert "plan_name" not in alpha_out and "model 'beta'" not in alpha_out
    assert "model 'beta'" in beta_out and "column 'plan'" in beta_out, beta_out + beta_err[-3000:]
    assert "model 'alpha'" not in beta_out
