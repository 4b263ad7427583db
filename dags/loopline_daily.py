"""Daily Airflow DAGs, one per model spec in include/specs: ingest the day's landing files,
then validate them into clean rows and quarantine. A broken spec shows up as a failing
`<model>_broken_spec` DAG instead of breaking the DAGs of the other models."""

from loopline.tasks import build_dags, daily_dag

globals().update(build_dags(daily_dag, report_broken_specs=True))
