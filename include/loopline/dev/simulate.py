"""A seedable data source for the default model, customer churn, and its regression twin.

Upstream systems drop one snapshot file per day into the landing zone
(``<landing>/churn/date=YYYY-MM-DD/part-000.parquet``); the labels for a day arrive
``label_delay_days`` later in a separate place (``<labels>/churn/date=<arrival>/``).
Scenarios bend the data from a start day on, so that every later stage of the loop has
something real to detect. Same seed, same bytes: each day draws from its own generator
seeded by (seed, day index), so a day's file does not depend on which other days were written.

The same subscribers also carry a regression target, ``spend`` (what a subscriber spends in
the next 30 days, model ``spend``): a concept drift there is an abrupt repricing, so the loop's
learning can be measured on a regression too. :func:`expected_target` gives the truth a model
could at best learn (the churn probability, the mean spend) for the ceiling of a benchmark.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from loopline.adapters import storage

ScenarioKind = Literal[
    "none", "covariate_shift", "prior_shift", "concept_drift", "bad_rows", "schema_break"
]
SCENARIOS: tuple[str, ...] = ScenarioKind.__args__  # type: ignore[attr-defined]

MODEL = "churn"
ENTITY, TIMESTAMP, TARGET = "customer_id", "snapshot_ts", "churned"
# The regression twin: the same subscribers, their spend over the next 30 days.
SPEND_MODEL, SPEND_TARGET = "spend", "spend_30d"
TARGETS = {MODEL: TARGET, SPEND_MODEL: SPEND_TARGET}
POPULATION = 200_000
CATEGORIES = {
    "plan": (["basic", "plus", "premium", "family"], [0.45, 0.25, 0.15, 0.15]),
    "region": (["north", "south", "east", "west", "central"], [0.2, 0.25, 0.2, 0.2, 0.15]),
    "payment_method": (["card", "bank_transfer", "paypal", "invoice"], [0.5, 0.2, 0.2, 0.1]),
    "contract_type": (["monthly", "annual", "two_year"], [0.55, 0.3, 0.15]),
    "acquisition_channel": (
        ["organic", "paid_search", "referral", "partner", "retail"],
        [0.35, 0.25, 0.15, 0.15, 0.10],
    ),
    "device_os": (["android", "ios", "web", "other"], [0.45, 0.35, 0.15, 0.05]),
}
# Share of values missing per nullable column (upstream gaps, unanswered surveys).
MISSING = {
    "total_charges": 0.01,
    "avg_session_minutes": 0.03,
    "days_since_last_login": 0.02,
    "data_usage_gb": 0.05,
    "age": 0.04,
    "nps_score": 0.30,
    "satisfaction_score": 0.10,
    "acquisition_channel": 0.02,
}
# Covariate shift moves these by default: the two that matter most to a churn model.
DEFAULT_SHIFTED = ("monthly_charges", "days_since_last_login")
# Spec settings that let a scenario replay in a few dozen simulated days (tests and
# benchmarks/closed_loop.py): short training window, 2-day label delay and drift window.
SHORT_WINDOWS = {
    "training": {"window_days": 14, "min_days": 8, "validation_days": 2, "holdout_days": 3},
    "labels": {"delay_days": 2, "performance_tolerance": 0.05},
    "drift": {
        "window_days": 2,
        "alpha": 0.01,
        "psi_threshold": 0.2,
        "min_rows": 300,
        "dataset_threshold": 0.1,
        "cooldown_days": 4,
        "persistence_k": 2,
        "persistence_m": 3,
        "min_new_labels": 300,
    },
}
# What the regression twin changes in churn's spec: its target, and a gate and tolerance in
# the units of its error (euros of spend; the noise alone is an RMSE of about 12).
SPEND_SPEC = {
    "name": SPEND_MODEL,
    "description": "Spend of a subscriber over the next 30 days (a regression).",
    "target": {"column": SPEND_TARGET, "task": "regression"},
    "slices": ["plan"],
    "metric": {"primary": "rmse"},
    "gate": {"min_lift_over_baseline": 5.0, "champion_margin": 0.5, "slice_tolerance": 5.0},
}


def twin_spec(churn: dict) -> dict:
    """The regression twin's spec from churn's (same features and windows, its own target)."""
    spec = {**churn, **SPEND_SPEC}
    spec["labels"] = {**churn.get("labels", {}), "performance_tolerance": 3.0}
    return spec


# Columns the schema-break scenario renames (upstream refactor).
RENAMED = {"tenure_months": "tenure"}


@dataclass(frozen=True)
class Scenario:
    """A change to the data from ``start_day`` (0-based day index) for ``duration_days`` days."""

    kind: ScenarioKind
    start_day: int = 0
    strength: float = 1.0
    duration_days: int | None = None
    features: tuple[str, ...] = DEFAULT_SHIFTED

    def __post_init__(self) -> None:
        if self.kind not in SCENARIOS:
            raise ValueError(f"unknown scenario '{self.kind}'; choose from {', '.join(SCENARIOS)}")
        if self.kind == "bad_rows" and not 0 < self.strength < 1:
            raise ValueError("bad_rows strength is the share of corrupted rows, in (0, 1)")

    def active(self, day_index: int) -> bool:
        if day_index < self.start_day:
            return False
        return self.duration_days is None or day_index < self.start_day + self.duration_days

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """Parse ``kind[:start=N][,strength=X][,days=N][,features=a+b]``.

        For example ``bad_rows:start=3,strength=0.02`` or ``covariate_shift:start=20``.
        """
        kind, _, rest = text.partition(":")
        kwargs: dict[str, object] = {}
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            if key == "start":
                kwargs["start_day"] = int(value)
            elif key == "strength":
                kwargs["strength"] = float(value)
            elif key == "days":
                kwargs["duration_days"] = int(value)
            elif key == "features":
                kwargs["features"] = tuple(value.split("+"))
            else:
                raise ValueError(f"scenario '{text}': unknown option '{key}'")
        return cls(kind=kind, **kwargs)  # type: ignore[arg-type]


@dataclass
class DayFile:
    date: dt.date
    path: str
    rows: int
    # entity id -> the (column, check) pairs the bad-rows scenario injected into that row
    corrupted: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    positives: int = 0


def _active(scenarios: Sequence[Scenario], kind: str, day_index: int) -> list[Scenario]:
    return [s for s in scenarios if s.kind == kind and s.active(day_index)]


def generate_day(
    day: dt.date,
    day_index: int,
    *,
    rows: int,
    seed: int,
    scenarios: Sequence[Scenario] = (),
    ids: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    model: str = MODEL,
) -> tuple[pd.DataFrame, pd.Series]:
    """One day's snapshot (features, id, timestamp) and its labels, before any corruption.
    Customers are drawn from a population of 200,000 (``ids`` and ``rng`` given: a chunk of a
    bigger day, see :func:`generate_chunks`). ``model``: ``churn`` (binary) or ``spend``."""
    frame, label, _ = _generate(day, day_index, rows, seed, scenarios, ids, rng, model)
    return frame, label


def expected_target(
    day: dt.date,
    day_index: int,
    *,
    rows: int,
    seed: int,
    scenarios: Sequence[Scenario] = (),
    model: str = MODEL,
) -> pd.DataFrame:
    """The truth behind a day of up to 200,000 rows: per entity id its label and what the label
    was drawn from (the churn probability, or the mean spend), for the best any model can do."""
    frame, label, expected = _generate(day, day_index, rows, seed, scenarios, None, None, model)
    return pd.DataFrame({"entity_id": frame[ENTITY], "label": label, "expected": expected})


def _generate(
    day: dt.date,
    day_index: int,
    rows: int,
    seed: int,
    scenarios: Sequence[Scenario],
    ids: np.ndarray | None,
    rng: np.random.Generator | None,
    model: str,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    if model not in TARGETS:
        raise ValueError(f"unknown simulated model '{model}' (one of {sorted(TARGETS)})")
    rng = rng if rng is not None else np.random.default_rng([seed, day_index])
    if ids is None:
        ids = rng.choice(POPULATION, size=rows, replace=False)
    n = rows
    frame = pd.DataFrame({ENTITY: [f"C{i:08d}" if i >= 10**7 else f"C{i:07d}" for i in ids]})
    start = pd.Timestamp(day, tz="UTC")
    frame[TIMESTAMP] = start + pd.to_timedelta(np.sort(rng.integers(0, 86_400, n)), unit="s")
    for name, (values, probs) in CATEGORIES.items():
        frame[name] = rng.choice(values, size=n, p=probs)

    contract_len = frame["contract_type"].map({"monthly": 1, "annual": 12, "two_year": 24})
    tenure = np.minimum(rng.gamma(2.0, 14.0, n).round(), 120)
    monthly = np.clip(rng.normal(65, 25, n) + (frame["plan"] == "premium") * 40, 5, 250).round(2)
    frame["tenure_months"] = tenure
    frame["monthly_charges"] = monthly
    frame["total_charges"] = (tenure * monthly * rng.uniform(0.9, 1.05, n)).round(2)
    frame["support_calls_30d"] = rng.poisson(1.2, n).astype(float)
    frame["avg_session_minutes"] = np.minimum(rng.lognormal(3.0, 0.7, n), 1440).round(1)
    frame["days_since_last_login"] = np.minimum(rng.exponential(6.0, n), 3650).round()
    frame["num_devices"] = np.minimum(rng.poisson(1.5, n) + 1, 20).astype(float)
    frame["data_usage_gb"] = np.minimum(rng.gamma(2.0, 12.0, n), 2000).round(2)
    frame["payment_delay_days"] = np.minimum(rng.exponential(2.0, n), 365).round()
    frame["discount_pct"] = rng.choice([0, 0, 0, 5, 10, 15, 20, 30], size=n).astype(float)
    frame["age"] = np.clip(rng.normal(42, 14, n), 18, 95).round()
    frame["nps_score"] = np.clip(rng.normal(7, 2.2, n), 0, 10).round()
    frame["late_payments_12m"] = np.minimum(rng.poisson(0.6, n), 12).astype(float)
    frame["contract_months_remaining"] = (rng.uniform(0, 1, n) * contract_len).round()
    frame["satisfaction_score"] = np.clip(rng.normal(3.8, 0.9, n), 1, 5).round()

    for scenario in _active(scenarios, "covariate_shift", day_index):
        for name in scenario.features:
            column = frame[name]
            frame[name] = (column + scenario.strength * column.std()).round(2)

    if model == MODEL:
        expected = churn_probability(frame, day_index, scenarios)
        label = pd.Series((rng.uniform(size=n) < expected).astype(int), name=TARGET)
    else:
        expected = mean_spend(frame, day_index, scenarios)
        label = pd.Series((expected + rng.normal(0, 12, n)).round(2), name=SPEND_TARGET)
    for name, share in MISSING.items():
        frame.loc[rng.uniform(size=n) < share, name] = None
    return frame, label, np.asarray(expected, dtype=float)


def churn_probability(
    frame: pd.DataFrame, day_index: int, scenarios: Sequence[Scenario]
) -> np.ndarray:
    """Churn within 30 days, from a logistic model of the features (a few % positives)."""
    logit = -5.6 + 1.6 * (
        0.9 * (frame["contract_type"] == "monthly")
        - 0.025 * frame["tenure_months"]
        + 0.012 * (frame["monthly_charges"] - 65)
        + 0.35 * frame["support_calls_30d"]
        + 0.05 * frame["days_since_last_login"]
        + 0.25 * frame["late_payments_12m"]
        + 0.08 * frame["payment_delay_days"]
        - 0.25 * (frame["satisfaction_score"] - 3.8)
        - 0.03 * frame["discount_pct"]
        + 0.3 * (frame["payment_method"] == "invoice")
    )
    for scenario in _active(scenarios, "prior_shift", day_index):
        logit = logit + scenario.strength
    for scenario in _active(scenarios, "concept_drift", day_index):
        # A competitor's offer: heavy data users now leave, loyal long-tenure customers too.
        s = scenario.strength
        logit = logit + s * (0.04 * (frame["data_usage_gb"] - 24) + 0.03 * frame["tenure_months"])
        logit = logit - s * 0.35 * frame["support_calls_30d"]
    return (1.0 / (1.0 + np.exp(-logit))).to_numpy()


def mean_spend(frame: pd.DataFrame, day_index: int, scenarios: Sequence[Scenario]) -> np.ndarray:
    """Expected spend over the next 30 days: the plan's charges, data and devices, less the
    discount. A concept drift is a repricing: data is billed by the gigabyte and monthly
    contracts pay a surcharge, which multiplies most subscribers' spend."""
    monthly = frame["monthly_charges"]
    spend = (
        monthly * (1 - frame["discount_pct"] / 100)
        + 0.8 * frame["data_usage_gb"]
        + 6.0 * frame["num_devices"]
        + 15.0 * (frame["plan"] == "family")
    )
    for scenario in _active(scenarios, "prior_shift", day_index):
        spend = spend + 40.0 * scenario.strength
    for scenario in _active(scenarios, "concept_drift", day_index):
        s = scenario.strength
        spend = spend + s * (
            8.0 * frame["data_usage_gb"] + 3.0 * monthly * (frame["contract_type"] == "monthly")
        )
    return spend.round(2).to_numpy()


