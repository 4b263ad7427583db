"""The geometry of the Models view's charts: where each point, line and bar goes, and the text
of its tooltip, computed from the typed views (``loopline.steps.overview``). The templates draw
them as inline SVG (no script, no CDN); nothing here writes markup."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from loopline.core.records import EstimatedDay, PerformanceDay, ValidatedDay

# One colour per model version in the charts (cycled).
PALETTE = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2")
BAD = "#dc2626"
MARGINS = (44, 8, 8, 18)  # left, right, top, bottom


def number(value: float | int | None, digits: int = 4) -> str:
    """A figure as shown: ``–`` for None or NaN, integers with thousands separators."""
    if value is None or value != value:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):.{digits}f}"


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    tip: str
    degraded: bool


@dataclass(frozen=True)
class Guess:
    """A day's estimate (before its labels): the value and its band."""

    x: float
    y: float
    low: float
    high: float
    color: str
    tip: str


@dataclass(frozen=True)
class Series:
    """One version's realized values (a line of dots) and its holdout value (dashed)."""

    version: int
    color: str
    points: str  # the polyline's "x,y x,y ..."
    dots: tuple[Dot, ...]
    reference: tuple[float, float, float, float] | None  # x1, x2, y, value


@dataclass(frozen=True)
class PerformanceChart:
    width: int
    height: int
    y_ticks: tuple[tuple[float, str], ...]
    x_labels: tuple[tuple[float, str, str], ...]  # x, anchor, text
    series: tuple[Series, ...]
    metric: str
    degraded_days: int
    estimates: tuple[Guess, ...] = ()
    margins: tuple[int, int, int, int] = MARGINS

    @property
    def baseline(self) -> float:
        return self.height - self.margins[3]


@dataclass(frozen=True)
class Scale:
    """Days and values to pixels."""

    first: dt.date
    span: int
    single_day: bool
    low: float
    high: float
    width: int
    height: int

    def x(self, day: dt.date) -> float:
        left, right, _, _ = MARGINS
        if self.single_day:
            return left + (self.width - left - right) / 2
        return left + (day - self.first).days / self.span * (self.width - left - right)

    def y(self, value: float) -> float:
        _, _, top, bottom = MARGINS
        return top + (self.high - value) / (self.high - self.low) * (self.height - top - bottom)


def _scale(
    points: Sequence[PerformanceDay], guesses: Sequence[EstimatedDay], width: int, height: int
) -> tuple[Scale, float]:
    dates = [p.partition_date for p in points] + [g.partition_date for g in guesses]
    values = [p.value for p in points] + [p.reference for p in points if p.reference is not None]
    values += [v for g in guesses for v in (g.value, g.low, g.high) if v is not None]
    pad = (max(values) - min(values)) * 0.15 or 0.05
    scale = Scale(
        first=min(dates),
        span=max((max(dates) - min(dates)).days, 1),
        single_day=len(set(dates)) == 1,
        low=min(values) - pad,
        high=max(values) + pad,
        width=width,
        height=height,
    )
    return scale, pad


def _series(version: int, color: str, mine: list[PerformanceDay], scale: Scale) -> Series:
    reference = next((p.reference for p in mine if p.reference is not None), None)
    ends = (scale.x(mine[0].partition_date), scale.x(mine[-1].partition_date))
    dots = tuple(
        Dot(
            scale.x(p.partition_date),
            scale.y(p.value),
            f"{p.partition_date} v{version}: {p.primary_metric} {p.value:.4f} "
            f"(holdout {number(p.reference)}), {number(p.rows)} rows"
            + (", degraded" if p.degraded else ""),
            p.degraded,
        )
        for p in mine
    )
    return Series(
        version=version,
        color=color,
        points=" ".join(f"{d.x:.1f},{d.y:.1f}" for d in dots),
        dots=dots,
        reference=(*ends, scale.y(reference), reference) if reference is not None else None,
    )


