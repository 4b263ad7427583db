"""Performance estimated before the labels arrive, from the model's own calibrated scores
(confidence-based performance estimation, CBPE: the method NannyML implements): if a score
``p`` is calibrated, its row is positive with probability ``p``, so the expected confusion
matrix at any threshold, and with it the expected ROC-AUC and accuracy, follow from the scores
alone. Pure: scores in, estimates out.

Scores are first calibrated on the reference, as NannyML does: an isotonic map from score to
the observed positive rate, fitted on the version's holdout when it is evaluated
(:class:`Calibration`, kept in its profile); the model's own ranking and decisions stay those
of its raw scores. It holds while that map stays true on the new rows: under covariate shift
(P(y|x) unchanged) it sees how a shift moves the model's performance days or weeks before the
labels do. Under concept drift (P(y|x) changed) or a prior shift the scores are no longer calibrated
and the estimate cannot see the change: the realized metric, once labels arrive, is the judge
(docs/monitoring.md measures both).

Scores stream into a fixed histogram on [0, 1] (rows and the sum of their scores per bin), so
a day of any size costs the same memory:

* the expected ROC-AUC: bins in descending score order, expected positives ``sum p`` and
  negatives ``sum (1 - p)`` per bin accumulate into the expected curve (rows of one bin count as
  tied: the bins are 1/20,000 wide);
* its uncertainty: labels drawn from the scores (``draws`` times, seeded; per bin a binomial
  draw at the bin's mean score), the metric of each draw, its 2.5..97.5 percentiles: how far the
  realized metric of this day may be from its estimate by sampling alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import numpy.typing as npt

BINS = 20_000
ESTIMATED = ("roc_auc",)  # primary metrics estimated; accuracy at the threshold always


@dataclass(frozen=True)
class Calibration:
    """A monotone map from score to the probability of a positive (isotonic, on the reference's
    scores and labels), applied by linear interpolation between its knots."""

    scores: tuple[float, ...]
    rates: tuple[float, ...]

    @classmethod
    def fit(cls, scores: npt.ArrayLike, labels: npt.ArrayLike) -> Calibration | None:
        """None when the reference holds one class only (nothing to calibrate to)."""
        from sklearn.isotonic import IsotonicRegression

        p, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
        keep = np.isfinite(p) & np.isfinite(y)
        p, y = p[keep], y[keep]
        if len(np.unique(y)) < 2:
            return None
        fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        knots = fitted.X_thresholds_, fitted.y_thresholds_
        return cls(tuple(float(v) for v in knots[0]), tuple(float(v) for v in knots[1]))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return np.interp(scores, self.scores, self.rates)

    def to_dict(self) -> dict:
        return {"scores": list(self.scores), "rates": list(self.rates)}

    @classmethod
    def from_dict(cls, data: dict | None) -> Calibration | None:
        return cls(tuple(data["scores"]), tuple(data["rates"])) if data else None


@dataclass
class ScoreHistogram:
    """Rows and the sum of their scores per bin of [0, 1]; scores that are not finite are
    left out."""

    rows: np.ndarray = field(default_factory=lambda: np.zeros(BINS))
    sums: np.ndarray = field(default_factory=lambda: np.zeros(BINS))

    def add(self, scores: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> None:
        p = np.asarray(scores, dtype=float)
        w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
        keep = np.isfinite(p)
        p, w = np.clip(p[keep], 0.0, 1.0), w[keep]
        index = np.minimum((p * BINS).astype(int), BINS - 1)
        self.rows += np.bincount(index, weights=w, minlength=BINS)
        self.sums += np.bincount(index, weights=w * p, minlength=BINS)

    @classmethod
    def of(cls, scores: npt.ArrayLike) -> ScoreHistogram:
        found = cls()
        found.add(scores)
        return found

    @property
    def total(self) -> float:
        return float(self.rows.sum())

    def occupied(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows and mean score of the bins that hold rows, highest score first."""
        used = np.flatnonzero(self.rows > 0)[::-1]
        return self.rows[used], self.sums[used] / self.rows[used]

    def expected(
        self, calibration: Calibration | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per occupied bin, highest score first: rows, mean score (what the model ranks and
        decides by), and the probability of a positive (calibrated, if a map is given)."""
        rows, mean = self.occupied()
        return rows, mean, calibration(mean) if calibration is not None else mean


def _auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC-AUC of bins in descending score order (last axis), ties within a bin counted half:
    the share of (positive, negative) pairs a positive wins."""
    above = np.cumsum(positives, axis=-1) - positives  # positives in higher bins
    pairs = positives.sum(axis=-1) * negatives.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((above + positives / 2) * negatives).sum(axis=-1) / pairs


def expected_roc_auc(
    histogram: ScoreHistogram, calibration: Calibration | None = None
) -> float | None:
    """The expected ROC-AUC of the histogram's scores; None when one class only is expected
    (every probability 0, or every one 1)."""
    rows, _, p = histogram.expected(calibration)
    positives, negatives = rows * p, rows * (1 - p)
    if positives.sum() <= 0 or negatives.sum() <= 0:
        return None
    return float(_auc(positives, negatives))


def expected_accuracy(
    histogram: ScoreHistogram, threshold: float, calibration: Calibration | None = None
) -> float | None:
    """Predicted positive at ``score >= threshold`` (a bin is on the side of its mean score):
    right with probability ``p``, else ``1 - p``."""
    rows, mean, p = histogram.expected(calibration)
    if rows.sum() <= 0:
        return None
    return float((rows * np.where(mean >= threshold, p, 1 - p)).sum() / rows.sum())


@dataclass(frozen=True)
class Estimate:
    """One day's estimated performance of the served scores."""

    rows: int
    metric: str
    value: float | None
    low: float | None
    high: float | None
    accuracy: float | None
    accuracy_low: float | None
    accuracy_high: float | None
    threshold: float
    expected_positive_rate: float | None

    @property
    def standard_error(self) -> float | None:
        """The band's half width over 1.96."""
        if self.low is None or self.high is None:
            return None
        return (self.high - self.low) / (2 * 1.96)

    def as_dict(self) -> dict:
        return asdict(self)


def _band(values: np.ndarray) -> tuple[float | None, float | None]:
    values = values[np.isfinite(values)]
    if not len(values):
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _drawn(
    histogram: ScoreHistogram,
    threshold: float,
    draws: int,
    seed: int,
    calibration: Calibration | None,
):
    """Per draw: the ROC-AUC and the accuracy of labels drawn from the probabilities."""
    rows, mean, p = histogram.expected(calibration)
    counts = np.round(rows).astype(np.int64)
    positives = np.random.default_rng(seed).binomial(counts, p, size=(draws, len(counts)))
    negatives = counts - positives
    right = np.where(mean >= threshold, positives, negatives).sum(axis=1)
    return _auc(positives, negatives), right / max(counts.sum(), 1)


def estimate(
    histogram: ScoreHistogram,
    *,
    threshold: float,
    metric: str = "roc_auc",
    calibration: Calibration | None = None,
    draws: int = 200,
    seed: int = 0,
) -> Estimate:
    """The day's estimated ``metric`` (ROC-AUC; None for a metric not in ``ESTIMATED``) and
    accuracy at ``threshold``, each with its 95% sampling band; ``calibration``: the
    reference's map from score to probability (None: the scores are taken as calibrated)."""
    total = histogram.total
    if total <= 0:
        return Estimate(0, metric, None, None, None, None, None, None, threshold, None)
    aucs, accuracies = _drawn(histogram, threshold, draws, seed, calibration)
    value = expected_roc_auc(histogram, calibration) if metric in ESTIMATED else None
    low, high = _band(aucs) if value is not None else (None, None)
    accuracy_low, accuracy_high = _band(accuracies)
    return Estimate(
        rows=int(round(total)),
        metric=metric,
        value=value,
        low=low,
        high=high,
        accuracy=expected_accuracy(histogram, threshold, calibration),
        accuracy_low=accuracy_low,
        accuracy_high=accuracy_high,
        threshold=threshold,
        expected_positive_rate=_positive_rate(histogram, calibration),
    )


def _positive_rate(histogram: ScoreHistogram, calibration: Calibration | None) -> float:
    rows, _, p = histogram.expected(calibration)
    return float((rows * p).sum() / rows.sum())


def sketch_histogram(
    points: npt.ArrayLike, cdf: npt.ArrayLike, below: npt.ArrayLike, rows: int
) -> ScoreHistogram:
    """A quantile sketch's scores (the reference's holdout, from its profile) as a histogram:
    each point with the rows at it, each interval's rows at its midpoint."""
    points, cdf, below = (np.asarray(v, dtype=float) for v in (points, cdf, below))
    values = np.concatenate([points, (points[1:] + points[:-1]) / 2])
    shares = np.clip(np.concatenate([cdf - below, below[1:] - cdf[:-1]]), 0.0, None)
    found = ScoreHistogram()
    found.add(values, shares * rows)
    return found


@dataclass(frozen=True)
class EstimatedDrop:
    """Whether a day's estimate is clearly below the reference's (the champion's holdout scores
    estimated the same way): beyond ``tolerance`` plus two standard errors of the day's
    estimate."""

    metric: str
    value: float | None
    reference: float | None
    standard_error: float
    tolerance: float

    @property
    def dropped(self) -> bool:
        if self.value is None or self.reference is None:
            return False
        return self.reference - self.value > self.tolerance + 2 * self.standard_error

    @property
    def text(self) -> str:
        if self.value is None or self.reference is None:
            return f"no estimate of {self.metric} (one class expected, or no scores)"
        verdict = "below" if self.dropped else "not clearly below"
        return (
            f"estimated {self.metric} {self.value:.4f} (CBPE) is {verdict} the reference's "
            f"{self.reference:.4f} (tolerance {self.tolerance} + 2 SE {self.standard_error:.4f})"
        )
