"""The delivery ledger: each message reaches each customer once.

A run first *claims* (message, customer) pairs for the TalkLog it is building. The primary
key makes a claim exclusive: a pair already claimed by another window, schedule or
concurrent run keeps its first TalkLog, so no message is written to a customer twice. A
TalkLog becomes *delivered* once Salesforce accepted it.

Per pair the ledger keeps three narrow columns (`deliveries`); what belongs to the TalkLog
(key, record, window, run, delivery state) is stored once per TalkLog (`talklog_claims`), so
claiming a million pairs writes a million small rows and marking a window delivered updates
one row per TalkLog. A run hands its pairs over as `Claim`s, one per receiver and run of a
room's messages, and the store makes the pairs itself from each span's message ids, given as
JSON (one `executemany` or statement for a batch of rooms): no per-pair work in Python.

Each TalkLog also records how many `TalkLog__c` parts and Tasks Salesforce may hold for it
(`PartCounts`): 0 for a new claim, None for one written before store revision 0003 (not
known). A re-run that writes fewer deletes the rest (`talklog.stale_parts`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.store.engine import store_dialect
from talklog.store.models import Delivery, Message, TalkLogClaim, UTCDateTime
from talklog.windows import TalkWindow

_CLAIMS = TalkLogClaim.__table__


class Claim(NamedTuple):
    """(message, customer) pairs this window would deliver, and where to: each message of
    `message_ids` to the customer `customer_key`, in the TalkLog `talklog_key` (as `claim`
    returns them, the TalkLog that owns the pairs, maybe another window's; its record is
    then not known, None)."""

    message_ids: Sequence[int]
    customer_key: str
    talklog_key: str
    target_record_id: str | None

    def pairs(self) -> Iterator[tuple[int, str, str]]:
        """(message id, customer key, TalkLog key) of each pair."""
        return (
            (message_id, self.customer_key, self.talklog_key) for message_id in self.message_ids
        )


class PartCounts(NamedTuple):
    """How many `TalkLog__c` parts and `LINE WORKSログ` Tasks of one TalkLog Salesforce may
    hold (None: not known, written before store revision 0003)."""

    talklogs: int | None
    tasks: int | None


NO_PARTS = PartCounts(0, 0)


class LedgerEntry(NamedTuple):
    """One (message, customer) pair with its TalkLog's columns, as operators read it."""

    message_id: int
    customer_key: str
    talklog_key: str
    target_record_id: str | None
    task_key: str | None
    delivered_at: dt.datetime | None
    run_id: str | None


def claim_rooms(
    session: Session, rooms: Sequence[Sequence[Claim]], window: TalkWindow, run_id: str | None
) -> list[list[Claim]]:
    """Insert the pairs not claimed yet of several rooms' claims (one sequence per room);
    return, per room, the pairs of the same messages as claimed now, grouped by customer and
    owning TalkLog.

    The TalkLogs are registered first (one row each, see `_talklog_ids`); the pairs then go
    in as one statement for all the rooms (see `_INSERTERS`): a window's thousands of rooms
    cost a few dozen statements, not three per room. When every pair was inserted, the pairs
    are this window's and the claims are returned as they are; otherwise (a re-run, another
    window, a concurrent run) each room's owners are read from the ledger.
    """
    rooms = [[item for item in claims if item.message_ids] for claims in rooms]
    every = [item for claims in rooms for item in claims]
    if not every:
        return rooms
    connection = session.connection()
    insert = _INSERTERS[store_dialect(connection, "the delivery ledger")]
    ids = _talklog_ids(connection, every, window, run_id)
    spans = [(item.customer_key, ids[item.talklog_key], list(item.message_ids)) for item in every]
    if insert(connection, spans) == sum(len(item.message_ids) for item in every):
        return rooms
    return [_owned_now(session, claims, window) for claims in rooms]


def _owned_now(session: Session, claims: Sequence[Claim], window: TalkWindow) -> list[Claim]:
    """The owners of one room's claimed messages, as `claim_rooms` returns them."""
    if not claims:
        return []
    room_id = claims[0].talklog_key.split("|", 1)[0]
    message_ids = {message_id for item in claims for message_id in item.message_ids}
    return _grouped_pairs(owners(session, room_id, window, message_ids))


def _grouped_pairs(found: Mapping[tuple[int, str], str]) -> list[Claim]:
    """(message, customer) -> TalkLog key as claims, one per (customer, TalkLog), in the
    order of `found`."""
    grouped: dict[tuple[str, str], list[int]] = {}
    for (message_id, customer_key), key in found.items():
        grouped.setdefault((customer_key, key), []).append(message_id)
    return [Claim(ids, customer, key, None) for (customer, key), ids in grouped.items()]


