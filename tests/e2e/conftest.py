"""Whole DAG runs: a migrated Airflow metadata DB (SQLite, in the test AIRFLOW_HOME)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the test Airflow metadata database once per session (~5 s on SQLite)."""
    from airflow.utils import db

    db.resetdb()