CHUNK_ROWS = 500_000


def generate_chunks(
    day: dt.date,
    day_index: int,
    *,
    rows: int,
    seed: int,
    scenarios: Sequence[Scenario] = (),
    model: str = MODEL,
):
    """A day as ``(frame, labels)`` chunks. Up to 200,000 rows it is one chunk, exactly
    :func:`generate_day`; a bigger day (any size) is cut into chunks of 500,000 rows, each from
    its own seeded generator, its customers a permutation of ``rows`` ids (unique in the day),
    so memory is bounded by the chunk."""
    if rows <= POPULATION:
        yield generate_day(day, day_index, rows=rows, seed=seed, scenarios=scenarios, model=model)
        return
    everyone = np.random.default_rng([seed, day_index, 2]).permutation(rows)
    for chunk, start in enumerate(range(0, rows, CHUNK_ROWS)):
        ids = everyone[start : start + CHUNK_ROWS]
        rng = np.random.default_rng([seed, day_index, 3, chunk])
        frame, label = generate_day(
            day,
            day_index,
            rows=len(ids),
            seed=seed,
            scenarios=scenarios,
            ids=ids,
            rng=rng,
            model=model,
        )
        frame[TIMESTAMP] = frame[TIMESTAMP].sort_values().to_numpy()
        yield frame, label


