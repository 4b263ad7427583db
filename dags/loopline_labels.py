"""Labels Airflow DAGs, one per model spec: load late labels, measure realized performance,
and trigger retraining on a drop (concept drift); plus a manual rollback DAG per model."""

from loopline.tasks import build_dags, labels_dag, rollback_dag

globals().update(build_dags(labels_dag))
globals().update(build_dags(rollback_dag))
