"""Airflow Assets of what the daily DAG publishes, so that data engineers' and analysts' own
DAGs can be scheduled on "new predictions for model X" (``schedule=[predictions_asset("churn")]``).

Each asset has a stable name and a logical ``loopline://`` URI (the same in every deployment);
each event carries the day, the rows and the run (and, for predictions, the model version) in
its ``extra``.
"""

from __future__ import annotations

from airflow.sdk import Asset, Context


def clean_asset(model: str) -> Asset:
    """A model's published clean rows in the lake (one event per published day)."""
    return Asset(name=f"loopline.{model}.clean", uri=f"loopline://{model}/clean")


def predictions_asset(model: str) -> Asset:
    """A model's predictions in ``warehouse.predictions`` (one event per day swapped in)."""
    return Asset(name=f"loopline.{model}.predictions", uri=f"loopline://{model}/predictions")


def record(context: Context, asset: Asset, extra: dict) -> None:
    """Attach ``extra`` to the event the running task emits for ``asset``."""
    context["outlet_events"][asset].extra = {k: v for k, v in extra.items() if v is not None}
