"""Talks and contact names a test adds to the generated world at run time (admin API).

`POST /__emulator__/talks` puts a text talk into one of the world's rooms at a given time (a
customer or staff member of the room writes; the receivers are the room's other members at
that time, as for generated talks), so a test can place talks before and after a moment it
only learns while it runs (a rep's click in the Salesforce emulator). `POST
/__emulator__/contact-name` is a staff member renaming a contact in their address book: its
`contactName` changes and its `modifiedTime` becomes now. Both are forgotten by `reset`.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from talklog_dev.synth.generator import _make_plan, _Room, _to_ms
from talklog_dev.synth.lineworks import LineWorksWorld, Person, TalkRow


class TalkRefused(ValueError):
    """The body names no room, sender or time the world has."""


@dataclass(frozen=True, slots=True)
class AddedTalk:
    channel_id: str
    sender_id: str
    text: str
    sent_at: dt.datetime


@dataclass
class Additions:
    """What tests added to `world`: talks in time order, renamed contacts."""

    world: LineWorksWorld
    talks: list[AddedTalk] = field(default_factory=list)
    contact_names: dict[str, tuple[dict[str, str], str]] = field(default_factory=dict)
    _rooms: dict[str, _Room] | None = None

    def rooms(self) -> dict[str, _Room]:
        if self._rooms is None:
            config = self.world.config
            plan = _make_plan(config, random.Random(config.seed))
            self._rooms = {room.id: room for room in plan.rooms}
        return self._rooms

    def add_talk(self, body: Mapping[str, Any]) -> AddedTalk:
        """The talk of `body` (`channelId`, `senderId`, `text`, `sentAt` with an offset)."""
        room = self.rooms().get(str(body.get("channelId")))
        if room is None:
            raise TalkRefused("channelId is no room of the world")
        sent_at = _sent_at(body.get("sentAt"))
        sender = str(body.get("senderId"))
        if not any(m.user_id == sender and m.active(_to_ms(sent_at)) for m in room.members):
            raise TalkRefused("senderId is no member of the room at sentAt")
        text = body.get("text")
        if not isinstance(text, str) or not text:
            raise TalkRefused("text is required")
        talk = AddedTalk(room.id, sender, text, sent_at)
        bisect.insort(self.talks, talk, key=lambda t: t.sent_at)
        return talk

    def merged(self, rows: Iterable[TalkRow], renamed: Mapping[str, str]) -> Iterator[TalkRow]:
        """The world's rows with the added talks, in time order."""
        added = [self._row(talk, renamed) for talk in self.talks]
        return heapq.merge(rows, added, key=lambda row: row.sent_at)

    def _row(self, talk: AddedTalk, renamed: Mapping[str, str]) -> TalkRow:
        room = self.rooms()[talk.channel_id]
        t_ms = _to_ms(talk.sent_at)
        receivers = tuple(
            dict.fromkeys(
                self._person(m.user_id, renamed)
                for m in room.members
                if m.active(t_ms) and m.user_id != talk.sender_id
            )
        )
        sender = self._person(talk.sender_id, renamed)
        return TalkRow(talk.sent_at, sender, receivers, room.id, "text", talk.text, None)

    def _person(self, user_id: str, renamed: Mapping[str, str]) -> Person:
        if user_id in self.world.staff:
            return self.world.staff[user_id]
        person = self.world.customers[user_id]
        name = renamed.get(user_id)
        return person if name is None else Person(person.kind, person.id, name)

    def rename_contact(self, body: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
        """`contactId` gets `lastName`/`firstName` and `modifiedTime` now; the new contact."""
        contact_id = str(body.get("contactId"))
        if not any(c["contactId"] == contact_id for c in self.world.contacts):
            raise TalkRefused("contactId is no contact of the world")
        name = {
            "lastName": str(body.get("lastName") or ""),
            "firstName": str(body.get("firstName") or ""),
        }
        if not name["lastName"]:
            raise TalkRefused("lastName is required")
        self.contact_names[contact_id] = (name, now.isoformat(timespec="milliseconds"))
        (contact,) = [c for c in self.contacts() if c["contactId"] == contact_id]
        return contact

    def contacts(self) -> list[dict[str, Any]]:
        """The world's contacts with the renames applied."""
        found = []
        for contact in self.world.contacts:
            renamed = self.contact_names.get(contact["contactId"])
            if renamed is not None:
                contact = {**contact, "contactName": renamed[0], "modifiedTime": renamed[1]}
            found.append(contact)
        return found

    def clear(self) -> None:
        self.talks.clear()
        self.contact_names.clear()


def _sent_at(value: Any) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise TalkRefused("sentAt must be an ISO time with an offset")
    return parsed.astimezone(dt.UTC)
