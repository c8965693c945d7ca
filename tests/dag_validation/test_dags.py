"""Every DAG imports, parses fast, follows the project's conventions and has real windows."""

from __future__ import annotations

import time
from pathlib import Path

import pendulum
import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.serialization.serialized_objects import DagSerialization

from talklog.windows import ScheduleChoice, talk_window

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
TALKLOG_DAGS = {f"talklog_{choice.value}": choice for choice in ScheduleChoice}
# DAGs that write nothing to Salesforce end with their own task, not the dead-letter check.
LAST_TASKS = {"talklog_import_export": "import_export"}


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_every_dag_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        *TALKLOG_DAGS,
        "talklog_link_sync",
        "talklog_relink",
        "talklog_replay_dead_letters",
        "talklog_import_export",
    }


@pytest.mark.parametrize(
    "dag_id",
    [
        *TALKLOG_DAGS,
        "talklog_link_sync",
        "talklog_relink",
        "talklog_replay_dead_letters",
        "talklog_import_export",
    ],
)
def test_conventions(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert dag.owner == "talklog"
    assert "talklog" in dag.tags and dag.doc_md
    assert dag.catchup is False and dag.is_paused_upon_creation is True
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.retries >= 1 and task.execution_timeout is not None
    last = LAST_TASKS.get(dag_id, "check_dead_letters")
    assert [t.task_id for t in dag.topological_sort()][-1] == last


@pytest.mark.parametrize(("dag_id", "choice"), TALKLOG_DAGS.items())
def test_schedules_have_real_data_intervals(dagbag, dag_id, choice):
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dagbag.dags[dag_id]))
    timetable = serialized.timetable
    assert timetable.summary == choice.cron
    run_at = pendulum.datetime(2026, 1, 10, 1, tz="Asia/Tokyo")
    interval = timetable.infer_manual_data_interval(run_after=run_at)
    assert interval.start < interval.end == run_at
    window = talk_window(interval.start, interval.end)
    assert window.end == pendulum.datetime(2026, 1, 9, 1, tz="Asia/Tokyo")


def test_dag_files_parse_fast_with_no_connections(monkeypatch):
    for key in ("AIRFLOW_CONN_SALESFORCE_DEFAULT", "AIRFLOW_CONN_TALKLOG_STORE"):
        monkeypatch.delenv(key, raising=False)
    DagBag(dag_folder=str(DAGS_FOLDER))  # warm imports, as a running dag-processor has them
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    elapsed = time.perf_counter() - started
    assert bag.import_errors == {}
    assert elapsed < 2.0, f"parsing the DAG files took {elapsed:.2f}s"
