"""The main job of `make run`: the whole loop through the real Airflow scheduler.

1. start the embedded PostgreSQL (warehouse, Airflow metadata and MLflow databases) and migrate;
2. simulate ``days`` days of churn data ending yesterday: bad rows on two early days, a
   covariate shift on the second live day. The demo's own spec (churn's, with the short windows
   of :data:`loopline.dev.simulate.SHORT_WINDOWS`: 2-day label delay and drift window, 14-day
   training window) lets the loop turn in a few days instead of weeks;
3. start Airflow (api-server with the UI, scheduler, dag-processor, triggerer; LocalExecutor),
   simulating the data and creating MLflow's tables while it boots;
4. backfill ``churn_daily`` over the history days, all at once (ingest and validate; nothing
   to score yet; the training loads the labels that have arrived);
5. trigger ``churn_train`` on the labelled history; the gate promotes a first champion;
6. run the live days one at a time (``churn_daily`` and ``churn_labels``): the champion scores
   each day, the drift check compares it with the champion's profile, the shift is detected and
   triggers a retraining, which the scheduler runs and the gate judges;
7. print a summary and keep the UI up until Ctrl-C (or SIGTERM / SIGHUP).

Whatever stops it, it stops every Airflow process it started, and the PostgreSQL server if it
started it (a server that was already running stays up).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import yaml

from loopline.adapters import model_store, settings, warehouse
from loopline.dev.pgserver import LocalPostgres
from loopline.dev.simulate import SHORT_WINDOWS, Scenario, simulate
from loopline.dev.stack import TASK_PRELOAD, LocalAirflow, stop_on_signals
from loopline.steps import digest

MODEL = "churn"
# Days run one at a time after the first training: one before the shift, one to see it, one to
# confirm it (drift.persistence_k) and trigger the retraining, one more while it trains.
LIVE_DAYS = 4
# Days before the first training: its window needs training.min_days labelled days, and
# labels arrive labels.delay_days late.
MIN_HISTORY_DAYS = SHORT_WINDOWS["training"]["min_days"] + SHORT_WINDOWS["labels"]["delay_days"]
DEFAULT_DAYS = MIN_HISTORY_DAYS + LIVE_DAYS
DEFAULT_ROWS = 5000
# The demo's Airflow re-parses its DAG files every two minutes, not every 30 s: they do not
# change during the demo, and each parse costs a process on a small machine. For the same
# reason its task processes inherit their imports (TASK_PRELOAD) rather than pay them each.
DEMO_AIRFLOW = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120"}


_clock = {"started": time.monotonic()}


def _step(text: str) -> None:
    elapsed = int(time.monotonic() - _clock["started"])
    print(f"\n== [{elapsed // 60}:{elapsed % 60:02d}] {text}", flush=True)


class Progress:
    """The state of the runs being waited for, on one line: repainted in place on a terminal,
    one printed line per change otherwise (a piped log gets readable lines)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.last: str | None = None

    def __call__(self, dag_id: str, done: int, expected: int, states: dict) -> None:
        counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        total = max(expected, sum(states.values()))
        text = f"   {dag_id}: {done} of {total} runs finished ({counts or 'none yet'})"
        if text == self.last:
            return
        if self.tty:
            self.stream.write(f"\r{text}\x1b[K")
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()
        self.last = text

    def end(self) -> None:
        """Leave the repainted line where it is."""
        if self.tty and self.last is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.last = None


def _print(lines: list[str]) -> None:
    print("\n".join(lines))


def print_predictions(model: str, day: dt.date, url: str) -> None:
    """Read the last day's predictions as the analysts' read-only role, as they would."""
    frame = warehouse.predictions(model, day, url=settings.analyst_url(url, with_password=True))
    if frame.empty:
        print(f"  no predictions for {day}")
        return
    top = frame.nlargest(3, "score")
    shown = ", ".join(f"{r.entity_id} {r.score:.3f}" for r in top.itertuples())
    print(
        f"  {len(frame)} predictions for {day} (model v{int(frame.model_version.max())}), "
        f"read as loopline_analyst; highest scores: {shown}"
    )


