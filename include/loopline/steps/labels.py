"""Late labels: load label files into ``warehouse.labels``, measure realized performance, and
say whether the champion's realized metric has dropped (concept drift).

Label files arrive in ``<labels>/<model>/date=<arrival day>/`` (Parquet or CSV) with three
columns: the spec's entity id column, ``partition_date`` (the day of the rows they label,
YYYY-MM-DD) and the spec's target column. A binary target may be sent as 0/1, true/false or
yes/no (any case); a regression target as a number. Loading an arrival day is idempotent; a
label re-delivered later replaces the earlier one; a row that cannot be read goes to
``warehouse.labels_quarantine`` with the value that was refused.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from loopline.adapters import landing, model_store, settings, storage, warehouse
from loopline.core.errors import LabelFileError
from loopline.core.metrics import gain, metrics, standard_error
from loopline.core.records import PerformanceDay
from loopline.core.retraining import OpenChange, run_start
from loopline.core.spec import ModelSpec
from loopline.steps.ingest import day_folder

log = logging.getLogger(__name__)
ARRIVAL = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
BINARY = {"0": 0.0, "1": 1.0, "false": 0.0, "true": 1.0, "no": 0.0, "yes": 1.0}


def arrival_days(spec: ModelSpec, until: dt.date, root: str | None = None) -> list[dt.date]:
    folder = storage.join(root or settings.labels_root(), spec.name)
    found = (ARRIVAL.match(name) for name in storage.list_folders(folder))
    days = sorted(dt.date.fromisoformat(m.group(1)) for m in found if m)
    return [d for d in days if d <= until]


def _binary(values: pd.Series) -> pd.Series:
    text = values.map(lambda v: str(v).strip().lower(), na_action="ignore")
    text = text.map(lambda v: v[:-2] if v.endswith(".0") else v, na_action="ignore")
    return text.map(BINARY)


def split_labels(spec: ModelSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Typed labels, and for the rest a reason per row naming the refused value."""
    entity, target = spec.entity_id.column, spec.target.column
    raw = frame[target]
    if spec.is_classifier:
        label = _binary(raw)
        expected = "0/1, true/false or yes/no"
    else:
        label = pd.to_numeric(raw, errors="coerce")
        label = label.where(np.isfinite(label))
        expected = "a finite number"
    day = pd.to_datetime(frame["partition_date"], errors="coerce", format="ISO8601").dt.date
    reason = pd.Series(None, index=frame.index, dtype=object)
    bad_label = label.isna()
    reason[bad_label] = [f"{target} is {v!r}, not {expected}" for v in raw[bad_label]]
    reason[day.isna()] = [
        f"partition_date is {v!r}, not a date" for v in frame["partition_date"][day.isna()]
    ]
    reason[frame[entity].isna()] = f"{entity} is null"
    good = reason.isna()
    typed = pd.DataFrame(
        {
            "partition_date": day[good],
            "entity_id": frame.loc[good, entity].astype(str),
            "label": label[good].astype(float),
        }
    )
    return typed, reason[~good]


def _batches(spec: ModelSpec, file: landing.LandingFile, where: dict) -> Iterator:
    for offset, table in landing.iter_batches(file, spec.processing.batch_rows, where):
        frame = table.to_pandas()
        typed, reasons = split_labels(spec, frame)
        rows = np.arange(offset, offset + len(frame))
        positions = reasons.index.to_numpy()
        bad = pd.DataFrame(
            {
                "row_number": rows[positions],
                "entity_id": frame.loc[reasons.index, spec.entity_id.column].astype(object),
                "record": landing.records(table, positions),
                "reasons": [
                    json.dumps([{"column": spec.target.column, "check": "label", "detail": r}])
                    for r in reasons
                ],
            }
        )
        yield typed.assign(row_number=rows[~frame.index.isin(reasons.index)]), bad


