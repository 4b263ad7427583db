"""A hand-written DAG composing loopline's task groups with a task of its own.

It is the README's example of how a data engineer adds a step: here a count of the day's
landed rows runs between ingest and validation, and receives the model, the day and the ingest
plan. It has no schedule: trigger it with a `partition_date`. It exists only where a `churn`
spec does (another specs folder simply has no example DAG, rather than an import error).
"""

import datetime as dt

from airflow.sdk import DAG, task
from loopline.adapters.specs import load_specs
from loopline.airflow.context import default_args, partition_date
from loopline.airflow.dags import daily_params
from loopline.airflow.groups import ingest_group, plan_of, validate_group

spec = next((s for s in load_specs()[0] if s.name == "churn"), None)

if spec is not None:
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
        def count_landed_rows(model: str, shards: list[dict]) -> int:
            files = {p["file"]["path"]: p["file"]["rows"] for s in shards for p in s["pieces"]}
            rows = sum(files.values())  # counted at the plan for CSV files too
            print(f"model {model}, date {partition_date()}: {len(files)} file(s), {rows} rows")
            return rows

        ingest = ingest_group(spec)
        count_landed_rows(spec.name, plan_of(ingest)) >> validate_group(spec, ingest)
