"""Validation rules on small in-memory batches: each row is clean or bad, with every reason."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from loopline.adapters.specs import get_spec
from loopline.core.categories import category_text
from loopline.core.columns import ENTITY_ID, EVENT_TS
from loopline.core.errors import BatchValidationError
from loopline.core.validation import (
    DayCounts,
    RowValidator,
    check_columns,
    judge_day,
    validate_batch,
)
from loopline.dev.simulate import generate_day

DAY = dt.date(2026, 2, 1)
SPEC = get_spec("churn")
FILE = "/landing/churn/date=2026-02-01/part-000.parquet"


@pytest.fixture(scope="module")
def validator() -> RowValidator:
    return RowValidator(SPEC)


@pytest.fixture
def day() -> pd.DataFrame:
    return generate_day(DAY, 0, rows=200, seed=1)[0]


def reasons_of(outcome, row: int) -> list[tuple[str, str]]:
    return [(r["column"], r["check"]) for r in outcome.reasons.by_row.get(row, [])]


def test_a_clean_batch_passes_whole(day, validator):
    outcome = validate_batch(SPEC, DAY, day, validator)
    assert not outcome.bad.any()
    assert outcome.clean[ENTITY_ID].tolist() == day["customer_id"].tolist()
    assert outcome.clean["tenure_months"].dtype == np.float64
    assert outcome.clean[EVENT_TS].dt.tz is not None


def test_each_row_failure_has_every_reason(day, validator):
    day = day.astype({"num_devices": object, "plan": object, "monthly_charges": object})
    day.loc[0, "tenure_months"] = None  # not nullable
    day.loc[1, "monthly_charges"] = -5.0  # below min
    day.loc[2, "plan"] = "platinum"  # unknown category
    day.loc[3, "num_devices"] = "three"  # bad type
    day.loc[4, ["tenure_months", "plan", "discount_pct"]] = [None, "gold", 101.0]  # three at once
    day.loc[5, "total_charges"] = None  # nullable: fine
    day.loc[6, "customer_id"] = None  # no id
    day.loc[7, "customer_id"] = "   "  # a blank id is no id
    outcome = validate_batch(SPEC, DAY, day, validator)

    assert np.flatnonzero(outcome.bad).tolist() == [0, 1, 2, 3, 4, 6, 7]
    assert reasons_of(outcome, 6) == reasons_of(outcome, 7) == [("customer_id", "not_null")]
    assert reasons_of(outcome, 0) == [("tenure_months", "not_null")]
    assert reasons_of(outcome, 1) == [("monthly_charges", "in_range")]
    assert reasons_of(outcome, 2) == [("plan", "in_set")]
    assert reasons_of(outcome, 3) == [("num_devices", "type")]  # not also "not_null"
    assert sorted(reasons_of(outcome, 4)) == [
        ("discount_pct", "in_range"),
        ("plan", "in_set"),
        ("tenure_months", "not_null"),
    ]
    assert dict(outcome.reasons.counts) == {
        ("tenure_months", "not_null"): 2,
        ("monthly_charges", "in_range"): 1,
        ("plan", "in_set"): 2,
        ("num_devices", "type"): 1,
        ("discount_pct", "in_range"): 1,
        ("customer_id", "not_null"): 2,
    }
    assert outcome.reasons.by_row[3][0]["detail"] == "not a number: 'three'"


def test_non_finite_numbers_are_a_reason_of_their_own_in_every_format(day, validator):
    day.loc[7, "monthly_charges"] = np.inf  # Parquet carries inf as a float
    day.loc[8, "total_charges"] = -np.inf  # even in a nullable column
    text = day.astype(str).replace({"nan": None, "None": None})  # CSV: text cells
    for frame in (day, text):
        outcome = validate_batch(SPEC, DAY, frame, validator)
        assert reasons_of(outcome, 7) == [("monthly_charges", "finite")]
        assert reasons_of(outcome, 8) == [("total_charges", "finite")]
        assert outcome.reasons.by_row[7][0]["detail"] == "inf is not a finite number"


def test_timestamps_outside_the_day_and_unparseable(day, validator):
    day["snapshot_ts"] = day["snapshot_ts"].astype(object)
    day.loc[12, "snapshot_ts"] = pd.Timestamp("2026-02-02T00:00:00Z")
    day.loc[13, "snapshot_ts"] = "yesterday"
    outcome = validate_batch(SPEC, DAY, day, validator)
    assert np.flatnonzero(outcome.bad).tolist() == [12, 13]
    assert reasons_of(outcome, 12) == [("snapshot_ts", "in_partition")]
    assert reasons_of(outcome, 13) == [("snapshot_ts", "type")]


def test_csv_text_cells_are_read_as_numbers(day, validator):
    text = day.astype(str).replace({"nan": None, "None": None})
    outcome = validate_batch(SPEC, DAY, text, validator)
    assert not outcome.bad.any()
    np.testing.assert_allclose(outcome.clean["monthly_charges"], day["monthly_charges"])


def test_integer_entity_ids(day):
    spec = SPEC.model_copy(
        update={"entity_id": SPEC.entity_id.model_copy(update={"dtype": "integer"})}
    )
    day = day.assign(customer_id=[str(i) for i in range(200)])
    day.loc[3, "customer_id"] = "A17"
    day.loc[4, "customer_id"] = "4.5"
    outcome = validate_batch(spec, DAY, day, RowValidator(spec))
    assert np.flatnonzero(outcome.bad).tolist() == [3, 4]
    assert outcome.clean[ENTITY_ID].iloc[0] == "0"


def test_an_integer_coded_category_reads_the_same_with_or_without_nulls():
    assert category_text(pd.Series([1.0, 2.0, None])).tolist() == ["1", "2", None]
    assert category_text(pd.Series([1, 2])).tolist() == ["1", "2"]
    assert category_text(pd.Series(["1", "b"], dtype="str")).tolist() == ["1", "b"]


def test_too_many_bad_rows_fail_the_day_naming_model_date_file_column():
    counts = DayCounts(rows_read=200, rows_bad=21, bad_files={FILE})
    counts.failed[("region", "not_null")] = 21
    with pytest.raises(BatchValidationError) as info:
        judge_day(SPEC, DAY, counts, [FILE])
    message = str(info.value)
    assert message.startswith(f"model 'churn', date 2026-02-01, file {FILE}, column 'region'")
    assert "21 of 200 rows (10.5%)" in message
    assert "validation.max_bad_row_share" in message  # says what to change
    assert info.value.column == "region" and not info.value.retryable


def test_empty_day_fails():
    with pytest.raises(BatchValidationError, match="model 'churn', date 2026-02-01, file a.csv"):
        judge_day(SPEC, DAY, DayCounts(), ["a.csv"])


def test_missing_or_renamed_column_names_the_file():
    good = list(SPEC.required_columns)
    renamed = [c if c != "tenure_months" else "tenure" for c in good]
    with pytest.raises(BatchValidationError) as info:
        check_columns(SPEC, DAY, "b.csv", renamed)
    assert str(info.value).startswith(
        "model 'churn', date 2026-02-01, file b.csv, column 'tenure_months': required column(s) "
        "['tenure_months'] missing (present but unexpected: ['tenure']; renamed?)"
    )
    assert check_columns(SPEC, DAY, "a.parquet", [*good, "churned", "extra"]) == ["extra"]
