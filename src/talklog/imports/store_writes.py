"""Writing parsed export rows into the store, a chunk per transaction.

An unknown room is created, 1:1 while at most two participants (senders and receivers) were
seen in it, group from the third on; every participant without a membership gets one from the
room's earliest imported message. Known rooms and existing memberships are not changed.
Users, rooms and messages go in with the dialect's `INSERT ... ON CONFLICT DO NOTHING`, so a
re-imported row is counted as a duplicate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from talklog.batching import IN_LIST_SIZE, chunked
from talklog.imports.export_format import ExportRow
from talklog.imports.identities import Identities, Resolved
from talklog.imports.summary import ImportSummary, Rejection
from talklog.store.engine import store_dialect
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    MemberKind,
    Message,
    Room,
    RoomMember,
    RoomType,
)

_INSERT_ROWS = 500  # rows per multi-row INSERT ... RETURNING
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class ImportStoreError(Exception):
    """The store refused a chunk (its message names lines, never message text)."""


@dataclass
class RoomState:
    """What this import knows about a room: participants seen, earliest message, own rows."""

    first_at: dt.datetime
    created_here: bool
    room_type: str = RoomType.ONE_TO_ONE.value
    participants: set[Resolved] = field(default_factory=set)
    member_ids: list[int] = field(default_factory=list)
    moved: bool = False


class StoreWriter:
    """Writes parsed rows chunk by chunk: users, rooms, memberships, then messages."""

    def __init__(self, sessions: sessionmaker[Session], summary: ImportSummary) -> None:
        self.sessions = sessions
        self.summary = summary
        self.identities = Identities()
        self.rooms: dict[str, RoomState] = {}
        self.members: set[tuple[str, str, str]] = set()  # (room, kind, user) with a membership

    def write(self, rows: list[ExportRow]) -> None:
        """One transaction per chunk; a database error names the lines, never the text."""
        try:
            with self.sessions.begin() as session:
                kept = self._resolve(session, rows)
                self._rooms(session, kept)
                self._members(session, kept)
                self._messages(session, kept)
        except sa.exc.StatementError as error:
            cause = type(error.orig or error).__name__
            raise ImportStoreError(
                f"the store refused the rows of lines {rows[0].line}-{rows[-1].line} ({cause});"
                " earlier rows are stored, re-import the file once the cause is fixed"
            ) from None

    def _resolve(self, session: Session, rows: list[ExportRow]) -> list[ExportRow]:
        """Create the unknown users; return the rows whose parties are all placed."""
        parties = (p for row in rows for p in (row.sender, *row.receivers))
        self._create_users(session, self.identities.resolve(session, parties))
        kept = []
        for row in rows:
            problem = self.identities.problem(row)
            if problem:
                self.summary.rejections.append(Rejection(row.line, problem))
            else:
                kept.append(row)
        return kept

    def _create_users(self, session: Session, new: dict[Resolved, str]) -> None:
        lw = [{"id": i, "display_name": n} for (kind, i), n in new.items() if kind == "lw"]
        line = [{"id": i, "display_name": n} for (kind, i), n in new.items() if kind == "line"]
        self.summary.lw_users_created += len(insert_new(session, LineWorksUser, lw, "id"))
        self.summary.line_users_created += len(insert_new(session, LineUser, line, "id"))

    def _rooms(self, session: Session, rows: list[ExportRow]) -> None:
        seen: dict[str, tuple[dt.datetime, set[Resolved]]] = {}
        for row in rows:
            first, people = seen.setdefault(row.channel_id, (row.sent_at, set()))
            seen[row.channel_id] = (min(first, row.sent_at), people)
            people.update(self.identities.participants(row))
        self._load_rooms(session, {c: first for c, (first, _) in seen.items()})
        for channel, (first, people) in seen.items():
            state = self.rooms[channel]
            state.moved = first < state.first_at
            state.first_at = min(state.first_at, first)
            state.participants |= people
        self._save_rooms(session, [self.rooms[c] for c in seen], list(seen))

    def _load_rooms(self, session: Session, firsts: dict[str, dt.datetime]) -> None:
        new = [channel for channel in firsts if channel not in self.rooms]
        for batch in chunked(new, IN_LIST_SIZE):
            for room in session.scalars(sa.select(Room).where(Room.id.in_(batch))):
                first = min(room.created_at, firsts[room.id])
                self.rooms[room.id] = RoomState(first, created_here=False, room_type=room.room_type)
        for channel in new:
            if channel not in self.rooms:
                self.rooms[channel] = RoomState(firsts[channel], created_here=True, room_type="")

    def _save_rooms(self, session: Session, states: list[RoomState], ids: list[str]) -> None:
        table = Room.__table__
        inserts = []
        for room_id, state in zip(ids, states, strict=True):
            if not state.created_here:
                continue
            wanted = RoomType.GROUP if len(state.participants) > 2 else RoomType.ONE_TO_ONE
            if not state.room_type:
                inserts.append(
                    {
                        "id": room_id,
                        "room_type": wanted.value,
                        "title": None,
                        "created_at": state.first_at,
                    }
                )
            elif state.room_type != wanted.value or state.moved:
                session.execute(
                    sa.update(table)
                    .where(table.c.id == room_id)
                    .values(room_type=wanted.value, created_at=state.first_at)
                )
            state.room_type = wanted.value
        self.summary.rooms_created += len(insert_new(session, Room, inserts, "id"))

    def _members(self, session: Session, rows: list[ExportRow]) -> None:
        wanted = {
            (row.channel_id, *who) for row in rows for who in self.identities.participants(row)
        } - self.members
        rooms = sorted({room for room, _, _ in wanted})
        for batch in chunked(rooms, IN_LIST_SIZE):
            existing = session.execute(
                sa.select(
                    RoomMember.room_id,
                    RoomMember.member_kind,
                    sa.func.coalesce(RoomMember.lw_user_id, RoomMember.line_user_id),
                ).where(RoomMember.room_id.in_(batch))
            )
            self.members.update((room, kind, user) for room, kind, user in existing)
        for room, kind, user in sorted(wanted - self.members):
            self._add_member(session, room, kind, user)
        self._move_joins(session, {row.channel_id for row in rows})

    def _add_member(self, session: Session, room: str, kind: str, user: str) -> None:
        state = self.rooms[room]
        member = RoomMember(
            room_id=room,
            member_kind=kind,
            lw_user_id=user if kind == MemberKind.LW else None,
            line_user_id=user if kind == MemberKind.LINE else None,
            joined_at=state.first_at,
        )
        session.add(member)
        session.flush([member])
        state.member_ids.append(member.id)
        self.members.add((room, kind, user))

    def _move_joins(self, session: Session, rooms: Iterable[str]) -> None:
        """Memberships this import added start at the room's earliest message seen so far."""
        for state in (self.rooms[room] for room in rooms):
            if state.moved and state.member_ids:
                session.execute(
                    sa.update(RoomMember)
                    .where(RoomMember.id.in_(state.member_ids))
                    .where(RoomMember.joined_at > state.first_at)
                    .values(joined_at=state.first_at)
                )

    def _messages(self, session: Session, rows: list[ExportRow]) -> None:
        params = [self._message(row) for row in rows]
        inserted = len(insert_new(session, Message, params, "message_key"))
        self.summary.inserted += inserted
        self.summary.duplicates += len(params) - inserted

    def _message(self, row: ExportRow) -> dict[str, Any]:
        kind, user = self.identities.sender(row)
        return {
            "message_key": row.message_key,
            "room_id": row.channel_id,
            "sent_at": row.sent_at,
            "sender_kind": kind,
            "sender_lw_user_id": user if kind == MemberKind.LW else None,
            "sender_line_user_id": user if kind == MemberKind.LINE else None,
            "message_type": row.message_type,
            "text": row.text,
            "file_name": row.file_name,
        }


def insert_new(session: Session, model: type, rows: list[dict[str, Any]], key: str) -> list[Any]:
    """Insert rows whose `key` is not taken yet; return the keys actually inserted."""
    if not rows:
        return []
    insert = _INSERTS[store_dialect(session.get_bind(), "the importer")]
    table = model.__table__
    statement = insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
    connection = session.connection()  # Core executemany: one multi-row INSERT per batch
    inserted: list[Any] = []
    for batch in chunked(rows, _INSERT_ROWS):
        inserted.extend(connection.execute(statement, batch).scalars())
    return inserted
