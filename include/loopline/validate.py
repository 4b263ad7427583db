"""Validation: split a day's raw rows into clean rows and quarantined rows, with every reason.

Two levels, as in Great Expectations' own split between table and column expectations:
- batch-level failures (a required column missing or renamed in a file, an empty day, too
  large a share of bad rows) fail the whole day with a :class:`BatchValidationError` that
  names model, date, file and column; nothing is written to the clean table;
- row-level failures (null where not nullable, out of range, unknown category, bad type,
  repeated entity id, timestamp outside the day) send the row to quarantine with all reasons.

The spec's declarative rules run as a Great Expectations suite generated from the spec; type
coercion, duplicate ids and the partition-day check are plain pandas, since they decide how a
cell is read rather than whether a typed value is acceptable.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loopline import warehouse
from loopline.spec import ModelSpec

log = logging.getLogger(__name__)
META = ("__source_file", "__row_number", "__record")


class BatchValidationError(ValueError):
    """The day as a whole is unusable; a retry cannot fix it."""

    def __init__(
        self,
        spec: ModelSpec,
        day: dt.date,
        message: str,
        *,
        file: str = "",
        column: str = "",
        failed: list[dict] | None = None,
    ):
        self.model, self.day, self.file, self.column = spec.name, day, file, column
        self.failed = failed or []
        where = f"model '{spec.name}', date {day}"
        if file:
            where += f", file {file}"
        if column:
            where += f", column '{column}'"
        super().__init__(f"{where}: {message}")


@dataclass
class ValidationOutcome:
    clean: pd.DataFrame  # typed: entity id, timestamp, features, source file, row number
    quarantine: pd.DataFrame  # source_file, row_number, entity_id, record, reasons
    rows_read: int
    failed_expectations: list[dict] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        return {
            "rows_read": self.rows_read,
            "rows_clean": len(self.clean),
            "rows_quarantined": len(self.quarantine),
        }


class _Reasons:
    """Collects row-level reasons: row position -> list of {column, check, detail}."""

    def __init__(self) -> None:
        self.by_row: dict[int, list[dict]] = {}
        self.cells: set[tuple[int, str]] = set()

    def add(self, rows, column: str, check: str, details) -> None:
        for row, detail in zip(rows, details, strict=True):
            row = int(row)
            self.by_row.setdefault(row, []).append(
                {"column": column, "check": check, "detail": detail}
            )
            self.cells.add((row, column))


def check_columns(spec: ModelSpec, day: dt.date, file_columns: dict[str, list[str]]) -> list[str]:
    """Fail on a file lacking a required column; return extra columns (a warning, not an error)."""
    if not file_columns:
        raise BatchValidationError(spec, day, "no files were ingested for this day")
    extras: set[str] = set()
    for path, columns in file_columns.items():
        missing = [c for c in spec.required_columns if c not in columns]
        unexpected = sorted(set(columns) - set(spec.required_columns) - {spec.target.column})
        extras.update(unexpected)
        if missing:
            hint = f" (present but unexpected: {unexpected}; renamed?)" if unexpected else ""
            raise BatchValidationError(
                spec,
                day,
                f"required column(s) {missing} missing{hint}",
                file=path,
                column=missing[0],
                failed=[
                    {"expectation": "expect_column_to_exist", "column": c, "file": path}
                    for c in missing
                ],
            )
    return sorted(extras)


def _coerce(spec: ModelSpec, day: dt.date, raw: pd.DataFrame, reasons: _Reasons) -> pd.DataFrame:
    """Read every cell as the spec's type; a non-null value that does not parse is a bad type."""
    typed = pd.DataFrame(index=raw.index)
    id_col, ts_col = spec.entity_id.column, spec.event_timestamp

    ids = raw[id_col]
    if spec.entity_id.dtype == "integer":
        numbers = pd.to_numeric(ids, errors="coerce")
        bad = ids.notna() & (numbers.isna() | (numbers % 1 != 0))
        reasons.add(raw.index[bad], id_col, "type", [f"not an integer id: {v!r}" for v in ids[bad]])
        typed[id_col] = numbers.where(~bad).map(lambda v: f"{v:.0f}", na_action="ignore")
    else:
        typed[id_col] = ids.map(lambda v: str(v).strip(), na_action="ignore").replace("", None)

    stamps = pd.to_datetime(raw[ts_col], utc=True, errors="coerce", format="ISO8601")
    bad = raw[ts_col].notna() & stamps.isna()
    reasons.add(
        raw.index[bad], ts_col, "type", [f"not a timestamp: {v!r}" for v in raw[ts_col][bad]]
    )
    typed[ts_col] = stamps
    start = pd.Timestamp(day, tz="UTC")
    outside = stamps.notna() & ((stamps < start) | (stamps >= start + pd.Timedelta(days=1)))
    reasons.add(
        raw.index[outside],
        ts_col,
        "in_partition",
        [f"{v.isoformat()} is not on {day}" for v in stamps[outside]],
    )

    for feature in spec.features:
        values = raw[feature.name]
        if feature.type == "numeric":
            numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            bad = values.notna() & numbers.isna()
            reasons.add(
                raw.index[bad], feature.name, "type", [f"not a number: {v!r}" for v in values[bad]]
            )
            typed[feature.name] = numbers
        else:
            typed[feature.name] = values.map(_category_text, na_action="ignore").astype(object)
    return typed


