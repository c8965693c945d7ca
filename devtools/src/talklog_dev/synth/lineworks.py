"""A generated world as LINE WORKS holds it: members (/users), contacts (/contacts) and the
talk rows the Monitoring API exports.

The same seed and config as `generate` give the same staff, customers, rooms and messages
(this module replays the generator's plan and message stream; it changes none of its
outputs). Staff get a login email in `domain`; each (staff member, customer) pair that
shares a room is one contact of that staff member (the customer's `contact_uuid` for the
first one, derived ids for the others); a bot posts now and then, from its own random
stream so the generator's messages stay the same.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from talklog.store.models import MemberKind
from talklog_dev.synth.generator import (
    GeneratorConfig,
    _make_plan,
    _MessageStream,
    _Plan,
    _Room,
    _to_dt,
    _to_ms,
)

DEFAULT_DOMAIN = "example-sales.co.jp"
DEFAULT_DOMAIN_ID = 10000001
BOT_NAME = "受付ボット"
BOT_EVERY = dt.timedelta(hours=3)
_CONTACT_NS = uuid.UUID("6f1c7c55-2f5e-4c55-9a44-3b1f3e7d2a10")


@dataclass(frozen=True, slots=True)
class Person:
    """A talk party: `kind` staff, customer or bot; `email` for staff only."""

    kind: str
    id: str
    name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class TalkRow:
    """One message as the export has it (before it is rendered in a language)."""

    sent_at: dt.datetime
    sender: Person
    receivers: tuple[Person, ...]
    channel_id: str
    message_type: str
    text: str | None
    file_name: str | None

    @property
    def is_bot(self) -> bool:
        return self.sender.kind == "bot"


@dataclass
class LineWorksWorld:
    """Users, contacts and (replayed on demand) talk rows of one generated world."""

    config: GeneratorConfig
    domain: str = DEFAULT_DOMAIN
    domain_id: int = DEFAULT_DOMAIN_ID
    users: list[dict] = field(default_factory=list)
    contacts: list[dict] = field(default_factory=list)
    staff: dict[str, Person] = field(default_factory=dict)
    customers: dict[str, Person] = field(default_factory=dict)

    def talk_rows(self, renamed: Mapping[str, str] | None = None) -> Iterator[TalkRow]:
        """Every message of the window in time order, bot posts included; `renamed` maps a
        customer id to the display name LINE shows now."""
        rng = random.Random(self.config.seed)
        plan = _make_plan(self.config, rng)
        stream = _MessageStream(rng, self.config, plan.rooms)
        rooms = {room.id: room for room in plan.rooms}
        names = dict(renamed or {})
        people = _People(self.staff, self.customers, names)
        messages = (
            _row(people, rooms[m["room_id"]], m) for chunk in stream.chunks() for m in chunk
        )
        bots = _bot_rows(self.config, plan, people)
        yield from heapq.merge(messages, bots, key=lambda row: row.sent_at)


@dataclass
class _People:
    staff: Mapping[str, Person]
    customers: Mapping[str, Person]
    renamed: Mapping[str, str]

    def of(self, kind: str, user_id: str) -> Person:
        if kind == MemberKind.LW.value:
            return self.staff[user_id]
        person = self.customers[user_id]
        name = self.renamed.get(user_id)
        return person if name is None else Person(person.kind, person.id, name)


def _receivers(people: _People, room: _Room, t_ms: int, sender_id: str) -> tuple[Person, ...]:
    return tuple(
        people.of(member.kind.value, member.user_id)
        for member in room.members
        if member.active(t_ms) and member.user_id != sender_id
    )


def _row(people: _People, room: _Room, message: dict) -> TalkRow:
    sender_id = message["sender_lw_user_id"] or message["sender_line_user_id"]
    sent_at = message["sent_at"]
    receivers = _receivers(people, room, _to_ms(sent_at), sender_id)
    return TalkRow(
        sent_at=sent_at,
        sender=people.of(message["sender_kind"], sender_id),
        receivers=tuple(dict.fromkeys(receivers)),
        channel_id=room.id,
        message_type=message["message_type"],
        text=message["text"],
        file_name=message["file_name"],
    )


def _bot_rows(config: GeneratorConfig, plan: _Plan, people: _People) -> Iterator[TalkRow]:
    """A bot notice every few hours in one of the first rooms (its own random stream)."""
    rng = random.Random(config.seed * 7919 + 1)
    bot = Person("bot", "bot-1", f"[Bot]{BOT_NAME}")
    start, end = config.window()
    t = start + dt.timedelta(minutes=rng.randrange(1, 60))
    rooms = plan.rooms[:3]
    while t < end and rooms:
        room = rooms[rng.randrange(len(rooms))]
        t_ms = _to_ms(t)
        if room.created_ms <= t_ms:
            yield TalkRow(
                t, bot, _receivers(people, room, t_ms, bot.id), room.id, "text",
                "【自動通知】本日のご予約を受け付けました。", None,
            )  # fmt: skip
        t += BOT_EVERY


def _split(name: str) -> dict[str, str]:
    last, _, first = name.partition(" ")
    return {"lastName": last, "firstName": first}


def _iso(ms: int) -> str:
    return _to_dt(ms).isoformat(timespec="milliseconds")


def lineworks_world(
    config: GeneratorConfig | None = None,
    *,
    domain: str = DEFAULT_DOMAIN,
    domain_id: int = DEFAULT_DOMAIN_ID,
) -> LineWorksWorld:
    """The world of `config` (the generator's default when None) as LINE WORKS holds it."""
    config = config or GeneratorConfig()
    plan = _make_plan(config, random.Random(config.seed))
    world = LineWorksWorld(config, domain, domain_id)
    for n, staff in enumerate(plan.staff):
        email = f"staff{n + 1:02d}@{domain}"
        world.staff[staff["id"]] = Person("staff", staff["id"], staff["display_name"], email)
        world.users.append(
            {
                "userId": staff["id"],
                "email": email,
                "userName": _split(staff["display_name"]),
                "userExternalKey": f"EMP{n + 1:04d}",
                "domainId": domain_id,
                "isAdministrator": False,
            }
        )
    for customer in plan.customers:
        world.customers[customer["id"]] = Person(
            "customer", customer["id"], customer["display_name"]
        )
    world.contacts = _contacts(plan, world)
    return world


def _contacts(plan: _Plan, world: LineWorksWorld) -> list[dict]:
    """One contact per (staff member, customer) sharing a room, plus two client contacts."""
    uuids = {c["id"]: c["contact_uuid"] for c in plan.customers}
    first_seen: dict[str, int] = {}
    contacts = []
    pairs: dict[tuple[str, str], int] = {}
    for room in plan.rooms:
        staff = [m.user_id for m in room.members if m.kind == MemberKind.LW]
        customers = [m.user_id for m in room.members if m.kind == MemberKind.LINE]
        for lw in staff:
            for line in customers:
                pairs.setdefault((lw, line), room.created_ms)
    for (lw, line), created in pairs.items():
        first = line not in first_seen
        first_seen.setdefault(line, created)
        contact_id = uuids[line] if first else str(uuid.uuid5(_CONTACT_NS, f"{lw}:{line}"))
        contacts.append(
            {
                "contactId": contact_id,
                "contactName": _split(world.customers[line].name),
                "linkedExternalUser": {"id": line, "type": "LINE", "buddyUserIds": [lw]},
                "permission": {"masterUserId": lw, "accessibleRange": "MEMBER"},
                "createdTime": _iso(created),
                "modifiedTime": _iso(created),
            }
        )
    owner = next(iter(world.staff), None)
    for n in range(2):
        contacts.append(
            {
                "contactId": str(uuid.uuid5(_CONTACT_NS, f"client-{n}")),
                "contactName": {"lastName": f"取引先{n + 1}", "firstName": "担当"},
                "linkedExternalUser": None,
                "permission": {"masterUserId": owner, "accessibleRange": "ALL"},
                "emails": [{"email": f"client{n + 1}@example.com", "primary": True}],
                "createdTime": _iso(_to_ms(world.config.window()[0]) - 86_400_000),
                "modifiedTime": _iso(_to_ms(world.config.window()[0]) - 86_400_000),
            }
        )
    return contacts
