"""Which day a task works on, and which day a training ends, from the run's context."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from loopline.airflow.context import partition_date

INTERVAL = dt.datetime(2026, 1, 31, 2, tzinfo=dt.UTC)


def context(**extra) -> dict:
    return {"dag": SimpleNamespace(dag_id="churn_daily"), "run_id": "manual__x", **extra}


def test_the_param_wins_over_the_data_interval():
    ctx = context(params={"partition_date": "2026-01-05"}, data_interval_start=INTERVAL)
    assert partition_date(ctx) == dt.date(2026, 1, 5)


def test_the_data_interval_start_is_the_day():
    assert partition_date(context(params={}, data_interval_start=INTERVAL)) == dt.date(2026, 1, 31)


def test_a_run_without_interval_or_param_fails_at_once_and_says_what_to_give():
    with pytest.raises(
        AirflowFailException, match="churn_daily, run manual__x: no data interval.*partition_date"
    ):
        partition_date(context(params={}, data_interval_start=None))


def test_a_day_after_the_runs_own_date_is_refused():
    """2027-06-01 given on 2026-12-02 became the analysts' newest predictions."""
    run = SimpleNamespace(run_after=dt.datetime(2026, 12, 2, 9, tzinfo=dt.UTC))
    ctx = context(params={"partition_date": "2027-06-01"}, dag_run=run)
    with pytest.raises(AirflowFailException, match="2027-06-01 is after the run's own date"):
        partition_date(ctx)
    ctx = context(params={"partition_date": "2026-12-01"}, dag_run=run)
    assert partition_date(ctx) == dt.date(2026, 12, 1)
