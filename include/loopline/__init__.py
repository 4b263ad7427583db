"""loopline: the production ML lifecycle as Apache Airflow 3 DAGs.

The library is plain, typed Python; only ``loopline.tasks`` imports Airflow.
"""

__version__ = "0.1.0"
