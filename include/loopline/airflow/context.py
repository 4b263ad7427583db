"""The run context of a loopline task: which day it works on, its run id, the house defaults,
and how loopline's errors become Airflow's (a permanent error fails the task at once, without
spending retries; anything else is left to Airflow's retries)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk import Context, get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from loopline.adapters import settings
from loopline.core.errors import LooplineError, NoChampionError, TooFewDaysError
from loopline.core.spec import ModelSpec


def default_args(spec: ModelSpec) -> dict:
    # Airflow 3.3 defaults retries to 0 and execution_timeout to none: set both on purpose.
    # LOOPLINE_RETRY_DELAY_SECONDS shortens the wait (tests use 1 s so a retry path stays fast);
    # LOOPLINE_TASK_RETRIES=0 makes the CLI fail at once with the message.
    from loopline.airflow.notify import on_failure

    found = {
        "owner": spec.owner,
        "retries": settings.task_retries(),
        "retry_delay": dt.timedelta(seconds=settings.retry_delay_seconds()),
        "retry_exponential_backoff": True,
        "execution_timeout": dt.timedelta(hours=1),
    }
    callback = on_failure(spec)
    if callback is not None:
        found["on_failure_callback"] = callback
    return found


def partition_date(context: Context | None = None) -> dt.date:
    """The day a task works on: the ``partition_date`` param if given, else the data interval.
    A run triggered without either (``airflow dags trigger`` without a logical date) fails at
    once: guessing a day would load or score the wrong one."""
    context = context or get_current_context()
    override = (context.get("params") or {}).get("partition_date")
    if override:
        day = dt.date.fromisoformat(str(override))
        _not_in_the_future(context, day)
        return day
    start = context.get("data_interval_start")
    if start is None:
        raise AirflowFailException(
            f"{context['dag'].dag_id}, run {context['run_id']}: no data interval (triggered "
            "without a logical date) and no partition_date param: give the day to process, "
            'e.g. --conf \'{"partition_date": "2026-01-31"}\''
        )
    return start.date()


def _not_in_the_future(context: Context, day: dt.date) -> None:
    """A day after the run's own date cannot have been delivered whole: a typo (2027 for
    2026) would become the analysts' newest predictions for its entities."""
    run = context.get("dag_run")
    run_after = getattr(run, "run_after", None) if run is not None else None
    today = run_after.date() if run_after is not None else None
    if today is not None and day > today:
        raise AirflowFailException(
            f"{context['dag'].dag_id}, run {context['run_id']}: partition_date {day} is after "
            f"the run's own date {today}: a day is processed once it has happened (a typo?); "
            "give a past day"
        )


def run_id(context: Context | None = None) -> str:
    return str((context or get_current_context())["run_id"])


def training_end(context: Context | None = None) -> dt.date:
    """The day a training uses the data available on: the ``end_date`` param, else the end of
    the run's data interval, else (a manual run without a logical date) the day it runs."""
    context = context or get_current_context()
    override = (context.get("params") or {}).get("end_date")
    if override:
        return dt.date.fromisoformat(str(override))
    end = context.get("data_interval_end")
    return end.date() if end is not None else context["dag_run"].run_after.date()


@contextmanager
def loopline_errors(
    skip_without_champion: str | None = None, skip_too_few_days: bool = False
) -> Iterator[None]:
    """Map loopline's errors onto Airflow's: permanent -> fail now (no retries), transient ->
    raised for Airflow to retry; with ``skip_without_champion``, a missing champion skips the
    task with that advice instead of failing it; with ``skip_too_few_days``, so does a training
    window that does not hold enough labelled days yet. Airflow Connections of the outside
    systems are applied first (:mod:`loopline.airflow.connections`)."""
    from loopline.airflow.connections import apply

    try:
        apply()
        yield
    except NoChampionError as exc:
        if skip_without_champion is None:
            raise AirflowFailException(str(exc)) from exc
        raise AirflowSkipException(f"{exc}; {skip_without_champion}") from exc
    except TooFewDaysError as exc:
        if not skip_too_few_days:
            raise AirflowFailException(str(exc)) from exc
        raise AirflowSkipException(f"not trained yet: {exc}") from exc
    except LooplineError as exc:
        if not exc.retryable:
            raise AirflowFailException(str(exc)) from exc
        raise
