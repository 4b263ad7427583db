"""The drift-check step: compare a window of current data with the champion's reference profile,
persist the result (``drift_reports`` + ``drift_features``) before anything acts on it, and write
an HTML report with a reference-vs-current plot per drifted feature."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from loopline import config, storage, warehouse
from loopline.drift import DriftResult, Profile, detect
from loopline.features import read_clean
from loopline.spec import ModelSpec

log = logging.getLogger(__name__)


class NoReferenceError(LookupError):
    """No champion yet, so there is nothing to compare against."""


def champion_profile(spec: ModelSpec) -> tuple[int, str, Profile]:
    import mlflow

    from loopline import registry

    champion = registry.champion_version(spec.name)
    if champion is None:
        raise NoReferenceError(
            f"model '{spec.name}' has no champion: no reference profile to compare with"
        )
    registry.client()
    data = mlflow.artifacts.load_dict(f"runs:/{champion.run_id}/reference/profile.json")
    return int(champion.version), champion.run_id, Profile.from_dict(data)


def window_scores(spec: ModelSpec, start: dt.date, end: dt.date) -> np.ndarray:
    frame = warehouse.query(
        "SELECT score FROM warehouse.predictions "
        "WHERE model = :m AND partition_date BETWEEN :s AND :e",
        {"m": spec.name, "s": start, "e": end},
    )
    return frame["score"].to_numpy(dtype=float)


def window_labels(spec: ModelSpec, start: dt.date, end: dt.date) -> np.ndarray:
    frame = warehouse.query(
        "SELECT label FROM warehouse.labels WHERE model = :m AND partition_date BETWEEN :s AND :e",
        {"m": spec.name, "s": start, "e": end},
    )
    return frame["label"].to_numpy(dtype=float)


def run_drift_check(spec: ModelSpec, day: dt.date, *, dag_run_id: str | None = None) -> dict:
    version, run_id, profile = champion_profile(spec)
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    current = read_clean(spec, start, day)
    labels = window_labels(spec, start, day)
    result = detect(
        spec,
        profile,
        current,
        scores=window_scores(spec, start, day),
        labels=labels if len(labels) else None,
    )
    report_id = save_report(spec, day, start, version, run_id, len(current), result, dag_run_id)
    uri = write_html(spec, day, report_id, profile, current, result)
    with warehouse.engine().begin() as conn:
        from sqlalchemy import text

        conn.execute(
            text("UPDATE warehouse.drift_reports SET report_uri = :u WHERE id = :i"),
            {"u": uri, "i": report_id},
        )
    log.info(
        "model %s, %s: drifted %s (weighted share %.2f) -> report %s",
        spec.name,
        day,
        result.drifted_features,
        result.drifted_share,
        uri,
    )
    return {
        "report_id": report_id,
        "dataset_drift": result.dataset_drift,
        "drifted_features": result.drifted_features,
        "drifted_share": result.drifted_share,
        "model_version": version,
        "report_uri": uri,
    }


def save_report(
    spec: ModelSpec,
    day: dt.date,
    start: dt.date,
    version: int,
    run_id: str,
    rows: int,
    result: DriftResult,
    dag_run_id: str | None,
) -> int:
    """Replace the day's report (a re-run of the check) and return its id."""
    with warehouse.partition_transaction(spec.name, day) as cursor:
        cursor.execute(
            "DELETE FROM warehouse.drift_reports WHERE model = %s AND partition_date = %s",
            (spec.name, day),
        )
        cursor.execute(
            "INSERT INTO warehouse.drift_reports (model, partition_date, window_start, "
            "model_version, "
            "reference_run_id, rows, drifted_share, dataset_drift, drifted_features, "
            "prediction_drift, label_rate, dag_run_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                spec.name,
                day,
                start,
                version,
                run_id,
                rows,
                result.drifted_share,
                result.dataset_drift,
                json.dumps(result.drifted_features),
                json.dumps(asdict(result.prediction)) if result.prediction else None,
                json.dumps(result.label_rate) if result.label_rate else None,
                dag_run_id,
            ),
        )
        report_id = int(cursor.fetchone()[0])
        features = pd.DataFrame([asdict(f) for f in result.features]).assign(report_id=report_id)
        warehouse.copy_frame(cursor, "drift_features", features)
    return report_id


def write_html(
    spec: ModelSpec,
    day: dt.date,
    report_id: int,
    profile: Profile,
    current: pd.DataFrame,
    result: DriftResult,
) -> str:
    """A self-contained HTML page: the verdict, a table of every feature, a plot per drift."""
    rows = "".join(
        f"<tr class='{f.decision}'><td>{html.escape(f.feature)}</td><td>{f.test}</td>"
        f"<td>{f.statistic:.4f}</td><td>{f.p_adjusted:.2e}</td><td>{f.psi:.3f}</td>"
        f"<td>{'' if f.wasserstein is None else f'{f.wasserstein:.3f}'}</td>"
        f"<td>{'' if f.unseen_share is None else f'{f.unseen_share:.3f}'}</td>"
        f"<td>{f.n_ref}</td><td>{f.n_cur}</td><td>{f.decision}</td></tr>"
        for f in result.features
    )
    plots = "".join(
        f"<h3>{html.escape(name)}</h3>"
        f"<img src='data:image/png;base64,{_plot(profile, current, name)}'>"
        for name in result.drifted_features
    )
    verdict = "DRIFT" if result.dataset_drift else "no dataset drift"
    drifted = ", ".join(result.drifted_features) or "none"
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>{spec.name} drift {day}</title><style>body{{font-family:sans-serif}} td,th{{padding:2px 8px}}
tr.drift{{background:#fdd}} tr.insufficient_sample{{color:#888}}</style></head><body>
<h1>{spec.name}: drift check of {day} (report {report_id})</h1>
<p><b>{verdict}</b>: importance-weighted share of drifted features {result.drifted_share:.2f}
(threshold {spec.drift.dataset_threshold}); drifted: {drifted}.</p>
<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p (BH)</th><th>PSI</th>
<th>W/spread</th><th>unseen</th><th>n ref</th><th>n cur</th><th>decision</th></tr>{rows}</table>
{plots}</body></html>"""
    path = storage.join(config.reports_root(), spec.name, f"drift-{day.isoformat()}.html")
    storage.write_bytes(path, page.encode(), "text/html; charset=utf-8")
    return path


def _plot(profile: Profile, current: pd.DataFrame, name: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(6, 3))
    if name in profile.numeric:
        values = pd.to_numeric(current[name], errors="coerce").dropna()
        bins = np.histogram_bin_edges(
            np.concatenate([profile.numeric[name].sample, values]), bins=30
        )
        axis.hist(
            profile.numeric[name].sample, bins=bins, density=True, alpha=0.5, label="reference"
        )
        axis.hist(values, bins=bins, density=True, alpha=0.5, label="current")
    else:
        ref = pd.Series(profile.categorical[name].counts, dtype=float)
        cur = current[name].dropna().astype(str).value_counts().astype(float)
        both = pd.DataFrame({"reference": ref / ref.sum(), "current": cur / cur.sum()}).fillna(0)
        both.plot.bar(ax=axis)
    axis.set_title(name)
    axis.legend()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()
