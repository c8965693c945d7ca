"""Store rows a talk-log run cannot read or render: quarantined, the rest of the window goes on.

A message whose text, file name, type, time or sender's display name the store cannot return
(SQLite holding bytes that are not UTF-8, a BLOB or a number where text belongs, a time that is
not one) or that the renderer fails on is left out of its transcript and not claimed, so the
ledger still owes it; it is quarantined (`talklog.quarantine`, source `store`, key = its
message key) with a reason that quotes nothing. A room title that cannot be decoded is
quarantined as `room:<room id>` and the transcript names the room by its id. Once a run of
the window reads the row, the quarantine row is resolved and the message delivered.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from talklog import quarantine
from talklog.batching import IN_LIST_SIZE, chunked
from talklog.extract import RoomContext
from talklog.ledger import Claim
from talklog.quarantine import Quarantined, Source
from talklog.store.engine import tolerant_text
from talklog.store.models import Message
from talklog.transcripts import TalkLine, Unreadable, is_undecoded, render_lines

log = logging.getLogger(__name__)

ROOM_PREFIX = "room:"  # quarantine key of a room whose title cannot be read
ID_PREFIX = "message-id:"  # quarantine key of a message whose own key cannot be read
UNREADABLE_ROOM_TITLE = "UNREADABLE_ROOM_TITLE"
_FIX = "fix the row in the store, then run its talk window again"


@dataclass
class UnreadableRows:
    """One run's book: the rows it could not read, and the quarantined ones it read now."""

    zone: ZoneInfo
    open_messages: dict[int, str]  # message id -> key of its open quarantine row
    open_rooms: set[str]  # rooms whose title is quarantined
    met: dict[int, tuple[str, Unreadable]] = field(default_factory=dict)  # id -> (room, why)
    rooms_met: list[Quarantined] = field(default_factory=list)
    read_again: set[str] = field(default_factory=set)  # quarantine keys read now

    @classmethod
    def open(cls, session: Session, zone: ZoneInfo) -> UnreadableRows:
        """The book, knowing the store rows quarantined by earlier runs."""
        keys = [row.record_key for row in quarantine.open_rows(session, Source.STORE)]
        rooms = {key.removeprefix(ROOM_PREFIX) for key in keys if key.startswith(ROOM_PREFIX)}
        messages = [key for key in keys if not key.startswith(ROOM_PREFIX)]
        return cls(zone, _message_ids(session, messages), rooms)

    def screen_rooms(self, contexts: Iterable[RoomContext]) -> None:
        """Room titles that cannot be decoded: quarantined, the room named by its id."""
        for room in contexts:
            key = ROOM_PREFIX + room.room_id
            if room.title is not None and is_undecoded(room.title):
                room.title = None
                reason = f"the room's title is not valid UTF-8 (shown as its id); {_FIX}"
                self.rooms_met.append(Quarantined(Source.STORE, key, UNREADABLE_ROOM_TITLE, reason))
            elif room.room_id in self.open_rooms:
                self.read_again.add(key)

    def screen(
        self,
        room_id: str,
        lines: Sequence[TalkLine],
        claims: Sequence[Claim],
        rendered: dict[int, str] | None = None,
    ) -> tuple[dict[int, str], Sequence[TalkLine], Sequence[Claim]]:
        """A room's lines rendered once (`render_lines`; `rendered`: every line rendered by
        the reader process, none refused), the lines and claims without the ones that cannot
        be rendered; those, when claimed, are kept for the quarantine. A room nobody
        receives is not rendered."""
        if not claims:
            return {}, lines, claims
        refused: list[Unreadable] = []
        if rendered is None:
            rendered, refused = render_lines(lines, self.zone)
        if self.open_messages:
            self.read_again.update(
                key for message_id, key in self.open_messages.items() if message_id in rendered
            )
        if not refused:
            return rendered, lines, claims
        claimed = {message_id for claim in claims for message_id in claim.message_ids}
        for bad in refused:
            if bad.line.message_id in claimed:
                self.met[bad.line.message_id] = room_id, bad
        kept = [line for line in lines if line.message_id in rendered]
        return rendered, kept, [_rendered_only(claim, rendered) for claim in claims]

    def settle(self, session: Session, run_id: str | None) -> tuple[int, int]:
        """Record what this run met and resolve what it read; (quarantined, resolved)."""
        now = dt.datetime.now(dt.UTC)
        keys = _message_keys(session, list(self.met))
        rows = [
            Quarantined(
                Source.STORE,
                keys[message_id],
                bad.reason_code,
                f"message in room {room_id}: {bad.reason}; {_FIX}",
            )
            for message_id, (room_id, bad) in sorted(self.met.items())
        ]
        quarantined = quarantine.record(session, [*rows, *self.rooms_met], now, run_id=run_id)
        resolved = quarantine.resolve(session, Source.STORE, self.read_again, now)
        if quarantined:
            log.warning(
                "%d store rows could not be read or rendered and were quarantined (the rest"
                " of the window was written); `check_dead_letters` lists their keys",
                quarantined,
            )
        return quarantined, resolved


def _rendered_only(claim: Claim, rendered: dict[int, str]) -> Claim:
    return claim._replace(message_ids=[i for i in claim.message_ids if i in rendered])


def _message_ids(session: Session, keys: Sequence[str]) -> dict[int, str]:
    """Message id -> quarantine key, for the messages these keys name."""
    found = {int(key.removeprefix(ID_PREFIX)): key for key in keys if key.startswith(ID_PREFIX)}
    connection = session.connection()
    with tolerant_text(connection):
        for chunk in chunked([key for key in keys if not key.startswith(ID_PREFIX)], IN_LIST_SIZE):
            rows = connection.execute(
                sa.select(Message.id, Message.message_key).where(Message.message_key.in_(chunk))
            )
            found.update(dict(rows.tuples().all()))
    return found


def _message_keys(session: Session, message_ids: Sequence[int]) -> dict[int, str]:
    """Message id -> its quarantine key: the message key, or its id when the key itself
    cannot be read."""
    keys = {message_id: f"{ID_PREFIX}{message_id}" for message_id in message_ids}
    connection = session.connection()
    with tolerant_text(connection):
        for chunk in chunked(sorted(message_ids), IN_LIST_SIZE):
            rows = connection.execute(
                sa.select(Message.id, Message.message_key).where(Message.id.in_(chunk))
            )
            keys.update({message_id: key for message_id, key in rows if not is_undecoded(key)})
    return keys
