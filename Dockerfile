# loopline's image: the official Airflow image plus loopline's pinned stack (requirements.txt).
# docker-compose.yaml builds it once as loopline-airflow:<airflow version> and runs every Airflow
# component and the MLflow tracking server from it.
#
# Extended the way the Airflow docs recommend ("Building the image"): stay on the airflow user,
# pip install on top of the base image, and name apache-airflow at the base image's version so
# the resolver can never up- or downgrade Airflow itself. The version here, the tag below and the
# apache-airflow pin in requirements.txt move together (tests/compose checks that they agree).
#
# The official image ships the Celery provider and the Redis client too; requirements.txt pins
# them (with Celery and kombu) at the versions the loopback cluster is tested with
# (tests/integration/test_cluster.py), and the install below holds the image to those pins.
FROM apache/airflow:3.3.2-python3.11

COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir "apache-airflow==3.3.2" -r /requirements.txt

# The library lives in include/ (the package `loopline`); loopline.adapters.settings finds the
# repo root as the parent of include/, i.e. /opt/airflow, so specs are
# /opt/airflow/include/specs and the DAGs /opt/airflow/dags. Compose bind-mounts these folders over the copies for development;
# the copies make the image work on its own.
ENV PYTHONPATH=/opt/airflow/include
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
