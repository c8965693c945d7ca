"""Reading a talk window out of the message store, streamed by room."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import sqlite3
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from operator import add, itemgetter
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.store.engine import is_undecodable_text, tolerant_text
from talklog.store.models import (
    UTC_SUFFIX,
    WRITTEN_TIME_LENGTHS,
    WRITTEN_TIME_SEPARATOR,
    LineUser,
    LineWorksUser,
    Link,
    LinkPeriod,
    MemberKind,
    Message,
    Room,
    RoomMember,
    utc_from_db,
)
from talklog.transcripts import TalkLine
from talklog.windows import TalkWindow

EXTRACT_CHUNK_ROWS = 20_000


@dataclass(frozen=True, slots=True)
class Span:
    """[start, end) with an open end for `None`."""

    start: dt.datetime
    end: dt.datetime | None

    def covers(self, moment: dt.datetime) -> bool:
        return self.start <= moment and (self.end is None or moment < self.end)


@dataclass(frozen=True)
class LinkInForce:
    """A link and the spans during which it was in force."""

    link_key: str
    lw_user_id: str
    line_user_id: str
    target_type: str
    target_id: str
    periods: tuple[Span, ...]

    def active_at(self, moment: dt.datetime) -> bool:
        return any(span.covers(moment) for span in self.periods)


@dataclass
class RoomContext:
    """What decides the recipients of a room's messages: its members over time and links."""

    room_id: str
    room_type: str
    title: str | None
    lw_members: dict[str, list[Span]] = field(default_factory=dict)
    line_members: dict[str, list[Span]] = field(default_factory=dict)
    links: list[LinkInForce] = field(default_factory=list)

    def recipients(self, moment: dt.datetime) -> list[LinkInForce]:
        """The links through which a message sent at `moment` reaches a customer record:
        the link was in force, and both its staff user and its customer were members."""
        return [
            link
            for link in self.links
            if link.active_at(moment)
            and _member_at(self.line_members.get(link.line_user_id), moment)
            and _member_at(self.lw_members.get(link.lw_user_id), moment)
        ]

    def recipient_steps(self) -> tuple[list[dt.datetime], list[list[LinkInForce]]]:
        """`recipients` as a step function: (the moments it can change, recipients from each).

        Recipients change only where a link period or a membership of a linked pair starts
        or ends, so a room's messages are matched against a few steps instead of every span.
        A message sent before the first moment has no recipients.
        """
        moments: set[dt.datetime] = set()
        for link in self.links:
            spans = (
                *link.periods,
                *self.line_members.get(link.line_user_id, ()),
                *self.lw_members.get(link.lw_user_id, ()),
            )
            for span in spans:
                moments.add(span.start)
                if span.end is not None:
                    moments.add(span.end)
        bounds = sorted(moments)
        return bounds, [self.recipients(moment) for moment in bounds]


def _member_at(spans: list[Span] | None, moment: dt.datetime) -> bool:
    return bool(spans) and any(span.covers(moment) for span in spans)


def _in_window(window: TalkWindow) -> sa.ColumnElement[bool]:
    return sa.and_(Message.sent_at >= window.start, Message.sent_at < window.end)


def count_window_messages(session: Session, window: TalkWindow) -> int:
    """How many messages `window` holds (an index range count)."""
    query = sa.select(sa.func.count()).select_from(Message).where(_in_window(window))
    return session.connection().execute(query).scalar_one()


def window_lines(
    db: Session | sa.Connection,
    window: TalkWindow,
    chunk_rows: int = EXTRACT_CHUNK_ROWS,
    rooms: Collection[str] | None = None,
) -> Iterator[tuple[str, list[TalkLine]]]:
    """(room id, its messages in time order) for every room that talked in `window` (only
    `rooms`, when given).

    Rows are streamed from the database in chunks; one room's messages are held at a time.
    """
    for room_id, columns in window_rows(db, window, chunk_rows, rooms):
        yield room_id, talk_lines(columns)


