"""A finished run's note: its talk window (talk-log DAGs) and its result in one line."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from sqlalchemy.orm import Session, object_session

from talklog.console import one_line
from talklog.windows import talk_window

from .data import TALKLOG_SCHEDULES, TIMEZONE, returned


def write_note(dag_run: Any, task_id: str, limit: int) -> None:
    """Set the note of a finished run nobody wrote a note for. In the scheduler the run is in
    its session (committed with the new state); a detached run is updated in a session here."""
    session = object_session(dag_run)
    if session is not None:
        _write(session, dag_run, task_id, limit)
        return
    with create_session() as own:
        run = own.scalar(sa.select(DagRun).where(DagRun.id == dag_run.id))
        if run is not None:
            _write(own, run, task_id, limit)


def _write(session: Session, run: DagRun, task_id: str, limit: int) -> None:
    if not run.note:
        run.note = run_note(session, run, task_id)[:limit]


def run_note(session: Session, dag_run: Any, task_id: str) -> str:
    """`2026-01-09 10:00 – 10:59 (Asia/Tokyo): 42 messages; ...` (content-free)."""
    summary = returned(session, dag_run.dag_id, [dag_run.run_id], task_id).get(dag_run.run_id)
    result = one_line(summary if isinstance(summary, dict) else None)
    if dag_run.dag_id not in TALKLOG_SCHEDULES or not dag_run.data_interval_start:
        return result
    window = talk_window(dag_run.data_interval_start, dag_run.data_interval_end)
    return f"{window.label(TIMEZONE)}: {result}"
