"""Reading a talk window out of the message store, streamed by room."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import itemgetter

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog.store.models import (
    LineUser,
    LineWorksUser,
    Link,
    LinkPeriod,
    Message,
    Room,
    RoomMember,
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


def window_lines(
    session: Session, window: TalkWindow, chunk_rows: int = EXTRACT_CHUNK_ROWS
) -> Iterator[tuple[str, list[TalkLine]]]:
    """(room id, its messages in time order) for every room that talked in `window`.

    Rows are streamed from the database in chunks; one room's messages are held at a time.
    """
    speaker = sa.func.coalesce(LineWorksUser.display_name, LineUser.display_name, "?")
    stmt = (
        sa.select(
            Message.room_id,
            Message.id,
            Message.sent_at,
            Message.sender_kind,
            speaker,
            Message.message_type,
            Message.text,
            Message.file_name,
            Message.file_size,
        )
        .outerjoin(LineWorksUser, LineWorksUser.id == Message.sender_lw_user_id)
        .outerjoin(LineUser, LineUser.id == Message.sender_line_user_id)
        .where(_in_window(window))
        .order_by(Message.room_id, Message.sent_at, Message.id)
        .execution_options(yield_per=chunk_rows, stream_results=True)
    )
    result = session.connection().execute(stmt)  # Core: no ORM row processing
    rows = itertools.chain.from_iterable(result.partitions())  # chunk by chunk, not row by row
    for room_id, group in itertools.groupby(rows, key=itemgetter(0)):
        yield room_id, [TalkLine(*row[1:]) for row in group]


def room_contexts(session: Session, window: TalkWindow) -> dict[str, RoomContext]:
    """Members and links of every room that talked in `window` (three queries in all)."""
    active_rooms = sa.select(Message.room_id).where(_in_window(window)).distinct()
    contexts = {
        room.id: RoomContext(room.id, room.room_type, room.title)
        for room in session.scalars(sa.select(Room).where(Room.id.in_(active_rooms)))
    }
    members = session.scalars(sa.select(RoomMember).where(RoomMember.room_id.in_(active_rooms)))
    for member in members:
        context = contexts[member.room_id]
        span = Span(member.joined_at, member.left_at)
        if member.member_kind == "lw":
            context.lw_members.setdefault(member.lw_user_id, []).append(span)
        else:
            context.line_members.setdefault(member.line_user_id, []).append(span)
    customers = sa.select(RoomMember.line_user_id).where(RoomMember.room_id.in_(active_rooms))
    links_of_customer: dict[str, list[LinkInForce]] = defaultdict(list)
    for link in _links_of(session, customers):
        links_of_customer[link.line_user_id].append(link)
    for context in contexts.values():
        context.links = sorted(
            (link for customer in context.line_members for link in links_of_customer[customer]),
            key=lambda link: link.link_key,
        )
    return contexts


def _links_of(session: Session, line_user_ids: sa.Select) -> list[LinkInForce]:
    periods: dict[int, list[Span]] = defaultdict(list)
    rows = session.execute(
        sa.select(LinkPeriod.link_id, LinkPeriod.started_at, LinkPeriod.ended_at)
        .join(Link, Link.id == LinkPeriod.link_id)
        .where(Link.line_user_id.in_(line_user_ids))
    )
    for link_id, started, ended in rows:
        periods[link_id].append(Span(started, ended))
    links = session.scalars(
        sa.select(Link).where(Link.line_user_id.in_(line_user_ids)).order_by(Link.link_key)
    )
    return [
        LinkInForce(
            link.link_key,
            link.lw_user_id,
            link.line_user_id,
            link.target_type,
            link.target_id,
            tuple(periods[link.id]),
        )
        for link in links
    ]
