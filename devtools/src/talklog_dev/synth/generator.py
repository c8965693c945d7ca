"""Synthetic message store: staff, customers, rooms, members, links and a stream of messages.

Everything comes from one `random.Random(seed)`, so the same seed and config write the same
rows (message keys included). Messages are generated slice by slice (five minutes of talk at
a time) and written in chunks with Core `insert()` executemany, so memory stays bounded
whatever the volume.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import itertools
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from talklog.store import make_engine
from talklog.store.migrate import upgrade as upgrade_store
from talklog.store.models import (
    LineUser,
    LineWorksUser,
    Link,
    LinkPeriod,
    MemberKind,
    Message,
    MessageType,
    Room,
    RoomMember,
    RoomType,
    TargetType,
)
from talklog_dev.synth import sfids, vocab

TargetIds = Callable[[TargetType, int], str]
"""(target type, n-th record of that type) -> 18-character Salesforce id."""
UserIds = Callable[[int], str | None]
"""(n-th staff member) -> the staff member's Salesforce user id, or None when unknown."""

DEFAULT_DAY = dt.date(2025, 1, 9)
DEFAULT_TYPE_SHARES: Mapping[str, float] = {
    MessageType.TEXT: 0.80,
    MessageType.IMAGE: 0.06,
    MessageType.FILE: 0.04,
    MessageType.STICKER: 0.05,
    MessageType.LOCATION: 0.015,
    MessageType.AUDIO: 0.015,
    MessageType.VIDEO: 0.02,
}
DEFAULT_TARGET_SHARES: Mapping[TargetType, float] = {
    TargetType.EXTERNAL_CONTACT: 0.3,
    TargetType.LEAD: 0.3,
    TargetType.CONTACT: 0.25,
    TargetType.PERSON_ACCOUNT: 0.15,
}
# Long texts: under the Task limit, over it (32,000), over the TalkLog limit (131,072).
LONG_TIERS = ((2_000, 32_000), (32_001, 60_000), (131_073, 150_000))
LONG_TIER_WEIGHTS = (0.6, 0.3, 0.1)
# Relative talk volume per local hour of the day.
HOURLY = (0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.5, 2.5, 3.0, 3.0,
          2.2, 2.8, 3.0, 3.0, 2.8, 2.5, 2.0, 1.8, 1.6, 1.2, 0.8, 0.4)  # fmt: skip
