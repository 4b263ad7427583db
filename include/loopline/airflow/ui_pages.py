"""HTML of the Models view: server-rendered pages from ``loopline.steps.overview``'s summaries,
every value escaped, charts drawn as inline SVG (no script, no CDN: the pages work offline and
inside the Airflow UI's frame)."""

from __future__ import annotations

import datetime as dt
import html
import numbers
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from loopline.core.metrics import GREATER_IS_BETTER

if TYPE_CHECKING:
    from loopline.steps.overview import ModelDetail, ModelSummary

# One colour per model version in the charts (cycled).
PALETTE = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2")
BAD = "#dc2626"
EVENT_LABELS = {"promoted": "promoted", "rejected": "rejected", "rolled_back": "rolled back"}

ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="#64748b" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M3 3v18h18"/>'
    '<path d="M7 15l4-4 3 3 5-6"/><circle cx="19" cy="8" r="1.5"/></svg>'
)

STYLE = """
:root { color-scheme: light dark; --fg: #1f2937; --muted: #6b7280; --line: #e5e7eb;
  --bg: #ffffff; --head: #f9fafb; --ok: #047857; --ok-bg: #d1fae5; --warn: #b45309;
  --warn-bg: #fef3c7; --bad: #b91c1c; --bad-bg: #fee2e2; --info: #1d4ed8; --info-bg: #dbeafe; }
@media (prefers-color-scheme: dark) { :root { --fg: #e5e7eb; --muted: #9ca3af;
  --line: #374151; --bg: #111827; --head: #1f2937; --ok: #6ee7b7; --ok-bg: #064e3b;
  --warn: #fcd34d; --warn-bg: #78350f; --bad: #fca5a5; --bad-bg: #7f1d1d; --info: #93c5fd;
  --info-bg: #1e3a8a; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 20px 24px 40px; font: 14px/1.45 system-ui, -apple-system,
  "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 15px; margin: 16px 0 6px; } p { margin: 4px 0; }
a { color: var(--info); text-decoration: none; } a:hover { text-decoration: underline; }
.muted { color: var(--muted); } .small { font-size: 12px; } .nowrap { white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 7px 10px; text-align: left;
  vertical-align: top; }
th { background: var(--head); font-weight: 600; font-size: 12px; color: var(--muted);
  text-transform: uppercase; letter-spacing: .03em; }
table.compact th, table.compact td { padding: 3px 8px; border-bottom: none; }
table.compact th { background: none; text-transform: none; letter-spacing: 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; white-space: nowrap; }
.ok { color: var(--ok); background: var(--ok-bg); }
.warn { color: var(--warn); background: var(--warn-bg); }
.bad { color: var(--bad); background: var(--bad-bg); }
.info { color: var(--info); background: var(--info-bg); }
.version { font-size: 18px; font-weight: 700; }
ul.reasons { margin: 4px 0; padding-left: 18px; } ul.reasons li { margin: 1px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 4px 16px 12px;
  margin: 10px 0; }
details > summary { cursor: pointer; font-weight: 600; padding: 8px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr));
  gap: 4px 28px; }
.scroll { max-height: 420px; overflow-y: auto; }
nav.crumbs { margin-bottom: 12px; font-size: 13px; }
svg text { font: 10px system-ui, sans-serif; fill: var(--muted); }
svg .axis { stroke: var(--line); }
.legend span { margin-right: 12px; white-space: nowrap; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 4px; vertical-align: -1px; }
"""


# --- values ----------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def day(value: Any) -> str:
    """A partition date as YYYY-MM-DD, whatever type the warehouse returned."""
    return "" if value is None else str(value)[:10]


