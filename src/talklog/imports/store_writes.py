"""Writing parsed export rows into the store, a chunk per transaction.

An unknown room is created as a group when a row of its first chunk has three or more
participants (sender and receivers: an export lists everyone a group message went to), else as
a 1:1 room. A 1:1 room never gains members: its members are the store's, or those of the first
rows that place it; a row that would give it a third is a reused room id and is rejected
("room <id> is a 1:1 room of other members"), with nothing of it stored. A group gains the
members its rows name. Memberships the import adds start at the room's earliest imported
message (rooms the import created) or at the member's earliest imported message (rooms the
store had). Users are created only for the rows stored.

Users, rooms and messages go in with the dialect's `INSERT ... ON CONFLICT DO NOTHING`, so a
re-imported row is counted as a duplicate. The chunk's rejected rows are kept in the
quarantine table in the same transaction (`<file name>:<line>`, code and reason); a row stored
later (the cause fixed, the file imported again) resolves its quarantine entry.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from talklog import quarantine
from talklog.batching import IN_LIST_SIZE, chunked
from talklog.imports.export_format import ExportRow
from talklog.imports.identities import Identities, Resolved
from talklog.imports.message_keys import MessageKeys
from talklog.imports.summary import MAX_LISTED_REJECTIONS, ImportSummary, Rejection
from talklog.store.engine import store_dialect
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    MemberKind,
    Message,
    QuarantinedRow,
    QuarantineStatus,
    Room,
    RoomMember,
    RoomType,
)

_INSERT_ROWS = 500  # rows per multi-row INSERT ... RETURNING
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_MAX_KEY_NAME = 200
_MESSAGE_COLUMNS = (
    "message_key", "room_id", "sent_at", "sender_kind", "sender_lw_user_id",
    "sender_line_user_id", "message_type", "text", "file_name",
)  # fmt: skip  # quarantine record_key: `<file name>:<line>` in 255 characters


class ImportStoreError(Exception):
    """The store refused a chunk (its message names lines, never message text)."""


@dataclass
class RoomState:
    """What this import knows about a room: its type, members and the memberships it added."""

    room_type: str
    created_here: bool  # the store did not have it
    first_at: dt.datetime | None = None  # created here: its earliest message stored
    saved: bool = False  # its row is in the store
    members: set[Resolved] = field(default_factory=set)  # in the store or placed by rows
    stored: set[Resolved] = field(default_factory=set)  # memberships the store already had
    added: dict[Resolved, tuple[int, dt.datetime]] = field(default_factory=dict)  # id, joined


@dataclass(frozen=True, slots=True)
class _Pending:
    """A written chunk while it commits: its lines, and what the summary gains once it has."""

    commit: Future[None]
    lines: tuple[int, int]
    rejected: list[Rejection]
    quarantined: int


@contextlib.contextmanager
def _refused(first_line: int, end_line: int) -> Generator[None]:
    """A database error as `ImportStoreError` naming the chunk's lines (never its text)."""
    try:
        yield
    except sa.exc.StatementError as error:
        cause = type(error.orig or error).__name__
        raise ImportStoreError(
            f"the store refused the rows of lines {first_line}-{end_line} ({cause})"
        ) from None


def _commit(session: Session) -> None:
    """Commit in the commit thread; the connection goes back to the pool either way."""
    try:
        session.commit()
    except BaseException:
        session.rollback()  # a refused COMMIT can leave SQLite's transaction open
        raise
    finally:
        session.close()


@dataclass(frozen=True, slots=True)
class Committed:
    """What the committed chunks hold, for an error half way: counts and their last line."""

    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    end_line: int = 0


