"""Ingest a day: find the model-day's landing files, check each one's columns, and cut the day
into shards for validation (the plan, and what each shard reports back to the publish step).
The landing files are the raw record (immutable, listed with their SHA-256 in
``warehouse.ingested_files`` when the day is published); no row is copied anywhere here.

A file lacking a required column fails the day at once, naming the file and the column, before
any shard runs; the failure is recorded against the day, whose published rows stay untouched.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field

from loopline.adapters import lake, landing, settings, storage, warehouse
from loopline.core.errors import BatchValidationError, LandingMissingError, UnreadableFileError
from loopline.core.spec import ModelSpec
from loopline.core.validation import check_columns

log = logging.getLogger(__name__)


@dataclass
class ShardResult:
    """What one validation shard wrote and counted (under its attempt's folder), for the
    publish step; small enough for XCom."""

    index: int
    clean_path: str
    quarantine_path: str
    keys_path: str
    rows_read: int = 0
    rows_clean: int = 0
    rows_bad: int = 0
    failed: dict[str, int] = field(default_factory=dict)  # "column|check" -> rows
    bad_files: list[str] = field(default_factory=list)
    rows_by_file: dict[str, int] = field(default_factory=dict)
    truncated: bool = False  # stopped writing bad rows' records (the day fails anyway)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ShardResult:
        return cls(**data)


@dataclass(frozen=True)
class Piece:
    """A file, or a range of its Parquet row groups ``[start, stop)``."""

    file: landing.LandingFile
    row_groups: tuple[int, int] | None = None

    @property
    def rows(self) -> int | None:
        if self.row_groups is None:
            return self.file.rows
        start, stop = self.row_groups
        return sum(self.file.row_groups[start:stop])


@dataclass(frozen=True)
class Shard:
    """What one mapped validation task reads; small enough for XCom."""

    model: str
    day: dt.date
    attempt: str
    index: int
    count: int
    pieces: list[Piece]
    # Known when every file is Parquet: past this many bad rows the day fails anyway, so a
    # shard stops writing bad rows' records (it keeps counting them).
    quarantine_limit: int | None = None

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "day": self.day.isoformat(),
            "attempt": self.attempt,
            "index": self.index,
            "count": self.count,
            "quarantine_limit": self.quarantine_limit,
            "pieces": [{"file": p.file.as_dict(), "row_groups": p.row_groups} for p in self.pieces],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Shard:
        pieces = [
            Piece(
                landing.LandingFile(**p["file"]),
                tuple(p["row_groups"]) if p["row_groups"] is not None else None,
            )
            for p in data["pieces"]
        ]
        return cls(
            data["model"],
            dt.date.fromisoformat(data["day"]),
            data["attempt"],
            data["index"],
            data["count"],
            pieces,
            data.get("quarantine_limit"),
        )


@dataclass
class DayPlan:
    model: str
    day: dt.date
    attempt: str
    files: list[landing.LandingFile]
    shards: list[Shard] = field(default_factory=list)

    @classmethod
    def from_shards(cls, shards: list[dict]) -> DayPlan:
        """The plan again from its shards (what the plan task puts in XCom)."""
        parsed = [Shard.from_dict(s) for s in shards]
        files = {p.file.index: p.file for s in parsed for p in s.pieces}
        first = parsed[0]
        return cls(first.model, first.day, first.attempt, [files[i] for i in sorted(files)], parsed)

    @property
    def rows(self) -> int | None:
        """Rows of the day, if every file says (Parquet)."""
        counts = [f.rows for f in self.files]
        return None if None in counts else sum(counts)


def day_folder(root: str, model: str, day: dt.date) -> str:
    return storage.join(root, model, f"date={day.isoformat()}")


def _pieces(file: landing.LandingFile, shard_rows: int) -> list[Piece]:
    """A Parquet file cut along its row groups into pieces of about ``shard_rows`` rows; a CSV
    file (no index into its rows) is one piece."""
    if file.kind != "parquet" or not file.row_groups:
        return [Piece(file)]
    pieces, start, rows = [], 0, 0
    for i, n in enumerate(file.row_groups):
        if rows and rows + n > shard_rows:
            pieces.append(Piece(file, (start, i)))
            start, rows = i, 0
        rows += n
    pieces.append(Piece(file, (start, len(file.row_groups))))
    return pieces


def cut_shards(plan: DayPlan, shard_rows: int, max_bad_share: float) -> list[Shard]:
    """Pieces packed in file order into shards of at most ``shard_rows`` rows (a CSV file
    counts as a whole shard)."""
    groups: list[list[Piece]] = [[]]
    rows = 0
    for file in plan.files:
        for piece in _pieces(file, shard_rows):
            size = piece.rows if piece.rows is not None else shard_rows
            if groups[-1] and rows + size > shard_rows:
                groups.append([])
                rows = 0
            groups[-1].append(piece)
            rows += size
    limit = None if plan.rows is None else int(max_bad_share * plan.rows) + 1
    return [
        Shard(plan.model, plan.day, plan.attempt, i, len(groups), pieces, limit)
        for i, pieces in enumerate(groups)
    ]


def plan_day(
    spec: ModelSpec, day: dt.date, *, run_id: str, landing_root: str | None = None
) -> DayPlan:
    """List, inspect and check the day's landing files; cut the day into shards."""
    folder = day_folder(landing_root or settings.landing_root(), spec.name, day)
    found = storage.list_files(folder)
    where = {"model": spec.name, "day": day}
    if not found:
        raise LandingMissingError(
            f"no .parquet or .csv files in {folder}",
            hint="upstream has not delivered the day yet (Airflow retries); if it never will, "
            "mark the run failed or deliver an empty file",
            **where,
        )
    root = landing_root or settings.landing_root()
    for data_file in found:
        if storage.outside(data_file.path, root) is not None:
            raise UnreadableFileError(
                f"is a symbolic link to a file outside the landing zone {root}: not read",
                file=data_file.path,
                hint="copy the file into the landing zone (links may point inside it only)",
                **where,
            )
    files = [landing.inspect(data_file, i, where) for i, data_file in enumerate(found)]
    try:
        for file in files:
            extras = check_columns(spec, day, file.path, file.columns)
            if extras:
                log.warning("%s: ignoring unexpected columns %s", file.path, extras)
    except BatchValidationError as exc:
        warehouse.record_validation_failure(
            spec.name, day, run_id=run_id, error=str(exc), failed=exc.failed
        )
        raise
    plan = DayPlan(spec.name, day, lake.new_attempt(), files)
    plan.shards = cut_shards(plan, spec.processing.shard_rows, spec.validation.max_bad_row_share)
    log.info(
        "model %s, date %s: %d file(s), %s rows, %d shard(s), attempt %s",
        spec.name,
        day,
        len(files),
        plan.rows if plan.rows is not None else "?",
        len(plan.shards),
        plan.attempt,
    )
    return plan