QUIET_DAY_FACTOR = 0.03
SLICE_MS = 5 * 60 * 1000
DAY_MS = 24 * 3600 * 1000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate. The window is [start, end), or `days` local days from `day` in `tz`."""

    seed: int = 1
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    day: dt.date = DEFAULT_DAY
    days: int = 1
    tz: str = "Asia/Tokyo"
    n_staff: int = 8
    n_customers: int = 40
    n_rooms: int = 30
    group_share: float = 0.3
    new_room_share: float = 0.1  # rooms created inside the window (the rest before it)
    member_churn: float = 0.3  # group members (not the first of each side) joining late/leaving
    messages: int | None = 2_000  # total; or None and `messages_per_day`
    messages_per_day: int | None = None
    type_shares: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TYPE_SHARES))
    long_message_share: float = 0.002  # of text messages
    long_tiers: tuple[tuple[int, int], ...] = LONG_TIERS  # (min, max) characters
    long_tier_weights: tuple[float, ...] = LONG_TIER_WEIGHTS
    burstiness: float = 0.8  # chance a burst goes on: mean burst length 1 / (1 - burstiness)
    quiet_day_share: float = 0.0  # share of local days with ~3% of the usual volume
    link_share: float = 0.6  # of (staff, customer) pairs that share a room
    target_shares: Mapping[TargetType, float] = field(
        default_factory=lambda: dict(DEFAULT_TARGET_SHARES)
    )
    new_link_share: float = 0.15  # links made inside the window (the rest before it)
    unlink_share: float = 0.1  # links switched off ("do not link") later
    relink_share: float = 0.3  # of unlinked links, linked again later in the window
    staff_without_salesforce_user_share: float = 0.1
    target_ids: TargetIds | None = None  # default: synthetic ids with the right key prefixes
    salesforce_user_ids: UserIds | None = None  # default: synthetic 005 ids
    chunk_size: int = 20_000

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"{name} must be timezone-aware: {value!r}")
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither (then day and days)")
        if (self.messages is None) == (self.messages_per_day is None):
            raise ValueError("give exactly one of messages and messages_per_day")
        if self.n_staff < 1 or self.n_customers < 1 or self.n_rooms < 1:
            raise ValueError("need at least one staff member, one customer and one room")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        if len(self.long_tiers) != len(self.long_tier_weights) or not self.long_tiers:
            raise ValueError("give one weight per long-message tier")

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """The [start, end) of the generated talk, in UTC."""
        if self.start is not None and self.end is not None:
            start, end = self.start.astimezone(dt.UTC), self.end.astimezone(dt.UTC)
        else:
            zone = ZoneInfo(self.tz)
            first = dt.datetime.combine(self.day, dt.time(), zone)
            last = dt.datetime.combine(self.day + dt.timedelta(days=self.days), dt.time(), zone)
            start, end = first.astimezone(dt.UTC), last.astimezone(dt.UTC)
        if end <= start:
            raise ValueError(f"empty window: {start} .. {end}")
        return start, end

    def total_messages(self) -> int:
        """How many messages the config asks for."""
        if self.messages is not None:
            return self.messages
        start, end = self.window()
        return round(self.messages_per_day * (end - start) / dt.timedelta(days=1))

    def replace(self, **changes) -> GeneratorConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class GenerationReport:
    """What `generate` wrote."""

    start: dt.datetime
    end: dt.datetime
    lw_users: int
    line_users: int
    rooms_by_type: dict[str, int]
    room_members: int
    links_by_target: dict[str, int]
    unlinked_links: int
    link_periods: int
    messages: int
    messages_by_type: dict[str, int]
    long_messages: int
    seconds: float

    @property
    def rooms(self) -> int:
        return sum(self.rooms_by_type.values())

    @property
    def links(self) -> int:
        return sum(self.links_by_target.values())


# --- plans: the small, in-memory part of the store -------------------------------------------


@dataclass(slots=True)
class _Member:
    kind: str
    user_id: str
    joined_ms: int
    left_ms: int | None = None

    def active(self, t_ms: int) -> bool:
        return self.joined_ms <= t_ms and (self.left_ms is None or t_ms < self.left_ms)


@dataclass(slots=True)
class _Room:
    id: str
    room_type: str
    title: str | None
    created_ms: int
    members: list[_Member]


@dataclass(slots=True)
class _Link:
    lw_user_id: str
    line_user_id: str
    target_type: TargetType
    target_id: str
    nickname: str
    app_link: str
    periods: list[tuple[int, int | None]]


@dataclass(slots=True)
class _Plan:
    staff: list[dict]
    customers: list[dict]
    rooms: list[_Room]
    links: list[_Link]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _to_dt(ms: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=ms)


def _to_ms(value: dt.datetime) -> int:
    return (value - _EPOCH) // dt.timedelta(milliseconds=1)


def _between(rng: random.Random, low: int, high: int) -> int:
    """A time in [low, high) (low itself when the span is empty)."""
    return low + rng.randrange(high - low) if high > low else low


def _plan_staff(rng: random.Random, config: GeneratorConfig) -> list[dict]:
    user_ids = config.salesforce_user_ids
    staff = []
    for n in range(config.n_staff):
        if user_ids is not None:
            sf_user = user_ids(n)
        elif rng.random() < config.staff_without_salesforce_user_share:
            sf_user = None
        else:
            sf_user = sfids.random_id(sfids.USER_PREFIX, rng)
        staff.append(
            {"id": _uuid(rng), "display_name": vocab.staff_name(rng), "salesforce_user_id": sf_user}
        )
    return staff


def _plan_customers(rng: random.Random, config: GeneratorConfig) -> list[dict]:
    return [
        {
            "id": f"U{rng.getrandbits(128):032x}",
            "display_name": vocab.person_name(rng),
            "contact_uuid": _uuid(rng),
        }
        for _ in range(config.n_customers)
    ]


def _room_created(rng: random.Random, config: GeneratorConfig, start: int, end: int) -> int:
    if rng.random() < config.new_room_share:
        return _between(rng, start, start + (end - start) * 4 // 5)
    return start - _between(rng, 3600_000, 90 * DAY_MS)


def _plan_one_to_one_rooms(
    rng: random.Random, config: GeneratorConfig, plan: _Plan, count: int, window: tuple[int, int]
) -> None:
    staff_ids = [s["id"] for s in plan.staff]
    customers = list(plan.customers)
    rng.shuffle(customers)
    owner = {c["id"]: staff_ids[i % len(staff_ids)] for i, c in enumerate(customers)}
    seen: set[tuple[str, str]] = set()
    for n in range(min(count, len(staff_ids) * len(customers))):
        customer = customers[n % len(customers)]["id"]
        candidates = [owner[customer]] if n < len(customers) else []
        candidates += rng.sample(staff_ids, len(staff_ids))
        lw = next((s for s in candidates if (s, customer) not in seen), None)
        if lw is None:
            continue
        seen.add((lw, customer))
        created = _room_created(rng, config, *window)
        members = [_Member(MemberKind.LW, lw, created), _Member(MemberKind.LINE, customer, created)]
        plan.rooms.append(_Room(_uuid(rng), RoomType.ONE_TO_ONE, None, created, members))


def _churn(
    rng: random.Random, member: _Member, created: int, window: tuple[int, int]
) -> list[_Member]:
    """A member's rows: staff may join late; anyone may leave; staff may come back."""
    start, end = max(window[0], created), window[1]
    if member.kind == MemberKind.LW and rng.random() < 0.5:
        member.joined_ms = _between(rng, start, end)
        return [member]
    member.left_ms = _between(rng, start, end) + 1
    if member.kind == MemberKind.LW and rng.random() < 0.3 and member.left_ms < end - 1:
        back = _Member(member.kind, member.user_id, _between(rng, member.left_ms, end))
        return [member, back]
    return [member]


