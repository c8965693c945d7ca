"""The production wheel as a data engineer installs it: a provider package, no development tools.

The wheel is built from this checkout and installed into a fresh virtual environment with the
lock's pins (the constraints `uv export` writes from uv.lock, as the Dockerfile does). That
environment has no `talklog_dev` and none of its dependencies, no PYTHONPATH and no plugins
folder: Airflow there must still find every DAG and register the connection types.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UV = REPO / ".tools" / "bin" / "uv"
DAG_IDS = {
    "talklog_hourly",
    "talklog_every_6_hours",
    "talklog_daily",
    "talklog_link_sync",
    "talklog_relink",
    "talklog_replay_dead_letters",
    "talklog_import_export",
}
DEV_ONLY_MODULES = ("talklog_dev", "lark")  # uvicorn and fastapi come with Airflow
CONNECTION_TYPES = {"talklog_store", "talklog_salesforce", "lineworks"}


def _uv(*args: str, cwd: Path = REPO) -> None:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    done = subprocess.run(
        [str(UV), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _uv("build", "--wheel", "--package", "lineworks-talklog", "--out-dir", str(out), "-q")
    (built,) = out.glob("lineworks_talklog-*.whl")
    return built


@pytest.fixture(scope="module")
def production_python(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel and its locked dependencies, nothing else."""
    root = tmp_path_factory.mktemp("production")
    constraints = root / "constraints.txt"
    _uv(
        "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes",
        "--package", "lineworks-talklog", "-o", str(constraints), "-q",
    )  # fmt: skip
    venv = root / "venv"
    _uv("venv", "-q", str(venv), "--python", sys._base_executable)
    python = venv / "bin" / "python"
    _uv("pip", "install", "-q", "--python", str(python), str(wheel), "-c", str(constraints))
    return python


def _run_plain(python: Path, code: str, home: Path) -> dict:
    """`code` in `python`, configured only by AIRFLOW__CORE__DAGS_FOLDER (AIRFLOW_HOME isolates
    the metadata files); run from an empty folder so that this checkout is not on sys.path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "PYTHON", "TALKLOG_"))
    }
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "dags"))
    done = subprocess.run(
        [str(python), "-c", code], cwd=home, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_wheel_holds_the_domain_and_the_provider_and_no_development_tool(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/", 1)[0] for name in names if not name.endswith(".dist-info/")}
    assert {"talklog", "talklog_airflow"} <= packages
    assert not [n for n in names if n.startswith("talklog_dev") or "/emulator/" in n]
    assert not [n for n in names if "/synth/" in n or n.rsplit("/", 1)[-1].startswith("demo")]
    assert "talklog/_sfdx/sfdx-project.json" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text
    assert "talklog_airflow.get_provider_info:get_provider_info" in text


_PLAIN_AIRFLOW = """
import importlib, json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag()  # the dags folder of the configuration, as the dag processor reads it
import talklog_airflow, talklog_airflow.alerts, talklog_airflow.dag_factory
import talklog_airflow.hooks.salesforce, talklog_airflow.hooks.store
import talklog_airflow.hooks.lineworks, talklog.lineworks
import talklog_airflow.operators.imports, talklog_airflow.operators.talklog
# what the operators import when a task runs
import talklog.cli, talklog.deadletters, talklog.imports, talklog.links, talklog.loading
import talklog.pipeline, talklog.reader, talklog.relink, talklog.replay, talklog.store
from airflow.providers_manager import ProvidersManager
manager = ProvidersManager()
hooks = {name: info.hook_class_name for name, info in manager.hooks.items() if info}
fields = sorted(manager.connection_form_widgets)
print(json.dumps({
    "dags": sorted(bag.dag_ids), "errors": {k: v[-500:] for k, v in bag.import_errors.items()},
    "providers": sorted(manager.providers), "hooks": hooks, "fields": fields,
    "dev_modules": [m for m in %r if importlib.util.find_spec(m) is not None],
}))
"""


def test_plain_airflow_with_the_wheel_installed_parses_every_dag_and_registers_the_provider(
    production_python, tmp_path
):
    found = _run_plain(production_python, _PLAIN_AIRFLOW % (DEV_ONLY_MODULES,), tmp_path)
    assert found["errors"] == {}
    assert set(found["dags"]) >= DAG_IDS
    assert found["dev_modules"] == [], "development tools reached the production environment"
    assert "lineworks-talklog" in found["providers"]
    assert found["hooks"]["talklog_store"] == "talklog_airflow.hooks.store.MessageStoreHook"
    assert found["hooks"]["talklog_salesforce"].endswith("TalkLogSalesforceHook")
    assert "extra__talklog_store__sqlalchemy_url" in found["fields"]
    assert "extra__talklog_salesforce__ca_bundle" in found["fields"]
    assert found["hooks"]["lineworks"] == "talklog_airflow.hooks.lineworks.LineWorksHook"
    assert "extra__lineworks__private_key" in found["fields"]


def test_the_development_environment_registers_the_same_connection_types():
    from airflow.providers_manager import ProvidersManager

    hooks = ProvidersManager().hooks
    assert set(hooks) >= CONNECTION_TYPES
    assert hooks["talklog_store"].connection_type == "talklog_store"
    assert hooks["lineworks"].hook_class_name == "talklog_airflow.hooks.lineworks.LineWorksHook"
