"""Validation rules: how a record batch of a landing file splits into clean rows and bad rows,
each bad row with every reason. Pure computation on DataFrames: no files, no database.

Two levels, as in Great Expectations' own split between table and column expectations:
- batch-level failures (a required column missing or renamed in a file, an empty day, too large
  a share of bad rows) fail the whole day with a :class:`BatchValidationError` naming model,
  date, file and column (:func:`check_columns`, :func:`judge_day`);
- row-level failures send the row to quarantine with all reasons. Reading a cell as the spec's
  type is plain pandas (a CSV cell is text until it parses; ``type``, ``finite`` and
  ``in_partition`` checks); the spec's declarative rules (not null, range, categories) run as a
  Great Expectations suite generated from the spec, once per record batch. Repeated entity ids
  are judged on the whole day by the publish step (:func:`duplicate_reason`).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loopline.core.categories import category_text
from loopline.core.columns import ENTITY_ID, EVENT_TS
from loopline.core.errors import BatchValidationError
from loopline.core.spec import ModelSpec

CHECK_NAMES = {
    "expect_column_values_to_not_be_null": "not_null",
    "expect_column_values_to_be_between": "in_range",
    "expect_column_values_to_be_in_set": "in_set",
}
EXPECTATION_OF = {check: name for name, check in CHECK_NAMES.items()}
# Column names of the typed (clean) frame, whatever the spec calls them (loopline.core.columns).
ENTITY, TIMESTAMP = ENTITY_ID, EVENT_TS


class Reasons:
    """Row-level reasons of one batch: row position -> list of {column, check, detail}."""

    def __init__(self) -> None:
        self.by_row: dict[int, list[dict]] = {}
        self.cells: set[tuple[int, str]] = set()
        self.counts: Counter = Counter()

    def add(self, rows: Iterable[int], column: str, check: str, details: Iterable[dict]) -> None:
        for row, detail in zip(rows, details, strict=True):
            row = int(row)
            self.by_row.setdefault(row, []).append(
                {"column": column, "check": check, "detail": detail}
            )
            self.cells.add((row, column))
            self.counts[(column, check)] += 1

    def bad_mask(self, rows: int) -> np.ndarray:
        mask = np.zeros(rows, dtype=bool)
        mask[list(self.by_row)] = True
        return mask


def _coerce_id(spec: ModelSpec, raw: pd.Series, reasons: Reasons) -> pd.Series:
    column = spec.entity_id.column
    if spec.entity_id.dtype == "integer":
        numbers = pd.to_numeric(raw, errors="coerce")
        bad = raw.notna() & (numbers.isna() | ~np.isfinite(numbers) | (numbers % 1 != 0))
        rows = np.flatnonzero(bad)
        reasons.add(rows, column, "type", [f"not an integer id: {v!r}" for v in raw[bad]])
        return numbers.where(~bad).map(lambda v: f"{v:.0f}", na_action="ignore").astype(object)
    if pd.api.types.is_string_dtype(raw.dtype) and raw.dtype != object:
        text = raw.str.strip()  # text already: vectorised
    else:
        text = raw.map(lambda v: str(v).strip(), na_action="ignore").astype(object)
    return text.where(text != "", None)


def _coerce_timestamp(spec: ModelSpec, day: dt.date, raw: pd.Series, reasons: Reasons):
    column = spec.event_timestamp
    stamps = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
    bad = raw.notna() & stamps.isna()
    reasons.add(np.flatnonzero(bad), column, "type", [f"not a timestamp: {v!r}" for v in raw[bad]])
    start = pd.Timestamp(day, tz="UTC")
    outside = stamps.notna() & ((stamps < start) | (stamps >= start + pd.Timedelta(days=1)))
    reasons.add(
        np.flatnonzero(outside),
        column,
        "in_partition",
        [f"{v.isoformat()} is not on {day}" for v in stamps[outside]],
    )
    return stamps.where(~outside)


def _coerce_number(name: str, raw: pd.Series, reasons: Reasons) -> pd.Series:
    numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
    unparsed = raw.notna() & numbers.isna()
    if raw.dtype.kind == "f":  # a float column's NaN is how the file says null
        unparsed &= False
    reasons.add(
        np.flatnonzero(unparsed), name, "type", [f"not a number: {v!r}" for v in raw[unparsed]]
    )
    infinite = np.isinf(numbers.to_numpy())
    reasons.add(
        np.flatnonzero(infinite),
        name,
        "finite",
        [f"{v} is not a finite number" for v in numbers[infinite]],
    )
    return numbers.where(~infinite)


def coerce(spec: ModelSpec, day: dt.date, raw: pd.DataFrame, reasons: Reasons) -> pd.DataFrame:
    """Read every cell as the spec's type (positional index 0..n-1). A value that does not
    parse, a non-finite number and a timestamp outside the day are reasons of their own; the
    cell is null afterwards, so a later rule does not report it twice."""
    raw = raw.reset_index(drop=True)
    typed = pd.DataFrame(index=raw.index)
    typed[ENTITY] = _coerce_id(spec, raw[spec.entity_id.column], reasons)
    typed[TIMESTAMP] = _coerce_timestamp(spec, day, raw[spec.event_timestamp], reasons)
    for feature in spec.features:
        values = raw[feature.name]
        if feature.type == "numeric":
            typed[feature.name] = _coerce_number(feature.name, values, reasons)
        else:
            typed[feature.name] = category_text(values)
    return typed


def expectation_suite(spec: ModelSpec, name: str | None = None):
    """The Great Expectations suite of the spec's row-level rules, on the typed frame."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name or f"{spec.name}_rows")
    for column in (ENTITY, TIMESTAMP):
        suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column=column))
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