def last_closed_day(cron: str, now: dt.datetime) -> dt.date:
    """The newest day whose daily run Airflow creates by ``now``: a run of day D (its data
    interval from the cron's tick on D to the next tick) exists only once that next tick has
    passed. With the churn spec's 02:00 UTC cron, at 01:22 UTC that is the day before
    yesterday, not yesterday."""
    from croniter import croniter

    now = now.astimezone(dt.UTC) + dt.timedelta(microseconds=1)  # a tick at now has passed
    interval_end = croniter(cron, now).get_prev(dt.datetime)
    return croniter(cron, interval_end).get_prev(dt.datetime).date()


@dataclass(frozen=True)
class DemoPlan:
    """The demo's days: ``history`` days backfilled before the first training, then the live
    days one at a time, the newest being the last day whose run Airflow creates by now."""

    first: dt.date
    last: dt.date
    history: int

    @classmethod
    def at(cls, now: dt.datetime, cron: str, days: int) -> DemoPlan:
        last = last_closed_day(cron, now)
        return cls(last - dt.timedelta(days=days - 1), last, days - LIVE_DAYS)

    @property
    def train_end(self) -> dt.date:
        """The first live day: the first training uses the data available on it."""
        return self.first + dt.timedelta(days=self.history)

    @property
    def shift(self) -> int:
        """The day index the covariate shift starts (the second live day)."""
        return self.history + 1

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range((self.last - self.first).days + 1)]


def write_demo_spec(folder: Path) -> None:
    """churn's spec with the short windows, trained only when triggered (the first training,
    the retrain trigger): a weekly scheduled training would add one more run."""
    spec = yaml.safe_load((settings.REPO_ROOT / "include" / "specs" / f"{MODEL}.yaml").read_text())
    for section, values in SHORT_WINDOWS.items():
        spec[section] = {**spec.get(section, {}), **values}
    spec["training"]["cron"] = ""  # no schedule: a DAG run only when triggered
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{MODEL}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def run_demo(
    *,
    days: int = DEFAULT_DAYS,
    rows: int = DEFAULT_ROWS,
    seed: int = 0,
    port: int = 8080,
    keep_up: bool = True,
) -> int:
    if days < DEFAULT_DAYS:
        raise ValueError(
            f"--days {days}: the demo needs at least {DEFAULT_DAYS} days "
            f"({MIN_HISTORY_DAYS} before the first training, {LIVE_DAYS} live days)"
        )
    started = _clock["started"] = time.monotonic()
    server = LocalPostgres(settings.embedded_dir())
    with stop_on_signals(), server.running() as url:
        _step("started the embedded PostgreSQL (warehouse, airflow, mlflow databases)")
        print(
            f"   127.0.0.1:{server.port}, every role with a SCRAM password "
            f"(kept in {server.data_dir / settings.EMBEDDED_SECRETS_FILE})"
        )
        os.environ.update(server.environment())
        warehouse.upgrade(url)
        return _run(server, url, days, rows, seed, port, keep_up, started)


