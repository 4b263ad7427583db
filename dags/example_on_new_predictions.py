"""A DAG scheduled on an Airflow Asset: it runs whenever `churn_daily` has swapped in a new day
of churn predictions, and reads which day, how many rows and which model version from the
asset event. It is the README's example for data engineers' and analysts' own DAGs; it exists
only where a `churn` spec does.
"""

import datetime as dt

from airflow.sdk import DAG, task
from loopline.adapters.specs import load_specs
from loopline.airflow.assets import predictions_asset
from loopline.airflow.context import default_args

spec = next((s for s in load_specs()[0] if s.name == "churn"), None)

if spec is not None:
    with DAG(
        dag_id="churn_on_new_predictions",
        doc_md=__doc__,
        schedule=[predictions_asset(spec.name)],
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        default_args=default_args(spec),
        tags=["loopline", "example", spec.name],
    ):

        @task(inlets=[predictions_asset(spec.name)])
        def summarize(*, inlet_events=None) -> dict:
            events = inlet_events[predictions_asset(spec.name)]
            latest = dict(events[-1].extra) if events else {}
            print(f"new churn predictions: {latest}")
            return latest

        summarize()