class RowValidator:
    """The spec's suite on an ephemeral Great Expectations context, built once and run per
    record batch. A batch is checked with ``BOOLEAN_ONLY`` results (cheap); only expectations
    that failed are run again with ``COMPLETE`` results to find their rows."""

    def __init__(self, spec: ModelSpec):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx

        self.spec = spec
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = {"globally": False}
        self.definition = (
            self.context.data_sources.add_pandas(spec.name)
            .add_dataframe_asset("batch")
            .add_batch_definition_whole_dataframe("whole_batch")
        )
        self.suite = self.context.suites.add(expectation_suite(spec))
        self._failing_suites: dict[tuple, object] = {}

    def _failing_suite(self, configs: list) -> object:
        import great_expectations as gx

        key = tuple(sorted((c.type, c.kwargs["column"]) for c in configs))
        if key not in self._failing_suites:
            suite = gx.ExpectationSuite(
                name=f"{self.spec.name}_failing_{len(self._failing_suites)}"
            )
            for expectation in self.suite.expectations:
                if (expectation.expectation_type, expectation.column) in key:
                    suite.add_expectation(expectation.copy(update={"id": None}))
            self._failing_suites[key] = self.context.suites.add(suite)
        return self._failing_suites[key]

    def _validate(self, frame: pd.DataFrame, suite: Any, result_format: str) -> list:
        batch = self.definition.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(suite, result_format={"result_format": result_format})
        for item in result.results:
            if item.exception_info and item.exception_info.get("raised_exception"):
                raise RuntimeError(
                    f"model '{self.spec.name}', column '{item.expectation_config.kwargs['column']}'"
                    f": expectation {item.expectation_config.type} raised "
                    f"{item.exception_info.get('exception_message')}"
                )
        return result

    def run(self, typed: pd.DataFrame, reasons: Reasons) -> None:
        """Add a reason for every cell that fails a rule (cells already failing ``type`` or
        ``finite`` are null by now and are not reported again)."""
        frame = typed.astype(
            {f.name: "category" for f in self.spec.features if f.type == "categorical"}
        )
        # The id's only row rule is "not null", so GX gets its presence as a number: GX hashes
        # every batch it is handed, and hashing a million id strings cost more than the checks.
        frame[ENTITY] = np.where(typed[ENTITY].isna().to_numpy(), np.nan, 1.0)
        quick = self._validate(frame, self.suite, "BOOLEAN_ONLY")
        failing = [item.expectation_config for item in quick.results if not item.success]
        if not failing:
            return
        full = self._validate(frame, self._failing_suite(failing), "COMPLETE")
        for item in full.results:
            if item.success:
                continue
            config = item.expectation_config
            column, check = config.kwargs["column"], CHECK_NAMES[config.type]
            named = _spec_column(self.spec, column)
            rows = [
                r
                for r in item.result.get("unexpected_index_list") or []
                if (r, named) not in reasons.cells
            ]
            values = typed[column].to_numpy(dtype=object)
            details = [_detail(check, values[r], config.kwargs) for r in rows]
            reasons.add(rows, named, check, details)


