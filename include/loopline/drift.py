"""Drift detection against a compact reference profile (pure functions, no I/O).

A profile is built once per model version from its training data: per numeric feature,
quantile bin edges with counts and a fixed-size reservoir sample; per categorical feature,
category counts; the holdout score distribution; the label rate. Drift checks compare a window
of current data with the champion's profile and never re-read the training data.

A feature drifts only when (1) both samples have at least ``min_rows`` non-null values,
(2) its test's p-value, corrected across features with Benjamini-Hochberg, is below ``alpha``,
and (3) an effect size crosses its threshold: PSI, Wasserstein distance normalised by the
reference spread, or the share of unseen categories. With big samples every p-value is tiny,
so p-values alone would cry wolf; with small samples PSI is noisy, so effect sizes alone would.
Constant, empty and all-null columns give defined, finite values.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from loopline.spec import Drift, ModelSpec

BINS = 10
SAMPLE_SIZE = 2000
SMOOTHING = 0.5  # counts added to every bin before proportions, so PSI never divides by zero
UNSEEN = "__unseen__"


class Reservoir:
    """A uniform random sample of fixed size from a stream of chunks (Vitter's Algorithm R)."""

    def __init__(self, size: int = SAMPLE_SIZE, seed: int = 0):
        self.size, self.seen = size, 0
        self.rng = np.random.default_rng(seed)
        self.sample = np.empty(0, dtype=float)

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        room = max(self.size - len(self.sample), 0)
        self.sample = np.concatenate([self.sample, values[:room]])
        rest = values[room:]
        if len(rest):
            positions = self.seen + room + np.arange(len(rest))
            slots = self.rng.integers(
                0, positions + 1
            )  # item i replaces slot j < size w.p. size/(i+1)
            keep = slots < self.size
            for slot, value in zip(slots[keep], rest[keep], strict=True):
                self.sample[slot] = value
        self.seen += len(values)


@dataclass
class NumericProfile:
    edges: list[float]
    counts: list[int]
    sample: list[float]
    n: int
    nulls: int
    spread: float

    @classmethod
    def build(cls, values, seed: int = 0) -> NumericProfile:
        values = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
        present = values[np.isfinite(values)]
        edges = (
            np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)))
            if len(present)
            else np.array([])
        )
        reservoir = Reservoir(seed=seed)
        reservoir.update(present)
        return cls(
            edges=edges.tolist(),
            counts=bin_counts(present, edges).tolist(),
            sample=reservoir.sample.tolist(),
            n=len(present),
            nulls=int(len(values) - len(present)),
            spread=_spread(present),
        )


@dataclass
class CategoricalProfile:
    counts: dict[str, int]
    n: int
    nulls: int

    @classmethod
    def build(cls, values) -> CategoricalProfile:
        series = pd.Series(values, dtype=object)
        present = series.dropna().astype(str)
        return cls(present.value_counts().to_dict(), len(present), int(series.isna().sum()))


@dataclass
class Profile:
    numeric: dict[str, NumericProfile]
    categorical: dict[str, CategoricalProfile]
    score: NumericProfile | None = None
    label_rate: float | None = None
    importance: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Profile:
        return cls(
            numeric={k: NumericProfile(**v) for k, v in data["numeric"].items()},
            categorical={k: CategoricalProfile(**v) for k, v in data["categorical"].items()},
            score=NumericProfile(**data["score"]) if data.get("score") else None,
            label_rate=data.get("label_rate"),
            importance=data.get("importance", {}),
        )


def build_profile(
    spec: ModelSpec,
    frame: pd.DataFrame,
    *,
    scores=None,
    labels=None,
    importance: dict[str, float] | None = None,
    seed: int = 0,
) -> Profile:
    numeric = {
        f.name: NumericProfile.build(frame[f.name], seed)
        for f in spec.features
        if f.type == "numeric"
    }
    categorical = {
        f.name: CategoricalProfile.build(frame[f.name])
        for f in spec.features
        if f.type == "categorical"
    }
    return Profile(
        numeric,
        categorical,
        score=NumericProfile.build(scores, seed) if scores is not None else None,
        label_rate=float(np.mean(labels)) if labels is not None and len(labels) else None,
        importance=importance or {},
    )


def _spread(values: np.ndarray) -> float:
    """The reference's scale for normalising distances: IQR, else std, else 1 (constant)."""
    if len(values) == 0:
        return 1.0
    q75, q25 = np.percentile(values, [75, 25])
    spread = float(q75 - q25) or float(np.std(values))
    return spread if spread > 0 else 1.0


def bin_counts(values: np.ndarray, edges) -> np.ndarray:
    """Counts in the reference bins; values outside the reference range fall in the end bins."""
    edges = np.asarray(edges, dtype=float)
    if len(edges) < 2:  # constant (or empty) reference: one bin
        return np.array([len(values)])
    inner = edges[1:-1]
    return np.bincount(np.searchsorted(inner, values, side="right"), minlength=len(edges) - 1)


def psi(reference_counts, current_counts) -> float:
    """Population stability index with additive smoothing: finite for empty bins."""
    ref = np.asarray(reference_counts, dtype=float) + SMOOTHING
    cur = np.asarray(current_counts, dtype=float) + SMOOTHING
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical | score
    test: str
    statistic: float
    p_value: float
    p_adjusted: float
    psi: float
    wasserstein: float | None
    unseen_share: float | None
    n_ref: int
    n_cur: int
    null_share: float
    decision: str  # drift | no_drift | insufficient_sample

    @property
    def drifted(self) -> bool:
        return self.decision == "drift"


