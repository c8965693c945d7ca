"""The LINE WORKS download runs in its one-slot pool, and its task says what a missing pool
looks like (Airflow 3.3 leaves a task of a missing pool "scheduled" forever) and the fix."""

from __future__ import annotations

from talklog.windows import ScheduleChoice
from talklog_airflow import dag_factory
from talklog_airflow.operators.ingest import LINEWORKS_POOL


def test_the_ingest_task_runs_in_the_pool_and_names_the_command_that_creates_it(monkeypatch):
    monkeypatch.setattr(dag_factory, "TALK_SOURCE", "lineworks")
    dags = [
        dag_factory.build_talklog_dag(ScheduleChoice.HOURLY),
        dag_factory.build_lineworks_dags()["talklog_ingest_history"],
    ]
    for dag in dags:
        ingest = dag.get_task("ingest_talks")
        assert ingest.pool == LINEWORKS_POOL == "lineworks_download"
        assert f'airflow pools set {LINEWORKS_POOL} 1 "LINE WORKS downloads' in ingest.doc_md
        assert 'stays "scheduled"' in ingest.doc_md
        others = [task for task in dag.tasks if task.task_id != "ingest_talks"]
        assert all(task.pool != LINEWORKS_POOL for task in others)