def ingest_labels(
    spec: ModelSpec, arrival: dt.date, *, run_id: str, root: str | None = None
) -> int:
    """Load one arrival day's label files; return the number of labels loaded."""
    loaded = 0
    where = {"model": spec.name, "day": arrival}
    folder = day_folder(root or settings.labels_root(), spec.name, arrival)
    root = root or settings.labels_root()
    for i, data_file in enumerate(storage.list_files(folder)):
        if storage.outside(data_file.path, root) is not None:
            raise LabelFileError(
                f"is a symbolic link to a file outside the labels folder {root}: not read",
                file=data_file.path,
                hint="copy the file into the labels folder (links may point inside it only)",
                **where,
            )
        file = landing.inspect(data_file, i, where)
        needed = [spec.entity_id.column, "partition_date", spec.target.column]
        missing = [c for c in needed if c not in file.columns]
        if missing:
            raise LabelFileError(
                f"label file lacks column(s) {missing} (it has {file.columns})",
                file=file.path,
                column=missing[0],
                hint=f"label files carry {needed}: fix the file and re-run the labels DAG",
                **where,
            )
        stage = (
            (typed[["row_number", "partition_date", "entity_id", "label"]], bad)
            for typed, bad in _batches(spec, file, where)
        )
        count, quarantined = warehouse.replace_label_file(
            spec.name, arrival, file.path, stage, run_id
        )
        loaded += count
        log.info(
            "model %s: %d labels from %s (%d quarantined)", spec.name, count, file.path, quarantined
        )
    return loaded


def sync_labels(spec: ModelSpec, until: dt.date, *, run_id: str) -> int:
    """Load every arrival day up to ``until`` (idempotent)."""
    return sum(ingest_labels(spec, day, run_id=run_id) for day in arrival_days(spec, until))


@dataclass(frozen=True)
class Level:
    """A realized level with its standard error, and where it comes from."""

    value: float | None
    se: float
    text: str


def live_level(spec: ModelSpec, before: dt.date) -> Level:
    """The level to get back to: the realized primary metric of the predictions served on the
    ``retraining.reference_days`` days before ``before`` (pooled, whichever version served
    them), with its standard error (a few days' level is noisy too: the comparison counts it)."""
    start = before - dt.timedelta(days=spec.retraining.reference_days)
    found = _pooled(spec, start, before - dt.timedelta(days=1))
    if len(found) < spec.drift.min_rows:
        return Level(None, 0.0, f"no live level before {before} ({len(found)} labelled rows)")
    labels, scores = found["label"].to_numpy(), found["score"].to_numpy()
    primary = spec.primary_metric
    value = metrics(spec, labels, scores)[primary]
    se = standard_error(spec, primary, labels, scores)
    days = found["partition_date"].nunique()
    return Level(value, se, f"{value:.4f} live over {days} day(s) before {before}")


def level_before(spec: ModelSpec, day: dt.date) -> Level:
    """The live level ``day`` is judged against: before the open change (if ``day`` follows
    it), else before the monitored window that ends on ``day``."""
    open_change = open_change_of(spec, day)
    if open_change is not None and day >= open_change.first_day:
        return live_level(spec, open_change.first_day)
    return live_level(spec, day - dt.timedelta(days=spec.drift.window_days - 1))


def open_change_of(spec: ModelSpec, day: dt.date) -> OpenChange | None:
    """The change the loop is learning: one a retraining was triggered for within the training
    window before ``day`` (after that the sliding window holds only what came after it)."""
    found = warehouse.open_change(
        spec.name, day, day - dt.timedelta(days=spec.training.window_days)
    )
    if found is None:
        return None
    labelled_until = found.last_trigger + dt.timedelta(days=1 - spec.labels.delay_days)
    return OpenChange(found.first_day, found.retrainings, found.last_trigger, labelled_until)