def _run(
    server: LocalPostgres,
    url: str,
    days: int,
    rows: int,
    seed: int,
    port: int,
    keep_up: bool,
    started: float,
) -> int:
    specs = settings.state_dir() / "demo" / "specs"
    write_demo_spec(specs)
    os.environ["LOOPLINE_SPECS_DIR"] = str(specs)
    cron = yaml.safe_load((specs / f"{MODEL}.yaml").read_text())["schedule"]["cron"]
    plan = DemoPlan.at(dt.datetime.now(dt.UTC), cron, days)
    first, last, history, train_end = plan.first, plan.last, plan.history, plan.train_end
    airflow = LocalAirflow(
        settings.state_dir() / "airflow",
        server.url("airflow"),
        port=port,
        overrides=DEMO_AIRFLOW,
        preload=TASK_PRELOAD,
    )
    _step(f"starting Airflow on {airflow.url} (logs: {airflow.logs})")
    airflow.migrate()
    daily, labels, train = f"{MODEL}_daily", f"{MODEL}_labels", f"{MODEL}_train"
    progress = Progress()
    with airflow.running():
        # While Airflow starts: MLflow's tables and the model's experiment, created here once
        # (the first tasks would race to create them, all but one failing into a retry), and
        # the data.
        model_store.experiment_id(MODEL)
        _step(
            f"simulating {days} days of {MODEL} data, {first} .. {last} ({rows} rows/day): "
            f"bad rows on days 4-5, a covariate shift from {first + dt.timedelta(days=plan.shift)} "
            f"(spec: {specs / (MODEL + '.yaml')})"
        )
        simulate(
            landing=settings.landing_root(),
            labels=settings.labels_root(),
            start=first,
            days=days,
            rows_per_day=rows,
            seed=seed,
            scenarios=[
                Scenario("bad_rows", start_day=3, strength=0.02, duration_days=2),
                Scenario("covariate_shift", start_day=plan.shift, strength=1.0),
            ],
            label_delay_days=SHORT_WINDOWS["labels"]["delay_days"],
        )
        airflow.wait_healthy()
        airflow.wait_dags([daily, labels, train])
        history_end = train_end - dt.timedelta(days=1)
        _step(
            f"backfilling {daily} for {first} .. {history_end}: ingest and validate "
            f"(no model yet; labels arrive with the first training)"
        )
        backfill = _backfill(airflow, daily, first, history_end, max_active=history)
        airflow.set_paused(daily, False)
        airflow.wait_runs(daily, history, 1800, progress)
        progress.end()

        _step(f"training: triggering {train} with the data available on {train_end}")
        conf = {"end_date": train_end.isoformat(), "reason": f"make run: {history} days in"}
        airflow.trigger(train, conf)
        airflow.set_paused(train, False)
        airflow.wait_runs(train, 1, 900, progress)
        progress.end()

        _step(
            f"live days {train_end} .. {last}, one at a time: score, check drift, "
            "load labels, retrain when the rules allow"
        )
        airflow.wait_backfill(backfill)
        for dag_id in (daily, labels):
            _backfill(airflow, dag_id, train_end, last, reprocess="completed", max_active=1)
        airflow.set_paused(labels, False)
        for dag_id, expected in ((daily, days), (labels, LIVE_DAYS), (train, 1)):
            airflow.wait_runs(dag_id, expected, 1800, progress)
            progress.end()
        _summary(airflow, server, url, last, started)
        if keep_up:
            airflow.stay_up()
    return 0


def _backfill(
    airflow: LocalAirflow,
    dag_id: str,
    start: dt.date,
    end: dt.date,
    reprocess: str = "none",
    max_active: int = 4,
) -> int:
    """A backfill over whole days (a daily run's logical date is its interval start, the day at
    02:00 UTC); returns its id. One an earlier `make run` left unfinished is cancelled first."""
    airflow.cancel_unfinished_backfills(dag_id)
    return airflow.backfill(
        dag_id,
        f"{start}T00:00:00+00:00",
        f"{end}T23:59:59+00:00",
        max_active_runs=max_active,
        reprocess=reprocess,
    )


def _summary(
    airflow: LocalAirflow, server: LocalPostgres, url: str, last: dt.date, started: float
) -> None:
    _step(f"done in {(time.monotonic() - started) / 60:.1f} min; per day in the warehouse:")
    _print(digest.days(MODEL))
    _step("drift reports (warehouse.drift_reports) and retraining decisions")
    _print(digest.monitoring(MODEL))
    _step("model history (warehouse.model_events) and the champion")
    _print(digest.champion(MODEL))
    _step("predictions (warehouse.predictions, views predictions_latest / predictions_daily)")
    print_predictions(MODEL, last, url)
    loopline = ".venv/bin/loopline"
    mlflow = f"postgresql://mlflow@127.0.0.1:{server.port}/mlflow"
    latest = "SELECT * FROM warehouse.predictions_latest ORDER BY score DESC LIMIT 10;"
    print(f"""
== where to look
   Models view  {airflow.url}/loopline/   (in the Airflow UI: champion, versions, gate decisions,
                drift and retraining)
   Airflow UI   {airflow.url}   login: admin / {airflow.password()}
                (generated, kept in {airflow.password_file()})
   predictions  {loopline} db psql --analyst   as the read-only analysts' role, e.g.
                  {latest}
                (its password is read from the state folder, never shown)
   MLflow       the `mlflow` database of the same server ({mlflow}),
                artifacts in {settings.mlflow_artifacts()}
   state        {settings.state_dir()}  (make reset deletes it)""")
