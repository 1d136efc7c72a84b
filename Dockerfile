# The bundle's Airflow image: the official one plus the pinned requirements (never
# _PIP_ADDITIONAL_REQUIREMENTS, which reinstalls on every container start).
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt
# The mount points of the compose volumes the Airflow user writes: data (TURNOVER_DATA_DIR: Data Docs,
# model artifacts and reports), config (the UI's generated admin password) and demo-state (the demo's
# sources). A new named volume takes their owner and mode; group 0 as in the official image, so any
# AIRFLOW_UID can write them (airflow-init also chowns volumes made by older versions).
RUN mkdir -p /opt/airflow/data /opt/airflow/config /opt/airflow/demo-state \
    && chmod -R g+rwX /opt/airflow/data /opt/airflow/config /opt/airflow/demo-state
