"""Training Airflow DAGs, one per model spec in include/specs: load labels, train a baseline and
an XGBoost candidate, evaluate on a time-based holdout, and gate the MLflow `champion` alias."""

from loopline.airflow.dags import build_dags, train_dag

globals().update(build_dags(train_dag))