class StoreWriter:
    """Writes parsed rows chunk by chunk: users, rooms, memberships, messages, quarantine."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        summary: ImportSummary,
        file_name: str,
        run_id: str | None = None,
        *,
        directory: bool = False,
    ) -> None:
        self.sessions = sessions
        self.summary = summary
        self.file_name = file_name[-_MAX_KEY_NAME:]
        self.run_id = run_id
        self.identities = Identities(directory=directory)
        self.unplaced: dict[int, quarantine.Quarantined] = {}  # line -> a directory row
        self.keys = MessageKeys()  # numbers identical messages of a minute, in file order
        self.proposed: dict[Resolved, str] = {}  # new users not created yet -> display name
        self.rooms: dict[str, RoomState] = {}
        self.committed = Committed()
        self.pending: _Pending | None = None  # the last chunk, while it commits
        self.committer: ThreadPoolExecutor | None = None
        self.resolvable = self._has_open(quarantine.Source.IMPORT, self.key(0)[:-1])
        self.placeable = directory and self._has_open(quarantine.Source.DIRECTORY)

    def write(self, rows: list[ExportRow], rejections: list[Rejection], end_line: int) -> None:
        """One transaction per chunk; a database error names the lines, never the text.

        The chunk's commit runs in a second thread while the next chunk is read (the driver
        lets go of Python's lock while the database commits); the next `write`, or `finish`,
        waits for it and raises its failure.
        """
        self.finish()
        rejected = list(rejections)
        lines = (min(item.line for item in (*rows, *rejections)), end_line)
        session = self.sessions()
        try:
            with _refused(*lines):
                session.begin()
                kept = self._place(session, self._resolve(session, rows, rejected), rejected)
                self._create_users(session, kept)
                moved = self._rooms(session, kept)
                self._members(session, kept, moved)
                self._messages(session, kept)
                quarantined = self._quarantine(session, rejected, kept)
        except BaseException:
            session.close()  # rolled back
            raise
        self.pending = _Pending(self._committer().submit(_commit, session), lines, rejected,
                                quarantined)  # fmt: skip

    def finish(self) -> None:
        """Wait for the last chunk's commit; `ImportStoreError` when the store refused it."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        with _refused(*pending.lines):
            pending.commit.result()
        summary = self.summary
        summary.rejections.extend(pending.rejected)
        summary.quarantined += pending.quarantined
        self.committed = Committed(
            summary.inserted, summary.duplicates, summary.rejected, pending.lines[1]
        )

    def close(self) -> None:
        """Wait for an open commit (`committed` then says what is stored) and stop the
        commit thread; a refused commit was already rolled back."""
        with contextlib.suppress(ImportStoreError):
            self.finish()
        if self.committer is not None:
            self.committer.shutdown()
            self.committer = None

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _committer(self) -> ThreadPoolExecutor:
        if self.committer is None:
            self.committer = ThreadPoolExecutor(1, thread_name_prefix="talklog-import-commit")
        return self.committer

    def key(self, line: int) -> str:
        """The quarantine key of a line of this file."""
        return f"{self.file_name}:{line}"

    def _has_open(self, source: quarantine.Source, prefix: str = "") -> bool:
        """Whether open quarantine rows of `source` (keys starting with `prefix`) wait: a
        stored row then resolves its own (this file's lines, or a row the directory placed)."""
        with self.sessions() as session:
            found = session.scalar(
                sa.select(QuarantinedRow.id)
                .where(QuarantinedRow.source == source.value)
                .where(QuarantinedRow.status == QuarantineStatus.OPEN.value)
                .where(QuarantinedRow.record_key.startswith(prefix, autoescape=True))
                .limit(1)
            )
        return found is not None

    def _resolve(
        self, session: Session, rows: list[ExportRow], rejected: list[Rejection]
    ) -> list[ExportRow]:
        """Match the parties (new users are proposed); return the rows all of whose are."""
        named = {row.party_cells: row for row in rows}.values()  # equal cells: equal parties
        parties = (p for row in named for p in (row.sender, *row.receivers))
        self.proposed.update(self.identities.resolve(session, parties))
        kept = []
        for row in rows:
            problem = self.identities.problem(session, row)
            if problem is None:
                kept.append(row)
                continue
            role, unplaced = problem
            reason = f"{role}: {unplaced.reason}"
            rejected.append(Rejection(row.line, reason, row.end_line, unplaced.code))
            if self.identities.directory:
                self.unplaced[row.line] = quarantine.Quarantined(
                    quarantine.Source.DIRECTORY, directory_key(row, role), unplaced.code, reason
                )
        return kept

    def _place(
        self, session: Session, rows: list[ExportRow], rejected: list[Rejection]
    ) -> list[ExportRow]:
        """Rows in their rooms, in file order; a row that would grow a 1:1 room is rejected."""
        self._load_rooms(session, rows)
        kept = []
        for row in rows:
            state = self.rooms[row.channel_id]
            people = self.identities.participants(row)
            if state.room_type == RoomType.ONE_TO_ONE and len(state.members | people) > 2:
                reason = f"room {row.channel_id} is a 1:1 room of other members"
                rejected.append(Rejection(row.line, reason, row.end_line, "room_conflict"))
                continue
            state.members |= people
            kept.append(row)
        return kept

    def _load_rooms(self, session: Session, rows: list[ExportRow]) -> None:
        """The state of each room first met in this chunk: the store's, or a new room's."""
        new = sorted({row.channel_id for row in rows} - self.rooms.keys())
        for batch in chunked(new, IN_LIST_SIZE):
            for room in session.scalars(sa.select(Room).where(Room.id.in_(batch))):
                self.rooms[room.id] = RoomState(room.room_type, created_here=False, saved=True)
            memberships = session.execute(
                sa.select(
                    RoomMember.room_id,
                    RoomMember.member_kind,
                    sa.func.coalesce(RoomMember.lw_user_id, RoomMember.line_user_id),
                ).where(RoomMember.room_id.in_(batch))
            )
            for room_id, kind, user in memberships:
                state = self.rooms[room_id]
                state.stored.add((kind, user))
                state.members.add((kind, user))
        groups = {row.channel_id for row in rows if len(self.identities.participants(row)) > 2}
        for channel in new:
            if channel not in self.rooms:
                kind = RoomType.GROUP if channel in groups else RoomType.ONE_TO_ONE
                self.rooms[channel] = RoomState(kind.value, created_here=True)

    def _create_users(self, session: Session, rows: list[ExportRow]) -> None:
        """Create the proposed users that stored rows name."""
        needed = {who for row in rows for who in self.identities.participants(row)}
        new = {who: self.proposed.pop(who) for who in needed & self.proposed.keys()}
        lw = [(i, n) for (kind, i), n in new.items() if kind == "lw"]
        line = [(i, n) for (kind, i), n in new.items() if kind == "line"]
        users = ("id", "display_name")
        self.summary.lw_users_created += insert_new(session, LineWorksUser, users, lw, "id")
        self.summary.line_users_created += insert_new(session, LineUser, users, line, "id")

    def _rooms(self, session: Session, rows: list[ExportRow]) -> set[str]:
        """Insert the new rooms; move a created room's start to an earlier message. Returns
        the rooms whose start moved."""
        firsts = earliest_of((row.channel_id, row.sent_at) for row in rows)
        inserts, moved = [], set()
        for room_id, first in firsts.items():
            state = self.rooms[room_id]
            if not state.created_here:
                continue
            if not state.saved:
                state.first_at, state.saved = first, True
                inserts.append((room_id, state.room_type, None, first))
            elif state.first_at is not None and first < state.first_at:
                state.first_at = first
                moved.add(room_id)
                session.execute(sa.update(Room).where(Room.id == room_id).values(created_at=first))
        columns = ("id", "room_type", "title", "created_at")
        self.summary.rooms_created += insert_new(session, Room, columns, inserts, "id")
        return moved

    def _members(self, session: Session, rows: list[ExportRow], moved: set[str]) -> None:
        """A membership for every participant without one; joins moved to earlier messages."""
        people = self.identities.participants
        by_party = earliest_of(((row.channel_id, people(row)), row.sent_at) for row in rows)
        earliest = earliest_of(
            ((room_id, who), first) for (room_id, named), first in by_party.items() for who in named
        )
        for (room_id, who), first in sorted(earliest.items()):
            state = self.rooms[room_id]
            joined = state.first_at if state.created_here and state.first_at else first
            if who in state.stored:
                continue
            if who in state.added:
                self._move_join(session, state, who, joined)
            else:
                self._add_member(session, room_id, who, joined)
        for state in (self.rooms[room_id] for room_id in moved):
            for who in list(state.added):
                self._move_join(session, state, who, state.first_at)

    def _add_member(self, session: Session, room: str, who: Resolved, joined: dt.datetime) -> None:
        kind, user = who
        member = RoomMember(
            room_id=room,
            member_kind=kind,
            lw_user_id=user if kind == MemberKind.LW else None,
            line_user_id=user if kind == MemberKind.LINE else None,
            joined_at=joined,
        )
        session.add(member)
        session.flush([member])
        self.rooms[room].added[who] = (member.id, joined)

    def _move_join(
        self, session: Session, state: RoomState, who: Resolved, joined: dt.datetime | None
    ) -> None:
        """An added membership starts at `joined` when that is earlier than it did."""
        member_id, current = state.added[who]
        if joined is not None and joined < current:
            session.execute(
                sa.update(RoomMember).where(RoomMember.id == member_id).values(joined_at=joined)
            )
            state.added[who] = (member_id, joined)

    def _messages(self, session: Session, rows: list[ExportRow]) -> None:
        params = [self._message(row) for row in rows]
        inserted = insert_new(session, Message, _MESSAGE_COLUMNS, params, "message_key")
        self.summary.inserted += inserted
        self.summary.duplicates += len(params) - inserted

    def _message(self, row: ExportRow) -> tuple[Any, ...]:
        """The row's values in `_MESSAGE_COLUMNS` order."""
        kind, user = self.identities.sender(row)
        key, exact = self.keys.key(
            row.channel_id, row.sent_at, (kind, user), row.message_type, row.text, row.file_name
        )
        if not exact and len(self.summary.warnings) < MAX_LISTED_REJECTIONS:
            self.summary.warnings.append(
                f"line {row.line}: far out of time order; an identical message of the same"
                " minute may be taken for a duplicate"
            )
        return (
            key, row.channel_id, row.sent_at, kind,
            user if kind == MemberKind.LW else None, user if kind == MemberKind.LINE else None,
            row.message_type, row.text, row.file_name,
        )  # fmt: skip

    def _quarantine(
        self, session: Session, rejected: Iterable[Rejection], kept: list[ExportRow]
    ) -> int:
        """Keep the chunk's rejected rows (a party the directory cannot tell: under its room
        and time); resolve the entries of rows now stored."""
        now = dt.datetime.now(dt.UTC)
        rows = [
            self.unplaced.pop(r.line, None)
            or quarantine.Quarantined(quarantine.Source.IMPORT, self.key(r.line), r.code, r.reason)
            for r in rejected
        ]
        count = quarantine.record(session, rows, now, run_id=self.run_id) if rows else 0
        if self.resolvable and kept:
            keys = [self.key(row.line) for row in kept]
            quarantine.resolve(session, quarantine.Source.IMPORT, keys, now)
        if self.placeable and kept:
            keys = [directory_key(row, role) for row in kept for role in _roles(row)]
            quarantine.resolve(session, quarantine.Source.DIRECTORY, keys, now)
        return count


