"""The daily DAG end to end: real PostgreSQL, real Airflow task execution (dag.test)."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading

import pandas as pd
import yaml
from loopline import warehouse
from loopline.simulate import Scenario, simulate
from loopline.spec import get_spec

from .conftest import REPO, run_day, task_states

START = dt.date(2026, 1, 1)
ROWS = 300


def days(n: int) -> list[dt.date]:
    return [START + dt.timedelta(days=i) for i in range(n)]


def write_days(landing, n=3, **kwargs):
    return simulate(
        landing=str(landing / "landing"),
        labels=str(landing / "labels"),
        start=START,
        days=n,
        rows_per_day=ROWS,
        seed=4,
        **kwargs,
    )


def clean_ids(day: dt.date) -> list[str]:
    frame = warehouse.query(
        "SELECT entity_id, features::text AS f FROM warehouse.clean_rows "
        "WHERE model = 'churn' AND partition_date = :d ORDER BY entity_id",
        {"d": day},
    )
    return list(zip(frame.entity_id, frame.f, strict=True))


def validation(day: dt.date) -> dict:
    frame = warehouse.query(
        "SELECT * FROM warehouse.validation_results WHERE model = 'churn' AND partition_date = :d",
        {"d": day},
    )
    return frame.iloc[0].to_dict()


def test_days_land_with_exact_counts_and_bad_rows_quarantined_with_their_reasons(pipeline):
    written = write_days(
        pipeline, scenarios=[Scenario("bad_rows", start_day=1, strength=0.04, duration_days=1)]
    )
    injected = written[1].corrupted
    assert len(injected) == 12
    for day in days(3):
        run = run_day("churn_daily", day)
        assert run.state == "success"
        # No model has been trained: scoring is skipped, not failed.
        assert task_states(run)["predict.score_day"] == "skipped"

    for day, bad in zip(days(3), [0, 12, 0], strict=True):
        result = validation(day)
        assert (result["rows_read"], result["rows_clean"], result["rows_quarantined"]) == (
            ROWS,
            ROWS - bad,
            bad,
        )
        assert result["success"]
        assert warehouse.count_rows("raw_rows", "churn", [day]) == ROWS
        assert warehouse.count_rows("clean_rows", "churn", [day]) == ROWS - bad
        assert warehouse.count_rows("quarantine", "churn", [day]) == bad

    quarantined = warehouse.query(
        "SELECT entity_id, reasons, record, source_file FROM warehouse.quarantine "
        "WHERE model = 'churn'"
    )
    found = {
        row.entity_id: sorted((r["column"], r["check"]) for r in row.reasons)
        for row in quarantined.itertuples()
    }
    assert found == {entity: sorted(reasons) for entity, reasons in injected.items()}
    assert set(quarantined.source_file) == {written[1].path}
    # No quarantined entity leaked into the clean table.
    assert not set(found) & {e for e, _ in clean_ids(days(3)[1])}


def test_rerunning_a_day_replaces_it_exactly(pipeline):
    write_days(pipeline, n=1, scenarios=[Scenario("bad_rows", strength=0.02)])
    first = run_day("churn_daily", START)
    before = (clean_ids(START), warehouse.count_rows("quarantine", "churn"))
    second = run_day("churn_daily", START)
    assert first.state == second.state == "success"
    assert first.run_id != second.run_id
    assert (clean_ids(START), warehouse.count_rows("quarantine", "churn")) == before
    assert warehouse.count_rows("raw_rows", "churn") == ROWS
    assert warehouse.count_rows("ingested_files", "churn") == 1
    runs = warehouse.query("SELECT DISTINCT run_id FROM warehouse.clean_rows").run_id.tolist()
    assert runs == [second.run_id]


def test_schema_break_fails_clearly_and_leaves_the_clean_day_untouched(pipeline):
    written = write_days(pipeline, n=1)
    assert run_day("churn_daily", START).state == "success"
    before = clean_ids(START)
    assert len(before) == ROWS

    # Upstream re-delivers the day with a renamed column.
    frame = pd.read_parquet(written[0].path).rename(columns={"tenure_months": "tenure"})
    frame.to_parquet(written[0].path, index=False)
    run = run_day("churn_daily", START)
    assert run.state == "failed"
    states = task_states(run)
    assert states == {
        "ingest.ingest_files": "success",
        "validate.validate_rows": "failed",
        "predict.score_day": "upstream_failed",
        "monitor.drift_check": "upstream_failed",
        "monitor.retrain_trigger": "upstream_failed",
    }
    validate_ti = next(t for t in run.get_task_instances() if t.task_id == "validate.validate_rows")
    assert validate_ti.try_number == 1  # AirflowFailException: no retries burnt

    result = validation(START)
    assert not result["success"]
    assert result["error"] == (
        f"model 'churn', date {START}, file {written[0].path}, column 'tenure_months': "
        "required column(s) ['tenure_months'] missing "
        "(present but unexpected: ['tenure']; renamed?)"
    )
    assert result["rows_clean"] == ROWS  # what the clean table still holds
    assert clean_ids(START) == before


def test_csv_landing_files_give_the_same_rows_as_parquet(pipeline, monkeypatch):
    write_days(pipeline, n=1)
    assert run_day("churn_daily", START).state == "success"
    parquet_rows = clean_ids(START)
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
    csv_rows = clean_ids(START)
    assert [e for e, _ in csv_rows] == [e for e, _ in parquet_rows]
    assert [json.loads(f) for _, f in csv_rows] == [json.loads(f) for _, f in parquet_rows]


def test_concurrent_ingests_of_one_day_never_duplicate(pipeline):
    from loopline.ingest import ingest_day

    write_days(pipeline, n=1)
    spec, errors = get_spec("churn"), []

    def ingest(run_id: str) -> None:
        try:
            ingest_day(spec, START, run_id=run_id)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert warehouse.count_rows("raw_rows", "churn") == ROWS
    assert len(warehouse.query("SELECT DISTINCT run_id FROM warehouse.raw_rows")) == 1


def test_spec_hooks_run_after_ingest_and_get_model_and_date(pipeline, monkeypatch):
    specs = pipeline / "specs"
    specs.mkdir()
    churn = yaml.safe_load((REPO / "include/specs/churn.yaml").read_text())
    churn["hooks"] = {
        "after_ingest": ["tests.integration.hookprobe:record"],
        "after_validate": ["tests.integration.hookprobe:record"],
    }
    (specs / "churn.yaml").write_text(yaml.safe_dump(churn))
    monkeypatch.setenv("LOOPLINE_SPECS_DIR", str(specs))
    monkeypatch.setenv("HOOK_PROBE_LOG", str(pipeline / "hooks.jsonl"))
    write_days(pipeline, n=2)

    run = run_day("churn_daily", days(2)[1])
    assert run.state == "success"
    calls = [json.loads(line) for line in (pipeline / "hooks.jsonl").read_text().splitlines()]
    # After ingest the day's raw rows are there but not yet validated; after validate, both.
    assert calls == [
        {"model": "churn", "partition_date": "2026-01-02", "raw_rows": ROWS, "clean_rows": 0},
        {"model": "churn", "partition_date": "2026-01-02", "raw_rows": ROWS, "clean_rows": ROWS},
    ]
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert set(tis) == {
        "ingest.ingest_files",
        "ingest.after_ingest__record",
        "validate.validate_rows",
        "validate.after_validate__record",
        "predict.score_day",
        "monitor.drift_check",
        "monitor.retrain_trigger",
    }
    assert tis["ingest.ingest_files"].end_date <= tis["ingest.after_ingest__record"].start_date
    assert tis["ingest.after_ingest__record"].end_date <= tis["validate.validate_rows"].start_date


def test_hand_written_dag_composes_the_groups_with_its_own_task(pipeline):
    write_days(pipeline, n=1)
    run = run_day("churn_custom_daily", START)
    assert run.state == "success"
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert tis["count_landed_rows"].xcom_pull(task_ids="count_landed_rows") == ROWS
    assert tis["ingest.ingest_files"].end_date <= tis["count_landed_rows"].start_date
    assert tis["count_landed_rows"].end_date <= tis["validate.validate_rows"].start_date
    assert warehouse.count_rows("clean_rows", "churn", [START]) == ROWS
    assert os.environ["WAREHOUSE_URL"].startswith("postgresql")
