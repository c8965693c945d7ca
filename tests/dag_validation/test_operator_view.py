"""What an operator relies on: retries with backoff, a failure notifier, the budget check."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from talklog.windows import ScheduleChoice
from talklog_airflow.alerts import TalkLogAlertNotifier

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
TALKLOG_DAGS = [f"talklog_{choice.value}" for choice in ScheduleChoice]


@pytest.fixture(scope="module")
def dags():
    return DagBag(dag_folder=str(DAGS_FOLDER)).dags


def test_every_task_retries_with_backoff_and_notifies_on_failure(dags):
    for dag in dags.values():
        assert dag.description and dag.tags and dag.doc_md and dag.max_active_runs == 1
        for task in dag.tasks:
            assert task.owner == "talklog", (dag.dag_id, task.task_id)
            assert task.retries >= 1 and task.retry_exponential_backoff, (dag.dag_id, task.task_id)
            assert task.max_retry_delay and task.execution_timeout, (dag.dag_id, task.task_id)
            callbacks = task.on_failure_callback
            callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
            assert any(isinstance(c, TalkLogAlertNotifier) for c in callbacks), task.task_id


@pytest.mark.parametrize("dag_id", TALKLOG_DAGS)
def test_talk_log_runs_check_the_api_budget_before_the_dead_letters(dags, dag_id):
    dag = dags[dag_id]
    budget = dag.get_task("check_api_budget")
    assert budget.trigger_rule == "all_done"  # also after a failed write
    assert budget.upstream_task_ids == {"write_talk_logs"}
    assert "check_api_budget" in dag.get_task("check_dead_letters").upstream_task_ids
