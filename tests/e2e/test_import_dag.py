"""The export-import DAG runs whole through Airflow (`dag.test()`) against a SQLite store,
reading from its import folder (`TALKLOG_IMPORT_FOLDER`)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from airflow.dag_processing.dagbag import DagBag

from talklog.store import make_session_factory
from talklog.store.migrate import upgrade
from talklog.store.models import Message

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
FIXTURE = Path(__file__).resolve().parents[1] / "data" / "lineworks_export.csv"


@pytest.fixture
def store(sqlite_url, monkeypatch) -> str:
    upgrade(sqlite_url)
    conn = {"conn_type": "talklog_store", "extra": {"sqlalchemy_url": sqlite_url}}
    monkeypatch.setenv("AIRFLOW_CONN_TALKLOG_STORE", json.dumps(conn))
    return sqlite_url


@pytest.fixture
def dag():
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags["talklog_import_export"]


def summary_of(run) -> dict:
    """The import task's return value (XCom), as the UI shows it."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    query = XComModel.get_many(
        run_id=run.run_id, key="return_value", task_ids="import_export", dag_ids=run.dag_id
    )
    with create_session() as session:
        (row,) = session.scalars(query)
        return XComModel.deserialize_value(row)


def message_count(url: str) -> int:
    with make_session_factory(url)() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Message))


@pytest.fixture
def import_folder(tmp_path, monkeypatch) -> Path:
    """The workers' import folder (`TALKLOG_IMPORT_FOLDER`) holding the fixture export."""
    folder = tmp_path / "imports"
    (folder / "2026-01").mkdir(parents=True)
    shutil.copy(FIXTURE, folder / "2026-01" / FIXTURE.name)
    monkeypatch.setenv("TALKLOG_IMPORT_FOLDER", str(folder))
    return folder


def test_import_dag_imports_once_and_lists_broken_rows_on_every_run(
    airflow_db, store, dag, import_folder
):
    conf = {"path": f"2026-01/{FIXTURE.name}", "timezone": "Asia/Tokyo"}
    first = dag.test(run_conf=conf)
    assert first.state == "success"
    assert message_count(store) == 14

    second = dag.test(run_conf=conf)
    assert second.state == "success"  # rejected rows warn, they do not fail the run
    assert message_count(store) == 14
    summaries = [summary_of(first), summary_of(second)]
    assert [(s["inserted"], s["duplicates_skipped"]) for s in summaries] == [(14, 0), (0, 14)]
    for summary in summaries:
        assert [r["line"] for r in summary["rejected_rows"]] == [9, 12, 13, 24]
        assert summary["quarantined"] == 4  # kept for the operator after the log is gone


def test_import_dag_accepts_an_absolute_path_inside_the_folder(
    airflow_db, store, dag, import_folder
):
    run = dag.test(run_conf={"path": str(import_folder / "2026-01" / FIXTURE.name)})
    assert run.state == "success" and message_count(store) == 14


@pytest.mark.parametrize("path", ["missing.csv", str(FIXTURE), "../imports/2026-01/x.csv"])
def test_import_dag_fails_clearly_on_a_missing_or_outside_file(
    airflow_db, store, dag, import_folder, path
):
    run = dag.test(run_conf={"path": path})
    assert run.state == "failed"
    assert message_count(store) == 0


def test_the_import_folder_defaults_to_airflow_home(monkeypatch, tmp_path):
    from talklog_airflow.operators.imports import default_import_folder

    monkeypatch.delenv("TALKLOG_IMPORT_FOLDER", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_import_folder() == str(tmp_path / "imports")
    monkeypatch.setenv("TALKLOG_IMPORT_FOLDER", "/data/exports")
    assert default_import_folder() == "/data/exports"
