"""Labels Airflow DAGs, one per model spec: load late labels, measure realized performance,
compare the challenger with the champion on live data, and trigger retraining on a drop
(concept drift); plus manual DAGs per model to roll back and to operate the challenger."""

from loopline.airflow.dags import build_dags, challenger_dag, labels_dag, rollback_dag

globals().update(build_dags(labels_dag))
globals().update(build_dags(rollback_dag))
globals().update(build_dags(challenger_dag))