# Each corruption: (column, check as the validator reports it, bad value).
CORRUPTIONS = (
    ("tenure_months", "not_null", None),
    ("monthly_charges", "in_range", -50.0),
    ("plan", "in_set", "platinum"),
    ("num_devices", "type", "three"),
    ("region", "not_null", None),
    ("discount_pct", "in_range", 250.0),
)


def corrupt(
    frame: pd.DataFrame, rng: np.random.Generator, share: float
) -> tuple[pd.DataFrame, dict[str, list[tuple[str, str]]]]:
    """Corrupt ``share`` of the rows, one or two cells each; return what was done to which row."""
    frame = frame.copy()
    n_bad = max(1, round(share * len(frame)))
    rows = np.sort(rng.choice(len(frame), size=n_bad, replace=False))
    injected: dict[str, list[tuple[str, str]]] = {}
    # A bad type can only travel in a text column: on these days upstream sends it as strings.
    frame["num_devices"] = frame["num_devices"].map(lambda v: f"{v:g}", na_action="ignore")
    for row in rows:
        picks = rng.choice(len(CORRUPTIONS), size=int(rng.integers(1, 3)), replace=False)
        entity = frame.iat[row, frame.columns.get_loc(ENTITY)]
        for pick in sorted(picks):
            column, check, value = CORRUPTIONS[pick]
            frame[column] = frame[column].astype(object)
            frame.iat[row, frame.columns.get_loc(column)] = value
            injected.setdefault(entity, []).append((column, check))
    return frame, injected


