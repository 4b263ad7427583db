"""The daily DAG on the lake: real PostgreSQL, real Airflow task execution (dag.test), typed
Parquet under the lake folder. Every promise of the data plane: clean + quarantined = read, a
re-run replaces the day, concurrent runs neither duplicate nor mix, a failed replacement leaves
the published day whole, and no input row is stored in PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest
from loopline.adapters import lake, storage, warehouse
from loopline.adapters.specs import get_spec
from loopline.core import columns as own
from loopline.core.records import PublishedDay
from loopline.dev.simulate import Scenario, simulate
from loopline.steps.validate import validate_day

from ...conftest import REPO, dag, run_day, task_states, write_spec

START = dt.date(2026, 1, 1)
ROWS = 300


def days(n: int) -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range(n)]


def write_days(root, n=3, **kwargs):
    return simulate(
        landing=str(root / "landing"),
        labels=str(root / "labels"),
        start=START,
        days=n,
        rows_per_day=ROWS,
        seed=4,
        **kwargs,
    )


def published(day: dt.date) -> PublishedDay:
    pointer = warehouse.published_partition("churn", day)
    assert pointer is not None, f"{day} not published"
    return pointer


def clean_frame(day: dt.date) -> pd.DataFrame:
    """The published clean rows of the day, read from the files the pointer names."""
    parts = [pq.read_table(f.path).to_pandas() for f in published(day).files]
    frame = pd.concat(parts, ignore_index=True).rename(columns=own.readable)  # entity_id, ...
    return frame.sort_values("entity_id", ignore_index=True)


def validation(day: dt.date) -> dict:
    frame = warehouse.query(
        "SELECT * FROM warehouse.validation_results WHERE model = 'churn' "
        "AND partition_date = %(d)s",
        {"d": day},
    )
    return frame.iloc[0].to_dict()


def test_days_land_typed_in_the_lake_and_bad_rows_are_quarantined_with_reasons(pipeline):
    written = write_days(
        pipeline, scenarios=[Scenario("bad_rows", start_day=1, strength=0.04, duration_days=1)]
    )
    injected = written[1].corrupted
    assert len(injected) == 12
    for day in days(3):
        run = run_day("churn_daily", day)
        assert run.state == "success", task_states(run)
        assert task_states(run)["predict.plan_scoring"] == "skipped"  # no model yet

    for day, bad in zip(days(3), [0, 12, 0], strict=True):
        result = validation(day)
        assert (result["rows_read"], result["rows_clean"], result["rows_quarantined"]) == (
            ROWS,
            ROWS - bad,
            bad,
        )
        assert result["success"] and result["published_run_id"] == result["run_id"]
        assert len(clean_frame(day)) == ROWS - bad == published(day).rows_clean
        assert warehouse.count_rows("quarantine", "churn", [day]) == bad

    quarantined = warehouse.query(
        "SELECT entity_id, reasons, record, source_file, row_number FROM warehouse.quarantine "
        "WHERE model = 'churn'"
    )
    found = {
        row.entity_id: sorted((r["column"], r["check"]) for r in row.reasons)
        for row in quarantined.itertuples()
    }
    assert found == {entity: sorted(reasons) for entity, reasons in injected.items()}
    assert set(quarantined.source_file) == {written[1].path}
    landed = pd.read_parquet(written[1].path)
    for row in quarantined.itertuples():  # the original record, exactly the landed row
        assert row.record["customer_id"] == landed.loc[row.row_number, "customer_id"]
    assert not set(found) & set(clean_frame(days(3)[1]).entity_id)


def test_the_lake_holds_one_typed_column_per_feature_plus_lineage(pipeline):
    written = write_days(pipeline, n=1)
    run = run_day("churn_daily", START)
    assert run.state == "success"
    spec = get_spec("churn")
    [file] = published(START).files
    assert file.path.startswith(os.environ["LOOPLINE_LAKE"] + "/clean/churn/date=2026-01-01/")
    schema = pq.read_schema(file.path)
    assert schema == lake.clean_schema(spec)
    frame = clean_frame(START)
    assert set(frame.source_file) == {written[0].path} and set(frame.run_id) == {run.run_id}
    landed = pd.read_parquet(written[0].path).set_index("customer_id")
    by_row = frame.set_index("entity_id").loc[landed.index]
    pd.testing.assert_series_equal(
        by_row["tenure_months"], landed["tenure_months"], check_names=False
    )
    # PostgreSQL holds no input row: only the pointer, the files read and the results.
    tables = set(
        warehouse.query("SELECT tablename FROM pg_tables WHERE schemaname = 'warehouse'").tablename
    )
    assert not {"raw_rows", "clean_rows"} & tables
    files = warehouse.query("SELECT * FROM warehouse.ingested_files WHERE model = 'churn'")
    assert files.loc[0, "sha256"] == storage.sha256(written[0].path)
    assert files.loc[0, "rows"] == ROWS


def test_rerunning_a_day_replaces_it_exactly_and_retires_the_superseded_files(pipeline):
    write_days(pipeline, n=1, scenarios=[Scenario("bad_rows", strength=0.02)])
    first = run_day("churn_daily", START)
    before, old = clean_frame(START), published(START)
    second = run_day("churn_daily", START)
    assert first.state == second.state == "success"
    now = published(START)
    assert now.attempt != old.attempt and now.run_id == second.run_id
    pd.testing.assert_frame_equal(
        clean_frame(START).drop(columns="run_id"), before.drop(columns="run_id")
    )
    assert warehouse.count_rows("quarantine", "churn") == 6
    assert warehouse.count_rows("ingested_files", "churn") == 1
    # the old attempt is retired: readers that resolved the day before still read it whole,
    # and the first publish after lake.RETIRED_SECONDS removes it
    assert sorted(lake.attempts_of_day("churn", START)) == sorted([old.attempt, now.attempt])
    assert storage.list_tree(storage.join(now.location, "_work")) == []
    later = time.time() + lake.RETIRED_SECONDS + 1
    lake.after_publish("churn", START, now.attempt, None, later)
    assert lake.attempts_of_day("churn", START) == [now.attempt]
    assert storage.list_tree(lake.retired_folder("churn")) == []


def test_a_broken_replacement_leaves_the_published_day_whole(pipeline):
    """Upstream re-delivers the day with a renamed column: the day stays wholly the old input,
    with the failure recorded against it (read = clean + quarantined still holds)."""
    written = write_days(pipeline, n=1)
    assert run_day("churn_daily", START).state == "success"
    before, pointer = clean_frame(START), published(START)
    frame = pd.read_parquet(written[0].path).rename(columns={"tenure_months": "tenure"})
    pd.concat([frame, frame.assign(customer_id=frame.customer_id + "x")]).to_parquet(
        written[0].path, index=False
    )  # also twice the rows: the counts must not mix old and new

    run = run_day("churn_daily", START)
    assert run.state == "failed"
    states = task_states(run)
    assert states["ingest.plan_day"] == "failed"
    assert states["validate.publish"] == "upstream_failed"
    ti = next(t for t in run.get_task_instances() if t.task_id == "ingest.plan_day")
    assert ti.try_number == 1  # permanent: no retries burnt

    result = validation(START)
    assert not result["success"]
    assert result["error"].startswith(
        f"model 'churn', date {START}, file {written[0].path}, column 'tenure_months': "
        "required column(s) ['tenure_months'] missing (present but unexpected: ['tenure']; "
        "renamed?)"
    )
    assert (result["rows_read"], result["rows_clean"], result["rows_quarantined"]) == (
        ROWS,
        ROWS,
        0,
    )
    assert published(START) == pointer
    pd.testing.assert_frame_equal(clean_frame(START), before)
    files = warehouse.query("SELECT sha256, rows FROM warehouse.ingested_files")
    assert files["rows"].tolist() == [ROWS]  # lineage still names the bytes that were published


def test_csv_landing_files_give_the_same_rows_as_parquet(pipeline, monkeypatch):
    write_days(pipeline, n=1)
    assert run_day("churn_daily", START).state == "success"
    parquet_rows = clean_frame(START)
    csv_root = pipeline / "csv"
    simulate(
        landing=str(csv_root / "landing"),
        labels=str(csv_root / "labels"),
        start=START,
        days=1,
        rows_per_day=ROWS,
        seed=4,
        file_format="csv",
    )
    monkeypatch.setenv("LOOPLINE_LANDING", str(csv_root / "landing"))
    assert run_day("churn_daily", START).state == "success"
    csv_rows = clean_frame(START)
    features = get_spec("churn").feature_names
    pd.testing.assert_frame_equal(
        csv_rows[["entity_id", *features]], parquet_rows[["entity_id", *features]]
    )


def test_concurrent_runs_of_one_day_neither_duplicate_nor_mix(pipeline):
    write_days(pipeline, n=1, scenarios=[Scenario("bad_rows", strength=0.02)])
    spec, errors, results = get_spec("churn"), [], []

    def validate(run_id: str) -> None:
        try:
            results.append(validate_day(spec, START, run_id=run_id))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=validate, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    pointer = published(START)
    frame = clean_frame(START)
    assert len(frame) == ROWS - 6 and frame.entity_id.is_unique
    assert set(frame.run_id) == {pointer.run_id}  # one run's rows, whole
    assert warehouse.count_rows("quarantine", "churn") == 6
    assert validation(START)["published_run_id"] == pointer.run_id


def test_repeated_ids_across_files_are_judged_on_the_whole_day(pipeline):
    """Two upstream files of one day that overlap: the later row is quarantined as 'unique',
    with its record read back from its own file."""
    written = write_days(pipeline, n=1)
    frame = pd.read_parquet(written[0].path)
    second = storage.join(os.path.dirname(written[0].path), "part-001.parquet")
    frame.iloc[:5].to_parquet(second, index=False)  # 5 rows sent again in another file
    assert run_day("churn_daily", START).state == "success"
    result = validation(START)
    assert (result["rows_read"], result["rows_clean"], result["rows_quarantined"]) == (
        ROWS + 5,
        ROWS,
        5,
    )
    held = warehouse.query(
        "SELECT source_file, row_number, record, reasons FROM warehouse.quarantine"
    )
    assert set(held.source_file) == {second} and sorted(held.row_number) == list(range(5))
    assert all(r[0]["check"] == "unique" for r in held.reasons)
    assert held.record[0]["customer_id"] == frame.loc[held.row_number[0], "customer_id"]


def test_a_day_of_several_shards_is_validated_by_mapped_tasks(pipeline, monkeypatch):
    specs = pipeline / "specs"
    write_spec(specs, processing={"shard_rows": 1000, "batch_rows": 1000})
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(specs))
    landing = pipeline / "landing" / "churn" / f"date={START}"
    simulate(
        landing=str(pipeline / "landing"),
        labels=str(pipeline / "labels"),
        start=START,
        days=1,
        rows_per_day=2500,
        seed=3,
    )
    table = pq.read_table(landing / "part-000.parquet")
    pq.write_table(table, landing / "part-000.parquet", row_group_size=500)  # 5 row groups
    run = run_day("churn_daily", START)
    assert run.state == "success", task_states(run)
    shards = [k for k in task_states(run) if k.startswith("validate.validate_shard[")]
    assert len(shards) == 3  # 1000 + 1000 + 500 rows
    assert [f.rows for f in published(START).files] == [1000, 1000, 500]
    assert len(clean_frame(START)) == 2500 and clean_frame(START).entity_id.is_unique


def test_spec_hooks_run_after_ingest_and_validate_with_model_and_date(pipeline, monkeypatch):
    specs = pipeline / "specs"
    hooks = ["tests.integration.hookprobe:record"]
    write_spec(specs, hooks={"after_ingest": hooks, "after_validate": hooks})
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(specs))
    monkeypatch.setenv("HOOK_PROBE_LOG", str(pipeline / "hooks.jsonl"))
    write_days(pipeline, n=2)

    run = run_day("churn_daily", days(2)[1])
    assert run.state == "success"
    calls = [json.loads(line) for line in (pipeline / "hooks.jsonl").read_text().splitlines()]
    # After ingest the day is planned but not yet published; after validate it is.
    assert calls == [
        {"model": "churn", "partition_date": "2026-01-02", "published_rows": None},
        {"model": "churn", "partition_date": "2026-01-02", "published_rows": ROWS},
    ]
    tis = {ti.task_id: ti for ti in run.get_task_instances() if ti.map_index < 0}
    assert tis["ingest.plan_day"].end_date <= tis["ingest.after_ingest__record"].start_date
    assert tis["validate.publish"].end_date <= tis["validate.after_validate__record"].start_date


def test_hand_written_dag_composes_the_groups_with_its_own_task(pipeline):
    write_days(pipeline, n=1)
    run = run_day("churn_custom_daily", START)
    assert run.state == "success", task_states(run)
    tis = {ti.task_id: ti for ti in run.get_task_instances() if ti.map_index < 0}
    assert tis["count_landed_rows"].xcom_pull(task_ids="count_landed_rows") == ROWS
    assert tis["ingest.plan_day"].end_date <= tis["count_landed_rows"].start_date
    assert tis["count_landed_rows"].end_date <= tis["validate.publish"].start_date
    assert published(START).rows_clean == ROWS


@pytest.fixture(autouse=True)
def _dags_of_this_repo():
    assert dag("churn_daily").fileloc.startswith(str(REPO))