def when(value: Any) -> str:
    """A timestamp to the minute, in UTC."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def number(value: Any, digits: int = 4) -> str:
    if value is None or value != value:  # None or NaN
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):  # numpy's integers too
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def version_label(value: Any, missing: str = "–") -> str:
    """``v3`` for 3, 3.0 or "3"; ``missing`` for None or NaN."""
    if value is None or value != value:
        return missing
    return f"v{int(float(value))}"


def model_url(base: str, name: str) -> str:
    return f"{base}/models/{quote(name, safe='')}"


def report_url(base: str, name: str, report_id: Any) -> str:
    return f"{model_url(base, name)}/drift/{int(report_id)}"


def badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{esc(text)}</span>'


def reasons_list(reasons: Iterable[str] | None) -> str:
    items = "".join(f"<li>{esc(r)}</li>" for r in reasons or [])
    return f'<ul class="reasons">{items}</ul>' if items else ""


def document(base: str, title: str, body: str, crumbs: str | None = "") -> str:
    """A whole page; ``crumbs`` follow a link back to the overview (None: no links)."""
    nav = (
        ""
        if crumbs is None
        else f'<nav class="crumbs"><a href="{esc(base)}/">Models</a>{crumbs}</nav>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>"
        f"<body>{nav}{body}</body></html>"
    )


def with_report_nav(base: str, name: str, report: bytes) -> bytes:
    """A stored drift report with links back to the view on top (inside the Airflow UI's
    frame a link cannot open a new window, so the report opens in the frame)."""
    nav = (
        '<nav style="font:13px system-ui,sans-serif;margin:0 0 8px">'
        f'<a href="{esc(base)}/">Models</a> / '
        f'<a href="{esc(model_url(base, name))}">{esc(name)}</a> / drift report</nav>'
    ).encode()
    head, body, rest = report.partition(b"<body>")
    return head + body + nav + rest if body else nav + report


def message_page(base: str, title: str, text: str) -> str:
    return document(base, title, f"<h1>{esc(title)}</h1><p>{esc(text)}</p>")


# --- pieces of a model's summary ---------------------------------------------------------


def champion_cell(model: ModelSummary) -> str:
    if model.champion is None:
        return '<span class="muted">no champion yet</span>'
    challenger = (
        f'<p class="small muted">challenger v{model.challenger}</p>'
        if model.challenger is not None and model.challenger != model.champion
        else ""
    )
    return f'<span class="version">v{model.champion}</span>{challenger}'


def metrics_table(values: dict[str, float], primary: str) -> str:
    if not values:
        return '<span class="muted">–</span>'
    rows = "".join(
        f"<tr><td>{'<b>' if name == primary else ''}{esc(name)}"
        f"{'</b>' if name == primary else ''}</td><td class='num'>{number(value)}</td></tr>"
        for name, value in values.items()
    )
    return f'<table class="compact metrics">{rows}</table>'


def drift_cell(base: str, model: ModelSummary) -> str:
    drift = model.last_drift
    if not drift:
        return '<span class="muted">no drift check yet</span>'
    verdict = badge("drift", "bad") if drift["dataset_drift"] else badge("no drift", "ok")
    features = ", ".join(drift.get("drifted_features") or []) or "none"
    link = (
        f'<a class="report" href="{esc(report_url(base, model.name, drift["id"]))}">report</a>'
        if drift.get("report_uri")
        else ""
    )
    return (
        f"{verdict} <span class='nowrap'>{esc(day(drift['partition_date']))}</span> {link}"
        f"<p class='small'>drifted share {number(drift.get('drifted_share'), 2)}; "
        f"features: {esc(features)}</p>"
        f"<p class='small muted'>against v{esc(drift.get('model_version'))}</p>"
    )


def decision_cell(model: ModelSummary) -> str:
    decision = model.last_decision
    if not decision:
        return '<span class="muted">no decision yet</span>'
    verdict = (
        badge("retraining triggered", "warn")
        if decision["triggered"]
        else badge("not triggered", "info")
    )
    return (
        f"{verdict} <span class='nowrap'>{esc(day(decision['partition_date']))}</span> "
        f"<span class='small muted'>({esc(decision['source'])})</span>"
        f"<p class='small reason'>{esc(decision['reason'])}</p>"
    )


def quarantine_cell(model: ModelSummary) -> str:
    days = model.days
    if not days:
        return '<span class="muted">no days validated yet</span>'
    last = days[-1]
    total = sum(int(d.get("rows_quarantined") or 0) for d in days)
    failed = sum(1 for d in days if d.get("success") is False)
    failed_text = f", <span class='bad badge'>{failed} failed</span>" if failed else ""
    return (
        quarantine_svg(days[-30:], 220, 44)
        + f"<p class='small'>last day {esc(day(last['partition_date']))}: "
        f"{number(last.get('rows_quarantined'))} of {number(last.get('rows_read'))} rows</p>"
        f"<p class='small muted'>{number(total)} quarantined over {len(days)} days"
        f"{failed_text}</p>"
    )


# --- charts (inline SVG) ---------------------------------------------------------------------


def _as_date(value: Any) -> dt.date:
    return dt.date.fromisoformat(day(value))


def performance_svg(rows: list[dict], width: int, height: int) -> str:
    """Realized metric by day, one line per model version, its holdout value dashed; degraded
    days in red. Every point has a tooltip."""
    points = [r for r in rows if r.get("value") is not None]
    if not points:
        return '<p class="muted small">no labelled predictions yet</p>'
    left, right, top, bottom = 44, 8, 8, 18
    dates = [_as_date(r["partition_date"]) for r in points]
    first, span = min(dates), max((max(dates) - min(dates)).days, 1)
    values = [float(r["value"]) for r in points] + [
        float(r["reference"]) for r in points if r.get("reference") is not None
    ]
    low, high = min(values), max(values)
    pad = (high - low) * 0.15 or 0.05
    low, high = low - pad, high + pad

    def x(date: dt.date) -> float:
        if len(set(dates)) == 1:
            return left + (width - left - right) / 2
        return left + (date - first).days / span * (width - left - right)

    def y(value: float) -> float:
        return top + (high - value) / (high - low) * (height - top - bottom)

    parts = [
        f'<line class="axis" x1="{left}" y1="{height - bottom}" x2="{width - right}" '
        f'y2="{height - bottom}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}"/>',
    ]
    for value in (low + pad, (low + high) / 2, high - pad):
        parts.append(
            f'<text x="{left - 4}" y="{y(value) + 3:.1f}" text-anchor="end">{value:.3f}</text>'
        )
    parts.append(f'<text x="{left}" y="{height - 4}">{first}</text>')
    if len(set(dates)) > 1:
        parts.append(
            f'<text x="{width - right}" y="{height - 4}" text-anchor="end">{max(dates)}</text>'
        )
    versions = sorted({int(r["model_version"]) for r in points})
    for index, version in enumerate(versions):
        color = PALETTE[index % len(PALETTE)]
        mine = sorted(
            (r for r in points if int(r["model_version"]) == version),
            key=lambda r: _as_date(r["partition_date"]),
        )
        reference = next((r["reference"] for r in mine if r.get("reference") is not None), None)
        span_x = (x(_as_date(mine[0]["partition_date"])), x(_as_date(mine[-1]["partition_date"])))
        if reference is not None:
            parts.append(
                f'<line x1="{span_x[0]:.1f}" y1="{y(reference):.1f}" x2="{span_x[1]:.1f}" '
                f'y2="{y(reference):.1f}" stroke="{color}" stroke-dasharray="4 3" '
                f'stroke-opacity="0.7"><title>v{version} holdout {reference:.4f}</title></line>'
            )
            if index == len(versions) - 1:
                parts.append(
                    f'<text x="{span_x[1]:.1f}" y="{y(reference) - 4:.1f}" text-anchor="end">'
                    f"v{version} holdout {reference:.3f}</text>"
                )
        line = " ".join(
            f"{x(_as_date(r['partition_date'])):.1f},{y(float(r['value'])):.1f}" for r in mine
        )
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for r in mine:
            degraded = bool(r.get("degraded"))
            tip = (
                f"{day(r['partition_date'])} v{version}: {r['primary_metric']} "
                f"{float(r['value']):.4f} (holdout {number(r.get('reference'))}), "
                f"{number(r.get('rows'))} rows{', degraded' if degraded else ''}"
            )
            parts.append(
                f'<circle cx="{x(_as_date(r["partition_date"])):.1f}" '
                f'cy="{y(float(r["value"])):.1f}" r="{4 if degraded else 2.5}" '
                f'fill="{BAD if degraded else color}"><title>{esc(tip)}</title></circle>'
            )
    metric = esc(points[0].get("primary_metric", ""))
    legend = "".join(
        f'<span><i class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></i>v{v}</span>'
        for i, v in enumerate(versions)
    )
    degraded_days = sum(1 for r in points if r.get("degraded"))
    return (
        f'<svg class="performance" role="img" aria-label="realized {metric} by day" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        + "".join(parts)
        + "</svg>"
        + f'<p class="legend small muted">realized {metric} by day: {legend}'
        f"<span>- - holdout</span>"
        + (
            f'<span style="color:{BAD}">● degraded ({degraded_days})</span>'
            if degraded_days
            else ""
        )
        + "</p>"
    )


def quarantine_svg(days: list[dict], width: int, height: int) -> str:
    """Quarantined rows per day as bars (a failed day in red), each with a tooltip."""
    if not days:
        return ""
    peak = max(int(d.get("rows_quarantined") or 0) for d in days) or 1
    step = width / len(days)
    bars = []
    for index, d in enumerate(days):
        count = int(d.get("rows_quarantined") or 0)
        failed = d.get("success") is False
        bar = max((height - 2) * count / peak, 2)  # a day without bad rows: a 2px tick
        tip = (
            f"{day(d['partition_date'])}: {count:,} of {int(d.get('rows_read') or 0):,} rows "
            f"quarantined"
            + (f"; failed: {d.get('error') or 'validation failed'}" if failed else "")
        )
        color = BAD if failed else "#94a3b8" if count else "#cbd5e1"
        bars.append(
            f'<rect x="{index * step + 0.5:.1f}" y="{height - bar:.1f}" '
            f'width="{max(step - 1, 1):.1f}" height="{bar:.1f}" fill="{color}">'
            f"<title>{esc(tip)}</title></rect>"
        )
    return (
        f'<svg class="quarantine" role="img" aria-label="quarantined rows per day" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f'<line class="axis" x1="0" y1="{height}" x2="{width}" y2="{height}"/>'
        + "".join(bars)
        + "</svg>"
    )


# --- the overview --------------------------------------------------------------------------


def overview_row(base: str, model: ModelSummary) -> str:
    return (
        f'<tr class="model" data-model="{esc(model.name)}">'
        f'<td><a class="model-link" href="{esc(model_url(base, model.name))}">'
        f"<b>{esc(model.name)}</b></a>"
        f"<p class='small muted'>{esc(model.description)}</p>"
        f"<p class='small muted'>{esc(model.task.replace('_', ' '))}</p></td>"
        f'<td class="champion">{champion_cell(model)}</td>'
        f'<td class="holdout">{metrics_table(model.champion_metrics, model.primary_metric)}</td>'
        f'<td class="drift">{drift_cell(base, model)}</td>'
        f'<td class="decision">{decision_cell(model)}</td>'
        f'<td class="performance">{performance_svg(model.performance, 280, 110)}</td>'
        f'<td class="quarantine">{quarantine_cell(model)}</td>'
        "</tr>"
    )


def overview_page(base: str, models: list[ModelSummary]) -> str:
    if models:
        rows = "".join(overview_row(base, m) for m in models)
        table = (
            '<table class="models"><thead><tr><th>Model</th><th>Champion</th>'
            "<th>Holdout metrics</th><th>Last drift check</th><th>Last retraining decision</th>"
            "<th>Realized performance</th><th>Quarantine per day</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    else:
        table = '<p class="muted">No model specs found.</p>'
    body = (
        "<h1>Models</h1><p class='muted'>Every model with a spec: its champion and holdout "
        "metrics, the last drift verdict and retraining decision, realized performance as "
        "labels arrive, and rows quarantined per day. Read-only.</p>" + table
    )
    return document(base, "Models", body, crumbs=None)


# --- a model's page --------------------------------------------------------------------------


def event_metrics(metrics: dict | None, primary: str) -> str:
    """``candidate 0.8512 · baseline 0.7010 · champion 0.8490`` for the primary metric."""
    metrics = metrics or {}
    roles = [r for r in ("candidate", "champion", "baseline") if r in metrics]
    roles += [r for r in metrics if r not in roles]
    parts = [
        f"{esc(role)} {number(metrics[role].get(primary))}"
        for role in roles
        if isinstance(metrics[role], dict) and primary in metrics[role]
    ]
    return f"<span class='small'>{esc(primary)}: {' · '.join(parts)}</span>" if parts else ""


def history_table(events: list[dict], primary: str) -> str:
    if not events:
        return '<p class="muted">No promotions, rejections or rollbacks yet.</p>'
    kinds = {"promoted": "ok", "rejected": "warn", "rolled_back": "info"}
    rows = "".join(
        f'<tr class="event {esc(e["event"])}"><td class="nowrap">{esc(when(e["created_at"]))}</td>'
        f"<td>{badge(EVENT_LABELS.get(e['event'], e['event']), kinds.get(e['event'], 'info'))}"
        f"</td><td><b>v{esc(e['version'])}</b></td>"
        f"<td>{version_label(e.get('previous_champion'))}</td>"
        f"<td>{reasons_list(e.get('reasons'))}{event_metrics(e.get('metrics'), primary)}</td></tr>"
        for e in reversed(events)
    )
    return (
        '<table class="history"><thead><tr><th>When</th><th>Event</th><th>Version</th>'
        "<th>Champion before</th><th>Why</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def drift_table(base: str, name: str, reports: list[dict]) -> str:
    if not reports:
        return '<p class="muted">No drift checks yet.</p>'
    rows = "".join(
        f"<tr><td class='nowrap'>{esc(day(r['partition_date']))}</td>"
        f"<td>{badge('drift', 'bad') if r['dataset_drift'] else badge('no drift', 'ok')}</td>"
        f"<td class='num'>{number(r.get('drifted_share'), 2)}</td>"
        f"<td>{esc(', '.join(r.get('drifted_features') or []) or '–')}</td>"
        f"<td>v{esc(r.get('model_version'))}</td>"
        + (
            f"<td><a href='{esc(report_url(base, name, r['id']))}'>report</a></td>"
            if r.get("report_uri")
            else "<td class='muted'>–</td>"
        )
        + "</tr>"
        for r in reversed(reports)
    )
    return (
        '<div class="scroll"><table class="drift-reports"><thead><tr><th>Day</th>'
        "<th>Verdict</th><th>Drifted share</th><th>Drifted features</th><th>Against</th>"
        f"<th></th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def days_table(days: list[dict]) -> str:
    if not days:
        return '<p class="muted">No days validated yet.</p>'
    rows = []
    for d in reversed(days):
        read, bad = int(d.get("rows_read") or 0), int(d.get("rows_quarantined") or 0)
        status = (
            badge("published", "ok")
            if d.get("success") is not False
            else badge("failed", "bad") + f" <span class='small'>{esc(d.get('error'))}</span>"
        )
        rows.append(
            f"<tr><td class='nowrap'>{esc(day(d['partition_date']))}</td>"
            f"<td class='num'>{number(read)}</td><td class='num'>{number(d.get('rows_clean'))}"
            f"</td><td class='num'>{number(bad)}</td>"
            f"<td class='num'>{(bad / read if read else 0):.1%}</td><td>{status}</td></tr>"
        )
    return (
        '<div class="scroll"><table class="days"><thead><tr><th>Day</th><th>Rows read</th>'
        "<th>Clean</th><th>Quarantined</th><th>Share</th><th>Status</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _pairs(values: dict) -> str:
    return ", ".join(f"{esc(k)} {number(v)}" for k, v in values.items()) or "–"


def card_html(card: dict) -> str:
    """A version's model card (see ``loopline.core.model_card``) as HTML."""
    use = card.get("intended_use") or {}
    training = card.get("training") or {}
    primary = card.get("primary_metric", "")
    baseline = card.get("baseline") or {}
    metric_rows = "".join(
        f"<tr><td>{'<b>' if m == primary else ''}{esc(m)}{'</b>' if m == primary else ''}"
        f" <span class='muted small'>({'higher' if GREATER_IS_BETTER.get(m, True) else 'lower'}"
        f" is better)</span></td><td class='num'>{number(v)}</td>"
        f"<td class='num'>{number(baseline.get(m))}</td></tr>"
        for m, v in (card.get("metrics") or {}).items()
    )
    window = training.get("window") or [None, None]
    counts = ", ".join(
        f"{esc(k.removeprefix('rows_'))} {number(v)}"
        for k, v in (training.get("rows") or {}).items()
    )
    commit = str(training.get("git_commit") or "")[:12]
    parts = [
        "<div class='grid'><div><h3>Intended use</h3>",
        f"<p>{esc(use.get('description'))}</p>",
        f"<p class='small'>owner {esc(use.get('owner'))}; {esc(use.get('task'))} of "
        f"<code>{esc(use.get('target'))}</code> per <code>{esc(use.get('entity'))}</code>"
        + (
            f"; decision threshold {esc(use.get('decision_threshold'))}"
            if use.get("decision_threshold") is not None
            else ""
        )
        + "</p>",
        "<h3>Training</h3>",
        f"<p class='small'>days {esc(window[0])} to {esc(window[1])}; rows {counts or '–'}; "
        f"{esc(training.get('mode'))}; reason: {esc(training.get('reason'))}; "
        f"code {esc(commit) or '–'}; run {esc(training.get('dag_run_id')) or '–'}</p>",
        "</div><div>",
        f"<h3>Holdout metrics <span class='muted small'>(primary: {esc(primary)})</span></h3>",
        "<table class='compact card-metrics'><tr><th>metric</th><th class='num'>holdout</th>"
        f"<th class='num'>baseline</th></tr>{metric_rows}</table></div></div>",
    ]
    calibration = card.get("calibration") or {}
    if calibration.get("limit") is not None:
        parts.append(
            f"<h3>Calibration</h3><p class='small'>recalibrated: "
            f"{'yes' if calibration.get('calibrated') else 'no'}; before "
            f"{_pairs(calibration.get('before') or {})}; after "
            f"{_pairs(calibration.get('after') or {})}; limit (ECE) "
            f"{esc(calibration.get('limit'))}</p>"
        )
    parts.append(slices_html(card.get("slices") or {}, primary))
    gate = card.get("gate")
    if gate:
        verdict = (
            badge("promoted to champion", "ok")
            if gate.get("promoted")
            else badge("kept as challenger", "warn")
        )
        before = version_label(gate.get("previous_champion"), "none")
        parts.append(
            f"<h3>Gate</h3><p>{verdict} <span class='small muted'>champion before: "
            f"{before}</span></p>" + reasons_list(gate.get("reasons"))
        )
    else:
        parts.append("<h3>Gate</h3><p class='muted'>not judged yet</p>")
    limits = card.get("known_limits") or {}
    small = [
        f"{c}={v} ({n} rows)"
        for c, values in (limits.get("slices_too_small_to_judge") or {}).items()
        for v, n in values.items()
    ]
    drifting = limits.get("features_drifting_within_the_training_window") or []
    parts.append(
        "<h3>Known limits</h3><ul class='reasons'>"
        f"<li>slices too small to judge: {esc(', '.join(small) or 'none')}</li>"
        f"<li>features drifting within the training window: "
        f"{esc(', '.join(drifting) or 'none')}</li></ul>"
    )
    return "".join(parts)