def _plan_group_rooms(
    rng: random.Random, config: GeneratorConfig, plan: _Plan, count: int, window: tuple[int, int]
) -> None:
    for _ in range(count):
        n_staff = min(rng.choice((1, 2, 2, 3)), len(plan.staff))
        n_customers = min(rng.choice((2, 2, 3, 4)), len(plan.customers))
        if n_staff + n_customers < 3:
            n_customers = min(2, len(plan.customers))
        staff = rng.sample(plan.staff, n_staff)
        customers = rng.sample(plan.customers, n_customers)
        created = _room_created(rng, config, *window)
        members = [_Member(MemberKind.LW, s["id"], created) for s in staff]
        members += [_Member(MemberKind.LINE, c["id"], created) for c in customers]
        # The first staff member and the first customer stay: the room always has a speaker.
        rows = [members[0], members[n_staff]]
        for member in members[1:n_staff] + members[n_staff + 1 :]:
            churned = rng.random() < config.member_churn
            rows += _churn(rng, member, created, window) if churned else [member]
        title = f"{customers[0]['display_name']}様 {rng.choice(vocab.GROUP_TOPICS)}"
        plan.rooms.append(_Room(_uuid(rng), RoomType.GROUP, title, created, rows))


def _weighted_choice(rng: random.Random, weights: Mapping) -> object:
    keys = [k for k, w in weights.items() if w > 0]
    return rng.choices(keys, [weights[k] for k in keys])[0]


