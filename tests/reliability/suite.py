"""What the reliability suite shares: its cases (the "what happens when..." table of
docs/operations.md), the figures of every account it makes, and the helpers that make them."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psycopg2
import pyarrow.parquet as pq
from loopline.adapters import model_store, warehouse
from loopline.adapters.specs import get_spec
from loopline.core import columns as own
from loopline.dev.simulate import simulate
from loopline.steps.validate import validate_day
from sqlalchemy.engine import make_url

from ..conftest import SESSION_DIR, empty_tables, forget_models, write_spec

DAY = dt.date(2026, 5, 1)
ROWS = 200
FIGURES = {"cases": set(), "rows_checked": 0, "lost": 0, "duplicated": 0, "mixed": 0}
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
    "odd-feature-names": "feature names with quotes and % are validated, trained, gated and "
    "scored (no SQL identifier)",
    "xgboost-refused-names": "feature names with <, [ and ] (XGBoost refuses them as its own) "
    "train and score end to end: XGBoost sees positions, the card the names",
    "same-day-at-once": "two runs of one day validating and scoring at once (forced: one "
    "scores the attempt the other has just replaced): the replaced attempt is retired, not "
    "deleted, so the scoring reads it whole; the day is one run's rows, its predictions exactly "
    "those ids; the stale swap is refused",
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
    "database-stopped": "the warehouse stops in the middle of a run (after the shards wrote): "
    "said within seconds, transient, what to do; after a restart the re-run publishes",
    "missing-day-folder": "a transient error naming the folder (upstream may be late): retried",
    "unreadable-model-artifact": "fails at once: the artifact is named, with roll back or "
    "retrain as the fix",
    "analyst-advisory-lock": "the analysts' role cannot take the pipeline's locks",
    "analyst-long-read": "an analyst's open transaction on predictions does not delay the swap",
    "analyst-writes": "analysts cannot write, create, or read labels, quarantine or shadow "
    "predictions, even with the read-only default lifted",
    "analyst-connection-flood": "analysts opening connections stop at the role's limit (40); "
    "20 slots are reserved for the pipeline, Airflow and MLflow, so the day is published",
    "analyst-overlong-statement": "an analyst statement past its limit (30 min, its own "
    "timeout lifted) is ended by the pipeline's next swap",
    "superuser-password": "nobody connects without a password, the superuser included",
    "passwords-off-the-command-line": "role passwords never appear in a process's arguments",
    "durable-by-default": "the embedded server runs with fsync on",
    "stale-scoring-swap": "a run that scored the day before it was published again swaps last: "
    "refused, the predictions stay the newer run's, exactly the published ids",
    "file-grows-while-read": "rows appended to a landing file while its shard reads it: the "
    "shard fails naming the file and the fix; nothing is published short",
    "csv-grows-while-read": "the same for a CSV file",
    "file-replaced-after-plan": "a file replaced between the plan and its shard: fails at once "
    "(no useless retries) saying to re-run the whole day",
    "crash-alias.pending": "kill -9 after a model event is written ahead of its alias: the "
    "alias did not move, the event is settled as abandoned; a rollback then goes back right",
    "crash-alias.moved": "kill -9 after the alias moved: the event is settled as done; the "
    "history and the alias agree",
    "crash-shadow-promote": "kill -9 while a challenger is promoted: the champion moved, the "
    "event is settled as done",
    "rollback-while-gate-judges": "a rollback while the gate judges a candidate: the candidate is "
    "not promoted over a version it was not judged against; the rollback stands",
    "promotion-during-scoring": "a promotion between a day's scoring plan and its swap: every "
    "prediction of the day is of the planned version",
    "rollback-missing-version": "a rollback to a version that does not exist: a clear error, "
    "the alias and the history unchanged",
    "day-lock-matters": "mutation check: without the day's advisory lock one of two overlapping "
    "drift checks of a day fails on the day's unique key; with it, both succeed, one report",
    "monitoring-reruns-replace": "a re-run of a day's drift check and retrain trigger replaces "
    "its report and decision, never adds one",
    "follow-ups-bounded": "after 1 + retraining.max_follow_ups retrainings for a change, no "
    "degraded day triggers another",
    "landing-link-outside": "a landing file that is a link to a file outside the landing zone is "
    "not read; its content appears nowhere",
    "labels-link-outside": "the same for a label file outside the labels folder",
    "owner-only-files": "what the CLI writes in the state folder is owner-only (0700 / 0600)",
    "loopback-only": "the local stack listens on 127.0.0.1 only (no log server); the admin "
    "password, JWT key and API key files are 0600, the JWT key 64+ bytes",
    "future-day": "a partition_date after the run's own date is refused: nothing is published or "
    "predicted for it",
    "champion-files-deleted": "a champion whose files were deleted: fails at once naming the "
    "version and what to do",
    "disk-full": "the lake's disk fills up: the error names model, day and folder and what to "
    "do; no half-written file or work file stays",
    "nfd-column-name": "a header written in another Unicode form (NFD) is the spec's column",
    "two-commands-fail-together": "two CLI commands failing at once each print their own error",
    "killed-attempt-folder": "a killed run's attempt folder is removed by the first publish "
    "after its lease ran out (15 minutes)",
    "killed-cli-training": "a killed CLI training no longer stays running: the next command marks "
    "it failed",
    "read-only-model-store": "a read-only model store still serves scoring",
    "csv-line-breaks": "CSV cells with quoted line breaks are one row each, counted and read so",
    "category-case": "a category in another case ('Basic') is quarantined (in_set), the record "
    "as sent",
    "label-redelivered": "a label sent again later replaces the earlier one",
    "bad-label-rows": "label rows that cannot be read go to labels_quarantine with the refused "
    "value; the rest load; every row is in one place",
}


def case(name: str) -> None:
    assert name in CASES, name
    FIGURES["cases"].add(name)


def account(model: str, day: dt.date, *, predicted: bool | None = None) -> dict:
    """Every row of a published day in exactly one place; no entity twice; the predictions, if
    any (``predicted``: must there be?), are exactly the published ids, of one run; the clean
    rows are of one run. Adds to the suite's figures (lost, duplicated, mixed)."""
    result = warehouse.query(
        "SELECT rows_read, rows_clean, rows_quarantined FROM warehouse.validation_results "
        "WHERE model = %(m)s AND partition_date = %(d)s",
        {"m": model, "d": day},
    ).iloc[0]
    pointer = warehouse.published_partition(model, day)
    ids = (
        pd.concat(
            [
                pq.read_table(f.path, columns=[own.ENTITY_ID, own.RUN_ID]).to_pandas()
                for f in pointer.files
            ]
        ).rename(columns=own.readable)
        if pointer
        else pd.DataFrame({"entity_id": [], "run_id": []})
    )
    quarantined = warehouse.count_rows("quarantine", model, [day])
    scored = warehouse.predictions(model, day)
    read = int(result.rows_read)
    lost = read - len(ids) - quarantined
    duplicated = int(ids.entity_id.duplicated().sum()) + int(scored.entity_id.duplicated().sum())
    mixed = max(ids.run_id.nunique() - 1, 0) if len(ids) else 0
    if len(scored):
        published = set(ids.entity_id)
        mixed += len(set(scored.entity_id) ^ published) + max(scored.dag_run_id.nunique() - 1, 0)
    FIGURES["rows_checked"] += read
    FIGURES["lost"] += max(lost, 0)
    FIGURES["duplicated"] += duplicated
    FIGURES["mixed"] += mixed
    assert lost == 0, (read, len(ids), quarantined)
    assert duplicated == 0 and mixed == 0, (duplicated, mixed)
    assert len(ids) == int(result.rows_clean) and quarantined == int(result.rows_quarantined)
    if predicted is not None:
        assert bool(len(scored)) == predicted, len(scored)
    return {
        "read": read,
        "clean": len(ids),
        "quarantined": quarantined,
        "predicted": len(scored),
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


def scored_world_of(warehouse_url, tmp_path_factory, *, rows=600, seed=3, versions=1):
    """A champion, and a day published and scored, for the crash, race and analyst cases:
    ``versions`` models trained on the days up to DAY, the newest of them champion. Its tests
    stay together below every `pipeline` test: that fixture empties the warehouse."""
    from loopline.steps.evaluate import run_evaluation
    from loopline.steps.labels import sync_labels
    from loopline.steps.promote import run_gate
    from loopline.steps.rollback import rollback
    from loopline.steps.score import score_day
    from loopline.steps.train import run_training

    root = tmp_path_factory.mktemp("world")
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
        rows_per_day=rows,
        seed=seed,
        label_delay_days=0,
    )
    spec = get_spec("churn")
    for i in range(13):
        validate_day(spec, start + dt.timedelta(days=i), run_id="seed")
    sync_labels(spec, DAY, run_id="seed")
    for back in range(versions - 1, -1, -1):
        end = DAY - dt.timedelta(days=back)
        trained = run_training(spec, end, dag_run_id=f"seed-{end}")
        run_gate(spec, run_evaluation(spec, trained.mlflow_run_id).version)
    if int(model_store.store().champion("churn").version) != versions:  # the gate may keep one
        rollback("churn", versions, reason="the cases start from the newest version")
    score_day(spec, DAY, dag_run_id="seed")
    yield root
    forget_models("churn")
    for key, value in saved.items():
        os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
