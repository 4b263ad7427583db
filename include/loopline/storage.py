"""Reading and writing files in the landing zone, the labels area and the reports folder.

A location is a local path or an ``s3://bucket/prefix`` URL; every caller goes through these
functions, so local folders (the embedded default) and S3 or MinIO (production) share one code
path. S3 goes through boto3: credentials come from the usual AWS variables, the endpoint from
``AWS_ENDPOINT_URL_S3`` (MinIO, or a test server on loopback).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopline import config

DATA_SUFFIXES = (".parquet", ".csv")
S3 = "s3://"


@dataclass(frozen=True)
class DataFile:
    path: str
    size: int


def is_s3(location: str) -> bool:
    return location.startswith(S3)


def join(root: str, *parts: str) -> str:
    if is_s3(root):
        return "/".join([root.rstrip("/"), *parts])
    return os.path.join(root, *parts)


def _local(path: str) -> Path:
    if "://" in path and not path.startswith("file://"):
        raise ValueError(f"{path}: unsupported storage URL (a local path, file:// or s3://)")
    return Path(path.removeprefix("file://"))


def _bucket_key(url: str) -> tuple[str, str]:
    bucket, _, key = url.removeprefix(S3).partition("/")
    if not bucket:
        raise ValueError(f"{url}: an S3 URL needs a bucket (s3://bucket/prefix)")
    return bucket, key


@lru_cache(maxsize=4)
def _client(endpoint: str | None):
    import boto3
    from botocore.config import Config

    retries = Config(retries={"max_attempts": 5, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint, config=retries)


def s3_client():
    """A boto3 S3 client for the configured endpoint (one per endpoint, thread-safe)."""
    return _client(config.s3_endpoint())


def _s3_list(folder: str) -> tuple[list[dict], list[str]]:
    """Objects and sub-folder prefixes directly under ``folder``."""
    bucket, key = _bucket_key(folder)
    prefix = key.rstrip("/") + "/" if key else ""
    objects, folders = [], []
    pages = s3_client().get_paginator("list_objects_v2")
    for page in pages.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        objects += page.get("Contents", [])
        folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return objects, folders


def _is_data(name: str) -> bool:
    return name.endswith(DATA_SUFFIXES) and not name.startswith((".", "_"))


def list_files(folder: str) -> list[DataFile]:
    """Data files (Parquet, CSV) directly in ``folder``, sorted by name; [] if it does not exist."""
    if is_s3(folder):
        bucket, _ = _bucket_key(folder)
        objects, _ = _s3_list(folder)
        found = [
            DataFile(f"{S3}{bucket}/{o['Key']}", int(o["Size"]))
            for o in objects
            if _is_data(PurePosixPath(o["Key"]).name)
        ]
        return sorted(found, key=lambda f: f.path)
    directory = _local(folder)
    if not directory.is_dir():
        return []
    return [
        DataFile(str(path), path.stat().st_size)
        for path in sorted(directory.iterdir())
        if path.is_file() and _is_data(path.name)
    ]


def list_folders(folder: str) -> list[str]:
    """Names of the sub-folders directly in ``folder`` (S3: common prefixes), sorted."""
    if is_s3(folder):
        _, prefixes = _s3_list(folder)
        return sorted(PurePosixPath(p).name for p in prefixes)
    directory = _local(folder)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def read_bytes(path: str) -> bytes:
    if is_s3(path):
        bucket, key = _bucket_key(path)
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return _local(path).read_bytes()


def write_bytes(path: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    """Write a whole object; readers never see half of it (S3 PUT, local rename)."""
    if is_s3(path):
        bucket, key = _bucket_key(path)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return
    local = _local(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(local)


def _suffix(path: str) -> str:
    suffix = PurePosixPath(path).suffix
    if suffix not in DATA_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type (expected .parquet or .csv)")
    return suffix


def parse_frame(data: bytes, path: str) -> pd.DataFrame:
    """Parse a file as upstream sent it. CSV cells stay text: types are checked by validation."""
    if _suffix(path) == ".parquet":
        return pq.read_table(pa.BufferReader(data)).to_pandas()
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])


def read_frame(path: str) -> pd.DataFrame:
    return parse_frame(read_bytes(path), path)


def read_file(path: str) -> tuple[pd.DataFrame, str]:
    """The file as a frame, and the SHA-256 of its bytes (read once)."""
    data = read_bytes(path)
    return parse_frame(data, path), hashlib.sha256(data).hexdigest()


def write_frame(frame: pd.DataFrame, path: str) -> None:
    """Write deterministically: the same frame gives the same bytes."""
    buffer = io.BytesIO()
    if _suffix(path) == ".parquet":
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    else:
        frame.to_csv(buffer, index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    write_bytes(path, buffer.getvalue())