def _degraded(
    spec: ModelSpec,
    value: float,
    labels: np.ndarray,
    scores: np.ndarray,
    references: dict[str, Level | float | None],
) -> list[str]:
    """Which references (a :class:`Level`, or a fixed number: a holdout value, the SLO) the
    realized value is clearly below, beyond the tolerance plus two standard errors of the
    difference (the value's, and a live level's own), as reasons; an SLO counts without the
    tolerance."""
    primary, tolerance = spec.primary_metric, spec.labels.performance_tolerance
    if value != value:
        return []
    own = standard_error(spec, primary, labels, scores)
    below = []
    for name, reference in references.items():
        level = reference if isinstance(reference, Level) else Level(reference, 0.0, "")
        if level.value is None or level.value != level.value:
            continue
        margin = 2 * float(np.hypot(own, level.se))
        allowed = 0.0 if name == "slo" else tolerance
        change = gain(primary, value, level.value)
        if change + margin < -allowed:
            below.append(
                f"{name} {level.value:.4f} (change {change:+.4f}, allowed -{allowed:g} "
                f"- 2 SE {margin:.4f})"
            )
    return below


def realized_performance(spec: ModelSpec, scored_day: dt.date) -> list[PerformanceDay]:
    """Metrics of the predictions made for ``scored_day`` against their labels, per model
    version, stored in ``warehouse.model_performance`` (replacing that day's rows): each day is
    compared with the version's holdout, the live level before (the change or the window) and
    the spec's SLO."""
    joined = warehouse.labelled_predictions(spec.name, scored_day, scored_day)
    primary, measured = spec.primary_metric, []
    live = level_before(spec, scored_day)
    for version, part in joined.groupby("model_version"):
        labels, scores = part["label"].to_numpy(), part["score"].to_numpy()
        result = metrics(spec, labels, scores)
        reference = model_store.store().version(spec.name, int(version)).holdout_value(primary)
        value = result.get(primary)
        references = {"holdout": reference, "live": live, "slo": spec.metric.slo}
        measured.append(
            PerformanceDay(
                partition_date=scored_day,
                model_version=int(version),
                rows=len(part),
                primary_metric=primary,
                value=value if value == value else None,
                reference=reference,
                live_reference=live.value,
                degraded=bool(_degraded(spec, value, labels, scores, references)),
                metrics={k: v for k, v in result.items() if v == v},
            )
        )
    warehouse.replace_performance(spec.name, scored_day, measured)
    return measured


@dataclass(frozen=True)
class PerformanceSignal:
    """The champion's realized performance over the monitored window, and what it says."""

    signal: bool
    text: str
    rows: int = 0
    value: float | None = None
    reference: float | None = None
    live_reference: float | None = None
    model_version: int | None = None
    # The first day of the run of labelled days below the live level (when the world changed).
    change_date: str | None = None
    # Below the level before the change (or the window), or the SLO: worth learning again.
    below_before: bool = False
    below_text: str = ""

    @property
    def degraded(self) -> bool:
        return self.signal

    def as_dict(self) -> dict:
        return {**asdict(self), "degraded": self.signal}


def change_evidence(spec: ModelSpec, day: dt.date, live: float | None) -> dt.date | None:
    """The first day of the run of scored days (whichever version served them) that reaches
    ``day`` with a realized value below the live level by more than half the tolerance (point
    estimates; one day inside the run may be above), looking back over the training window
    and, while a change is being learned, to the day before it."""
    if live is None:
        return None
    start = day - dt.timedelta(days=spec.training.window_days)
    open_change = open_change_of(spec, day)
    if open_change is not None:  # far enough back to see whether the run reaches the change
        start = min(start, open_change.first_day - dt.timedelta(days=1))
    found = warehouse.performance(spec.name, start, day).dropna(subset=["value"])
    found = found.sort_values("partition_date", ascending=False)
    half = spec.labels.performance_tolerance / 2
    flags = [
        (d, gain(spec.primary_metric, v, live) < -half)
        for d, v in zip(found["partition_date"], found["value"], strict=True)
    ]
    return run_start(flags)


def _pooled(spec: ModelSpec, start: dt.date, day: dt.date, version: int | None = None):
    """Labelled predictions of ``start..day`` (of one version, or as served), at most
    ``MAX_POOLED_ROWS`` of them (a sample by entity id with the same rate on every day)."""
    return warehouse.labelled_predictions(spec.name, start, day, version, max_rows=MAX_POOLED_ROWS)


