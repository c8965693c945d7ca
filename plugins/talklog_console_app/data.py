"""What the console reads: DAG runs and their returned summaries (Airflow's metadata DB), and the
message store's dead letters, traces and ingestion coverage (through the store hook).

Never message content: the store is asked for counts, keys, codes and times only.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from airflow.models.dagrun import DagRun
from airflow.models.xcom import XComModel
from sqlalchemy.orm import Session

from talklog.console import RunRecord, Schedule
from talklog.windows import TALK_DELAY, ScheduleChoice, as_utc

TIMEZONE = os.environ.get("TALKLOG_TIMEZONE", "Asia/Tokyo")
STORE_CONN_ID = os.environ.get("TALKLOG_STORE_CONN_ID", "talklog_store")
REPLAY_DAG = "talklog_replay_dead_letters"
BUDGET_TASK = "check_api_budget"
TALKLOG_SCHEDULES = {f"talklog_{choice.value}": choice.cron for choice in ScheduleChoice}


def schedule_of(dag_id: str) -> Schedule:
    return Schedule(TALKLOG_SCHEDULES[dag_id], TIMEZONE)


def returned(session: Session, dag_id: str, run_ids: Iterable[str], task_id: str) -> dict:
    """The return values (XCom) of `task_id` in the given runs, by run id."""
    ids = list(run_ids)
    if not ids:
        return {}
    rows = session.scalars(
        sa.select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id.in_(ids),
            XComModel.task_id == task_id,
            XComModel.key == "return_value",
            XComModel.map_index == -1,
        )
    )
    return {row.run_id: XComModel.deserialize_value(row) for row in rows}


def find_run(session: Session, dag_id: str, run_id: str) -> DagRun | None:
    return session.scalar(sa.select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))


def talklog_runs(
    session: Session, dag_ids: Sequence[str], start: dt.datetime, end: dt.datetime
) -> list[RunRecord]:
    """Runs of the talk-log DAGs whose talk windows overlap [start, end), with summaries."""
    if not dag_ids:
        return []
    runs = session.scalars(
        sa.select(DagRun).where(
            DagRun.dag_id.in_(list(dag_ids)),
            DagRun.data_interval_end > as_utc(start) + TALK_DELAY,
            DagRun.data_interval_start < as_utc(end) + TALK_DELAY,
        )
    ).all()
    records = []
    for dag_id in {run.dag_id for run in runs}:
        mine = [run for run in runs if run.dag_id == dag_id]
        summaries = returned(session, dag_id, [r.run_id for r in mine], "write_talk_logs")
        records.extend(_record(run, summaries.get(run.run_id)) for run in mine)
    return records


def _record(run: DagRun, summary: Any) -> RunRecord:
    return RunRecord(
        run.dag_id,
        run.run_id,
        as_utc(run.data_interval_start),
        as_utc(run.data_interval_end),
        str(run.state),
        summary if isinstance(summary, dict) else None,
    )


def existing_runs(session: Session, dag_id: str, runs: Sequence[Any]) -> list[RunRecord]:
    """Runs `dag_id` already has over the data intervals of `runs` (for a backfill plan)."""
    if not runs:
        return []
    found = session.scalars(
        sa.select(DagRun).where(
            DagRun.dag_id == dag_id,
            DagRun.data_interval_start >= runs[0].start,
            DagRun.data_interval_start <= runs[-1].start,
        )
    )
    return [_record(run, None) for run in found]


# -- the message store ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterGroup:
    """Open dead letters of one object and error code."""

    object_name: str
    error_code: str
    count: int
    retryable: int
    oldest: dt.datetime


def _store_sessions() -> Any:
    from talklog_airflow.hooks.store import MessageStoreHook

    return MessageStoreHook(STORE_CONN_ID).get_conn()


def dead_letter_groups() -> list[LetterGroup]:
    """Open dead letters by object and error code, oldest first (no payload, no message)."""
    from talklog.store.models import DeadLetter, DeadLetterStatus

    query = (
        sa.select(
            DeadLetter.object_name,
            DeadLetter.error_code,
            sa.func.count(),
            sa.func.sum(sa.case((DeadLetter.retryable.is_(True), 1), else_=0)),
            sa.func.min(DeadLetter.first_failed_at),
        )
        .where(DeadLetter.status == DeadLetterStatus.OPEN.value)
        .group_by(DeadLetter.object_name, DeadLetter.error_code)
    )
    with _store_sessions()() as session:
        rows = session.execute(query).all()
    groups = [LetterGroup(o, c, int(n), int(r or 0), as_utc(_aware(t))) for o, c, n, r, t in rows]
    return sorted(groups, key=lambda g: (g.oldest, g.object_name, g.error_code))


def trace(key: str) -> list[str]:
    """Where a message, record, link or LINE WORKS contact went, or why not (the CLI's trace)."""
    from talklog.console import trace_any

    with _store_sessions()() as session:
        return trace_any(session, key.strip())


def latest_message_at() -> dt.datetime | None:
    """The newest message time the store holds: how far ingestion has come."""
    from talklog.store.models import Message

    with _store_sessions()() as session:
        latest = session.scalar(sa.select(sa.func.max(Message.sent_at)))
    return as_utc(_aware(latest)) if latest else None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