def _link_periods(
    rng: random.Random, config: GeneratorConfig, unlink: bool, window: tuple[int, int]
) -> list[tuple[int, int | None]]:
    start, end = window
    if rng.random() < config.new_link_share:
        linked = _between(rng, start, end - 2)
    else:
        linked = start - _between(rng, 3600_000, 120 * DAY_MS)
    if not unlink:
        return [(linked, None)]
    before_window = linked < start and rng.random() < 0.25
    unlinked = (
        _between(rng, linked + 1, start)
        if before_window
        else _between(rng, max(linked, start) + 1, end)
    )
    if rng.random() < config.relink_share and unlinked < end - 1:
        return [(linked, unlinked), (_between(rng, unlinked + 1, end), None)]
    return [(linked, unlinked)]


def _plan_links(
    rng: random.Random, config: GeneratorConfig, plan: _Plan, window: tuple[int, int]
) -> None:
    """Links of (staff, customer) pairs that share a room; one target record per customer."""
    pairs: dict[tuple[str, str], None] = {}
    for room in plan.rooms:
        staff = [m.user_id for m in room.members if m.kind == MemberKind.LW]
        customers = [m.user_id for m in room.members if m.kind == MemberKind.LINE]
        pairs.update(dict.fromkeys(itertools.product(staff, customers)))
    linked = [pair for pair in pairs if rng.random() < config.link_share]
    n_unlinks = round(len(linked) * config.unlink_share)
    if config.unlink_share > 0 and linked:
        n_unlinks = max(1, n_unlinks)
    unlinks = set(rng.sample(range(len(linked)), n_unlinks))
    kinds = [k for k in TargetType if config.target_shares.get(k, 0) > 0]
    per_kind: Counter[TargetType] = Counter()
    targets: dict[str, tuple[TargetType, str]] = {}
    customers = {c["id"]: c for c in plan.customers}
    for n, (lw, line) in enumerate(linked):
        if line not in targets:
            # The first customers take each kind in turn, so every kind is present.
            kind = kinds[len(targets)] if len(targets) < len(kinds) else None
            kind = kind or _weighted_choice(rng, config.target_shares)
            targets[line] = (kind, _target_id(rng, config, kind, per_kind[kind]))
            per_kind[kind] += 1
        kind, target_id = targets[line]
        customer = customers[line]
        plan.links.append(
            _Link(
                lw_user_id=lw,
                line_user_id=line,
                target_type=kind,
                target_id=target_id,
                nickname=_nickname(rng, customer["display_name"]),
                app_link=app_link(lw, customer["contact_uuid"]),
                periods=_link_periods(rng, config, n in unlinks, window),
            )
        )


def _target_id(rng: random.Random, config: GeneratorConfig, kind: TargetType, n: int) -> str:
    if config.target_ids is not None:
        return config.target_ids(kind, n)
    return sfids.random_id(sfids.TARGET_PREFIXES[kind], rng)


def _nickname(rng: random.Random, display_name: str) -> str:
    return display_name + rng.choice(("様", "さん", "様（内見予定）", ""))


def app_link(lw_user_id: str, contact_uuid: str) -> str:
    """The LINE WORKS App Link that opens the staff member's talk with a customer."""
    return (
        "https://line.worksmobile.com/message/send?version=26"
        f"&contactId={contact_uuid}&userId={lw_user_id}"
    )


def _make_plan(config: GeneratorConfig, rng: random.Random) -> _Plan:
    """Staff, customers, rooms with their members, and links (everything but messages)."""
    start, end = config.window()
    window = (_to_ms(start), _to_ms(end))
    plan = _Plan(_plan_staff(rng, config), _plan_customers(rng, config), [], [])
    n_groups = round(config.n_rooms * config.group_share)
    if len(plan.customers) < 2 and len(plan.staff) < 2:
        n_groups = 0
    _plan_one_to_one_rooms(rng, config, plan, config.n_rooms - n_groups, window)
    _plan_group_rooms(rng, config, plan, n_groups, window)
    first = plan.rooms[0] if plan.rooms else None
    if first is not None and first.created_ms >= window[0]:  # one room is always open for talk
        for member in first.members:
            if member.joined_ms == first.created_ms:
                member.joined_ms = window[0] - DAY_MS
        first.created_ms = window[0] - DAY_MS
    _plan_links(rng, config, plan, window)
    return plan