def directory_key(row: ExportRow, role: str) -> str:
    """Where a row the directory could not place is: room, UTC minute, the party's role
    (the same for every download of that talk, whatever the file)."""
    minute = row.sent_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
    return f"{row.channel_id[:_MAX_KEY_NAME]}@{minute}:{role}"


def earliest_of(pairs: Iterable[tuple[Any, dt.datetime]]) -> dict[Any, dt.datetime]:
    """The earliest time of each key."""
    earliest: dict[Any, dt.datetime] = {}
    for key, at in pairs:
        first = earliest.get(key)
        if first is None or at < first:
            earliest[key] = at
    return earliest


def _roles(row: ExportRow) -> list[str]:
    return ["the sender", *(f"receiver {n}" for n in range(1, len(row.receivers) + 1))]


def insert_new(
    session: Session,
    model: type,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
    key: str,
) -> int:
    """Insert rows (values in `columns` order) whose `key` is not taken yet; return how many
    were inserted.

    PostgreSQL: multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING` of `_INSERT_ROWS`
    rows. SQLite: the same statement without RETURNING, compiled once and run with the
    driver's `executemany` (its rowcount counts the rows inserted), the values through the
    columns' own bind processors: SQLAlchemy's per-row parameter handling would cost more
    than the insert itself on a window of a million messages.
    """
    if not rows:
        return 0
    dialect = store_dialect(session.get_bind(), "the importer")
    table = model.__table__
    statement = _INSERTS[dialect](table).on_conflict_do_nothing(index_elements=[key])
    connection = session.connection()
    if dialect == "sqlite":
        return _executemany(connection, statement, table, columns, rows)
    inserted = 0
    for batch in chunked(rows, _INSERT_ROWS):
        values = [dict(zip(columns, row, strict=True)) for row in batch]
        inserted += len(connection.execute(statement.returning(table.c[key]), values).all())
    return inserted


def _executemany(
    connection: sa.Connection,
    statement: Any,
    table: sa.Table,
    columns: Sequence[str],
    rows: list[tuple[Any, ...]],
) -> int:
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    order = [compiled.binds[name].key for name in compiled.positiontup]
    values = list(zip(*rows, strict=True))  # column by column
    by_name = dict(zip(columns, values, strict=True))
    ordered = []
    for name in order:
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        ordered.append(by_name[name] if process is None else _processed(process, by_name[name]))
    return connection.exec_driver_sql(str(compiled), list(zip(*ordered, strict=True))).rowcount


def _processed(process: Callable[[Any], Any], column: Sequence[Any]) -> list[Any]:
    """A column's values through its bind processor, once per value object: a chunk's times
    are the same objects where their cells were equal (`export_format`'s cell caches), its
    kinds are enum members. By identity, never by equality (equal times in two zones, or
    either side of a clock change, are stored apart)."""
    done: dict[int, Any] = {}
    processed = []
    for value in column:
        key = id(value)
        if key not in done:
            done[key] = process(value)
        processed.append(done[key])
    return processed
