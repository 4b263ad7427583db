"""What a model did, as plain text: the CLI's ``summary`` and ``history`` and ``make run``'s
closing summary print these lines. They read through :mod:`overview`, as the Models view does,
so a terminal and the UI cannot tell two stories."""

from __future__ import annotations

from loopline.adapters.specs import get_spec
from loopline.steps import overview


def days(model: str) -> list[str]:
    """One line per day: rows read, clean, quarantined, scored, by which version, its status."""
    found = overview.days(model)
    lines = [f"{'date':<12}{'read':>7}{'clean':>7}{'quar.':>7}{'scored':>8}{'model':>7}  status"]
    for d in found:
        version = f"v{d.scored_by}" if d.scored_by else "-"
        status = "ok" if d.success else f"FAILED: {d.error}"
        lines.append(
            f"{d.partition_date!s:<12}{d.rows_read:>7}{d.rows_clean:>7}{d.rows_quarantined:>7}"
            f"{d.predicted:>8}{version:>7}  {status}"
        )
    totals = [sum(getattr(d, k) for d in found) for k in ("rows_read", "rows_clean")]
    totals += [sum(d.rows_quarantined for d in found), sum(d.predicted for d in found)]
    lines.append(f"{'total':<12}{totals[0]:>7}{totals[1]:>7}{totals[2]:>7}{totals[3]:>8}")
    return lines


def monitoring(model: str) -> list[str]:
    """The drift verdict of every checked day, the first drift's report, and every retraining
    decision that triggered or said more than "no"."""
    checks, decisions = overview.monitoring(model)
    lines = [
        f"  {c.partition_date}  {'DRIFT' if c.dataset_drift else 'ok   '} share "
        f"{c.drifted_share or 0:.2f}  {', '.join(c.drifted_features) or '-'}"
        for c in checks
    ]
    drifted = [c for c in checks if c.dataset_drift]
    if drifted:
        lines.append(f"  report of the first drift: {drifted[0].report_uri}")
    lines += [
        f"  {d.partition_date} {d.source:<11} {'TRIGGERED: ' if d.triggered else ''}{d.reason}"
        for d in decisions
        if d.triggered or not d.reason.startswith("no ")
    ]
    return lines


def champion(model: str) -> list[str]:
    """The gate's events, then the champion with its holdout metrics (the Models view's)."""
    lines = [
        f"  {e.created_at:%H:%M:%S} v{e.version} {e.event}: {'; '.join(e.reasons)}"
        for e in overview.history(model)
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
    events = overview.history(model)
    if not events:
        return [f"{model}: no promotions, rejections or rollbacks yet"]
    lines = []
    for e in events:
        previous = f" (was v{e.previous_champion})" if e.previous_champion is not None else ""
        state = "" if e.state == "done" else f" [{e.state}: a crash stopped it]"
        lines.append(
            f"{e.created_at:%Y-%m-%d %H:%M:%S}  v{e.version:<3} {e.event:<12}{previous}{state}  "
            + "; ".join(e.reasons)
        )
    return lines
