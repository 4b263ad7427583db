"""A hand-written DAG composing loopline's task groups with a task of its own.

It is the README's example of how a data engineer adds a step: here a row-count check of the
landed day runs between ingest and validation, and receives the model and day it works on.
It has no schedule: trigger it with a `partition_date`.
"""

import datetime as dt

from airflow.sdk import DAG, task
from loopline.spec import get_spec
from loopline.tasks import daily_params, default_args, ingest_group, partition_date, validate_group

spec = get_spec("churn")

with DAG(
    dag_id="churn_custom_daily",
    doc_md=__doc__,
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    default_args=default_args(spec),
    params=daily_params(),
    tags=["loopline", "example", spec.name],
):

    @task
    def count_landed_rows(model: str) -> int:
        from loopline import warehouse

        day = partition_date()
        rows = warehouse.count_rows("raw_rows", model, [day])
        print(f"model {model}, date {day}: {rows} raw rows landed")
        return rows

    ingest_group(spec) >> count_landed_rows(spec.name) >> validate_group(spec)