def _category_text(value) -> str:
    """Categories are text; a number sent for a category compares by its text (2.0 -> '2')."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def expectation_suite(spec: ModelSpec):
    """The Great Expectations suite for the spec's row-level rules."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=f"{spec.name}_rows")
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToNotBeNull(column=spec.entity_id.column)
    )
    suite.add_expectation(
        gx.expectations.ExpectColumnValuesToNotBeNull(column=spec.event_timestamp)
    )
    for f in spec.features:
        if not f.nullable:
            suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=f.name))
        if f.min is not None or f.max is not None:
            suite.add_expectation(
                gx.expectations.ExpectColumnValuesToBeBetween(
                    column=f.name, min_value=f.min, max_value=f.max
                )
            )
        if f.categories is not None:
            suite.add_expectation(
                gx.expectations.ExpectColumnValuesToBeInSet(column=f.name, value_set=f.categories)
            )
    return suite


CHECK_NAMES = {
    "expect_column_values_to_not_be_null": "not_null",
    "expect_column_values_to_be_between": "in_range",
    "expect_column_values_to_be_in_set": "in_set",
}


def _run_expectations(spec: ModelSpec, typed: pd.DataFrame, reasons: _Reasons) -> None:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    batch = (
        context.data_sources.add_pandas(spec.name)
        .add_dataframe_asset("day")
        .add_batch_definition_whole_dataframe("whole_day")
        .get_batch(batch_parameters={"dataframe": typed.reset_index(drop=True)})
    )
    suite = context.suites.add(expectation_suite(spec))
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    for item in result.results:
        config = item.expectation_config
        column = config.kwargs["column"]
        if item.exception_info and item.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"model '{spec.name}', column '{column}': expectation {config.type} raised "
                f"{item.exception_info.get('exception_message')}"
            )
        if item.success:
            continue
        check = CHECK_NAMES[config.type]
        # A cell that did not parse is null after coercion; its reason is already "type".
        rows = [
            r
            for r in item.result.get("unexpected_index_list") or []
            if (r, column) not in reasons.cells
        ]
        values = typed[column].to_numpy(dtype=object)
        reasons.add(rows, column, check, [_detail(check, values[r], config.kwargs) for r in rows])


def failed_checks(reasons: _Reasons) -> list[dict]:
    """Per column and check, how many rows failed (for ``validation_results``)."""
    counts = Counter((r["column"], r["check"]) for rs in reasons.by_row.values() for r in rs)
    expectation = {check: name for name, check in CHECK_NAMES.items()}
    return [
        {
            "column": column,
            "check": check,
            "unexpected_count": n,
            "expectation": expectation.get(check, f"loopline:{check}"),
        }
        for (column, check), n in sorted(counts.items())
    ]


def _detail(check: str, value, kwargs: dict) -> str:
    if check == "not_null":
        return "null where the spec says not nullable"
    if check == "in_range":
        return f"{value!r} outside [{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
    return f"{value!r} not one of the spec's categories"


