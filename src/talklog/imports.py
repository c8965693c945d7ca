"""Importing LINE WORKS message-content exports into the message store.

LINE WORKS admins download talk contents as CSV from the admin console or the Monitoring API
(`日時,送信者,受信者,チャンネルID,トーク`, UTF-8 with or without BOM, quoted multi-line talks,
no message id). The file is streamed with the `csv` module and written in chunks.

Mapping into the store:

- 日時: a local time in the import's time zone (default Asia/Tokyo) unless it carries an
  offset; `2026/01/09 10:00:00`, `2026-01-09 10:00`, `2026-01-09T10:00:00+09:00` are accepted.
- 送信者 / 受信者: a party is `display name(account id)` or a bare display name; 受信者 may list
  several, separated by `,` or `、`. A party is matched against the store: by id (LW users, then
  LINE users), else by exact display name. A name shared by several users is ambiguous: the row
  is rejected. An unknown party is created: a LW user when its id is a LINE WORKS account
  (contains `@`), a LINE user otherwise (a bare unknown name is a customer).
- チャンネルID: the room id. An unknown room is created, 1:1 while at most two participants
  (senders and receivers) were seen in it, group from the third on; every participant without a
  membership gets one from the room's earliest imported message. Known rooms and existing
  memberships are not changed.
- トーク: text; a whole talk like `[スタンプ]`, `[画像] photo.jpg`, `[File] 見積書.pdf` becomes
  a sticker, image, file, ... message (the detail as file name, or as text for stickers and
  locations).
- `message_key` = `lwx:` + sha256(channel, UTC time, sender, talk, occurrence): the occurrence
  numbers identical messages of one second within a file, so both are kept, while a re-import
  of the same rows conflicts on the key and is skipped (ON CONFLICT DO NOTHING).

Rows that cannot be imported are rejected with their physical line numbers and a reason; the
summary accounts for every row (read = inserted + duplicates + rejected). Message text is
never logged.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from talklog.salesforce.soql import chunked
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    MemberKind,
    Message,
    MessageType,
    Room,
    RoomMember,
    RoomType,
)
from talklog.windows import DEFAULT_TIMEZONE

log = logging.getLogger(__name__)

DEFAULT_CHUNK_ROWS = 2_000
KEY_PREFIX = "lwx:"
MAX_LISTED_REJECTIONS = 1_000  # the count is always complete; the list stops here
OCCURRENCE_WINDOW_SECONDS = 100_000  # distinct seconds whose identical-message counts are kept
csv.field_size_limit(16 * 1024 * 1024)  # one talk may be longer than csv's 128 KiB default

_COLUMNS = {
    "time": ("日時", "date", "datetime", "date time", "time", "sent at"),
    "sender": ("送信者", "sender", "from"),
    "receivers": ("受信者", "receiver", "receivers", "recipient", "recipients", "to"),
    "channel": ("チャンネルid", "channel id", "channelid", "channel", "room id"),
    "talk": ("トーク", "トーク内容", "talk", "message", "content", "contents"),
}
_TIME = re.compile(
    r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_PARTY = re.compile(r"(?P<name>.*?)\s*[(（<＜](?P<id>[A-Za-z0-9._:@+-]+)[)）>＞]")
_PARTY_SEPARATORS = re.compile(r"[,、]")
_PLACEHOLDER = re.compile(
    r"[\[【(（](?P<label>[^\]】)）\n]{1,20})[\]】)）][ \t]*(?P<detail>.*)", re.S
)
_PLACEHOLDER_TYPES = {
    MessageType.IMAGE: ("画像", "写真", "image", "photo"),
    MessageType.FILE: ("ファイル", "file"),
    MessageType.STICKER: ("スタンプ", "sticker"),
    MessageType.LOCATION: ("位置情報", "location"),
    MessageType.AUDIO: ("音声", "ボイスメッセージ", "audio", "voice"),
    MessageType.VIDEO: ("動画", "video"),
}
_LABELS = {label: kind for kind, labels in _PLACEHOLDER_TYPES.items() for label in labels}
_DETAIL_IS_TEXT = {MessageType.STICKER, MessageType.LOCATION}
_DOWNLOAD_ERROR = "downloadlogs error"
_MAX_ID = 64  # rooms.id, lw_users.id, line_users.id


class ImportFileError(Exception):
    """The file as a whole cannot be imported (missing, not UTF-8, not an export)."""


class ImportStoreError(Exception):
    """The store refused a chunk (its message names lines, never message text)."""


@dataclass(frozen=True, slots=True)
class Party:
    """A sender or receiver as the export names it."""

    name: str
    account_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}({self.account_id})" if self.account_id else self.name


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One message of the export, parsed; `line` is its first physical line in the file."""

    line: int
    channel_id: str
    sent_at: dt.datetime
    sender: Party
    receivers: tuple[Party, ...]
    message_type: str
    text: str | None
    file_name: str | None
    message_key: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that was not imported, with its physical line span and why."""

    line: int
    reason: str
    end_line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"line": self.line, "reason": self.reason}
        if self.end_line and self.end_line != self.line:
            row["end_line"] = self.end_line
        return row


@dataclass
class ImportSummary:
    """What an import did; every row read is inserted, a duplicate or rejected."""

    file: str
    timezone: str
    rows_read: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    rooms_created: int = 0
    lw_users_created: int = 0
    line_users_created: int = 0
    download_error: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (no message text)."""
        return {
            "file": self.file,
            "timezone": self.timezone,
            "rows_read": self.rows_read,
            "inserted": self.inserted,
            "duplicates_skipped": self.duplicates,
            "rejected": self.rejected,
            "rejected_rows": [r.as_dict() for r in self.rejections[:MAX_LISTED_REJECTIONS]],
            "rooms_created": self.rooms_created,
            "lw_users_created": self.lw_users_created,
            "line_users_created": self.line_users_created,
            "download_error": self.download_error,
            "warnings": list(self.warnings),
        }

    def render(self) -> str:
        """A few lines for a terminal."""
        lines = [
            f"{self.file}: {self.rows_read:,} rows read, {self.inserted:,} inserted,"
            f" {self.duplicates:,} duplicates skipped, {self.rejected:,} rejected",
            f"created {self.rooms_created:,} rooms, {self.lw_users_created:,} LW users,"
            f" {self.line_users_created:,} LINE users (times read as {self.timezone})",
        ]
        for rejection in self.rejections[:MAX_LISTED_REJECTIONS]:
            span = f"-{rejection.end_line}" if rejection.as_dict().get("end_line") else ""
            lines.append(f"  rejected line {rejection.line}{span}: {rejection.reason}")
        if self.rejected > MAX_LISTED_REJECTIONS:
            lines.append(f"  ... and {self.rejected - MAX_LISTED_REJECTIONS:,} more")
        lines.extend(f"warning: {warning}" for warning in self.warnings)
        return "\n".join(lines)


