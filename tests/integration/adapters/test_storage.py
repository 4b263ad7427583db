"""One storage module for local folders and S3: the same calls, the same bytes, the same
listings, against a real S3-API server on loopback."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
from loopline.adapters import storage

FRAME = pd.DataFrame(
    {
        "customer_id": ["c1", "c2", None],
        "tenure": [1.5, None, 3.0],
        "when": pd.to_datetime(["2026-01-01", "2026-01-02", None], utc=True),
    }
)


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "zone")
    request.getfixturevalue("s3_endpoint")
    return f"s3://loopline/storage-test/{tmp_path.name}"


def test_files_are_listed_read_and_hashed_alike(root):
    day = storage.join(root, "churn", "date=2026-01-01")
    for name in ("b.parquet", "a.csv", ".hidden.csv", "_SUCCESS.csv"):
        storage.write_frame(FRAME, storage.join(day, name))
    storage.write_bytes(storage.join(day, "notes.txt"), b"not data")
    storage.write_frame(FRAME, storage.join(day, "nested", "deeper.parquet"))

    files = storage.list_files(day)
    assert [f.path.rsplit("/", 1)[-1] for f in files] == ["a.csv", "b.parquet"]
    assert all(f.path.startswith(root) and f.size > 0 for f in files)
    assert storage.list_folders(storage.join(root, "churn")) == ["date=2026-01-01"]
    assert storage.list_folders(day) == ["nested"]

    parquet = storage.read_frame(files[1].path)
    pd.testing.assert_frame_equal(parquet, FRAME)
    assert (
        storage.sha256(files[1].path)
        == hashlib.sha256(storage.read_bytes(files[1].path)).hexdigest()
    )
    assert storage.stat(files[1].path).version == files[1].version  # unchanged since listed
    tree = [f.path.removeprefix(day) for f in storage.list_tree(day)]
    assert "/nested/deeper.parquet" in tree and len(tree) == 6
    with storage.local_copy(files[1].path) as local:
        assert local.read_bytes() == storage.read_bytes(files[1].path)
    assert storage.delete_tree(storage.join(day, "nested")) == 1
    assert storage.list_folders(day) == []
    csv = storage.read_frame(files[0].path)
    assert csv["customer_id"].tolist()[:2] == ["c1", "c2"] and pd.isna(csv["customer_id"][2])
    assert csv["tenure"].tolist()[0] == "1.5"  # CSV cells stay text until validation


def test_missing_folders_are_empty_not_errors(root):
    assert storage.list_files(storage.join(root, "nobody", "date=2026-01-01")) == []
    assert storage.list_folders(storage.join(root, "nobody")) == []


def test_local_and_s3_hold_the_same_bytes(s3_endpoint, tmp_path):
    local = str(tmp_path / "x.parquet")
    remote = f"s3://loopline/storage-test/{tmp_path.name}/x.parquet"
    storage.write_frame(FRAME, local)
    storage.write_frame(FRAME, remote)
    assert storage.read_bytes(local) == storage.read_bytes(remote)


def test_unsupported_locations_and_types_are_named(tmp_path):
    with pytest.raises(ValueError, match="gs://bucket/x.csv: unsupported storage URL"):
        storage.read_bytes("gs://bucket/x.csv")
    with pytest.raises(ValueError, match="x.json: unsupported file type"):
        storage.write_frame(FRAME, str(tmp_path / "x.json"))
    with pytest.raises(ValueError, match="needs a bucket"):
        storage.list_files("s3:///prefix")