Columns = list[tuple[Any, ...]]
"""A room's messages as columns of what the driver returned, in `TalkLine`'s field order
(`talk_lines` makes them lines): a few sequences instead of a tuple per message, cheap to
send to another process and to turn into lines."""


def window_rows(
    db: Session | sa.Connection,
    window: TalkWindow,
    chunk_rows: int = EXTRACT_CHUNK_ROWS,
    rooms: Collection[str] | None = None,
) -> Iterator[tuple[str, Columns]]:
    """`window_lines` as `Columns` of plain values."""
    connection = db.connection() if isinstance(db, Session) else db
    query = (
        sa.select(
            Message.room_id,
            Message.id,
            sa.type_coerce(Message.sent_at, sa.String),  # converted by talk_lines
            Message.sender_kind,
            sa.func.coalesce(Message.sender_lw_user_id, Message.sender_line_user_id),  # named below
            Message.message_type,
            Message.text,
            Message.file_name,
            Message.file_size,
        )
        .where(_in_window(window), Message.room_id.in_(sa.bindparam("rooms", expanding=True)))
        .order_by(Message.room_id, Message.sent_at, Message.id)
    )
    if connection.dialect.name != "sqlite":  # SQLite's driver steps the query as it is read
        query = query.execution_options(yield_per=chunk_rows, stream_results=True)
    speakers = Speakers(connection)
    # A few hundred rooms per query: each is read along its (room, time) index, so rows come
    # in order without sorting the whole window first (the first rows arrive at once).
    for chunk in chunked(active_room_ids(connection, window, rooms), IN_LIST_SIZE):
        speakers.read_members(chunk)
        yield from _rooms_rows(connection, query, chunk, speakers, chunk_rows)


