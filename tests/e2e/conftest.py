"""Whole DAG runs: a migrated Airflow metadata DB (SQLite, in the test AIRFLOW_HOME)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def airflow_metadata_db() -> None:
    """Migrate the test Airflow metadata database once per session (~5 s on SQLite)."""
    from airflow.utils import db

    db.resetdb()


@pytest.fixture
def airflow_db(airflow_metadata_db) -> None:
    """No DAG runs left over from another test: each test starts its runs afresh."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        for run in session.query(DagRun).all():
            session.delete(run)