def slices_html(slices: dict, primary: str) -> str:
    if not slices:
        return ""
    blocks = []
    for column, values in slices.items():
        rows = "".join(
            f"<tr><td>{esc(value)}</td><td class='num'>{number(m.get(primary))}</td>"
            f"<td class='num'>{number(m.get('n'))}</td></tr>"
            for value, m in values.items()
        )
        blocks.append(
            f"<div><table class='compact'><tr><th>{esc(column)}</th>"
            f"<th class='num'>{esc(primary)}</th><th class='num'>rows</th></tr>{rows}</table></div>"
        )
    return f"<h3>Slices (holdout)</h3><div class='grid'>{''.join(blocks)}</div>"


def version_section(version: dict) -> str:
    number_ = int(version["version"])
    aliases = version["aliases"]  # champion and challenger (steps.overview.detail)
    tags = " ".join(badge(a, "ok" if a == "champion" else "warn") for a in aliases)
    card = version.get("card")
    body = card_html(card) if card else "<p class='muted'>No model card for this version.</p>"
    opened = " open" if aliases else ""  # the champion's and challenger's cards, unfolded
    return (
        f'<details class="card version-card" id="v{number_}"{opened}><summary>'
        f"v{number_} {tags} <span class='muted small'>registered "
        f"{esc(when(version.get('created')))}</span></summary>{body}</details>"
    )


