# The production image: the official Airflow image with this provider package installed from
# its wheel, every dependency pinned to uv.lock (constraints.txt, written by `make constraints`;
# a unit test fails when it drifts from the lock), the DAG file and the plugins folder baked in.
# Nothing of devtools/ or tests/ is in the build context (.dockerignore) or in the image.
#   docker build -t registry.example.com/talklog-airflow:0.1.0 .
# The emulator of `docker compose --profile emulator` has its own image: devtools/Dockerfile.

# Stage 1: the wheel, exactly as `uv build --wheel --package lineworks-talklog` builds it
# (talklog, talklog_airflow and the SFDX metadata as talklog/_sfdx).
FROM python:3.11-slim-bookworm AS wheel
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
COPY salesforce ./salesforce
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# Stage 2: Airflow with the wheel and the lock's pins. `apache-airflow==` is repeated, as the
# official image's docs recommend, so that no dependency can move Airflow itself.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root constraints.txt /opt/talklog/constraints.txt
COPY --chown=airflow:root --from=wheel /dist/ /opt/talklog/dist/
RUN pip install --no-cache-dir --constraint /opt/talklog/constraints.txt \
        "apache-airflow==3.3.2" /opt/talklog/dist/lineworks_talklog-*.whl
COPY --chown=airflow:root dags/talklog_dags.py /opt/airflow/dags/talklog_dags.py
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
