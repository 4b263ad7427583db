"""HTML of the Models view: server-rendered pages from ``loopline.steps.overview``'s typed
views, through autoescaped Jinja2 templates (``templates/``; every value escaped, charts drawn
as inline SVG from :mod:`charts`, the style in ``static/models.css``: no script, no CDN, so the
pages work offline and inside the Airflow UI's frame)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from jinja2 import Environment
from markupsafe import Markup

from loopline.adapters.reports import template_environment
from loopline.airflow.ui import charts
from loopline.core.metrics import GREATER_IS_BETTER

if TYPE_CHECKING:
    from loopline.core.records import EstimatedDay, PerformanceDay, ValidatedDay
    from loopline.steps.overview import ModelDetail, ModelSummary

EVENT_LABELS = {
    "promoted": "promoted",
    "rejected": "rejected",
    "rolled_back": "rolled back",
    "awaiting_approval": "awaiting approval",
}
EVENT_KINDS = {
    "promoted": "ok",
    "rejected": "warn",
    "rolled_back": "info",
    "awaiting_approval": "warn",
}
APPROVAL_TASK = "approve.approval"  # loopline.airflow.groups.approval_group


# --- values, as the templates' filters ----------------------------------------------------


def when(value: dt.datetime | None) -> str:
    """A timestamp to the minute, in UTC."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def version_label(value: int | None, missing: str = "–") -> str:
    """``v3`` for 3; ``missing`` for None."""
    return missing if value is None else f"v{int(value)}"


def direction(metric: str) -> str:
    return "higher" if GREATER_IS_BETTER.get(metric, True) else "lower"


def role_values(metrics: Mapping[str, Any] | None, primary: str) -> list[str]:
    """``candidate 0.8512``, ``champion 0.8490``, ``baseline 0.7010``: the primary metric of
    each model a gate event scored."""
    metrics = metrics or {}
    roles = [r for r in ("candidate", "champion", "baseline") if r in metrics]
    roles += [r for r in metrics if r not in roles]
    return [
        f"{role} {charts.number(metrics[role].get(primary))}"
        for role in roles
        if isinstance(metrics[role], dict) and primary in metrics[role]
    ]


def too_small(slices: Mapping[str, Mapping[str, int]] | None) -> list[str]:
    """``plan=enterprise (12 rows)`` for each slice too small to judge."""
    return [
        f"{c}={v} ({n} rows)" for c, values in (slices or {}).items() for v, n in values.items()
    ]


def top_features(by_feature: Mapping[str, float], k: int = 3) -> list[str]:
    """``tenure_months 0.412`` for the ``k`` features a slice's predictions rest on most."""
    ranked = sorted(by_feature.items(), key=lambda kv: -kv[1])[:k]
    return [f"{name} {value:.3f}" for name, value in ranked]


def model_url(base: str, name: str) -> str:
    return f"{base}/models/{quote(name, safe='')}"


def report_url(base: str, name: str, report_id: int) -> str:
    return f"{model_url(base, name)}/drift/{int(report_id)}"


def approval_url(root: str, name: str, dag_run_id: str | None) -> str:
    """Airflow's Required Actions page of a pending approval (all pending ones without a run)."""
    if not dag_run_id:
        return f"{root}/required_actions?response_received=false"
    dag, run = quote(f"{name}_train", safe=""), quote(dag_run_id, safe="")
    return f"{root}/dags/{dag}/runs/{run}/tasks/{APPROVAL_TASK}/required_actions"


@cache
def environment() -> Environment:
    env = template_environment("loopline.airflow.ui")
    env.filters.update(
        number=charts.number,
        when=when,
        version_label=version_label,
        direction=direction,
        role_values=role_values,
        too_small=too_small,
        top_features=top_features,
    )
    env.globals.update(
        model_url=model_url,
        report_url=report_url,
        approval_url=approval_url,
        bad=charts.BAD,
        event_labels=EVENT_LABELS,
        event_kinds=EVENT_KINDS,
    )
    return env


def render(template: str, **values: Any) -> str:
    return environment().get_template(template).render(**values)


def macro(name: str, *args: Any) -> str:
    """One macro of ``_macros.html``, rendered alone (a chart, in tests)."""
    module = environment().get_template("_macros.html").module
    return str(getattr(module, name)(*args))


def side_by_side(
    realized: Sequence[PerformanceDay], estimated: Sequence[EstimatedDay], days: int = 14
) -> list[dict]:
    """The newest ``days`` scored days: each version's estimate (before the labels) beside its
    realized value (once they came), newest first."""
    rows: dict[tuple, dict] = {}
    for e in estimated:
        rows[(e.partition_date, e.model_version)] = {"day": e.partition_date, "estimate": e}
    for r in realized:
        key = (r.partition_date, r.model_version)
        rows.setdefault(key, {"day": r.partition_date})["realized"] = r
    newest = sorted(rows, reverse=True)[: days * 2]
    return [{"version": key[1], **rows[key]} for key in newest]


# --- pages ---------------------------------------------------------------------------------


def overview_page(base: str, models: Sequence[ModelSummary], root: str = "") -> str:
    rows = [
        {
            "model": m,
            "performance": charts.performance_chart(m.performance, 280, 110, m.estimates),
            "quarantine": charts.quarantine_bars(m.days[-30:], 220, 44),
        }
        for m in models
    ]
    return render("overview.html", base=base, root=root, title="Models", crumbs=None, rows=rows)


def model_page(base: str, detail: ModelDetail, root: str = "") -> str:
    """``root``: where Airflow's own UI is (its links, e.g. a pending approval's page)."""
    model = detail.summary
    return render(
        "model.html",
        base=base,
        root=root,
        title=f"{model.name} · Models",
        crumbs=[(model.name, model_url(base, model.name))],
        detail=detail,
        performance=charts.performance_chart(model.performance, 760, 240, model.estimates),
        side_by_side=side_by_side(model.performance, model.estimates),
        quarantine=charts.quarantine_bars(model.days, 760, 60),
    )


def message_page(base: str, title: str, text: str) -> str:
    return render("message.html", base=base, title=title, crumbs=[], text=text)


def with_report_nav(base: str, name: str, report: bytes) -> bytes:
    """A stored drift report with links back to the view on top (inside the Airflow UI's
    frame a link cannot open a new window, so the report opens in the frame)."""
    nav = render("report_nav.html", base=base, name=name).strip().encode()
    head, body, rest = report.partition(b"<body>")
    return head + body + nav + rest if body else nav + report


def performance_svg(rows: Sequence[PerformanceDay], width: int, height: int) -> Markup:
    return Markup(macro("performance_svg", charts.performance_chart(rows, width, height)))


def quarantine_svg(days: Sequence[ValidatedDay], width: int, height: int) -> Markup:
    return Markup(
        macro("quarantine_svg", charts.quarantine_bars(days, width, height), width, height)
    )
