"""Test-wide setup: an isolated AIRFLOW_HOME and the store URLs the suite can use."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Airflow reads its configuration at import time: isolate it before anything imports airflow.
_airflow_home = Path(tempfile.mkdtemp(prefix="talklog-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_airflow_home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(REPO_ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO_ROOT / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault(
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_airflow_home}/airflow.db"
)

pytest_plugins = ["tests.fixtures.databases", "tests.fixtures.emulator", "tests.fixtures.console"]