def validate_rows(spec: ModelSpec, day: dt.date, raw: pd.DataFrame) -> ValidationOutcome:
    """Split raw rows (record columns plus ``__source_file``/``__row_number``/``__record``)."""
    if raw.empty:
        raise BatchValidationError(
            spec,
            day,
            "empty day: the landing files hold no rows",
            failed=[
                {
                    "expectation": "expect_table_row_count_to_be_between",
                    "column": "",
                    "min_value": 1,
                }
            ],
        )
    raw = raw.reset_index(drop=True)
    reasons = _Reasons()
    typed = _coerce(spec, day, raw, reasons)
    _run_expectations(spec, typed, reasons)

    id_col = spec.entity_id.column
    repeated = typed[id_col].notna() & typed[id_col].duplicated(keep="first")
    reasons.add(
        np.flatnonzero(repeated),
        id_col,
        "unique",
        [f"entity id {v!r} already seen earlier this day" for v in typed[id_col][repeated]],
    )
    failed = failed_checks(reasons)

    bad = np.zeros(len(raw), dtype=bool)
    bad[list(reasons.by_row)] = True
    share = bad.mean()
    if share > spec.validation.max_bad_row_share:
        worst = Counter(r["column"] for rs in reasons.by_row.values() for r in rs).most_common(3)
        files = sorted(raw.loc[bad, "__source_file"].unique())
        raise BatchValidationError(
            spec,
            day,
            f"{bad.sum()} of {len(raw)} rows ({share:.1%}) failed row checks, above the spec's "
            f"limit of {spec.validation.max_bad_row_share:.1%}; most failures in "
            + ", ".join(f"'{c}' ({n})" for c, n in worst),
            file=", ".join(files),
            column=worst[0][0],
            failed=failed,
        )

    clean = typed.loc[~bad].assign(
        __source_file=raw.loc[~bad, "__source_file"], __row_number=raw.loc[~bad, "__row_number"]
    )
    quarantine = pd.DataFrame(
        {
            "source_file": raw.loc[bad, "__source_file"],
            "row_number": raw.loc[bad, "__row_number"],
            "entity_id": typed.loc[bad, id_col],
            "record": raw.loc[bad, "__record"],
            "reasons": [json.dumps(reasons.by_row[i]) for i in np.flatnonzero(bad)],
        }
    )
    return ValidationOutcome(
        clean.reset_index(drop=True), quarantine.reset_index(drop=True), len(raw), failed
    )


def clean_rows_frame(spec: ModelSpec, clean: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """Clean rows in the warehouse's shape: features as one typed JSON object per row."""
    features = clean[spec.feature_names]
    return pd.DataFrame(
        {
            "entity_id": clean[spec.entity_id.column].to_numpy(),
            "event_ts": clean[spec.event_timestamp].to_numpy(),
            "features": features.to_json(orient="records", lines=True).rstrip("\n").split("\n")
            if len(features)
            else [],
            "source_file": clean["__source_file"].to_numpy(),
            "row_number": clean["__row_number"].to_numpy(),
            "run_id": run_id,
        }
    )


def validate_day(spec: ModelSpec, day: dt.date, *, run_id: str, url: str | None = None) -> dict:
    """Validate a day's raw rows and replace its clean and quarantine partitions atomically.

    On a batch-level failure the failure is recorded and raised; the day's clean and
    quarantine partitions are left exactly as they were, and the recorded counts say what they
    still hold.
    """
    raw, file_columns = warehouse.read_raw(spec.name, day, url)
    result = {"model": spec.name, "partition_date": day, "run_id": run_id, "rows_read": len(raw)}
    try:
        extras = check_columns(spec, day, file_columns)
        outcome = validate_rows(spec, day, raw)
    except BatchValidationError as exc:
        with warehouse.partition_transaction(spec.name, day, url) as cursor:
            kept = {
                f"rows_{kind}": warehouse.count_partition(cursor, table, spec.name, day)
                for kind, table in (("clean", "clean_rows"), ("quarantined", "quarantine"))
            }
            failure = {"success": False, "failed_expectations": exc.failed, "error": str(exc)}
            warehouse.upsert_validation_result(cursor, {**result, **kept, **failure})
        raise
    if extras:
        log.warning("model %s, date %s: ignoring unexpected columns %s", spec.name, day, extras)
    with warehouse.partition_transaction(spec.name, day, url) as cursor:
        warehouse.replace_partition(
            cursor, "clean_rows", spec.name, day, clean_rows_frame(spec, outcome.clean, run_id)
        )
        warehouse.replace_partition(
            cursor, "quarantine", spec.name, day, outcome.quarantine.assign(run_id=run_id)
        )
        warehouse.upsert_validation_result(
            cursor,
            {
                **result,
                **outcome.summary,
                "success": True,
                "failed_expectations": outcome.failed_expectations,
                "error": None,
            },
        )
    return {**result, **outcome.summary, "partition_date": day.isoformat()}