class Speakers:
    """Senders' display names ('?' for none): a room's speaker column is made from its
    senders in C, instead of the user tables joined per message (1M messages: about 1 s less
    of the query). The names of a chunk of rooms' members are read before its rooms, any
    other sender's as a room needs it. Read with `tolerant_text`: a name that is not valid
    UTF-8 comes with its bad bytes marked, and the pipeline quarantines its lines."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection
        self.names: dict[tuple[str, str], str] = {}

    def of(self, kinds: Sequence[str], sender_ids: Sequence[str]) -> tuple[str, ...]:
        """The name of each (sender kind, sender id)."""
        senders = tuple(zip(kinds, sender_ids, strict=True))
        names = tuple(map(self.names.get, senders))
        if None in names:
            self._read(
                {sender for sender, name in zip(senders, names, strict=True) if name is None}
            )
            names = tuple(map(self.names.__getitem__, senders))
        return names

    def read_members(self, rooms: Sequence[str]) -> None:
        """Read the names of the members of `rooms` (at most `IN_LIST_SIZE`): most senders
        are, so a chunk of rooms costs a query per user table instead of one per room."""
        for kind, user, member in _USER_TABLES:
            members = sa.select(member).where(RoomMember.room_id.in_(rooms))
            self._named(kind, sa.select(user.id, user.display_name).where(user.id.in_(members)))

    def _read(self, senders: set[tuple[str, str]]) -> None:
        for kind, user, _member in _USER_TABLES:
            ids = sorted(sender_id for sender_kind, sender_id in senders if sender_kind == kind)
            for batch in chunked(ids, IN_LIST_SIZE):
                self._named(kind, sa.select(user.id, user.display_name).where(user.id.in_(batch)))
        for sender in senders:
            self.names.setdefault(sender, "?")  # no such user (or no kind the store knows)

    def _named(self, kind: str, query: sa.Select) -> None:
        with tolerant_text(self.connection):
            rows = self.connection.execute(query).all()
        self.names.update(((kind, i), "?" if name is None else name) for i, name in rows)


_USER_TABLES = (
    (MemberKind.LW.value, LineWorksUser, RoomMember.lw_user_id),
    (MemberKind.LINE.value, LineUser, RoomMember.line_user_id),
)


def _rooms_rows(
    connection: sa.Connection,
    query: sa.Select,
    rooms: list[str],
    speakers: Speakers,
    chunk_rows: int,
) -> Iterator[tuple[str, Columns]]:
    """The rows of `rooms`, room by room.

    A value SQLite cannot decode (not UTF-8) fails the fast, strict read; the rooms not
    yielded yet are then read again with `tolerant_text`, and the pipeline quarantines the
    lines that hold such values. The error is dropped: its message quotes the value.
    """
    done = 0
    try:
        found = connection.execute(query, {"rooms": rooms})
        for room in _grouped(_plain_rows(found, chunk_rows), speakers):
            yield room
            done = rooms.index(room[0], done) + 1
        return
    except (sa.exc.OperationalError, sqlite3.OperationalError) as error:
        if not is_undecodable_text(error):
            raise
    with tolerant_text(connection):  # outside the handler: nothing chains the dropped error
        found = connection.execute(query, {"rooms": rooms[done:]})
        yield from _grouped(_plain_rows(found, chunk_rows), speakers)


def _plain_rows(result: sa.CursorResult, chunk_rows: int) -> Iterator[Sequence[Any]]:
    """The result's rows, `chunk_rows` at a time: from SQLite the driver's own tuples (its
    values need no conversion, and a Core row made of each of a million cost about 1.5 s of
    the window's read), from any other database Core rows."""
    try:
        if result.dialect.name == "sqlite":
            fetch = functools.partial(result.cursor.fetchmany, chunk_rows)
            yield from itertools.chain.from_iterable(iter(fetch, []))
        else:
            yield from itertools.chain.from_iterable(result.partitions())
    finally:
        result.close()


def _grouped(rows: Iterator[Sequence[Any]], speakers: Speakers) -> Iterator[tuple[str, Columns]]:
    for room_id, group in itertools.groupby(rows, key=itemgetter(0)):
        columns = list(zip(*group, strict=True))[1:]  # transposed in C, room id left out
        columns[_SPEAKER] = speakers.of(columns[_KIND], columns[_SPEAKER])
        yield room_id, columns


_KIND = TalkLine._fields.index("speaker_kind")
_SPEAKER = TalkLine._fields.index("speaker_name")  # the sender id until `Speakers` names it


def active_room_ids(
    connection: sa.Connection, window: TalkWindow, rooms: Collection[str] | None = None
) -> list[str]:
    """The rooms that talked in `window` (of `rooms`, when given), in id order.

    One index probe per room (`ix_messages_room_sent`) instead of a pass over the window's
    messages: at a million messages that pass and its DISTINCT took about 2 s, the probes
    of a few thousand rooms take milliseconds.
    """
    talked = sa.exists().where(Message.room_id == Room.id, _in_window(window))
    query = sa.select(Room.id).where(talked).order_by(Room.id)
    active = list(connection.execute(query).scalars())
    return active if rooms is None else [room for room in active if room in rooms]


def talk_lines(columns: Columns) -> list[TalkLine]:
    """`Columns` of `window_rows` as lines.

    Times as SQLite holds them (UTC text as SQLAlchemy writes it) are parsed and the lines
    built in C, without a Python step per message (a window has a million); other values
    (a driver's datetimes, other ISO text) go through `utc_from_db` line by line, and a time
    that is not one becomes `sent_at=None` (`transcripts.unreadable`).
    """
    ids, times, *rest = columns
    if _as_written(times):
        try:
            parsed = list(map(dt.datetime.fromisoformat, map(add, times, _utc_suffixes(times))))
        except ValueError:
            pass
        else:
            return list(map(_new_line, zip(ids, parsed, *rest, strict=True)))
    return [
        TalkLine(line[0], _time_or_none(line[1]), *line[2:]) for line in zip(*columns, strict=True)
    ]


_new_line = functools.partial(tuple.__new__, TalkLine)  # a line from its fields, in C


def _utc_suffixes(times: Sequence[Any]) -> Iterator[str]:
    return itertools.repeat(UTC_SUFFIX, len(times))


def _as_written(times: Sequence[Any]) -> bool:
    """Every time is naive UTC text as SQLAlchemy writes it (`store.models.utc_from_db`'s one
    C call), checked in C."""
    return (
        set(map(type, times)) == {str}
        and set(map(len, times)) <= WRITTEN_TIME_LENGTHS
        and set(map(_SEPARATOR, times)) == {WRITTEN_TIME_SEPARATOR[1]}
    )


_SEPARATOR = itemgetter(WRITTEN_TIME_SEPARATOR[0])


def _time_or_none(value: Any) -> dt.datetime | None:
    try:
        return utc_from_db(value)
    except (AttributeError, TypeError, ValueError):
        return None


def room_contexts(
    session: Session, window: TalkWindow, rooms: Collection[str] | None = None
) -> dict[str, RoomContext]:
    """Members and links of every room that talked in `window` (of `rooms`, when given).

    The rooms are found once (a pass over the window's messages); rooms, members and links
    are then read by id, a few hundred per query. A title the store cannot decode is read
    with `tolerant_text` (the pipeline quarantines it).
    """
    connection = session.connection()
    active = active_room_ids(connection, window, rooms)
    contexts: dict[str, RoomContext] = {}
    for ids in chunked(active, IN_LIST_SIZE):
        with tolerant_text(connection):  # a few thousand titles: the Python decoder is cheap
            rows = connection.execute(
                sa.select(Room.id, Room.room_type, Room.title).where(Room.id.in_(ids))
            ).all()
        contexts.update({room_id: RoomContext(room_id, *rest) for room_id, *rest in rows})
    member = RoomMember.__table__.c
    for ids in chunked(active, IN_LIST_SIZE):
        rows = connection.execute(
            sa.select(
                RoomMember.room_id,
                RoomMember.member_kind,
                RoomMember.lw_user_id,
                RoomMember.line_user_id,
                RoomMember.joined_at,
                RoomMember.left_at,
            ).where(member.room_id.in_(ids))
        )
        for room_id, kind, lw_user_id, line_user_id, joined, left in rows:
            spans = contexts[room_id].lw_members if kind == "lw" else contexts[room_id].line_members
            spans.setdefault(lw_user_id if kind == "lw" else line_user_id, []).append(
                Span(joined, left)
            )
    customers = sorted({c for context in contexts.values() for c in context.line_members})
    links_of_customer: dict[str, list[LinkInForce]] = defaultdict(list)
    for ids in chunked(customers, IN_LIST_SIZE):
        for link in _links_of(session, ids):
            links_of_customer[link.line_user_id].append(link)
    for context in contexts.values():
        context.links = sorted(
            (link for customer in context.line_members for link in links_of_customer[customer]),
            key=lambda link: link.link_key,
        )
    return contexts


def _links_of(session: Session, line_user_ids: Sequence[str]) -> list[LinkInForce]:
    periods: dict[int, list[Span]] = defaultdict(list)
    rows = session.connection().execute(
        sa.select(LinkPeriod.link_id, LinkPeriod.started_at, LinkPeriod.ended_at)
        .join(Link, Link.id == LinkPeriod.link_id)
        .where(Link.line_user_id.in_(line_user_ids))
    )
    for link_id, started, ended in rows:
        periods[link_id].append(Span(started, ended))
    links = session.connection().execute(
        sa.select(
            Link.id,
            Link.link_key,
            Link.lw_user_id,
            Link.line_user_id,
            Link.target_type,
            Link.target_id,
        ).where(Link.line_user_id.in_(line_user_ids))
    )
    return [
        LinkInForce(key, lw_user_id, line_user_id, target_type, target_id, tuple(periods[link_id]))
        for link_id, key, lw_user_id, line_user_id, target_type, target_id in links
    ]