class _DayWriter:
    """A day's file written chunk by chunk (Parquet: a row group per chunk; CSV: appended)."""

    def __init__(self, path: str, file_format: str):
        self.path, self.format, self.chunks = path, file_format, 0
        self._writing = storage.writing(path)
        self._local = self._writing.__enter__()
        self._parquet = None

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.format == "csv":
            frame.to_csv(
                self._local,
                mode="a",
                header=self.chunks == 0,
                index=False,
                date_format="%Y-%m-%dT%H:%M:%S%z",
            )
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._local, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self.chunks += 1

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self._writing.__exit__(None, None, None)


def simulate(
    *,
    landing: str,
    labels: str,
    start: dt.date,
    days: int,
    rows_per_day: int = 2000,
    seed: int = 0,
    scenarios: Sequence[Scenario] = (),
    label_delay_days: int = 7,
    file_format: Literal["parquet", "csv"] = "parquet",
    model: str = MODEL,
) -> list[DayFile]:
    """Write ``days`` daily snapshot files and their late labels; return what was written.
    Days of up to 200,000 rows are written whole (same seed, same bytes); bigger days chunk by
    chunk, in bounded memory. ``model``: ``churn`` or its regression twin ``spend``."""
    target = TARGETS.get(model)
    if target is None:
        raise ValueError(f"unknown simulated model '{model}' (one of {sorted(TARGETS)})")
    written = []
    for index in range(days):
        day = start + dt.timedelta(days=index)
        name = f"part-000.{file_format}"
        out = DayFile(
            date=day,
            path=storage.join(landing, model, f"date={day.isoformat()}", name),
            rows=rows_per_day,
        )
        rng = np.random.default_rng([seed, index, 1])
        arrival = day + dt.timedelta(days=label_delay_days)
        labels_path = storage.join(
            labels, model, f"date={arrival.isoformat()}", f"labels-{day}.{file_format}"
        )
        whole = rows_per_day <= POPULATION
        day_file = None if whole else _DayWriter(out.path, file_format)
        label_file = None if whole else _DayWriter(labels_path, file_format)
        for frame, label in generate_chunks(
            day, index, rows=rows_per_day, seed=seed, scenarios=scenarios, model=model
        ):
            labels_frame = pd.DataFrame(
                {ENTITY: frame[ENTITY], "partition_date": day.isoformat(), target: label}
            )
            out.positives += int(label.sum()) if model == MODEL else 0
            for scenario in _active(scenarios, "bad_rows", index):
                frame, corrupted = corrupt(frame, rng, scenario.strength)
                out.corrupted.update(corrupted)
            if _active(scenarios, "schema_break", index):
                frame = frame.rename(columns=RENAMED)
                out.renamed = dict(RENAMED)
            if whole:
                storage.write_frame(frame, out.path)
                storage.write_frame(labels_frame, labels_path)
            else:
                day_file.write(frame)
                label_file.write(labels_frame)
        if not whole:
            day_file.close()
            label_file.close()
        written.append(out)
    return written