def _talklog_ids(
    connection: sa.Connection, claims: Sequence[Claim], window: TalkWindow, run_id: str | None
) -> dict[str, int]:
    """Register the TalkLogs of `claims` (the first run's row stays) and return key -> id.

    TalkLog keys start with their room (`room|window|record`, see `talklogs.talklog_key`).
    An insert and a select per few hundred TalkLogs, whatever the backend, compiled once.
    """
    records = {item.talklog_key: item.target_record_id for item in claims}
    constants = {"window_start": window.start, "window_end": window.end, "run_id": run_id}
    rows = [
        {"key": key, "room": key.split("|", 1)[0], "record": record_id, **constants}
        for key, record_id in records.items()
    ]
    connection.execute(_REGISTER, rows)
    ids: dict[str, int] = {}
    for keys in chunked(list(records), IN_LIST_SIZE):
        ids.update(connection.execute(_IDS, {"keys": keys}).tuples().all())
    return ids


_REGISTER = sa.text(
    "INSERT INTO talklog_claims (talklog_key, room_id, target_record_id, window_start,"
    " window_end, run_id, talklog_parts, task_parts)"
    " VALUES (:key, :room, :record, :window_start, :window_end, :run_id, 0, 0)"
    " ON CONFLICT (talklog_key) DO NOTHING"
).bindparams(
    sa.bindparam("window_start", type_=UTCDateTime()),
    sa.bindparam("window_end", type_=UTCDateTime()),
)
_IDS = sa.select(TalkLogClaim.talklog_key, TalkLogClaim.id).where(
    TalkLogClaim.talklog_key.in_(sa.bindparam("keys", expanding=True))
)


def owners(
    session: Session, room_id: str, window: TalkWindow, message_ids: Iterable[int]
) -> dict[tuple[int, str], str]:
    """(message, customer) -> TalkLog key for the given messages of `room_id` in `window`.

    A pair belongs to a TalkLog of its message's room whose window holds the message, so
    only the room's TalkLogs of windows that overlap `window` are looked at (by room and
    window, `ix_talklog_claims_room`; their pairs by TalkLog, `ix_deliveries_talklog`).
    """
    ids = sorted(message_ids)
    query = (
        sa.select(Delivery.message_id, Delivery.customer_key, TalkLogClaim.talklog_key)
        .join(TalkLogClaim, TalkLogClaim.id == Delivery.talklog_id)
        .where(*_room_talklogs(room_id, window.start, window.end))
    )
    connection = session.connection()
    found: dict[tuple[int, str], str] = {}
    for batch in chunked(ids, IN_LIST_SIZE):
        rows = connection.execute(query.where(Delivery.message_id.in_(batch)))
        found.update({(message_id, customer): key for message_id, customer, key in rows})
    return found


def message_entries(session: Session, message: Message) -> list[LedgerEntry]:
    """The ledger pairs of one message: those of its room's TalkLogs whose window holds it."""
    moment = message.sent_at
    return entries(
        session,
        Delivery.message_id == message.id,
        *_room_talklogs(message.room_id, moment, moment + dt.timedelta(microseconds=1)),
    )


def _room_talklogs(
    room_id: str, start: dt.datetime, end: dt.datetime
) -> tuple[sa.ColumnElement[bool], ...]:
    """The TalkLogs of `room_id` whose window overlaps [start, end)."""
    return (
        TalkLogClaim.room_id == room_id,
        TalkLogClaim.window_start < end,
        TalkLogClaim.window_end > start,
    )


def entries(session: Session, *where: sa.ColumnElement[bool]) -> list[LedgerEntry]:
    """Ledger pairs with their TalkLog's columns (filters on `Delivery`/`TalkLogClaim`),
    ordered by message and customer."""
    query = (
        sa.select(
            Delivery.message_id,
            Delivery.customer_key,
            TalkLogClaim.talklog_key,
            TalkLogClaim.target_record_id,
            TalkLogClaim.task_key,
            TalkLogClaim.delivered_at,
            TalkLogClaim.run_id,
        )
        .join(TalkLogClaim, TalkLogClaim.id == Delivery.talklog_id)
        .where(*where)
        .order_by(Delivery.message_id, Delivery.customer_key)
    )
    return [LedgerEntry(*row) for row in session.execute(query)]