# --- messages -------------------------------------------------------------------------------


class _MessageStream:
    """Messages of the window in time order, slice by slice, as insert-ready dicts."""

    def __init__(self, rng: random.Random, config: GeneratorConfig, rooms: list[_Room]) -> None:
        self.rng = rng
        self.config = config
        self.rooms = rooms
        self.room_cum = list(itertools.accumulate(rng.paretovariate(1.2) for _ in rooms))
        self.open_rooms = [r for r in rooms if r.created_ms <= _to_ms(config.window()[0])]
        shares = {k: w for k, w in config.type_shares.items() if w > 0}
        self.types = [str(t) for t in shares]
        self.type_cum = list(itertools.accumulate(shares.values()))
        self.forced = [(t, None) for t in self.types]
        if config.long_message_share > 0 and MessageType.TEXT in shares:
            self.forced += [(MessageType.TEXT, tier) for tier in config.long_tiers[1:]]
        self.key_tag = f"{rng.getrandbits(48):012x}"
        self.count = 0
        self.by_type: Counter[str] = Counter()
        self.long_messages = 0

    def slice_counts(self) -> Iterator[tuple[int, int, int]]:
        """(slice start, slice end, message count) of each five-minute slice with talk."""
        start, end = (_to_ms(t) for t in self.config.window())
        bounds = [(s, min(s + SLICE_MS, end)) for s in range(start, end, SLICE_MS)]
        zone = ZoneInfo(self.config.tz)
        local = [_to_dt(s).astimezone(zone) for s, _ in bounds]
        days = sorted({t.date() for t in local})
        n_quiet = round(len(days) * self.config.quiet_day_share)
        quiet = set(self.rng.sample(days, n_quiet))
        weights = [
            HOURLY[t.hour]
            * (QUIET_DAY_FACTOR if t.date() in quiet else 1.0)
            * ((e - s) / SLICE_MS)
            * self.rng.uniform(0.6, 1.4)
            for (s, e), t in zip(bounds, local, strict=True)
        ]
        counts = allocate(self.config.total_messages(), weights, self.rng.random())
        return ((s, e, c) for (s, e), c in zip(bounds, counts, strict=True) if c)

    def chunks(self) -> Iterator[list[dict]]:
        """Insert-ready message rows in chunks of about `chunk_size`."""
        buffer: list[dict] = []
        for s, e, count in self.slice_counts():
            buffer += self.slice_messages(s, e, count)
            if len(buffer) >= self.config.chunk_size:
                yield buffer
                buffer = []
        if buffer:
            yield buffer

    def slice_messages(self, start: int, end: int, count: int) -> list[dict]:
        talk: list[tuple[int, int, _Room, _Member]] = []
        while len(talk) < count:
            offsets = self.burst_offsets(min(self.burst_length(), count - len(talk)), end - start)
            t0 = start + self.rng.randrange(end - start - offsets[-1])
            room = self.pick_room(t0)
            sender = None
            for offset in offsets:
                sender = self.pick_sender(room, t0 + offset, sender)
                talk.append((t0 + offset, len(talk), room, sender))
        talk.sort(key=lambda item: (item[0], item[1]))
        return [self.row(t, room, sender) for t, _, room, sender in talk]

    def burst_length(self) -> int:
        n = 1
        while n < 200 and self.rng.random() < self.config.burstiness:
            n += 1
        return n

    def burst_offsets(self, n: int, span: int) -> list[int]:
        offsets = [0]
        for _ in range(n - 1):
            offsets.append(offsets[-1] + 1000 + int(self.rng.expovariate(1 / 20_000)))
        if offsets[-1] >= span:  # squeeze a long burst into its slice
            offsets = [o * (span - 1) // offsets[-1] for o in offsets]
        return offsets

    def pick_room(self, t_ms: int) -> _Room:
        total = self.room_cum[-1]
        for _ in range(8):
            room = self.rooms[bisect.bisect(self.room_cum, self.rng.random() * total)]
            if room.created_ms <= t_ms:
                return room
        return self.open_rooms[self.rng.randrange(len(self.open_rooms))]

    def pick_sender(self, room: _Room, t_ms: int, previous: _Member | None) -> _Member:
        active = [m for m in room.members if m.active(t_ms)]
        stays = previous is not None and previous.active(t_ms)
        if stays and (len(active) == 1 or self.rng.random() < 0.35):
            return previous
        others = [m for m in active if m is not previous]
        return others[self.rng.randrange(len(others))]

    def row(self, t_ms: int, room: _Room, sender: _Member) -> dict:
        message_type, text, file_name, file_size = self.content()
        self.count += 1
        self.by_type[message_type] += 1
        is_lw = sender.kind == MemberKind.LW
        return {
            "message_key": f"{self.key_tag}-{self.count:09d}",
            "room_id": room.id,
            "sent_at": _to_dt(t_ms),
            "sender_kind": sender.kind.value,
            "sender_lw_user_id": sender.user_id if is_lw else None,
            "sender_line_user_id": None if is_lw else sender.user_id,
            "message_type": message_type,
            "text": text,
            "file_name": file_name,
            "file_size": file_size,
        }

    def content(self) -> tuple[str, str | None, str | None, int | None]:
        """(type, text, file name, file size) of the next message."""
        rng = self.rng
        if self.forced:
            message_type, tier = self.forced.pop(0)
        else:
            total = self.type_cum[-1]
            message_type = self.types[bisect.bisect(self.type_cum, rng.random() * total)]
            tier = None
            if message_type == MessageType.TEXT and rng.random() < self.config.long_message_share:
                tier = rng.choices(self.config.long_tiers, self.config.long_tier_weights)[0]
        if message_type == MessageType.TEXT:
            if tier is None:
                return message_type, vocab.short_text(rng), None, None
            self.long_messages += 1
            return message_type, vocab.long_text(rng, rng.randint(*tier)), None, None
        return (message_type, *media_content(rng, message_type))


def media_content(
    rng: random.Random, message_type: str
) -> tuple[str | None, str | None, int | None]:
    """(text, file name, file size) of a non-text message."""
    n = rng.randint(1, 9999)
    if message_type == MessageType.IMAGE:
        return None, f"IMG_{n:04d}.jpg", rng.randint(150_000, 6_000_000)
    if message_type == MessageType.FILE:
        return None, vocab.document_name(rng), rng.randint(20_000, 12_000_000)
    if message_type == MessageType.AUDIO:
        return None, f"voice_{n:04d}.m4a", rng.randint(30_000, 3_000_000)
    if message_type == MessageType.VIDEO:
        return None, f"VID_{n:04d}.mp4", rng.randint(1_000_000, 200_000_000)
    if message_type == MessageType.STICKER:
        return f"{rng.randint(11_537, 11_539)}/{rng.randint(52_002_734, 52_002_773)}", None, None
    if message_type == MessageType.LOCATION:
        return vocab.location_text(rng), None, None
    return None, None, None


def allocate(total: int, weights: Sequence[float], offset: float = 0.5) -> list[int]:
    """Split `total` into integers proportional to `weights` (systematic rounding).

    `offset` in [0, 1) shifts the rounding grid, so small weights get their share on average
    instead of always rounding to zero.
    """
    weight_sum = math.fsum(weights)
    if total <= 0 or weight_sum <= 0:
        return [0] * len(weights)
    counts = []
    cumulative, assigned = 0.0, 0
    for weight in weights:
        cumulative += total * weight / weight_sum
        reached = min(total, math.floor(cumulative + offset))
        counts.append(reached - assigned)
        assigned = reached
    last = max(i for i, w in enumerate(weights) if w > 0)
    counts[last] += total - assigned  # what float rounding left over
    return counts


# --- writing --------------------------------------------------------------------------------


def _member_row(room: _Room, member: _Member) -> dict:
    is_lw = member.kind == MemberKind.LW
    return {
        "room_id": room.id,
        "member_kind": member.kind.value,
        "lw_user_id": member.user_id if is_lw else None,
        "line_user_id": None if is_lw else member.user_id,
        "joined_at": _to_dt(member.joined_ms),
        "left_at": None if member.left_ms is None else _to_dt(member.left_ms),
    }


def _link_row(link: _Link) -> dict:
    started, ended = link.periods[-1]
    linked = ended is None
    changes = [t for period in link.periods for t in period if t is not None]
    return {
        "link_key": f"{link.lw_user_id}:{link.line_user_id}",
        "lw_user_id": link.lw_user_id,
        "line_user_id": link.line_user_id,
        "target_type": link.target_type.value,
        "target_id": link.target_id,
        "nickname": link.nickname if linked else None,
        "app_link": link.app_link if linked else None,
        "linked": linked,
        "linked_at": _to_dt(started),
        "unlinked_at": None if linked else _to_dt(ended),
        "updated_at": _to_dt(max(changes)),
    }


def _insert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict]) -> None:
    if rows:
        conn.execute(sa.insert(table), list(rows))