# --- parsing ---------------------------------------------------------------------------------


def parse_time(value: str, zone: ZoneInfo) -> dt.datetime:
    """A timezone-aware time; a time without offset is local to `zone`."""
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"unreadable time {value.strip()[:40]!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0").ljust(6, "0"))
    parts = (int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
    tz = zone if offset is None else _offset(offset)
    try:
        return dt.datetime(*parts, tzinfo=tz)
    except ValueError as error:
        raise ValueError(f"unreadable time {value.strip()[:40]!r} ({error})") from None


def _offset(text: str) -> dt.tzinfo:
    if text == "Z":
        return dt.UTC
    digits = text[1:].replace(":", "")
    delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return dt.timezone(-delta if text[0] == "-" else delta)


def parse_party(value: str) -> Party | None:
    """`name(account id)` or a bare name; None when empty."""
    text = " ".join(value.split())
    if not text:
        return None
    match = _PARTY.fullmatch(text)
    if match is None:
        return Party(text)
    return Party(match["name"] or match["id"], match["id"])


def parse_parties(value: str) -> tuple[Party, ...]:
    """The parties of a 受信者 cell (several in a group talk)."""
    parties = (parse_party(part) for part in _PARTY_SEPARATORS.split(value))
    return tuple(party for party in parties if party is not None)


def classify_talk(talk: str) -> tuple[str, str | None, str | None]:
    """(message type, text, file name): placeholders like `[画像] a.jpg` become non-text."""
    match = _PLACEHOLDER.fullmatch(talk.strip())
    kind = _LABELS.get(match["label"].strip().lower()) if match else None
    if match is None or kind is None:
        return MessageType.TEXT.value, talk, None
    detail = match["detail"].strip() or None
    if kind in _DETAIL_IS_TEXT or (detail and "\n" in detail):
        return kind.value, detail, None
    return kind.value, None, detail[:512] if detail else None


def _column_positions(header: Sequence[str]) -> dict[str, int]:
    names = [cell.strip().lstrip("\ufeff").lower() for cell in header]
    positions = {}
    for column, aliases in _COLUMNS.items():
        found = [i for i, name in enumerate(names) if name in aliases]
        if not found:
            raise ImportFileError(
                "not a LINE WORKS message export: expected the columns"
                f" 日時,送信者,受信者,チャンネルID,トーク, found {','.join(header)[:200]!r}"
            )
        positions[column] = found[0]
    return positions


class _Occurrences:
    """Numbers identical messages of one second: the n-th copy gets occurrence n.

    Counts are kept for the most recent distinct seconds (exports are in time order); a second
    seen again after it was dropped is reported, since its copies could no longer be told apart.
    """

    def __init__(self, window: int = OCCURRENCE_WINDOW_SECONDS) -> None:
        self.window = window
        self.buckets: OrderedDict[dt.datetime, dict[bytes, int]] = OrderedDict()
        self.dropped: set[dt.datetime] = set()

    def next(self, second: dt.datetime, digest: bytes) -> tuple[int, bool]:
        """(occurrence, exact): exact is False when the second's counts had been dropped."""
        bucket = self.buckets.get(second)
        if bucket is None:
            bucket = self.buckets[second] = {}
            if len(self.buckets) > self.window:
                self.dropped.add(self.buckets.popitem(last=False)[0])
        else:
            self.buckets.move_to_end(second)
        occurrence = bucket.get(digest, 0)
        bucket[digest] = occurrence + 1
        return occurrence, second not in self.dropped


def message_content(channel_id: str, sent_at: dt.datetime, sender: str, talk: str) -> bytes:
    """What identifies a message of an export: channel, UTC time, sender and talk."""
    stamp = sent_at.astimezone(dt.UTC).isoformat()
    return "\x1f".join((channel_id, stamp, sender, talk)).encode()


def message_key(content: bytes, occurrence: int) -> str:
    """The stable content hash of the `occurrence`-th copy of a message (0 for the first)."""
    return KEY_PREFIX + hashlib.sha256(content + b"\x1f%d" % occurrence).hexdigest()


class ExportReader:
    """Streams an export: `ExportRow`s and `Rejection`s in file order, with line numbers."""

    def __init__(self, stream: TextIO, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.reader = csv.reader(stream)
        self.zone = _zone(timezone)
        self.occurrences = _Occurrences()
        self.columns: dict[str, int] = {}
        self.width = 0
        self.warnings: list[str] = []
        self.download_error = False

    def __iter__(self) -> Iterator[ExportRow | Rejection]:
        for line, end_line, cells in self._records():
            if isinstance(cells, csv.Error):
                yield Rejection(line, f"unreadable CSV ({cells})", end_line)
            elif not self.columns:
                self.columns, self.width = _column_positions(cells), len(cells)
            else:
                yield self._row(line, end_line, cells)
        if not self.columns:
            raise ImportFileError("not a LINE WORKS message export: the file has no header")

    def _records(self) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
        """(first line, last line, cells or the CSV error) of each non-blank record."""
        while True:
            start = self.reader.line_num + 1
            try:
                cells = next(self.reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield start, self.reader.line_num, error
                continue
            except UnicodeDecodeError as error:
                raise ImportFileError(
                    f"after line {start - 1}: the file is not UTF-8 ({error.reason});"
                    " export it as UTF-8"
                ) from error
            if any(cell.strip() for cell in cells):
                yield start, self.reader.line_num, cells

    def _row(self, line: int, end_line: int, cells: list[str]) -> ExportRow | Rejection:
        try:
            return self._parse(line, cells)
        except ValueError as error:
            return Rejection(line, str(error), end_line)

    def _parse(self, line: int, cells: list[str]) -> ExportRow:
        if cells[0].strip().lower().startswith(_DOWNLOAD_ERROR):
            self.download_error = True
            raise ValueError("the export reports a download error here: download the period again")
        if len(cells) != self.width:
            raise ValueError(f"expected {self.width} columns, found {len(cells)}")
        get = {name: cells[i] for name, i in self.columns.items()}
        channel = get["channel"].strip()
        if not channel:
            raise ValueError("empty channel id")
        sent_at = parse_time(get["time"], self.zone)
        sender = parse_party(get["sender"])
        if sender is None:
            raise ValueError("empty sender")
        receivers = parse_parties(get["receivers"])
        _check_ids(channel, sender, *receivers)
        talk = get["talk"].replace("\r\n", "\n").replace("\r", "\n")
        message_type, text, file_name = classify_talk(talk)
        key = self._key(line, channel, sent_at, sender, talk)
        return ExportRow(
            line, channel, sent_at, sender, receivers, message_type, text, file_name, key
        )

    def _key(self, line: int, channel: str, sent_at: dt.datetime, sender: Party, talk: str) -> str:
        content = message_content(channel, sent_at, sender.label, talk)
        occurrence, exact = self.occurrences.next(sent_at, hashlib.sha256(content).digest())
        if not exact and len(self.warnings) < MAX_LISTED_REJECTIONS:
            self.warnings.append(
                f"line {line}: far out of time order; an identical message of the same second"
                " may be taken for a duplicate"
            )
        return message_key(content, occurrence)


def _check_ids(channel: str, *parties: Party) -> None:
    if len(channel) > _MAX_ID:
        raise ValueError(f"channel id longer than {_MAX_ID} characters")
    for party in parties:
        if party.account_id and len(party.account_id) > _MAX_ID:
            raise ValueError(f"account id longer than {_MAX_ID} characters")


def read_export(
    path: str | Path, timezone: str = DEFAULT_TIMEZONE
) -> Iterator[ExportRow | Rejection]:
    """Parse an export file (for inspection and tests); see `import_export` to store it."""
    with _open(path) as stream:
        yield from ExportReader(stream, timezone)


def _open(path: str | Path) -> TextIO:
    file = Path(path)
    if not file.is_file():
        raise ImportFileError(f"export file not found: {file}")
    return file.open(encoding="utf-8-sig", newline="")


# --- writing ---------------------------------------------------------------------------------

_IN_BATCH = 500
_Resolved = tuple[str, str]  # (member kind, user id)


@dataclass
class _RoomState:
    """What this import knows about a room: participants seen, earliest message, own rows."""

    first_at: dt.datetime
    created_here: bool
    room_type: str = RoomType.ONE_TO_ONE.value
    participants: set[_Resolved] = field(default_factory=set)
    member_ids: list[int] = field(default_factory=list)
    moved: bool = False


@dataclass
class _Directory:
    """Known users matching a chunk's parties, by id and by display name."""

    lw_ids: set[str] = field(default_factory=set)
    line_ids: set[str] = field(default_factory=set)
    by_name: dict[str, list[_Resolved]] = field(default_factory=dict)


class _StoreWriter:
    """Writes parsed rows chunk by chunk: users, rooms, memberships, then messages."""

    def __init__(self, sessions: sessionmaker[Session], summary: ImportSummary) -> None:
        self.sessions = sessions
        self.summary = summary
        self.parties: dict[Party, _Resolved | str] = {}  # resolved, or why not
        self.rooms: dict[str, _RoomState] = {}
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
        unknown = {p for row in rows for p in (row.sender, *row.receivers)} - self.parties.keys()
        if unknown:
            directory = _directory(session, unknown)
            new: dict[_Resolved, str] = {}
            for party in unknown:
                self.parties[party] = _match(party, directory) or _new_user(party, new)
            self._create_users(session, new)
        kept = []
        for row in rows:
            problems = [
                found
                for found in (self.parties[p] for p in (row.sender, *row.receivers))
                if isinstance(found, str)
            ]
            if problems:
                self.summary.rejections.append(Rejection(row.line, problems[0]))
            else:
                kept.append(row)
        return kept

    def _create_users(self, session: Session, new: dict[_Resolved, str]) -> None:
        lw = [{"id": i, "display_name": n} for (kind, i), n in new.items() if kind == "lw"]
        line = [{"id": i, "display_name": n} for (kind, i), n in new.items() if kind == "line"]
        self.summary.lw_users_created += len(_insert_new(session, LineWorksUser, lw, "id"))
        self.summary.line_users_created += len(_insert_new(session, LineUser, line, "id"))

    def _rooms(self, session: Session, rows: list[ExportRow]) -> None:
        seen: dict[str, tuple[dt.datetime, set[_Resolved]]] = {}
        for row in rows:
            first, people = seen.setdefault(row.channel_id, (row.sent_at, set()))
            seen[row.channel_id] = (min(first, row.sent_at), people)
            people.update(self._who(row))
        self._load_rooms(session, {c: first for c, (first, _) in seen.items()})
        for channel, (first, people) in seen.items():
            state = self.rooms[channel]
            state.moved = first < state.first_at
            state.first_at = min(state.first_at, first)
            state.participants |= people
        self._save_rooms(session, [self.rooms[c] for c in seen], list(seen))

    def _load_rooms(self, session: Session, firsts: dict[str, dt.datetime]) -> None:
        new = [channel for channel in firsts if channel not in self.rooms]
        for batch in chunked(new, _IN_BATCH):
            for room in session.scalars(sa.select(Room).where(Room.id.in_(batch))):
                first = min(room.created_at, firsts[room.id])
                self.rooms[room.id] = _RoomState(
                    first, created_here=False, room_type=room.room_type
                )
        for channel in new:
            if channel not in self.rooms:
                self.rooms[channel] = _RoomState(firsts[channel], created_here=True, room_type="")

    def _save_rooms(self, session: Session, states: list[_RoomState], ids: list[str]) -> None:
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
        self.summary.rooms_created += len(_insert_new(session, Room, inserts, "id"))

    def _members(self, session: Session, rows: list[ExportRow]) -> None:
        wanted = {(row.channel_id, *who) for row in rows for who in self._who(row)} - self.members
        rooms = sorted({room for room, _, _ in wanted})
        for batch in chunked(rooms, _IN_BATCH):
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
        inserted = len(_insert_new(session, Message, params, "message_key"))
        self.summary.inserted += inserted
        self.summary.duplicates += len(params) - inserted

    def _message(self, row: ExportRow) -> dict[str, Any]:
        kind, user = self.parties[row.sender]  # type: ignore[misc]
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

    def _who(self, row: ExportRow) -> set[_Resolved]:
        found = (self.parties[p] for p in (row.sender, *row.receivers))
        return {who for who in found if not isinstance(who, str)}


def _directory(session: Session, parties: set[Party]) -> _Directory:
    ids = sorted({p.account_id for p in parties if p.account_id})
    names = sorted({p.name for p in parties if not p.account_id})
    found = _Directory()
    for batch in chunked(ids, _IN_BATCH):
        found.lw_ids.update(
            session.scalars(sa.select(LineWorksUser.id).where(LineWorksUser.id.in_(batch)))
        )
        found.line_ids.update(session.scalars(sa.select(LineUser.id).where(LineUser.id.in_(batch))))
    for batch in chunked(names, _IN_BATCH):
        for kind, model in ((MemberKind.LW, LineWorksUser), (MemberKind.LINE, LineUser)):
            rows = session.execute(
                sa.select(model.display_name, model.id).where(model.display_name.in_(batch))
            )
            for name, user in rows:
                found.by_name.setdefault(name, []).append((kind.value, user))
    return found


def _match(party: Party, found: _Directory) -> _Resolved | str | None:
    """A known user, a reason why the party is ambiguous, or None for an unknown party."""
    if party.account_id:
        if party.account_id in found.lw_ids:
            return MemberKind.LW.value, party.account_id
        if party.account_id in found.line_ids:
            return MemberKind.LINE.value, party.account_id
        return None
    matches = found.by_name.get(party.name, [])
    if len(matches) > 1:
        return f"{party.name!r} matches {len(matches)} users by display name: add the account id"
    return matches[0] if matches else None


def _new_user(party: Party, new: dict[_Resolved, str]) -> _Resolved:
    """An unknown party: a LW user for a LINE WORKS account id (with `@`), else a customer."""
    if party.account_id:
        kind = MemberKind.LW if "@" in party.account_id else MemberKind.LINE
        resolved = (kind.value, party.account_id)
    else:
        resolved = (
            MemberKind.LINE.value,
            "lwx-" + hashlib.sha256(party.name.encode()).hexdigest()[:24],
        )
    new[resolved] = party.name[:255]
    return resolved


def _insert_new(session: Session, model: type, rows: list[dict[str, Any]], key: str) -> list[Any]:
    """Insert rows whose `key` is not taken yet; return the keys actually inserted."""
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    module = {"postgresql": postgresql, "sqlite": sqlite}.get(dialect)
    if module is None:
        raise NotImplementedError(f"the importer supports PostgreSQL and SQLite, not {dialect}")
    table = model.__table__
    statement = (
        module.insert(table).on_conflict_do_nothing(index_elements=[key]).returning(table.c[key])
    )
    connection = session.connection()  # Core executemany: one multi-row INSERT per batch
    inserted: list[Any] = []
    for start in range(0, len(rows), _IN_BATCH):
        inserted.extend(connection.execute(statement, rows[start : start + _IN_BATCH]).scalars())
    return inserted


def _chunks(
    items: Iterable[ExportRow | Rejection], size: int
) -> Iterator[list[ExportRow | Rejection]]:
    chunk: list[ExportRow | Rejection] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_export(
    sessions: sessionmaker[Session],
    path: str | Path,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> ImportSummary:
    """Import a LINE WORKS message export into the store; safe to repeat (see module doc).

    Raises `ImportFileError` when the file as a whole cannot be read; single bad rows are
    rejected in the summary instead. Each chunk is committed on its own.
    """
    _zone(timezone)
    summary = ImportSummary(str(path), timezone)
    writer = _StoreWriter(sessions, summary)
    with _open(path) as stream:
        reader = ExportReader(stream, timezone)
        for chunk in _chunks(reader, chunk_rows):
            summary.rows_read += len(chunk)
            summary.rejections.extend(item for item in chunk if isinstance(item, Rejection))
            rows = [item for item in chunk if isinstance(item, ExportRow)]
            if rows:
                writer.write(rows)
            log.info("read %d rows so far, %d inserted", summary.rows_read, summary.inserted)
    summary.download_error = reader.download_error
    summary.warnings = reader.warnings
    summary.rejections.sort(key=lambda rejection: rejection.line)
    return summary


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as error:
        raise ImportFileError(f"unknown time zone {name!r}") from error