def mark_delivered(session: Session, task_keys: dict[str, str | None], when: dt.datetime) -> None:
    """Record that Salesforce accepted these TalkLogs (key -> the key of their first Task,
    or None to keep the one recorded)."""
    params = [
        {"key": key, "when": when, "task_key": task_key} for key, task_key in task_keys.items()
    ]
    _update_claims(
        session,
        params,
        delivered_at=sa.bindparam("when"),
        task_key=sa.func.coalesce(sa.bindparam("task_key"), _CLAIMS.c.task_key),
    )


def part_counts(
    session: Session, window: TalkWindow, rooms: Collection[str] | None = None
) -> dict[str, PartCounts]:
    """TalkLog key -> its `PartCounts`, for every TalkLog `window` claimed (in `rooms`)."""
    query = sa.select(
        TalkLogClaim.room_id,
        TalkLogClaim.talklog_key,
        TalkLogClaim.talklog_parts,
        TalkLogClaim.task_parts,
    ).where(TalkLogClaim.window_start == window.start, TalkLogClaim.window_end == window.end)
    return {
        key: PartCounts(talklogs, tasks)
        for room, key, talklogs, tasks in session.execute(query)
        if rooms is None or room in rooms
    }


def record_part_counts(session: Session, counts: Mapping[str, PartCounts]) -> None:
    """Record how many parts and Tasks Salesforce may hold per TalkLog; a TalkLog left
    without Tasks has no first Task either."""
    params = [
        {"key": key, "talklog_parts": n.talklogs, "task_parts": n.tasks, "no_tasks": n.tasks == 0}
        for key, n in counts.items()
    ]
    _update_claims(
        session,
        params,
        talklog_parts=sa.bindparam("talklog_parts"),
        task_parts=sa.bindparam("task_parts"),
        task_key=sa.case(
            (sa.bindparam("no_tasks", type_=sa.Boolean()), None), else_=_CLAIMS.c.task_key
        ),
    )


def _update_claims(session: Session, params: list[dict[str, object]], **values: object) -> None:
    """One UPDATE of talklog_claims, run for every row of `params` (each names its ``key``)."""
    if not params:
        return
    statement = sa.update(_CLAIMS).where(_CLAIMS.c.talklog_key == sa.bindparam("key"))
    session.connection().execute(statement.values(**values), params)


def completed_talklogs(accepted_parts: Iterable[str], rejected_parts: Iterable[str]) -> set[str]:
    """TalkLog keys all of whose parts (`<key>|<part>`) were accepted."""
    refused = {part.rsplit("|", 1)[0] for part in rejected_parts}
    return {part.rsplit("|", 1)[0] for part in accepted_parts} - refused


Span = tuple[str, int, list[int]]  # (customer key, TalkLog ledger id, message ids)

# The store makes the pairs from the message ids, given as JSON: on SQLite one execution per
# span (an `executemany`, its loop in C; each span's ids parsed once), on PostgreSQL one
# statement for the batch.
_SQLITE_INSERT = (
    "INSERT INTO deliveries (message_id, customer_key, talklog_id)"
    " SELECT value, ?, ? FROM json_each(?)"
    " WHERE true ON CONFLICT (customer_key, message_id) DO NOTHING"
)
_POSTGRES_INSERT = sa.text(
    "INSERT INTO deliveries (message_id, customer_key, talklog_id)"
    " SELECT message::bigint, span->>0, (span->>1)::integer"
    " FROM jsonb_array_elements(CAST(:spans AS jsonb)) AS span,"
    " jsonb_array_elements_text(span->2) AS message"
    " ON CONFLICT (customer_key, message_id) DO NOTHING"
).bindparams(sa.bindparam("spans", type_=sa.String()))


def _insert_sqlite(connection: sa.Connection, spans: Sequence[Span]) -> int:
    """SQLite (in process): one `executemany`; the store's C code makes the rows (and leaves
    Python's lock to other threads while it does). Its row count is the sum of the spans'."""
    params = [(customer, talklog_id, json.dumps(ids)) for customer, talklog_id, ids in spans]
    return connection.exec_driver_sql(_SQLITE_INSERT, params).rowcount


def _insert_postgres(connection: sa.Connection, spans: Sequence[Span]) -> int:
    """PostgreSQL (over the network): one round trip."""
    spans_json = json.dumps(spans, ensure_ascii=False)
    return connection.execute(_POSTGRES_INSERT, {"spans": spans_json}).rowcount


_INSERTERS: dict[str, Callable[[sa.Connection, Sequence[Span]], int]] = {
    "sqlite": _insert_sqlite,
    "postgresql": _insert_postgres,
}
