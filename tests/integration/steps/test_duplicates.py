"""The day-level check for repeated entity ids, on the shards' key files in a local lake folder:
exact whatever the 64-bit hashes do, every repeat after the first in file, then row, order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from loopline.adapters import lake
from loopline.steps import publish
from loopline.steps.ingest import ShardResult
from loopline.steps.publish import find_duplicates


def keys_file(folder, index: int, ids: list[str], clean: list[bool] | None = None) -> ShardResult:
    path = folder / f"keys-{index}.parquet"
    table = pa.table(
        {
            "file_index": np.full(len(ids), index, dtype=np.int32),
            "row_number": np.arange(len(ids), dtype=np.int64),
            "clean": clean if clean is not None else [True] * len(ids),
            "entity_id": ids,
        },
        schema=lake.KEYS_SCHEMA,
    )
    pq.write_table(table, path)
    return ShardResult(index, str(folder / "clean"), str(folder / "bad"), str(path))


@pytest.mark.parametrize("hashes", ["real", "all colliding"])
def test_every_repeat_after_the_first_is_found_exactly(tmp_path, monkeypatch, hashes):
    if hashes == "all colliding":  # only the text comparison can tell the ids apart now
        monkeypatch.setattr(publish, "_hash_ids", lambda keys: np.zeros(keys.num_rows, np.uint64))
    shards = [
        keys_file(tmp_path, 0, ["a", "b", "c", "b"], clean=[True, True, True, False]),
        keys_file(tmp_path, 1, ["c", "d", "a", "e", "a"]),
    ]
    found = find_duplicates(shards)
    rows = found.rows
    assert sorted(zip(rows.file_index, rows.row_number, rows.entity_id, strict=True)) == [
        (0, 3, "b"),
        (1, 0, "c"),
        (1, 2, "a"),
        (1, 4, "a"),
    ]
    assert found.keyed() == {(0, 3), (1, 0), (1, 2), (1, 4)}
    assert sorted(found.clean_rows().row_number) == [0, 2, 4]  # (0, 3) was already bad


def test_a_day_without_repeats_has_none(tmp_path):
    shards = [keys_file(tmp_path, 0, ["a", "b"]), keys_file(tmp_path, 1, ["c"])]
    assert find_duplicates(shards).rows.empty
    assert find_duplicates([]).rows.empty