def model_page(base: str, detail: ModelDetail) -> str:
    model = detail.summary
    versions = "".join(version_section(v) for v in detail.versions)
    body = f"""
<h1>{esc(model.name)}</h1>
<p class="muted">{esc(model.description)} ({esc(model.task.replace("_", " "))}, primary metric
{esc(model.primary_metric)})</p>
<table class="models summary"><thead><tr><th>Champion</th><th>Holdout metrics</th>
<th>Last drift check</th><th>Last retraining decision</th></tr></thead><tbody><tr>
<td class="champion">{champion_cell(model)}</td>
<td class="holdout">{metrics_table(model.champion_metrics, model.primary_metric)}</td>
<td class="drift">{drift_cell(base, model)}</td>
<td class="decision">{decision_cell(model)}</td></tr></tbody></table>
<h2>Realized performance</h2>
{performance_svg(model.performance, 760, 240)}
<h2>Version history</h2>
<p class="muted small">Promotions, rejections by the gate and rollbacks, newest first.</p>
{history_table(detail.events, model.primary_metric)}
<h2>Versions and model cards</h2>
{versions or '<p class="muted">No registered versions yet.</p>'}
<h2>Drift checks</h2>
{drift_table(base, model.name, detail.drift_reports)}
<h2>Quarantine per day</h2>
{quarantine_svg(model.days, 760, 60)}
{days_table(model.days)}
"""
    crumbs = f" / <a href='{esc(model_url(base, model.name))}'>{esc(model.name)}</a>"
    return document(base, f"{model.name} · Models", body, crumbs)
