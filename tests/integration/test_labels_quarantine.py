"""Bad label rows are quarantined apart from input rows: re-validating the input of their
arrival day must not delete them, and they never count as quarantined input."""

from __future__ import annotations

import datetime as dt

from loopline import storage, warehouse
from loopline.ingest import ingest_day
from loopline.labels import ingest_labels
from loopline.simulate import simulate
from loopline.spec import get_spec
from loopline.validate import validate_day

DAY = dt.date(2026, 4, 1)


def test_revalidating_a_day_keeps_the_label_rows_quarantined_on_it(pipeline):
    spec = get_spec("churn")
    landing, labels = str(pipeline / "landing"), str(pipeline / "labels")
    simulate(landing=landing, labels=labels, start=DAY, days=1, rows_per_day=50, label_delay_days=0)
    [label_file] = storage.list_files(storage.join(labels, "churn", f"date={DAY}"))
    frame = storage.read_frame(label_file.path)
    frame.loc[[3, 7], spec.target.column] = 5  # not 0 or 1
    storage.write_frame(frame, label_file.path)

    ingest_day(spec, DAY, run_id="r1", landing=landing)
    first = validate_day(spec, DAY, run_id="r1")
    assert ingest_labels(spec, DAY, run_id="r1", root=labels) == 48
    validate_day(spec, DAY, run_id="r2")  # a re-run of the day's validation

    held = warehouse.query(
        "SELECT row_number, reasons FROM warehouse.labels_quarantine WHERE model = 'churn' "
        "AND partition_date = :d ORDER BY row_number",
        {"d": DAY},
    )
    assert held["row_number"].tolist() == [3, 7]
    assert "is not 0 or 1" in held["reasons"][0][0]["detail"]
    input_rows = warehouse.count_rows("quarantine", "churn", [DAY])
    assert input_rows == first["rows_quarantined"]
    assert input_rows + warehouse.count_rows("clean_rows", "churn", [DAY]) == 50
