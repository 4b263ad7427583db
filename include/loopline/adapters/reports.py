"""Reports for people: the evaluation plots logged with each model version, and the drift
report (a self-contained HTML page) written next to each drift check. Matplotlib, headless."""

from __future__ import annotations

import base64
import datetime as dt
import io
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sklearn import metrics as skm

from loopline.adapters import settings, storage
from loopline.core.drift import DriftResult, Profile, Window
from loopline.core.spec import ModelSpec


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def close(figure: Any) -> None:
    """Release a figure (pyplot keeps every figure alive until closed)."""
    _pyplot().close(figure)


def evaluation_figures(
    spec: ModelSpec,
    y: np.ndarray,
    score: np.ndarray,
    slices: dict,
    importance: pd.Series | None,
) -> dict:
    """Matplotlib figures to log with the model: ROC/PR or residuals, calibration, slices,
    feature importance."""
    plt = _pyplot()
    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    figs = {}
    primary = spec.primary_metric
    if spec.is_classifier:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        fpr, tpr, _ = skm.roc_curve(y, score)
        left.plot(fpr, tpr)
        left.plot([0, 1], [0, 1], "--", color="grey")
        left.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
        precision, recall, _ = skm.precision_recall_curve(y, score)
        right.plot(recall, precision)
        right.set(title="precision-recall", xlabel="recall", ylabel="precision")
        figs["roc_pr.png"] = fig
        fig, axis = plt.subplots(figsize=(5, 4))
        from sklearn.calibration import calibration_curve

        observed, predicted = calibration_curve(y, score, n_bins=10, strategy="quantile")
        axis.plot(predicted, observed, "o-")
        axis.plot(
            [0, max(predicted.max(), 0.01)], [0, max(predicted.max(), 0.01)], "--", color="grey"
        )
        axis.set(title="calibration (holdout)", xlabel="mean predicted", ylabel="observed rate")
        figs["calibration.png"] = fig
    else:
        fig, axis = plt.subplots(figsize=(5, 4))
        axis.scatter(score, y - score, s=4, alpha=0.4)
        axis.axhline(0, color="grey")
        axis.set(title="residuals", xlabel="predicted", ylabel="actual - predicted")
        figs["residuals.png"] = fig
    for column, values in slices.items():
        names = list(values)
        fig, axis = plt.subplots(figsize=(6, 3))
        axis.bar(names, [values[n].get(primary, np.nan) for n in names])
        axis.set(title=f"{primary} by {column}", ylabel=primary)
        figs[f"slices_{column}.png"] = fig
    if importance is not None and len(importance):
        top = importance.sort_values().tail(20)
        fig, axis = plt.subplots(figsize=(6, 5))
        axis.barh(top.index, top.to_numpy())
        axis.set(title="feature importance (gain)")
        fig.tight_layout()
        figs["feature_importance.png"] = fig
    return figs


def write_html(
    spec: ModelSpec,
    day: dt.date,
    report_id: int,
    profile: Profile,
    window: Window,
    result: DriftResult,
) -> str:
    """A self-contained HTML page: the verdict, every feature with the rule that decided it,
    and a reference-vs-current plot per drifted feature (drawn from the sketches); rendered
    from an autoescaped template, so a feature or category named like markup stays text."""
    plots = [
        (name, _plot(profile, window, name))
        for name in result.drifted_features
        if name in window.seen
    ]
    page = (
        _templates()
        .get_template("drift_report.html")
        .render(
            model=spec.name,
            day=day,
            report_id=report_id,
            threshold=spec.drift.dataset_threshold,
            result=result,
            plots=plots,
            weighting=WEIGHTING,
        )
    )
    path = storage.join(settings.reports_root(), spec.name, f"drift-{day.isoformat()}.html")
    storage.write_bytes(path, page.encode(), "text/html; charset=utf-8")
    return path


WEIGHTING = {
    "attribution": "its share of the champion's attributions (mean |SHAP| on its holdout)",
    "gain": "its share of the champion's gain importance (a version from before attributions)",
    "equal": "the same (the reference holds no importance)",
}


def template_environment(package: str) -> Environment:
    """Jinja2 for the HTML loopline writes (a package's ``templates/`` folder): every value
    escaped, an undefined name an error, no stray blank lines from the tags."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _templates() -> Environment:
    env = template_environment("loopline.adapters")
    env.filters["figure"] = _number
    return env


def _number(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _plot(profile: Profile, window: Window, name: str) -> str:
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(6, 3))
    if name in profile.numeric:
        reference, current = profile.numeric[name], window.numeric[name]
        axis.step(reference.points, reference.cdf, where="post", label="reference")
        if current.n and len(reference.points):
            at = np.cumsum(current.slots)[1::2] / current.n
            axis.step(reference.points, at, where="post", label="current")
        axis.set_ylabel("share <= x")
    else:
        ref = pd.Series(profile.categorical[name].counts, dtype=float)
        cur = pd.Series(window.categorical[name].counts, dtype=float)
        both = pd.DataFrame(
            {"reference": ref / max(ref.sum(), 1), "current": cur / max(cur.sum(), 1)}
        ).fillna(0)
        both.plot.bar(ax=axis)
    axis.set_title(name)
    axis.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()
