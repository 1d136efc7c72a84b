# The bundle's Airflow image: the official one plus the pinned requirements (never
# _PIP_ADDITIONAL_REQUIREMENTS, which reinstalls on every container start).
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
COPY requirements.txt /requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /requirements.txt
# Where Data Docs, model artifacts and landed files go (TURNOVER_DATA_DIR); group 0 as in the
# official image, so any AIRFLOW_UID can write it.
RUN mkdir -p /opt/airflow/data && chmod -R g+rwX /opt/airflow/data
