"""Check drift: compare a window of published days with the champion's reference profile,
persist the result (``drift_reports`` + ``drift_features``) before anything acts on it, and
write an HTML report with a reference-vs-current plot per drifted feature."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass

from loopline.adapters import model_store, reports, warehouse
from loopline.core.drift import Profile, Window, compare_window
from loopline.core.errors import NoChampionError
from loopline.core.spec import ModelSpec
from loopline.steps.published import iter_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftCheckResult:
    report_id: int
    dataset_drift: bool
    drifted_features: list[str]
    drifted_share: float
    model_version: int
    report_uri: str

    @property
    def text(self) -> str:
        return (
            f"drifted features {self.drifted_features}, weighted share "
            f"{self.drifted_share:.2f} (report {self.report_id})"
        )

    def as_dict(self) -> dict:
        """What the retraining trigger reads: the signal, its text, the report."""
        return {**asdict(self), "signal": self.dataset_drift, "text": self.text}


def champion_profile(spec: ModelSpec, day: dt.date) -> tuple[int, str, Profile]:
    store = model_store.store()
    champion = store.champion(spec.name)
    if champion is None:
        raise NoChampionError(
            "no champion: no reference profile to compare with", model=spec.name, day=day
        )
    return champion.version, champion.run_id, store.reference_profile(champion.run_id)


def accumulate(spec: ModelSpec, profile: Profile, start: dt.date, day: dt.date) -> Window:
    """The window's published rows, scores and labels, streamed into the profile's sketches:
    memory depends on the batch size, not on the window."""
    window = Window(profile)
    columns = [*profile.numeric, *profile.categorical]
    for _, frame in iter_window(spec, start, day, columns):
        window.update(frame)
    batch = spec.processing.batch_rows
    for chunk in warehouse.window_scores(spec.name, start, day, batch):
        window.update_scores(chunk["score"])
    labels = warehouse.window_labels(spec.name, start, day)
    if len(labels):
        window.update_labels(labels.to_numpy())
    return window


def run_drift_check(
    spec: ModelSpec, day: dt.date, *, dag_run_id: str | None = None
) -> DriftCheckResult:
    version, run_id, profile = champion_profile(spec, day)
    start = day - dt.timedelta(days=spec.drift.window_days - 1)
    window = accumulate(spec, profile, start, day)
    result = compare_window(spec, window)
    report_id = warehouse.save_drift_report(
        spec.name,
        day,
        result,
        window_start=start,
        model_version=version,
        reference_run_id=run_id,
        dag_run_id=dag_run_id,
    )
    uri = reports.write_html(spec, day, report_id, profile, window, result)
    warehouse.set_report_uri(report_id, uri)
    log.info(
        "model %s, %s: drifted %s (weighted share %.2f) -> report %s",
        spec.name,
        day,
        result.drifted_features,
        result.drifted_share,
        uri,
    )
    return DriftCheckResult(
        report_id,
        result.dataset_drift,
        result.drifted_features,
        result.drifted_share,
        version,
        uri,
    )