def _write_plan(conn: sa.Connection, plan: _Plan) -> int:
    """Write everything but messages; returns the number of link periods."""
    _insert(conn, LineWorksUser.__table__, plan.staff)
    _insert(conn, LineUser.__table__, plan.customers)
    rooms = [
        {
            "id": r.id,
            "room_type": r.room_type.value,
            "title": r.title,
            "created_at": _to_dt(r.created_ms),
        }
        for r in plan.rooms
    ]
    _insert(conn, Room.__table__, rooms)
    _insert(conn, RoomMember.__table__, [_member_row(r, m) for r in plan.rooms for m in r.members])
    link_rows = [_link_row(link) for link in plan.links]
    _insert(conn, Link.__table__, link_rows)
    ids = _link_ids(conn, [row["link_key"] for row in link_rows])
    periods = [
        {"link_id": ids[row["link_key"]], "started_at": _to_dt(s), "ended_at": _opt_dt(e)}
        for row, link in zip(link_rows, plan.links, strict=True)
        for s, e in link.periods
    ]
    _insert(conn, LinkPeriod.__table__, periods)
    return len(periods)


def _opt_dt(ms: int | None) -> dt.datetime | None:
    return None if ms is None else _to_dt(ms)


def _link_ids(conn: sa.Connection, keys: list[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for n in range(0, len(keys), 500):
        query = sa.select(Link.link_key, Link.id).where(Link.link_key.in_(keys[n : n + 500]))
        ids.update(dict(conn.execute(query).tuples().all()))
    return ids


def generate(
    url: str, config: GeneratorConfig | None = None, *, migrate: bool = False
) -> GenerationReport:
    """Write a synthetic store into the (migrated) store at `url`; `migrate` upgrades it first."""
    config = config or GeneratorConfig()
    began = time.perf_counter()
    if migrate:
        upgrade_store(url)
    rng = random.Random(config.seed)
    plan = _make_plan(config, rng)
    stream = _MessageStream(rng, config, plan.rooms)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            n_periods = _write_plan(conn, plan)
        for chunk in stream.chunks():
            with engine.begin() as conn:
                conn.execute(sa.insert(Message.__table__), chunk)
    finally:
        engine.dispose()
    start, end = config.window()
    return GenerationReport(
        start=start,
        end=end,
        lw_users=len(plan.staff),
        line_users=len(plan.customers),
        rooms_by_type=dict(Counter(r.room_type.value for r in plan.rooms)),
        room_members=sum(len(r.members) for r in plan.rooms),
        links_by_target=dict(Counter(link.target_type.value for link in plan.links)),
        unlinked_links=sum(1 for link in plan.links if link.periods[-1][1] is not None),
        link_periods=n_periods,
        messages=stream.count,
        messages_by_type=dict(stream.by_type),
        long_messages=stream.long_messages,
        seconds=time.perf_counter() - began,
    )
