"""What a model did, as plain text: the CLI's ``summary`` and ``history`` and ``make run``'s
closing summary print these lines. They read what the Models view reads (:mod:`overview`, the
model history of :mod:`rollback`), so a terminal and the UI cannot tell two stories."""

from __future__ import annotations

from loopline.adapters import warehouse
from loopline.adapters.specs import get_spec
from loopline.steps import overview
from loopline.steps.rollback import history as model_history


def days(model: str) -> list[str]:
    """One line per day: rows read, clean, quarantined, scored, by which version, its status."""
    frame = warehouse.day_table(model)
    lines = [f"{'date':<12}{'read':>7}{'clean':>7}{'quar.':>7}{'scored':>8}{'model':>7}  status"]
    for r in frame.itertuples():
        version = f"v{int(r.version)}" if r.version == r.version and r.version else "-"
        status = "ok" if r.success else f"FAILED: {r.error}"
        lines.append(
            f"{r.partition_date!s:<12}{r.rows_read:>7}{r.rows_clean:>7}{r.rows_quarantined:>7}"
            f"{r.predicted:>8}{version:>7}  {status}"
        )
    lines.append(
        f"{'total':<12}{frame.rows_read.sum():>7}{frame.rows_clean.sum():>7}"
        f"{frame.rows_quarantined.sum():>7}{frame.predicted.sum():>8}"
    )
    return lines


def monitoring(model: str) -> list[str]:
    """The drift verdict of every checked day, the first drift's report, and every retraining
    decision that triggered or said more than "no"."""
    drift = warehouse.drift_reports(model)
    lines = [
        f"  {r.partition_date}  {'DRIFT' if r.dataset_drift else 'ok   '} share "
        f"{r.drifted_share:.2f}  {', '.join(r.drifted_features) or '-'}"
        for r in drift.itertuples()
    ]
    if len(drift) and drift.dataset_drift.any():
        first = drift[drift.dataset_drift].report_uri.iloc[0]
        lines.append(f"  report of the first drift: {first}")
    decisions = warehouse.retrain_decisions(model)
    shown = decisions[decisions.triggered | ~decisions.reason.str.startswith("no ")]
    lines += [
        f"  {r.partition_date} {r.source:<11} {'TRIGGERED: ' if r.triggered else ''}{r.reason}"
        for r in shown.itertuples()
    ]
    return lines


def champion(model: str) -> list[str]:
    """The gate's events, then the champion with its holdout metrics (the Models view's)."""
    lines = [
        f"  {e.created_at:%H:%M:%S} v{e.version} {e.event}: {'; '.join(e.reasons)}"
        for e in model_history(model).itertuples()
    ]
    found = overview.summary(get_spec(model))
    if found.champion is None:
        return [*lines, "  no champion"]
    metrics = ", ".join(f"{name} {value:.4f}" for name, value in found.champion_metrics.items())
    return [
        *lines,
        f"  champion: {model} v{found.champion} (MLflow run {found.champion_run_id})",
        f"  holdout: {metrics}; calibrated: {found.champion_calibrated}",
    ]


def history(model: str) -> list[str]:
    """Every promotion, rejection and rollback, oldest first, with the champion it replaced."""
    events = model_history(model)
    if events.empty:
        return [f"{model}: no promotions, rejections or rollbacks yet"]
    lines = []
    for e in events.itertuples():
        previous = f" (was v{e.previous_champion})" if e.previous_champion is not None else ""
        state = "" if e.state == "done" else f" [{e.state}: a crash stopped it]"
        lines.append(
            f"{e.created_at:%Y-%m-%d %H:%M:%S}  v{e.version:<3} {e.event:<12}{previous}{state}  "
            + "; ".join(e.reasons)
        )
    return lines
