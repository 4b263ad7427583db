"""Files in the landing zone, the labels area, the lake and the reports folder.

A location is a local path or an ``s3://bucket/prefix`` URL; every caller goes through these
functions, so local folders (the embedded default) and S3 or MinIO (production) share one code
path. S3 goes through boto3: credentials come from the usual AWS variables, the endpoint from
``AWS_ENDPOINT_URL_S3`` (MinIO, or a test server on loopback). Large files are streamed through
a local temporary copy, so memory never holds a whole file.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from loopline.adapters import settings

DATA_SUFFIXES = (".parquet", ".csv")
S3 = "s3://"
CHUNK = 8 << 20


@dataclass(frozen=True)
class DataFile:
    path: str
    size: int
    # Changes whenever the file is replaced: mtime in ns (local) or the ETag (S3).
    version: str = ""
    modified: float = 0.0  # seconds since the epoch


def is_s3(location: str) -> bool:
    return location.startswith(S3)


def join(root: str, *parts: str) -> str:
    if is_s3(root):
        return "/".join([root.rstrip("/"), *parts])
    return os.path.join(root, *parts)


def name_of(path: str) -> str:
    return PurePosixPath(path).name


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
    return _client(settings.s3_endpoint())


def create_buckets(
    buckets: Iterable[str], *, endpoint: str, key: str, secret: str, region: str
) -> None:
    """Create S3 buckets on a server this process is not configured for (a new cluster's)."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=region,
    )
    for bucket in buckets:
        client.create_bucket(Bucket=bucket)


def _s3_objects(prefix: str, delimiter: str | None = "/") -> tuple[list[dict], list[str]]:
    """Objects and (with a delimiter) sub-folder prefixes under ``prefix``."""
    bucket, key = _bucket_key(prefix)
    key = key.rstrip("/") + "/" if key else ""
    objects, folders = [], []
    pages = s3_client().get_paginator("list_objects_v2")
    options = {"Delimiter": delimiter} if delimiter else {}
    for page in pages.paginate(Bucket=bucket, Prefix=key, **options):
        objects += page.get("Contents", [])
        folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    return objects, folders


def _is_data(name: str) -> bool:
    return name.endswith(DATA_SUFFIXES) and not name.startswith((".", "_"))


def _s3_file(bucket: str, item: dict) -> DataFile:
    return DataFile(
        f"{S3}{bucket}/{item['Key']}",
        int(item["Size"]),
        item["ETag"].strip('"'),
        item["LastModified"].timestamp(),
    )


def _local_file(path: Path) -> DataFile:
    info = path.stat()
    return DataFile(str(path), info.st_size, str(info.st_mtime_ns), info.st_mtime)


def list_files(folder: str) -> list[DataFile]:
    """Data files (Parquet, CSV) directly in ``folder``, sorted by name; [] if it does not exist."""
    if is_s3(folder):
        bucket, _ = _bucket_key(folder)
        objects, _ = _s3_objects(folder)
        found = [_s3_file(bucket, o) for o in objects if _is_data(name_of(o["Key"]))]
        return sorted(found, key=lambda f: f.path)
    directory = _local(folder)
    if not directory.is_dir():
        return []
    return [
        _local_file(path)
        for path in sorted(directory.iterdir())
        if path.is_file() and _is_data(path.name)
    ]


def outside(path: str, root: str) -> str | None:
    """Where a local file really is, if a symbolic link takes it out of ``root`` (else None):
    a landing zone must not become a way to read any file the pipeline's user can read."""
    if is_s3(path):
        return None
    real, base = _local(path).resolve(), _local(root).resolve()
    return None if real.is_relative_to(base) else str(real)


def list_tree(folder: str) -> list[DataFile]:
    """Every file under ``folder``, at any depth, sorted by path."""
    if is_s3(folder):
        bucket, _ = _bucket_key(folder)
        objects, _ = _s3_objects(folder, delimiter=None)
        return sorted((_s3_file(bucket, o) for o in objects), key=lambda f: f.path)
    directory = _local(folder)
    if not directory.is_dir():
        return []
    return sorted(
        (_local_file(p) for p in directory.rglob("*") if p.is_file()), key=lambda f: f.path
    )


