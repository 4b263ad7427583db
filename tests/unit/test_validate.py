"""Validation logic on small in-memory days: each row ends up clean or quarantined, with reasons."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from loopline.simulate import generate_day
from loopline.spec import get_spec
from loopline.validate import BatchValidationError, check_columns, clean_rows_frame, validate_rows

DAY = dt.date(2026, 2, 1)
SPEC = get_spec("churn")
FILE = "/landing/churn/date=2026-02-01/part-000.parquet"


def as_raw(frame: pd.DataFrame, source: str = FILE) -> pd.DataFrame:
    """What ``warehouse.read_raw`` returns: record columns as parsed from JSON, plus metadata."""
    text = frame.to_json(orient="records", lines=True, date_format="iso").strip()
    lines = text.split("\n") if text else []
    raw = pd.DataFrame.from_records([json.loads(line) for line in lines], columns=frame.columns)
    return raw.assign(__source_file=source, __row_number=range(len(raw)), __record=lines)


@pytest.fixture
def day() -> pd.DataFrame:
    return generate_day(DAY, 0, rows=200, seed=1)[0]


def reasons_of(outcome, entity: str) -> list[tuple[str, str]]:
    row = outcome.quarantine.set_index("entity_id").loc[entity]
    return [(r["column"], r["check"]) for r in json.loads(row["reasons"])]


def test_a_clean_day_passes_whole(day):
    outcome = validate_rows(SPEC, DAY, as_raw(day))
    assert outcome.summary == {"rows_read": 200, "rows_clean": 200, "rows_quarantined": 0}
    assert outcome.failed_expectations == []
    assert outcome.clean["customer_id"].tolist() == day["customer_id"].tolist()
    assert outcome.clean["tenure_months"].dtype == np.float64


def test_each_row_failure_is_quarantined_with_every_reason(day):
    day = day.astype({"num_devices": object, "plan": object, "monthly_charges": object})
    ids = day["customer_id"]
    day.loc[0, "tenure_months"] = None  # not nullable
    day.loc[1, "monthly_charges"] = -5.0  # below min
    day.loc[2, "plan"] = "platinum"  # unknown category
    day.loc[3, "num_devices"] = "three"  # bad type
    day.loc[4, ["tenure_months", "plan", "discount_pct"]] = [None, "gold", 101.0]  # three at once
    day.loc[5, "total_charges"] = None  # nullable: fine
    outcome = validate_rows(SPEC, DAY, as_raw(day))

    assert outcome.summary == {"rows_read": 200, "rows_clean": 195, "rows_quarantined": 5}
    assert reasons_of(outcome, ids[0]) == [("tenure_months", "not_null")]
    assert reasons_of(outcome, ids[1]) == [("monthly_charges", "in_range")]
    assert reasons_of(outcome, ids[2]) == [("plan", "in_set")]
    assert reasons_of(outcome, ids[3]) == [("num_devices", "type")]  # not also "not_null"
    assert sorted(reasons_of(outcome, ids[4])) == [
        ("discount_pct", "in_range"),
        ("plan", "in_set"),
        ("tenure_months", "not_null"),
    ]
    assert ids[5] in set(outcome.clean["customer_id"])
    failed = {(f["column"], f["check"]): f["unexpected_count"] for f in outcome.failed_expectations}
    assert failed == {
        ("tenure_months", "not_null"): 2,
        ("monthly_charges", "in_range"): 1,
        ("plan", "in_set"): 2,
        ("num_devices", "type"): 1,
        ("discount_pct", "in_range"): 1,
    }


def test_quarantine_keeps_the_original_record(day):
    day = day.astype({"num_devices": object})
    day.loc[7, "num_devices"] = "three"
    outcome = validate_rows(SPEC, DAY, as_raw(day))
    row = outcome.quarantine.iloc[0]
    record = json.loads(row["record"])
    assert record["num_devices"] == "three"
    assert record["customer_id"] == day.loc[7, "customer_id"]
    assert (row["source_file"], row["row_number"]) == (FILE, 7)
    detail = json.loads(row["reasons"])[0]["detail"]
    assert detail == "not a number: 'three'"


def test_repeated_entity_and_timestamps_outside_the_day(day):
    day.loc[10, "customer_id"] = day.loc[11, "customer_id"]  # the later row is the repeat
    day.loc[12, "snapshot_ts"] = pd.Timestamp("2026-02-02T00:00:00Z")
    day["snapshot_ts"] = day["snapshot_ts"].astype(object)
    day.loc[13, "snapshot_ts"] = "yesterday"
    outcome = validate_rows(SPEC, DAY, as_raw(day))
    quarantined = outcome.quarantine.set_index("row_number")
    assert sorted(quarantined.index) == [11, 12, 13]
    assert json.loads(quarantined.loc[11, "reasons"])[0]["check"] == "unique"
    assert json.loads(quarantined.loc[12, "reasons"])[0]["check"] == "in_partition"
    assert json.loads(quarantined.loc[13, "reasons"])[0]["check"] == "type"
    assert outcome.summary["rows_clean"] + outcome.summary["rows_quarantined"] == 200


def test_csv_text_cells_are_read_as_numbers(day):
    text = day.astype(str).replace({"nan": None, "None": None})
    outcome = validate_rows(SPEC, DAY, as_raw(text))
    assert outcome.summary["rows_quarantined"] == 0
    np.testing.assert_allclose(outcome.clean["monthly_charges"], day["monthly_charges"])


def test_integer_entity_ids(tmp_path, day):
    spec = SPEC.model_copy(
        update={"entity_id": SPEC.entity_id.model_copy(update={"dtype": "integer"})}
    )
    day = day.assign(customer_id=[str(i) for i in range(200)])
    day.loc[3, "customer_id"] = "A17"
    outcome = validate_rows(spec, DAY, as_raw(day))
    assert outcome.quarantine["row_number"].tolist() == [3]
    assert outcome.clean["customer_id"].iloc[0] == "0"


def test_too_many_bad_rows_fail_the_day_naming_model_date_file_column(day):
    day.loc[:20, "region"] = None  # 21 of 200 = 10.5% > 5%
    with pytest.raises(BatchValidationError) as info:
        validate_rows(SPEC, DAY, as_raw(day))
    message = str(info.value)
    assert message.startswith(f"model 'churn', date 2026-02-01, file {FILE}, column 'region'")
    assert "21 of 200 rows (10.5%)" in message
    assert info.value.column == "region"


def test_empty_day_fails(day):
    with pytest.raises(BatchValidationError, match="model 'churn', date 2026-02-01: empty day"):
        validate_rows(SPEC, DAY, as_raw(day.iloc[:0]))


def test_missing_or_renamed_column_names_the_file():
    good = list(SPEC.required_columns)
    renamed = [c if c != "tenure_months" else "tenure" for c in good]
    with pytest.raises(BatchValidationError) as info:
        check_columns(SPEC, DAY, {"a.parquet": good, "b.csv": renamed})
    assert str(info.value) == (
        "model 'churn', date 2026-02-01, file b.csv, column 'tenure_months': required column(s) "
        "['tenure_months'] missing (present but unexpected: ['tenure']; renamed?)"
    )
    assert check_columns(SPEC, DAY, {"a.parquet": [*good, "churned", "extra"]}) == ["extra"]
    with pytest.raises(BatchValidationError, match="no files were ingested"):
        check_columns(SPEC, DAY, {})


def test_clean_rows_carry_typed_features_as_json(day):
    outcome = validate_rows(SPEC, DAY, as_raw(day))
    frame = clean_rows_frame(SPEC, outcome.clean, "run-1")
    first = json.loads(frame["features"].iloc[0])
    assert set(first) == set(SPEC.feature_names)
    assert first["tenure_months"] == day.loc[0, "tenure_months"]
    assert first["plan"] == day.loc[0, "plan"]
    assert frame["entity_id"].tolist() == day["customer_id"].tolist()
