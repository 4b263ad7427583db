"""Daily Airflow DAGs, one per model spec in include/specs: ingest the day's landing files,
validate them into the lake, score them with the champion, check drift. A broken spec shows up
as a failing `broken_spec__<file>` DAG instead of breaking the DAGs of the other models."""

from loopline.airflow.dags import build_dags, daily_dag

globals().update(build_dags(daily_dag, report_broken_specs=True))