def _spec_column(spec: ModelSpec, column: str) -> str:
    """The column's name as the spec (and the landing file) calls it."""
    return {ENTITY: spec.entity_id.column, TIMESTAMP: spec.event_timestamp}.get(column, column)


def _detail(check: str, value: object, kwargs: dict) -> str:
    if check == "not_null":
        return "null where the spec says not nullable"
    if check == "in_range":
        return f"{value!r} outside [{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
    return f"{value!r} not one of the spec's categories"


@dataclass
class BatchOutcome:
    typed: pd.DataFrame  # every row, typed (entity_id, event_ts, features), positional index
    bad: np.ndarray  # boolean mask of rows that failed a row check
    reasons: Reasons

    @property
    def clean(self) -> pd.DataFrame:
        return self.typed.loc[~self.bad]


def validate_batch(
    spec: ModelSpec, day: dt.date, raw: pd.DataFrame, validator: RowValidator
) -> BatchOutcome:
    """Type a record batch (columns as the file sent them) and run every row rule on it."""
    reasons = Reasons()
    typed = coerce(spec, day, raw, reasons)
    validator.run(typed, reasons)
    return BatchOutcome(typed, reasons.bad_mask(len(typed)), reasons)


def duplicate_reason(spec: ModelSpec, entity_id: str) -> dict:
    return {
        "column": spec.entity_id.column,
        "check": "unique",
        "detail": f"entity id {entity_id!r} already seen earlier this day",
    }


def check_columns(spec: ModelSpec, day: dt.date, path: str, columns: list[str]) -> list[str]:
    """Fail on a file lacking a required column; return its extra columns (ignored)."""
    missing = [c for c in spec.required_columns if c not in columns]
    unexpected = sorted(set(columns) - set(spec.required_columns) - {spec.target.column})
    if missing:
        hint = f" (present but unexpected: {unexpected}; renamed?)" if unexpected else ""
        raise BatchValidationError(
            f"required column(s) {missing} missing{hint}",
            model=spec.name,
            day=day,
            file=path,
            column=missing[0],
            hint="fix the file upstream (or the spec) and re-run the day",
            failed=[
                {"expectation": "expect_column_to_exist", "column": c, "file": path}
                for c in missing
            ],
        )
    return unexpected


@dataclass
class DayCounts:
    """What a whole day's shards found, summed: judged by :func:`judge_day`."""

    rows_read: int = 0
    rows_bad: int = 0
    failed: Counter = field(default_factory=Counter)  # (column, check) -> rows
    bad_files: set[str] = field(default_factory=set)

    def failed_expectations(self) -> list[dict]:
        return [
            {
                "column": column,
                "check": check,
                "unexpected_count": int(n),
                "expectation": EXPECTATION_OF.get(check, f"loopline:{check}"),
            }
            for (column, check), n in sorted(self.failed.items())
        ]


def judge_day(spec: ModelSpec, day: dt.date, counts: DayCounts, files: list[str]) -> None:
    """The day-level expectations: at least one row, and no more bad rows than the spec allows."""
    if counts.rows_read == 0:
        raise BatchValidationError(
            "empty day: the landing files hold no rows",
            model=spec.name,
            day=day,
            file=", ".join(files),
            hint="check with upstream why the day's files are empty; re-run once they are not",
            failed=[
                {
                    "expectation": "expect_table_row_count_to_be_between",
                    "column": "",
                    "min_value": 1,
                }
            ],
        )
    share = counts.rows_bad / counts.rows_read
    limit = spec.validation.max_bad_row_share
    if share > limit:
        by_column = Counter()
        for (column, _), n in counts.failed.items():
            by_column[column] += n
        worst = by_column.most_common(3)
        raise BatchValidationError(
            f"{counts.rows_bad} of {counts.rows_read} rows ({share:.1%}) failed row checks, "
            f"above the spec's limit of {limit:.1%}; most failures in "
            + ", ".join(f"'{c}' ({n})" for c, n in worst),
            model=spec.name,
            day=day,
            file=", ".join(sorted(counts.bad_files)),
            column=worst[0][0] if worst else None,
            hint="fix the data upstream and re-run the day, or raise "
            "validation.max_bad_row_share in the spec if this share is acceptable",
            failed=counts.failed_expectations(),
        )