def list_folders(folder: str) -> list[str]:
    """Names of the sub-folders directly in ``folder`` (S3: common prefixes), sorted."""
    if is_s3(folder):
        _, prefixes = _s3_objects(folder)
        return sorted(PurePosixPath(p).name for p in prefixes)
    directory = _local(folder)
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def stat(path: str) -> DataFile:
    """Size and version of one file (FileNotFoundError if it is gone)."""
    if is_s3(path):
        from botocore.exceptions import ClientError

        bucket, key = _bucket_key(path)
        try:
            head = s3_client().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise FileNotFoundError(path) from exc
            raise
        return DataFile(
            path,
            int(head["ContentLength"]),
            head["ETag"].strip('"'),
            head["LastModified"].timestamp(),
        )
    return _local_file(_local(path))


def read_bytes(path: str) -> bytes:
    if is_s3(path):
        bucket, key = _bucket_key(path)
        return s3_client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return _local(path).read_bytes()


def read_bytes_if_any(path: str) -> bytes | None:
    """The file's bytes, or None if there is no such file (local or S3)."""
    if not is_s3(path):
        local = _local(path)
        return local.read_bytes() if local.exists() else None
    from botocore.exceptions import ClientError

    try:
        return read_bytes(path)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def sha256(path: str) -> str:
    """SHA-256 of a file's bytes, streamed (never the whole file in memory)."""
    digest = hashlib.sha256()
    if is_s3(path):
        bucket, key = _bucket_key(path)
        body = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(CHUNK):
            digest.update(chunk)
    else:
        with open(_local(path), "rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def write_bytes(path: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    """Write a whole object; readers never see half of it (S3 PUT, local rename)."""
    if is_s3(path):
        bucket, key = _bucket_key(path)
        s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        return
    local = _local(path)
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(local)


@contextmanager
def local_copy(path: str) -> Iterator[Path]:
    """A local file with the bytes of ``path``: the file itself, or a temporary download."""
    if not is_s3(path):
        yield _local(path)
        return
    bucket, key = _bucket_key(path)
    with tempfile.TemporaryDirectory(dir=settings.scratch_dir()) as tmp:
        local = Path(tmp) / name_of(key)
        s3_client().download_file(bucket, key, str(local))
        yield local


def upload_file(local: Path, path: str) -> None:
    """Publish a finished local file at ``path`` in one step (S3 upload, local rename)."""
    if is_s3(path):
        bucket, key = _bucket_key(path)
        s3_client().upload_file(str(local), bucket, key)
        return
    target = _local(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(local, tmp)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a disk that filled up leaves no half file behind
        raise


def delete(path: str) -> None:
    """Remove one file (absent: nothing to do)."""
    if is_s3(path):
        bucket, key = _bucket_key(path)
        s3_client().delete_object(Bucket=bucket, Key=key)
    else:
        _local(path).unlink(missing_ok=True)


@contextmanager
def writing(path: str) -> Iterator[Path]:
    """Yield a local temporary path to write; on success it appears at ``path`` whole."""
    with tempfile.TemporaryDirectory(dir=settings.scratch_dir()) as tmp:
        local = Path(tmp) / name_of(path)
        yield local
        upload_file(local, path)


def delete_tree(folder: str) -> int:
    """Remove every file under ``folder``; returns how many were removed."""
    if is_s3(folder):
        bucket, _ = _bucket_key(folder)
        objects, _ = _s3_objects(folder, delimiter=None)
        for start in range(0, len(objects), 1000):
            keys = [{"Key": o["Key"]} for o in objects[start : start + 1000]]
            s3_client().delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        return len(objects)
    directory = _local(folder)
    if not directory.exists():
        return 0
    count = sum(1 for p in directory.rglob("*") if p.is_file())
    shutil.rmtree(directory, ignore_errors=True)
    return count


def _suffix(path: str) -> str:
    suffix = PurePosixPath(path).suffix
    if suffix not in DATA_SUFFIXES:
        raise ValueError(f"{path}: unsupported file type (expected .parquet or .csv)")
    return suffix


def parse_frame(data: bytes, path: str) -> pd.DataFrame:
    """Parse a small file as upstream sent it. CSV cells stay text: types are checked by
    validation. (Landing files are streamed by ``loopline.adapters.landing`` instead.)"""
    if _suffix(path) == ".parquet":
        return pq.read_table(pa.BufferReader(data)).to_pandas()
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])


def read_frame(path: str) -> pd.DataFrame:
    return parse_frame(read_bytes(path), path)


def write_frame(frame: pd.DataFrame, path: str) -> None:
    """Write deterministically: the same frame gives the same bytes."""
    buffer = io.BytesIO()
    if _suffix(path) == ".parquet":
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    else:
        frame.to_csv(buffer, index=False, date_format="%Y-%m-%dT%H:%M:%S%z")
    write_bytes(path, buffer.getvalue())
