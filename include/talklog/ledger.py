"""The delivery ledger: each message reaches each customer once.

A run first *claims* (message, customer) pairs for the TalkLog it is building. The primary
key makes a claim exclusive: a pair already claimed by another window, schedule or
concurrent run keeps its first TalkLog, so no message is written to a customer twice. A
claim becomes *delivered* once Salesforce accepted the TalkLog.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.salesforce.soql import chunked
from talklog.store.models import Delivery, UTCDateTime
from talklog.windows import TalkWindow

_BATCH = 500  # ids per IN (...) lookup
_INSERT_BATCH = 20_000  # rows per executemany


class Claim(NamedTuple):
    """A (message, customer) pair this window would deliver, and where to."""

    message_id: int
    customer_key: str
    talklog_key: str
    target_record_id: str


def claim(
    session: Session, claims: Sequence[Claim], window: TalkWindow, run_id: str | None
) -> dict[tuple[int, str], str]:
    """Insert the claims not taken yet; return the TalkLog key each pair belongs to now.

    Claims go in without per-row SQLAlchemy work (see `_INSERTERS`). When every claim was
    inserted, the pairs are this window's and nothing is read back; otherwise (a re-run,
    another window, a concurrent run) the owners are read from the ledger.
    """
    if not claims:
        return {}
    connection = session.connection()
    insert = _INSERTERS.get(connection.dialect.name)
    if insert is None:
        raise NotImplementedError(
            f"the delivery ledger supports PostgreSQL and SQLite, not {connection.dialect.name}"
        )
    inserted = insert(connection, claims, window, run_id)
    if inserted == len(claims):
        return {(item.message_id, item.customer_key): item.talklog_key for item in claims}
    return owners(session, {item.message_id for item in claims})


def owners(session: Session, message_ids: Iterable[int]) -> dict[tuple[int, str], str]:
    """(message, customer) -> TalkLog key for the given messages."""
    ids = sorted(message_ids)
    table = Delivery.__table__
    query = sa.select(table.c.message_id, table.c.customer_key, table.c.talklog_key)
    connection = session.connection()
    found: dict[tuple[int, str], str] = {}
    for batch in chunked(ids, _BATCH):
        rows = connection.execute(query.where(table.c.message_id.in_(batch)))
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


_INSERT = (
    "INSERT INTO deliveries (message_id, customer_key, talklog_key, target_record_id,"
    " window_start, window_end, run_id) {rows} ON CONFLICT (message_id, customer_key) DO NOTHING"
)


def _insert_sqlite(
    connection: sa.Connection, claims: Sequence[Claim], window: TalkWindow, run_id: str | None
) -> int:
    """SQLite (in process): the driver's `executemany` over plain tuples."""
    dialect = connection.dialect
    to_db = UTCDateTime().dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)
    constants = (to_db(window.start), to_db(window.end), run_id)
    sql = _INSERT.format(rows="VALUES (?, ?, ?, ?, ?, ?, ?)")
    inserted = 0
    for batch in chunked(claims, _INSERT_BATCH):
        rows = [(*item, *constants) for item in batch]
        inserted += connection.exec_driver_sql(sql, rows).rowcount
    return inserted


_POSTGRES_INSERT = sa.text(
    _INSERT.format(
        rows="SELECT (claim->>0)::bigint, claim->>1, claim->>2, claim->>3,"
        " :window_start, :window_end, :run_id"
        " FROM json_array_elements(CAST(:claims AS json)) AS claim"
    )
).bindparams(
    sa.bindparam("window_start", type_=UTCDateTime()),
    sa.bindparam("window_end", type_=UTCDateTime()),
    sa.bindparam("run_id", type_=sa.String()),
    sa.bindparam("claims", type_=sa.String()),
)


def _insert_postgres(
    connection: sa.Connection, claims: Sequence[Claim], window: TalkWindow, run_id: str | None
) -> int:
    """PostgreSQL (over the network): one JSON parameter per batch, one round trip each."""
    constants = {"window_start": window.start, "window_end": window.end, "run_id": run_id}
    inserted = 0
    for batch in chunked(claims, _INSERT_BATCH):
        rows = json.dumps(batch, ensure_ascii=False)
        inserted += connection.execute(_POSTGRES_INSERT, {**constants, "claims": rows}).rowcount
    return inserted


_INSERTERS = {"sqlite": _insert_sqlite, "postgresql": _insert_postgres}
