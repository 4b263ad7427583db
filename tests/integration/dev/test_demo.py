"""The demo's own pieces that need no running stack: its progress line and its spec.

The whole demo (`loopline demo --exit`) is measured by hand (issue 14.6), not in the suite: it
starts a full Airflow stack for a few minutes. Which days it plans is tested here at fixed clocks.
"""

from __future__ import annotations

import datetime as dt
import io
import tempfile
from pathlib import Path

import pytest
from loopline.adapters.specs import load_spec
from loopline.dev.demo import DEFAULT_DAYS, LIVE_DAYS, MIN_HISTORY_DAYS, Progress, write_demo_spec
from loopline.dev.simulate import SHORT_WINDOWS


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def feed(progress: Progress) -> None:
    progress("churn_daily", 0, 3, {"queued": 3})
    progress("churn_daily", 0, 3, {"queued": 3})  # no change: nothing printed
    progress("churn_daily", 1, 3, {"running": 2, "success": 1})
    progress("churn_daily", 3, 3, {"success": 3})
    progress.end()


def test_a_piped_log_gets_one_line_per_change():
    out = io.StringIO()
    feed(Progress(out))
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert out.getvalue().splitlines() == [
        "   churn_daily: 0 of 3 runs finished (3 queued)",
        "   churn_daily: 1 of 3 runs finished (2 running, 1 success)",
        "   churn_daily: 3 of 3 runs finished (3 success)",
    ]


def test_a_terminal_gets_one_line_repainted_in_place():
    out = Terminal()
    feed(Progress(out))
    text = out.getvalue()
    assert text.count("\r") == 3 and text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\x1b[K") == 3  # each repaint clears what a longer line left
    assert text.rstrip("\n").rsplit("\r", 1)[1] == (
        "   churn_daily: 3 of 3 runs finished (3 success)\x1b[K"
    )


def test_the_demo_spec_has_short_windows_and_trains_only_when_triggered(tmp_path):
    from loopline.airflow.dags import train_dag

    write_demo_spec(tmp_path)
    spec = load_spec(tmp_path / "churn.yaml")
    assert spec.training.window_days == SHORT_WINDOWS["training"]["window_days"]
    assert spec.labels.delay_days == SHORT_WINDOWS["labels"]["delay_days"]
    assert spec.drift.persistence_k == SHORT_WINDOWS["drift"]["persistence_k"]
    assert type(train_dag(spec).timetable).__name__ == "NullTimetable"  # no weekly runs
    assert spec.training.min_days + spec.labels.delay_days == MIN_HISTORY_DAYS
    assert DEFAULT_DAYS == MIN_HISTORY_DAYS + LIVE_DAYS


@pytest.mark.parametrize(
    "clock",
    [
        "2026-12-02T01:22:00+00:00",
        "2026-12-02T00:00:00+00:00",
        "2026-12-02T02:00:00+00:00",
        "2026-12-02T23:59:00+00:00",
        "2026-12-02T01:59:59-05:00",
    ],
)
def test_every_day_the_demo_waits_for_has_a_run_airflow_creates_at_that_hour(clock):
    """`make run` waited 25 minutes for a run Airflow never created when started between 00:00
    and 02:00 UTC: the day's data interval (02:00 to 02:00) had not ended. Whatever the hour and
    time zone, each day the demo plans must be one whose interval Airflow's own timetable has
    closed by then, and the newest such day."""
    from airflow.timetables.interval import CronDataIntervalTimetable
    from loopline.adapters.specs import load_spec
    from loopline.dev.demo import DemoPlan

    write_demo_spec_dir = Path(tempfile.mkdtemp())
    write_demo_spec(write_demo_spec_dir)
    spec = load_spec(write_demo_spec_dir / "churn.yaml")
    now = dt.datetime.fromisoformat(clock)
    plan = DemoPlan.at(now, spec.schedule.cron, DEFAULT_DAYS)
    timetable = CronDataIntervalTimetable(spec.schedule.cron, timezone="UTC")

    def interval(day: dt.date):
        """The data interval of the daily run whose logical date is ``day`` at its tick."""
        tick = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(2), tzinfo=dt.UTC)
        found = timetable.infer_manual_data_interval(run_after=tick)
        assert found.start.date() == day
        return found

    for day in plan.days:
        assert interval(day).end <= now  # due by now: a backfill creates its run
    assert interval(plan.last + dt.timedelta(days=1)).end > now  # the next day's is not
    assert len(plan.days) == DEFAULT_DAYS and plan.train_end == plan.days[plan.history]