def performance_chart(
    rows: Sequence[PerformanceDay],
    width: int,
    height: int,
    estimates: Sequence[EstimatedDay] = (),
) -> PerformanceChart | None:
    """Realized metric by day, one series per model version, and the days' estimates before
    their labels (squares with their band); None without a measured or estimated day."""
    points, guesses = _measured(rows), _measured(estimates)
    if not points and not guesses:
        return None
    scale, pad = _scale(points, guesses, width, height)
    versions = _versions(points, guesses)
    return PerformanceChart(
        width=width,
        height=height,
        y_ticks=_y_ticks(scale, pad),
        x_labels=_x_labels(scale, max(_days(points, guesses))),
        series=_all_series(points, scale, versions),
        metric=points[0].primary_metric if points else guesses[0].metric,
        degraded_days=sum(p.degraded for p in points),
        estimates=tuple(_guess(g, scale, versions) for g in guesses),
    )


def _measured(days: Sequence) -> list:
    """The days that have a value (realized, or estimated)."""
    return [d for d in days if d.value is not None]


def _versions(points: list[PerformanceDay], guesses: list[EstimatedDay]) -> list[int]:
    return sorted({p.model_version for p in points} | {g.model_version for g in guesses})


def _days(points: list[PerformanceDay], guesses: list[EstimatedDay]) -> list[dt.date]:
    return [p.partition_date for p in points] + [g.partition_date for g in guesses]


def _color(version: int, versions: list[int]) -> str:
    return PALETTE[versions.index(version) % len(PALETTE)]


def _guess(day: EstimatedDay, scale: Scale, versions: list[int]) -> Guess:
    low = day.low if day.low is not None else day.value
    high = day.high if day.high is not None else day.value
    tip = (
        f"{day.partition_date} v{day.model_version}: estimated {day.metric} {day.value:.4f} "
        f"({low:.4f}..{high:.4f}, from {day.rows:,} scores before their labels; "
        f"reference {number(day.reference)})"
    )
    return Guess(
        scale.x(day.partition_date),
        scale.y(day.value),
        scale.y(low),
        scale.y(high),
        _color(day.model_version, versions),
        tip,
    )


def _all_series(
    points: list[PerformanceDay], scale: Scale, versions: list[int]
) -> tuple[Series, ...]:
    """One series per model version with realized days, each in its version's colour."""
    by_version: dict[int, list[PerformanceDay]] = {}
    for point in sorted(points, key=_day):
        by_version.setdefault(point.model_version, []).append(point)
    return tuple(
        _series(version, _color(version, versions), by_version[version], scale)
        for version in sorted(by_version)
    )


def _y_ticks(scale: Scale, pad: float) -> tuple[tuple[float, str], ...]:
    values = (scale.low + pad, (scale.low + scale.high) / 2, scale.high - pad)
    return tuple((scale.y(v), f"{v:.3f}") for v in values)


def _x_labels(scale: Scale, last: dt.date) -> tuple[tuple[float, str, str], ...]:
    """The first day under the left end, the last under the right (one day: one label)."""
    left, right = MARGINS[0], MARGINS[1]
    first = (float(left), "start", str(scale.first))
    if scale.single_day:
        return (first,)
    return first, (float(scale.width - right), "end", str(last))


def _day(point: PerformanceDay) -> dt.date:
    return point.partition_date


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    tip: str


def quarantine_bars(days: Sequence[ValidatedDay], width: int, height: int) -> list[Bar]:
    """Quarantined rows per day as bars (a failed day in red), each with its tooltip."""
    if not days:
        return []
    peak = max(d.rows_quarantined for d in days) or 1
    step = width / len(days)
    return [_bar(i, d, step, peak, height) for i, d in enumerate(days)]


def _bar(index: int, day: ValidatedDay, step: float, peak: int, height: int) -> Bar:
    count, failed = day.rows_quarantined, day.success is False
    tall = max((height - 2) * count / peak, 2)  # a day without bad rows: a 2px tick
    tip = f"{day.partition_date}: {count:,} of {day.rows_read:,} rows quarantined"
    if failed:
        tip += f"; failed: {day.error or 'validation failed'}"
    color = BAD if failed else "#94a3b8" if count else "#cbd5e1"
    return Bar(index * step + 0.5, height - tall, max(step - 1, 1), tall, color, tip)
