"""The delivery ledger: each message reaches each customer once.

A run first *claims* (message, customer) pairs for the TalkLog it is building. The primary
key makes a claim exclusive: a pair already claimed by another window, schedule or
concurrent run keeps its first TalkLog, so no message is written to a customer twice. A
claim becomes *delivered* once Salesforce accepted the TalkLog.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from talklog.store.models import Delivery
from talklog.windows import TalkWindow

_BATCH = 500  # ids per IN (...) lookup
_INSERT_BATCH = 20_000  # rows per executemany


@dataclass(frozen=True, slots=True)
class Claim:
    message_id: int
    customer_key: str
    talklog_key: str
    target_record_id: str


def claim(
    session: Session, claims: Sequence[Claim], window: TalkWindow, run_id: str | None
) -> dict[tuple[int, str], str]:
    """Insert the claims not taken yet; return the TalkLog key each pair belongs to now."""
    if not claims:
        return {}
    insert = _insert_ignoring_conflicts(session)
    rows = [
        {
            "message_id": item.message_id,
            "customer_key": item.customer_key,
            "talklog_key": item.talklog_key,
            "target_record_id": item.target_record_id,
            "window_start": window.start,
            "window_end": window.end,
            "run_id": run_id,
        }
        for item in claims
    ]
    connection = session.connection()  # Core executemany: no ORM bulk-insert bookkeeping
    for start in range(0, len(rows), _INSERT_BATCH):
        connection.execute(insert, rows[start : start + _INSERT_BATCH])
    return owners(session, {item.message_id for item in claims})


def owners(session: Session, message_ids: Iterable[int]) -> dict[tuple[int, str], str]:
    """(message, customer) -> TalkLog key for the given messages."""
    ids = sorted(message_ids)
    found: dict[tuple[int, str], str] = {}
    for start in range(0, len(ids), _BATCH):
        rows = session.execute(
            sa.select(Delivery.message_id, Delivery.customer_key, Delivery.talklog_key).where(
                Delivery.message_id.in_(ids[start : start + _BATCH])
            )
        )
        found.update({(message_id, customer): key for message_id, customer, key in rows})
    return found


def mark_delivered(session: Session, task_keys: dict[str, str | None], when: dt.datetime) -> None:
    """Record that Salesforce accepted these TalkLogs (key -> the key of their first Task,
    or None to keep the one recorded)."""
    if not task_keys:
        return
    table = Delivery.__table__
    statement = (
        sa.update(table)
        .where(table.c.talklog_key == sa.bindparam("key"))
        .values(
            delivered_at=sa.bindparam("when"),
            task_key=sa.func.coalesce(sa.bindparam("task_key"), table.c.task_key),
        )
    )
    params = [
        {"key": key, "when": when, "task_key": task_key} for key, task_key in task_keys.items()
    ]
    session.connection().execute(statement, params)


def completed_talklogs(accepted_parts: Iterable[str], rejected_parts: Iterable[str]) -> set[str]:
    """TalkLog keys all of whose parts (`<key>|<part>`) were accepted."""
    refused = {part.rsplit("|", 1)[0] for part in rejected_parts}
    return {part.rsplit("|", 1)[0] for part in accepted_parts} - refused


def _insert_ignoring_conflicts(session: Session):
    dialect = session.get_bind().dialect.name
    module = {"postgresql": postgresql, "sqlite": sqlite}.get(dialect)
    if module is None:
        raise NotImplementedError(
            f"the delivery ledger supports PostgreSQL and SQLite, not {dialect}"
        )
    return module.insert(Delivery).on_conflict_do_nothing(
        index_elements=["message_id", "customer_key"]
    )
