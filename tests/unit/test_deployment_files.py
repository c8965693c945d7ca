"""docker-compose.yaml, Dockerfile and .env.example agree with what the code expects."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]


def pinned_airflow_version() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    pin = next(
        dep for dep in project["project"]["dependencies"] if dep.startswith("apache-airflow==")
    )
    return pin.split("==")[1]


def test_topology():
    assert {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-worker", "airflow-triggerer", "airflow-init"} <= set(SERVICES)  # fmt: skip


def test_image_pins_match_the_lock():
    version = pinned_airflow_version()
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"ARG AIRFLOW_VERSION={re.escape(version)}\b", dockerfile)
    assert all(SERVICES[name]["image"].endswith(version) for name in AIRFLOW_SERVICES)


def test_project_folders_are_mounted_and_services_have_health_checks():
    for name in AIRFLOW_SERVICES:
        service = SERVICES[name]
        mounts = {volume.split(":")[1] for volume in service["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
        assert name == "airflow-init" or "healthcheck" in service
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_connections_come_from_the_env_file_and_no_secret_is_committed():
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert "AIRFLOW_CONN_TALKLOG_STORE=" in example
    assert "AIRFLOW_CONN_SALESFORCE_DEFAULT=" in example
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert all(SERVICES[name]["env_file"] == [".env"] for name in AIRFLOW_SERVICES)