def _finite(value: float, default: float = 0.0) -> float:
    return float(value) if value is not None and math.isfinite(value) else default


def compare_numeric(name: str, ref: NumericProfile, current, kind: str = "numeric") -> FeatureDrift:
    values = pd.to_numeric(pd.Series(current), errors="coerce").to_numpy(dtype=float)
    present = values[np.isfinite(values)]
    sample = np.asarray(ref.sample, dtype=float)
    if len(present) and len(sample):
        ks = stats.ks_2samp(sample, present)
        statistic, p_value = _finite(ks.statistic), _finite(ks.pvalue, 1.0)
        distance = stats.wasserstein_distance(sample, present) / ref.spread
    else:
        statistic, p_value, distance = 0.0, 1.0, 0.0
    return FeatureDrift(
        name,
        kind,
        "ks",
        statistic,
        p_value,
        p_value,
        psi(ref.counts, bin_counts(present, ref.edges)),
        _finite(distance),
        None,
        ref.n,
        len(present),
        _finite((len(values) - len(present)) / len(values)) if len(values) else 0.0,
        "no_drift",
    )


def compare_categorical(name: str, ref: CategoricalProfile, current) -> FeatureDrift:
    series = pd.Series(current, dtype=object)
    present = series.dropna().astype(str)
    known = list(ref.counts)
    current_counts = present.value_counts()
    unseen = int(current_counts.drop(known, errors="ignore").sum())
    observed = np.array([current_counts.get(c, 0) for c in known] + [unseen], dtype=float)
    expected = np.array([ref.counts[c] for c in known] + [0], dtype=float) + SMOOTHING
    if observed.sum() > 0:
        expected = expected / expected.sum() * observed.sum()
        chi = stats.chisquare(observed, expected)
        statistic, p_value = _finite(chi.statistic), _finite(chi.pvalue, 1.0)
    else:
        statistic, p_value = 0.0, 1.0
    return FeatureDrift(
        name,
        "categorical",
        "chi2",
        statistic,
        p_value,
        p_value,
        psi([ref.counts[c] for c in known] + [0], observed),
        None,
        unseen / len(present) if len(present) else 0.0,
        ref.n,
        len(present),
        _finite(series.isna().mean()) if len(series) else 0.0,
        "no_drift",
    )


@dataclass
class DriftResult:
    features: list[FeatureDrift]
    drifted_share: float  # weighted by the champion's feature importance
    dataset_drift: bool
    prediction: FeatureDrift | None = None
    label_rate: dict | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]


def decide(settings: Drift, results: list[FeatureDrift]) -> list[FeatureDrift]:
    """Benjamini-Hochberg across the features with enough rows, then the three conditions."""
    testable = [r for r in results if min(r.n_ref, r.n_cur) >= settings.min_rows]
    if testable:
        adjusted = stats.false_discovery_control([r.p_value for r in testable], method="bh")
        for result, p in zip(testable, adjusted, strict=True):
            result.p_adjusted = float(p)
    for result in results:
        if result not in testable:
            result.decision = "insufficient_sample"
            continue
        effect = (
            result.psi >= settings.psi_threshold
            or (result.wasserstein or 0.0) >= settings.wasserstein_threshold
            or (result.unseen_share or 0.0) >= settings.unseen_share_threshold
        )
        result.decision = "drift" if result.p_adjusted < settings.alpha and effect else "no_drift"
    return results


def detect(
    spec: ModelSpec, profile: Profile, current: pd.DataFrame, *, scores=None, labels=None
) -> DriftResult:
    """Compare a window of current rows (and its scores and labels, if any) with the profile."""
    results = [
        compare_numeric(n, p, current[n]) for n, p in profile.numeric.items() if n in current
    ]
    results += [
        compare_categorical(n, p, current[n])
        for n, p in profile.categorical.items()
        if n in current
    ]
    decide(spec.drift, results)
    weights = {r.feature: profile.importance.get(r.feature, 1.0) for r in results}
    total = sum(weights.values()) or 1.0
    share = sum(weights[r.feature] for r in results if r.drifted) / total
    prediction = None
    if scores is not None and profile.score is not None:
        prediction = decide(
            spec.drift, [compare_numeric("__score__", profile.score, scores, "score")]
        )[0]
    label_rate = None
    if labels is not None and len(labels) and profile.label_rate is not None:
        label_rate = compare_rates(profile.label_rate, np.asarray(labels, dtype=float), spec.drift)
    return DriftResult(
        results, share, share >= spec.drift.dataset_threshold, prediction, label_rate
    )


def compare_rates(reference_rate: float, labels: np.ndarray, settings: Drift) -> dict:
    """Prior shift: a one-sample test of the current positive rate against the reference's."""
    n, positives = len(labels), int(np.sum(labels))
    test = stats.binomtest(positives, n, min(max(reference_rate, 1e-6), 1 - 1e-6))
    rate = positives / n
    relative = abs(rate - reference_rate) / max(reference_rate, 1e-6)
    shifted = n >= settings.min_rows and test.pvalue < settings.alpha and relative >= 0.25
    return {
        "reference_rate": reference_rate,
        "current_rate": rate,
        "n": n,
        "p_value": float(test.pvalue),
        "relative_change": relative,
        "shifted": bool(shifted),
    }
