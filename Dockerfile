# The official Airflow image with this package installed (pins from uv.lock via constraints).
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
COPY --chown=airflow:root pyproject.toml README.md /opt/talklog/
COPY --chown=airflow:root include /opt/talklog/include
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/talklog
