"""Reading and writing data files in the landing zone and the labels area.

Paths are plain local paths here; every caller goes through these functions so that object
storage can be served by the same code path.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DATA_SUFFIXES = (".parquet", ".csv")


@dataclass(frozen=True)
class DataFile:
    path: str
    size: int
    sha256: str


def join(root: str, *parts: str) -> str:
    return os.path.join(root, *parts)


def _local(path: str) -> Path:
    if "://" in path and not path.startswith("file://"):
        raise ValueError(f"{path}: unsupported storage URL (local paths only)")
    return Path(path.removeprefix("file://"))


def list_files(folder: str) -> list[DataFile]:
    """Data files (Parquet, CSV) directly in ``folder``, sorted by name; [] if it does not exist."""
    directory = _local(folder)
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if path.suffix in DATA_SUFFIXES and not path.name.startswith((".", "_")):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            found.append(DataFile(str(path), path.stat().st_size, digest))
    return found


def read_frame(path: str) -> pd.DataFrame:
    """Read a file as upstream sent it. CSV cells stay text: types are checked by validation."""
    local = _local(path)
    if local.suffix == ".parquet":
        return pq.read_table(local).to_pandas()
    if local.suffix == ".csv":
        return pd.read_csv(local, dtype=str, keep_default_na=False, na_values=[""])
    raise ValueError(f"{path}: unsupported file type (expected .parquet or .csv)")


def write_frame(frame: pd.DataFrame, path: str) -> None:
    """Write deterministically: the same frame gives the same bytes."""
    local = _local(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.tmp")
    if local.suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp)
    elif local.suffix == ".csv":
        frame.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    else:
        raise ValueError(f"{path}: unsupported file type (expected .parquet or .csv)")
    tmp.replace(local)
