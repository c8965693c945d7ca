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


def test_every_image_is_pinned():
    images = {service.get("image", "") for service in SERVICES.values()}
    assert all(":" in image and not image.endswith(":latest") for image in images), images
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}-python3\.\d+$", dockerfile, re.M)


def test_emulator_is_an_optional_profile_reachable_by_its_service_name():
    emulator = SERVICES["sf-emulator"]
    assert emulator["profiles"] == ["emulator"]
    assert emulator["image"].endswith(pinned_airflow_version())
    args = emulator["command"]
    assert "--host=0.0.0.0" in args and "--public-name=sf-emulator" in args
    assert all(port.startswith("127.0.0.1:") for port in emulator["ports"])
    assert "healthcheck" in emulator
    # The CA it writes is where the example connection's ca_bundle points, on a shared mount.
    assert "./var:/opt/airflow/var" in emulator["volumes"]
    assert "--ca-out=/opt/airflow/var/emulator/tls" in args
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert '"host": "https://sf-emulator:8443"' in example
    assert "/opt/airflow/var/emulator/tls/ca.pem" in example
    assert all("sf-emulator" not in service.get("depends_on", {}) for service in SERVICES.values())


def test_the_emulator_certificate_covers_the_service_name(tmp_path):
    from cryptography import x509

    from talklog_dev.emulator import tls

    files = tls.generate(tmp_path, names=["sf-emulator"])
    cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "sf-emulator" in san.get_values_for_type(x509.DNSName)


def settings_the_code_reads() -> set[str]:
    """`TALKLOG_*`/`AIRFLOW_CONN_*` names in the DAG code, plus the default connections' variables.

    `localstack.py` and `demo.py` are container-free tools (`make airflow`, `make demo`)."""
    tools = {"localstack.py", "demo.py"}
    sources = [
        path
        for folder in ("plugins", "dags")
        for path in (ROOT / folder).rglob("*.py")
        if path.name not in tools
    ]
    names: set[str] = set()
    for path in sources:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"['\"](TALKLOG_[A-Z0-9_]+|AIRFLOW_CONN_[A-Z0-9_]+)['\"]", text))
    from talklog_airflow import alerts, dag_factory

    conn_ids = {dag_factory.STORE_CONN_ID, dag_factory.SALESFORCE_CONN_ID, alerts.ALERTS_CONN_ID}
    return names | {f"AIRFLOW_CONN_{conn_id.upper()}" for conn_id in conn_ids}


def test_every_setting_the_code_reads_is_in_the_env_example():
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    present = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", example, re.M))
    missing = settings_the_code_reads() - present
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_init_migrates_both_databases_and_checks_the_connections():
    script = SERVICES["airflow-init"]["command"][-1]
    assert "airflow db migrate" in script and "talklog store upgrade" in script
    assert "AIRFLOW_CONN_" in script
