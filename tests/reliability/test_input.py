"""More input as upstream really sends it: CSV cells with line breaks, a CSV that grows while
it is read, categories in another case, late labels sent twice, label rows that cannot be
read. Each case accounts for every row."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from loopline.adapters import landing, storage, warehouse
from loopline.adapters.specs import get_spec
from loopline.core.errors import FileChangedError
from loopline.steps.labels import ingest_labels
from loopline.steps.validate import validate_day

from .suite import DAY, ROWS, account, case, landed, reasons


def test_csv_cells_with_line_breaks_are_one_row_each(pipeline):
    """Rows are counted when the day is planned: a quoted line break must not count twice."""
    case("csv-line-breaks")
    path = landed(pipeline, file_format="csv")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[:4, "plan"] = "basic\nwith a note"  # five cells with a line break: not a category
    frame.to_csv(path, index=False)
    [data_file] = storage.list_files(str(path.parent))
    assert landing.inspect(data_file, 0, {}).rows == ROWS
    validate_day(get_spec("churn"), DAY, run_id="breaks")
    assert sorted(reasons()) == [0, 1, 2, 3, 4]
    assert account("churn", DAY) == {
        "read": ROWS,
        "clean": ROWS - 5,
        "quarantined": 5,
        "predicted": 0,
    }


def test_a_csv_that_grows_while_it_is_read_is_never_published_short(pipeline, monkeypatch):
    case("csv-grows-while-read")
    path = landed(pipeline, file_format="csv")
    text = path.read_text()
    real = landing.iter_batches

    def growing(file, batch_rows, where, row_groups=None):
        for item in real(file, batch_rows, where, row_groups):
            yield item
            with open(path, "a") as out:  # 40 more rows land while the shard reads
                out.write("".join(text.splitlines(keepends=True)[1:41]))

    monkeypatch.setattr(landing, "iter_batches", growing)
    with pytest.raises(FileChangedError, match="rows read of the|now"):
        validate_day(get_spec("churn"), DAY, run_id="grows")
    assert warehouse.published_partition("churn", DAY) is None
    assert warehouse.count_rows("ingested_files", "churn") == 0


def test_a_category_in_another_case_is_quarantined_as_sent(pipeline):
    case("category-case")
    path = landed(pipeline)
    frame = pd.read_parquet(path)
    frame.loc[0, "plan"] = "Basic"
    frame.to_parquet(path, index=False)
    validate_day(get_spec("churn"), DAY, run_id="case")
    assert reasons() == {0: ["in_set"]}
    [record] = warehouse.query("SELECT record FROM warehouse.quarantine").record
    assert record["plan"] == "Basic"
    account("churn", DAY)


def labels_of(pipeline, arrival: dt.date, frame: pd.DataFrame, name: str) -> None:
    folder = pipeline / "labels" / "churn" / f"date={arrival}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / name, index=False)


def test_a_label_sent_again_later_replaces_the_earlier_one(pipeline):
    case("label-redelivered")
    ids = [f"C{i:07d}" for i in range(10)]
    first = pd.DataFrame({"customer_id": ids, "partition_date": str(DAY), "churned": 0})
    labels_of(pipeline, DAY + dt.timedelta(days=7), first, "a.parquet")
    assert ingest_labels(get_spec("churn"), DAY + dt.timedelta(days=7), run_id="first") == 10
    again = first.head(3).assign(churned=1)
    labels_of(pipeline, DAY + dt.timedelta(days=9), again, "b.parquet")
    assert ingest_labels(get_spec("churn"), DAY + dt.timedelta(days=9), run_id="again") == 3
    stored = warehouse.query(
        "SELECT entity_id, label FROM warehouse.labels WHERE model = 'churn' ORDER BY entity_id"
    )
    assert len(stored) == 10 and stored.label.tolist() == [1.0] * 3 + [0.0] * 7


def test_label_rows_that_cannot_be_read_are_quarantined_the_rest_loaded(pipeline):
    case("bad-label-rows")
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", None, "C4", "C5"],
            "partition_date": [str(DAY), "not a day", str(DAY), str(DAY), str(DAY)],
            "churned": ["yes", "no", "1", "maybe", "0"],
        }
    )
    arrival = DAY + dt.timedelta(days=7)
    labels_of(pipeline, arrival, frame, "mixed.parquet")
    assert ingest_labels(get_spec("churn"), arrival, run_id="mixed") == 2
    bad = warehouse.query(
        "SELECT row_number, reasons FROM warehouse.labels_quarantine ORDER BY row_number"
    )
    assert bad.row_number.tolist() == [1, 2, 3]
    details = [r[0]["detail"] for r in bad.reasons]
    assert "partition_date is 'not a day'" in details[0] and "customer_id is null" in details[1]
    assert "churned is 'maybe'" in details[2]
    # every row is somewhere: 2 labels + 3 quarantined = 5 sent
    assert warehouse.count_rows("labels", "churn") + len(bad) == len(frame)
