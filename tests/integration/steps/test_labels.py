"""Late labels on a real warehouse: the encodings people send, the value that was refused, bad
label rows apart from input rows, and a label file that cannot be used named with its fix."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from loopline.adapters import storage, warehouse
from loopline.adapters.specs import get_spec
from loopline.core.errors import LabelFileError
from loopline.dev.simulate import simulate
from loopline.steps.labels import ingest_labels
from loopline.steps.validate import validate_day

DAY = dt.date(2026, 4, 1)


def label_file(pipeline) -> tuple[str, pd.DataFrame]:
    landing, labels = str(pipeline / "landing"), str(pipeline / "labels")
    simulate(landing=landing, labels=labels, start=DAY, days=1, rows_per_day=50, label_delay_days=0)
    [found] = storage.list_files(storage.join(labels, "churn", f"date={DAY}"))
    return found.path, storage.read_frame(found.path)


def test_revalidating_a_day_keeps_the_label_rows_quarantined_on_it(pipeline):
    spec = get_spec("churn")
    path, frame = label_file(pipeline)
    frame.loc[[3, 7], spec.target.column] = 5  # not 0 or 1
    storage.write_frame(frame, path)

    first = validate_day(spec, DAY, run_id="r1")
    assert ingest_labels(spec, DAY, run_id="r1") == 48
    validate_day(spec, DAY, run_id="r2")  # a re-run of the day's validation

    held = warehouse.query(
        "SELECT row_number, reasons, record FROM warehouse.labels_quarantine "
        "WHERE model = 'churn' AND partition_date = %(d)s ORDER BY row_number",
        {"d": DAY},
    )
    assert held["row_number"].tolist() == [3, 7]
    assert held["reasons"][0][0]["detail"] == "churned is 5, not 0/1, true/false or yes/no"
    assert held["record"][0]["churned"] == 5
    input_rows = warehouse.count_rows("quarantine", "churn", [DAY])
    assert input_rows == first.rows_quarantined == 0


def test_binary_labels_may_be_sent_as_true_false_or_yes_no(pipeline):
    spec = get_spec("churn")
    path, frame = label_file(pipeline)
    truth = frame[spec.target.column].astype(int)
    spelled = truth.map({0: "No", 1: "YES"}).astype(object)
    spelled.iloc[:10] = truth.iloc[:10].map({0: "false", 1: "True"})
    spelled.iloc[10:14] = truth.iloc[10:14].map({0: "0", 1: "1.0"})
    spelled.iloc[14] = "maybe"
    storage.write_frame(frame.assign(churned=spelled), path.replace(".parquet", ".csv"))
    Path(path).unlink()  # only the CSV remains

    assert ingest_labels(spec, DAY, run_id="r1") == 49
    loaded = warehouse.query(
        "SELECT entity_id, label FROM warehouse.labels WHERE model = 'churn'"
    ).set_index("entity_id")["label"]
    expected = truth.set_axis(frame["customer_id"]).drop(frame["customer_id"][14])
    pd.testing.assert_series_equal(
        loaded.sort_index(), expected.astype(float).sort_index(), check_names=False
    )
    [reason] = warehouse.query("SELECT reasons FROM warehouse.labels_quarantine").reasons
    assert reason[0]["detail"] == "churned is 'maybe', not 0/1, true/false or yes/no"


def test_a_label_file_without_the_target_column_names_the_file_and_the_fix(pipeline):
    spec = get_spec("churn")
    path, frame = label_file(pipeline)
    storage.write_frame(frame.drop(columns=["churned"]), path)
    with pytest.raises(LabelFileError) as info:
        ingest_labels(spec, DAY, run_id="r1")
    message = str(info.value)
    assert message.startswith(f"model 'churn', date {DAY}, file {path}, column 'churned'")
    assert "label files carry ['customer_id', 'partition_date', 'churned']" in message
    assert not info.value.retryable
