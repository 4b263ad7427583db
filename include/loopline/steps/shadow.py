"""Shadow deployment: compare the challenger with the champion on the same labelled rows, per
day and over a rolling window (``warehouse.shadow_comparisons``), and decide on live evidence;
and the operators' levers: put a version in shadow, promote the challenger, retire it. Every
decision and every lever is recorded in ``warehouse.model_events``."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from loopline.adapters import model_store, warehouse
from loopline.core import shadow
from loopline.core.errors import PermanentError
from loopline.core.metrics import metrics, paired_bootstrap
from loopline.core.records import ModelEvent, ShadowComparison
from loopline.core.registry import CHALLENGER, CHAMPION
from loopline.core.spec import ModelSpec
from loopline.steps import aliases

log = logging.getLogger(__name__)
ELIGIBLE = ("shadowing", "challenger_set")  # waits for live evidence


@dataclass(frozen=True)
class ShadowResult:
    model: str
    partition_date: str
    champion: int
    challenger: int
    rows: int
    difference: float
    window_difference: float
    window_low: float
    labelled_days: int
    verdict: str
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _event(
    model: str,
    event: str,
    version: int,
    previous: int | None,
    reasons: list[str],
    figures: dict,
    dag_run_id: str | None,
) -> ModelEvent:
    return ModelEvent(
        model=model,
        event=event,
        version=int(version),
        previous_champion=previous,
        reasons=reasons,
        metrics=figures,
        mlflow_run_id=model_store.store().version(model, version).run_id,
        dag_run_id=dag_run_id,
    )


def _state(model: str, challenger: int) -> tuple[bool, bool]:
    """(eligible for promotion on live evidence, already kept) from the model's history."""
    events = warehouse.model_events(model)
    events = events[events.state == "done"]
    mine = events[events.version == challenger].event.tolist()
    entered = [e for e in mine if e in (*ELIGIBLE, "retired", "kept", "rejected")]
    eligible = bool(entered) and entered[-1] in (*ELIGIBLE, "kept")
    return eligible, bool(entered) and entered[-1] == "kept"


def _pairs(spec: ModelSpec, start: dt.date, end: dt.date, champion: int, challenger: int):
    return warehouse.shadow_pairs(spec.name, start, end, champion, challenger)


def compare(spec: ModelSpec, scored_day: dt.date, *, dag_run_id: str | None = None):
    """Compare on ``scored_day``'s labelled rows and over the window; decide if eligible."""
    store = model_store.store()
    champion, challenger = store.champion(spec.name), store.challenger(spec.name)
    if champion is None or challenger is None or champion.version == challenger.version:
        return None
    champion_v, challenger_v = champion.version, challenger.version
    day = _pairs(spec, scored_day, scored_day, champion_v, challenger_v)
    if day.empty:
        return None
    settings, metric = spec.shadow, spec.primary_metric
    start = scored_day - dt.timedelta(days=settings.window_days - 1)
    window = _pairs(spec, start, scored_day, champion_v, challenger_v)
    seed = scored_day.toordinal()
    today = paired_bootstrap(spec, day.label, day.challenger, day.champion, seed=seed)
    pooled = paired_bootstrap(
        spec, window.label, window.challenger, window.champion, level=settings.confidence, seed=seed
    )
    earlier = warehouse.shadow_comparisons(spec.name, challenger_v)
    labelled_days = len({*earlier.partition_date[earlier.rows > 0], scored_day})
    eligible, decided = _state(spec.name, challenger_v)
    verdict, reason = shadow.verdict(
        settings,
        eligible=eligible,
        decided=decided,
        labelled_days=labelled_days,
        window={**pooled, "rows": len(window)},
    )
    values = {
        name: metrics(spec, day.label, day[name])[metric] for name in ("champion", "challenger")
    }
    warehouse.record_shadow_comparison(
        ShadowComparison(
            model=spec.name,
            partition_date=scored_day,
            champion_version=champion_v,
            challenger_version=challenger_v,
            metric=metric,
            rows=len(day),
            champion_value=_finite(values["champion"]),
            challenger_value=_finite(values["challenger"]),
            difference=_finite(today["difference"]),
            low=_finite(today["low"]),
            high=_finite(today["high"]),
            window_start=start,
            window_rows=len(window),
            window_difference=_finite(pooled["difference"]),
            window_low=_finite(pooled["low"]),
            window_high=_finite(pooled["high"]),
            labelled_days=labelled_days,
            verdict=verdict,
        )
    )
    figures = {"live": {**pooled, "rows": len(window), "labelled_days": labelled_days}}
    if verdict == shadow.PROMOTE:
        promote(spec.name, reason=reason, dag_run_id=dag_run_id, evidence=figures)
    elif verdict == shadow.KEEP:
        aliases.record_without_alias(
            _event(spec.name, "kept", challenger_v, champion_v, [reason], figures, dag_run_id)
        )
    log.info(
        "model %s, %s: v%d vs v%d: %s", spec.name, scored_day, challenger_v, champion_v, reason
    )
    return ShadowResult(
        spec.name,
        scored_day.isoformat(),
        champion_v,
        challenger_v,
        len(day),
        float(today["difference"]),
        float(pooled["difference"]),
        float(pooled["low"]),
        labelled_days,
        verdict,
        reason,
    )


def _finite(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def set_challenger(model: str, version: int, *, reason: str, dag_run_id: str | None = None):
    """Put a version in shadow on purpose (it may then be promoted on live evidence)."""
    store = model_store.store()
    store.version(model, version)  # exists, or a permanent error naming versions
    with aliases.changing(model):
        champion = store.champion(model)
        if champion is not None and champion.version == int(version):
            raise PermanentError(
                f"v{version} is the champion", model=model, hint="name another version"
            )
        previous = champion.version if champion is not None else None
        event = _event(model, "challenger_set", version, previous, [reason], {}, dag_run_id)
        aliases.record(event, alias=CHALLENGER, version=int(version))


def _challenger_and_champion(model: str, action: str) -> tuple[int, int | None]:
    """The challenger's version and the champion's (None without one), inside
    :func:`aliases.changing`; no challenger is an error naming what could not be done."""
    store = model_store.store()
    challenger = store.challenger(model)
    if challenger is None:
        raise PermanentError(
            f"no challenger to {action}", model=model, hint="see `loopline history`"
        )
    champion = store.champion(model)
    return challenger.version, champion.version if champion is not None else None


def promote(
    model: str, *, reason: str, dag_run_id: str | None = None, evidence: dict | None = None
) -> int:
    """Make the challenger the champion (by hand, or on live evidence)."""
    with aliases.changing(model):
        version, previous = _challenger_and_champion(model, "promote")
        event = _event(model, "promoted", version, previous, [reason], evidence or {}, dag_run_id)
        aliases.record(event, alias=CHAMPION, version=version, removes=CHALLENGER)
    return version


def retire(model: str, *, reason: str, dag_run_id: str | None = None) -> int:
    """Take the challenger out of shadow."""
    with aliases.changing(model):
        version, previous = _challenger_and_champion(model, "retire")
        event = _event(model, "retired", version, previous, [reason], {}, dag_run_id)
        aliases.record(event, alias=None, version=None, removes=CHALLENGER)
    return version