MAX_POOLED_ROWS = 500_000


def performance_signal(spec: ModelSpec, day: dt.date) -> PerformanceSignal:
    """Concept drift, judged never against the champion's own holdout alone.

    * The signal: the served predictions (whichever version served them) pooled over the last
      ``drift.window_days`` mature days, or since the run of days below the live level began if
      longer, are clearly below the live level the served models reached before (the change,
      or the window) or the spec's SLO; or the champion's over the window are clearly below its
      own holdout. "Clearly": beyond ``labels.performance_tolerance`` plus two standard errors.
    * ``below_before`` (whether a follow-up may learn more): the champion's own live record
      over the training window is clearly below the level before, or the SLO.
    Too few rows: no signal."""
    champion = model_store.store().champion(spec.name)
    if champion is None:
        return PerformanceSignal(False, "no champion")
    primary, version = spec.primary_metric, champion.version
    live = level_before(spec, day)
    evidence = change_evidence(spec, day, live.value)
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    if evidence is not None and evidence < start:
        start = evidence
        if open_change_of(spec, day) is None:  # the level from before the run, not inside it
            live = live_level(spec, start)
    served = _pooled(spec, start, day)
    if len(served) < spec.drift.min_rows:
        return PerformanceSignal(
            False,
            f"{len(served)} labelled predictions over {start}..{day}, fewer than "
            f"{spec.drift.min_rows} (drift.min_rows)",
            rows=len(served),
            model_version=version,
        )
    labels, scores = served["label"].to_numpy(), served["score"].to_numpy()
    value = metrics(spec, labels, scores)[primary]
    references = {"the live level": live, "slo": spec.metric.slo}
    below = _degraded(spec, value, labels, scores, references)
    holdout = champion.holdout.get(primary, float("nan"))
    window = day - dt.timedelta(days=spec.drift.window_days - 1)
    mine = served[(served["model_version"] == version) & (served["partition_date"] >= window)]
    if len(mine) >= spec.drift.min_rows:
        own = mine["label"].to_numpy(), mine["score"].to_numpy()
        own_value = metrics(spec, *own)[primary]
        below += _degraded(spec, own_value, *own, {f"v{version}'s holdout": holdout})
    text = (
        f"realized {primary} as served over {start}..{day} is {value:.4f}; v{version}'s "
        f"holdout {holdout:.4f}; {live.text}; SLO {spec.metric.slo}; tolerance "
        f"{spec.labels.performance_tolerance}: "
        + ("below " + "; ".join(below) if below else "not clearly below any")
    )
    behind, behind_text = champion_below_before(spec, day, version, live)
    return PerformanceSignal(
        bool(below),
        text,
        rows=len(served),
        value=value,
        reference=holdout,
        live_reference=live.value,
        model_version=version,
        change_date=evidence.isoformat() if below and evidence is not None else None,
        below_before=behind,
        below_text=behind_text,
    )


def champion_below_before(
    spec: ModelSpec, day: dt.date, version: int, live: Level
) -> tuple[bool, str]:
    """Whether the champion's own live record (its labelled predictions over the training
    window) is clearly below the live level before, or the SLO."""
    since = day - dt.timedelta(days=spec.training.window_days - 1)
    mine = _pooled(spec, since, day, version)
    if len(mine) < spec.drift.min_rows:
        return False, f"v{version} has {len(mine)} labelled predictions, too few to judge"
    labels, scores = mine["label"].to_numpy(), mine["score"].to_numpy()
    value = metrics(spec, labels, scores)[spec.primary_metric]
    below = _degraded(spec, value, labels, scores, {"live": live, "slo": spec.metric.slo})
    days = mine["partition_date"].nunique()
    verdict = "below" if below else "not clearly below"
    return bool(below), f"v{version} realized {value:.4f} over {days} day(s), {verdict} {live.text}"
