"""loopline's custom operators, importable by DAG authors from the plugins folder:
``from loopline_operators import DriftDetectionOperator, RetrainTriggerOperator``.

They are defined in the library's Airflow layer (``loopline.airflow.operators``) so that the
DAG factories use them without importing from plugins/."""

from loopline.airflow.operators import DriftDetectionOperator, RetrainTriggerOperator

__all__ = ["DriftDetectionOperator", "RetrainTriggerOperator"]
