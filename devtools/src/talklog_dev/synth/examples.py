"""The six examples of the product spec, section 5, as named store fixtures.

Each fixture writes one talk room, its members, its links and a short conversation on the
window day (10:00 local time) into a migrated store, and returns an `Example` that says what
the pipeline must write: which target records receive a transcript, of how many messages.
Ids are namespaced by example, so all six can share one store.

    [LW] Suzuki (鈴木 一郎), [LW] Takahashi (高橋 健太): staff
    [LINE] Yamada (山田 太郎), [LINE] Sato (佐藤 花子🌸): customers
    Salesforce "Yamada", "Sato": the records the customers are linked to
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from talklog.store import make_engine
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
from talklog_dev.synth import sfids
from talklog_dev.synth.generator import DEFAULT_DAY, app_link

STAFF = {"suzuki": "鈴木 一郎", "takahashi": "高橋 健太"}
CUSTOMERS = {"yamada": "山田 太郎", "sato": "佐藤 花子🌸"}
TALK_STARTS = dt.time(10, 0)  # local time of the first message


@dataclass(frozen=True)
class Target:
    """A Salesforce record a link points to."""

    target_type: TargetType
    target_id: str


@dataclass(frozen=True)
class ExpectedTranscript:
    """One transcript the pipeline must write: the whole talk of the room on one record."""

    target_id: str
    room_id: str
    message_count: int
    speakers: frozenset[str]  # display names of everyone whose lines it contains


@dataclass(frozen=True)
class Example:
    """What an example wrote and what it must produce."""

    name: str
    talk: str
    links: str
    result: str
    window_start: dt.datetime  # the window day in the time zone, as UTC
    window_end: dt.datetime
    room_id: str
    room_type: str
    staff: dict[str, str]  # short name ("suzuki") -> LINE WORKS user id
    customers: dict[str, str]  # short name ("yamada") -> LINE user id
    link_keys: dict[str, Target]  # link key -> target record
    message_keys: tuple[str, ...]
    transcripts: tuple[ExpectedTranscript, ...]

    @property
    def recipients(self) -> frozenset[str]:
        """Ids of the records that receive a transcript (empty: nothing is written)."""
        return frozenset(t.target_id for t in self.transcripts)


# (minute after TALK_STARTS, speaker, type, text, file name)
Line = tuple[int, str, str, str | None, str | None]

ONE_TO_ONE_TALK: Sequence[Line] = (
    (0, "suzuki", MessageType.TEXT, "お世話になっております。内見の件でご連絡しました。", None),
    (2, "{customer}", MessageType.TEXT, "ありがとうございます！土曜の午前は空いています😀", None),
    (3, "suzuki", MessageType.IMAGE, None, "間取り図_A棟.jpg"),
    (5, "{customer}", MessageType.TEXT, "駐車場はありますか？\n車で伺う予定です。", None),
    (6, "suzuki", MessageType.TEXT, "はい、1台分ございます🚗", None),
)
GROUP_TALK: Sequence[Line] = (
    (0, "suzuki", MessageType.TEXT, "皆さま、本日の内見の確認です。", None),
    (1, "yamada", MessageType.TEXT, "よろしくお願いします！", None),
    (2, "sato", MessageType.STICKER, "11537/52002734", None),
    (4, "sato", MessageType.TEXT, "私は少し遅れます💦", None),
    (5, "suzuki", MessageType.LOCATION, "新宿店 東京都新宿区西新宿1-1-1", None),
    (7, "yamada", MessageType.TEXT, "了解です👍", None),
)
TWO_STAFF_TALK: Sequence[Line] = (
    (0, "suzuki", MessageType.TEXT, "山田様、本日から高橋も担当に加わります。", None),
    (1, "takahashi", MessageType.TEXT, "高橋です。よろしくお願いいたします🙏", None),
    (3, "yamada", MessageType.TEXT, "よろしくお願いします。見積もりを見せてください。", None),
    (4, "takahashi", MessageType.FILE, None, "見積書_001.pdf"),
    (6, "yamada", MessageType.TEXT, "確認しました！", None),
)


def _lw_id(example: str, name: str) -> str:
    return f"{name}.{example}@talklog.example"


def _line_id(example: str, name: str) -> str:
    return "U" + hashlib.md5(f"{example}/{name}".encode(), usedforsecurity=False).hexdigest()


def _contact_uuid(example: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"talklog-example:{example}/{name}"))


def default_target(example: str, customer: str) -> Target:
    """The synthetic Contact a customer of an example is linked to when no target is given."""
    number = zlib.crc32(f"{example}/{customer}".encode())
    return Target(TargetType.CONTACT, sfids.make_id(sfids.CONTACT_PREFIX, number))


_TYPE_BY_PREFIX = {
    sfids.LEAD_PREFIX: TargetType.LEAD,
    sfids.CONTACT_PREFIX: TargetType.CONTACT,
    sfids.ACCOUNT_PREFIX: TargetType.PERSON_ACCOUNT,
}


def as_target(value: Target | str) -> Target:
    """A target from a record id (its key prefix tells the kind) or a `Target`."""
    if isinstance(value, Target):
        return value
    return Target(_TYPE_BY_PREFIX.get(value[:3], TargetType.EXTERNAL_CONTACT), value)


@dataclass(frozen=True)
class _Scenario:
    name: str
    talk: str
    links: str
    result: str
    room_type: RoomType
    staff: tuple[str, ...]
    customers: tuple[str, ...]
    linked: tuple[tuple[str, str], ...]  # (staff, customer) pairs
    script: Sequence[Line]


class _Writer:
    """Turns a scenario into rows and an `Example`."""

    def __init__(self, scenario: _Scenario, day: dt.date, targets: Targets, tz: str) -> None:
        self.s = scenario
        zone = ZoneInfo(tz)
        self.start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
        self.end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone)
        self.end = self.end.astimezone(dt.UTC)
        self.talk_start = dt.datetime.combine(day, TALK_STARTS, zone).astimezone(dt.UTC)
        self.staff = {n: _lw_id(scenario.name, n) for n in scenario.staff}
        self.customers = {n: _line_id(scenario.name, n) for n in scenario.customers}
        given = dict(targets or {})
        self.targets = {
            c: as_target(given[c]) if c in given else default_target(scenario.name, c)
            for c in scenario.customers
        }
        self.room_id = f"room-{scenario.name}"

    def rows(self) -> dict[sa.Table, list[dict]]:
        created = self.start - dt.timedelta(days=7)
        return {
            LineWorksUser.__table__: [
                {"id": i, "display_name": STAFF[n], "salesforce_user_id": None}
                for n, i in self.staff.items()
            ],
            LineUser.__table__: [
                {
                    "id": i,
                    "display_name": CUSTOMERS[n],
                    "contact_uuid": _contact_uuid(self.s.name, n),
                }
                for n, i in self.customers.items()
            ],
            Room.__table__: [
                {
                    "id": self.room_id,
                    "room_type": self.s.room_type.value,
                    "title": None if self.s.room_type == RoomType.ONE_TO_ONE else "内見のご相談",
                    "created_at": created,
                }
            ],
            RoomMember.__table__: self.member_rows(created),
            Message.__table__: self.message_rows(),
        }

    def member_rows(self, joined: dt.datetime) -> list[dict]:
        lw = [(MemberKind.LW, i, None) for i in self.staff.values()]
        line = [(MemberKind.LINE, None, i) for i in self.customers.values()]
        return [
            {
                "room_id": self.room_id,
                "member_kind": kind.value,
                "lw_user_id": lw_id,
                "line_user_id": line_id,
                "joined_at": joined,
                "left_at": None,
            }
            for kind, lw_id, line_id in lw + line
        ]

    def speaker(self, name: str) -> str:
        return self.s.customers[0] if name == "{customer}" else name

    def message_rows(self) -> list[dict]:
        rows = []
        for n, (minute, who, message_type, text, file_name) in enumerate(self.s.script):
            name = self.speaker(who)
            is_lw = name in self.staff
            rows.append(
                {
                    "message_key": f"{self.s.name}-{n:02d}",
                    "room_id": self.room_id,
                    "sent_at": self.talk_start + dt.timedelta(minutes=minute),
                    "sender_kind": (MemberKind.LW if is_lw else MemberKind.LINE).value,
                    "sender_lw_user_id": self.staff[name] if is_lw else None,
                    "sender_line_user_id": None if is_lw else self.customers[name],
                    "message_type": str(message_type),
                    "text": text,
                    "file_name": file_name,
                    "file_size": 482_133 if file_name else None,
                }
            )
        return rows

    def link_rows(self) -> list[dict]:
        linked_at = self.start - dt.timedelta(days=3)
        rows = []
        for staff, customer in self.s.linked:
            lw_id, line_id = self.staff[staff], self.customers[customer]
            target = self.targets[customer]
            rows.append(
                {
                    "link_key": f"{lw_id}:{line_id}",
                    "lw_user_id": lw_id,
                    "line_user_id": line_id,
                    "target_type": target.target_type.value,
                    "target_id": target.target_id,
                    "nickname": f"{CUSTOMERS[customer]}様",
                    "app_link": app_link(lw_id, _contact_uuid(self.s.name, customer)),
                    "linked": True,
                    "linked_at": linked_at,
                    "unlinked_at": None,
                    "updated_at": linked_at,
                }
            )
        return rows

    def write(self, url: str) -> Example:
        links = self.link_rows()
        engine = make_engine(url)
        try:
            with engine.begin() as conn:
                for table, rows in self.rows().items():
                    conn.execute(sa.insert(table), rows)
                if links:
                    conn.execute(sa.insert(Link.__table__), links)
                    _write_periods(conn, links)
        finally:
            engine.dispose()
        return self.example(links)

    def example(self, links: list[dict]) -> Example:
        names = {**STAFF, **CUSTOMERS}
        speakers = frozenset(names[self.speaker(line[1])] for line in self.s.script)
        linked_customers = dict.fromkeys(customer for _, customer in self.s.linked)
        recipients = dict.fromkeys(self.targets[c].target_id for c in linked_customers)
        return Example(
            name=self.s.name,
            talk=self.s.talk,
            links=self.s.links,
            result=self.s.result,
            window_start=self.start,
            window_end=self.end,
            room_id=self.room_id,
            room_type=self.s.room_type.value,
            staff=self.staff,
            customers=self.customers,
            link_keys={
                r["link_key"]: Target(TargetType(r["target_type"]), r["target_id"]) for r in links
            },
            message_keys=tuple(r["message_key"] for r in self.message_rows()),
            transcripts=tuple(
                ExpectedTranscript(t, self.room_id, len(self.s.script), speakers)
                for t in recipients
            ),
        )


def _write_periods(conn: sa.Connection, links: list[dict]) -> None:
    keys = [r["link_key"] for r in links]
    ids = dict(conn.execute(sa.select(Link.link_key, Link.id).where(Link.link_key.in_(keys))).all())
    periods = [
        {"link_id": ids[r["link_key"]], "started_at": r["linked_at"], "ended_at": None}
        for r in links
    ]
    conn.execute(sa.insert(LinkPeriod.__table__), periods)


Targets = Mapping[str, Target | str] | None
"""Customer short name ("yamada", "sato") -> the record it is linked to (id or `Target`)."""

SCENARIOS = (
    _Scenario(
        "one_to_one_linked",
        "1:1, [LINE] Yamada <-> [LW] Suzuki",
        'Yamada linked by Suzuki to Salesforce "Yamada"',
        'transcript of the talk on "Yamada"',
        RoomType.ONE_TO_ONE,
        ("suzuki",),
        ("yamada",),
        (("suzuki", "yamada"),),
        ONE_TO_ONE_TALK,
    ),
    _Scenario(
        "one_to_one_unlinked",
        "1:1, [LINE] Sato <-> [LW] Suzuki",
        "Sato not linked",
        "nothing is written",
        RoomType.ONE_TO_ONE,
        ("suzuki",),
        ("sato",),
        (),
        ONE_TO_ONE_TALK,
    ),
    _Scenario(
        "group_both_linked",
        "group: [LW] Suzuki, [LINE] Yamada, [LINE] Sato",
        "both linked",
        'each of "Yamada" and "Sato" receives the whole group transcript',
        RoomType.GROUP,
        ("suzuki",),
        ("yamada", "sato"),
        (("suzuki", "yamada"), ("suzuki", "sato")),
        GROUP_TALK,
    ),
    _Scenario(
        "group_one_linked",
        "group: [LW] Suzuki, [LINE] Yamada, [LINE] Sato",
        "only Yamada linked",
        '"Yamada" receives the whole transcript, Sato\'s lines included',
        RoomType.GROUP,
        ("suzuki",),
        ("yamada", "sato"),
        (("suzuki", "yamada"),),
        GROUP_TALK,
    ),
    _Scenario(
        "group_two_staff_same_target",
        "group: [LW] Suzuki, [LW] Takahashi, [LINE] Yamada",
        'Yamada linked by both staff to "Yamada"',
        '"Yamada" receives the transcript once',
        RoomType.GROUP,
        ("suzuki", "takahashi"),
        ("yamada",),
        (("suzuki", "yamada"), ("takahashi", "yamada")),
        TWO_STAFF_TALK,
    ),
    _Scenario(
        "group_two_staff_one_link",
        "group: [LW] Suzuki, [LW] Takahashi, [LINE] Yamada",
        "Yamada linked by Suzuki only",
        '"Yamada" receives the whole transcript, Takahashi\'s lines included',
        RoomType.GROUP,
        ("suzuki", "takahashi"),
        ("yamada",),
        (("suzuki", "yamada"),),
        TWO_STAFF_TALK,
    ),
)

ExampleFixture = Callable[..., Example]
_BY_NAME = {s.name: s for s in SCENARIOS}


def _write(name: str, url: str, day: dt.date, targets: Targets, tz: str) -> Example:
    return _Writer(_BY_NAME[name], day, targets, tz).write(url)


def one_to_one_linked(
    url: str, day: dt.date = DEFAULT_DAY, targets: Targets = None, *, tz: str = "Asia/Tokyo"
) -> Example:
    """1:1 Suzuki-Yamada, Yamada linked: Yamada's record gets the transcript."""
    return _write("one_to_one_linked", url, day, targets, tz)


def one_to_one_unlinked(
    url: str, day: dt.date = DEFAULT_DAY, targets: Targets = None, *, tz: str = "Asia/Tokyo"
) -> Example:
    """1:1 Suzuki-Sato, Sato not linked: nothing is written."""
    return _write("one_to_one_unlinked", url, day, targets, tz)


def group_both_linked(
    url: str, day: dt.date = DEFAULT_DAY, targets: Targets = None, *, tz: str = "Asia/Tokyo"
) -> Example:
    """Group Suzuki, Yamada, Sato, both linked: each gets the whole transcript."""
    return _write("group_both_linked", url, day, targets, tz)


def group_one_linked(
    url: str, day: dt.date = DEFAULT_DAY, targets: Targets = None, *, tz: str = "Asia/Tokyo"
) -> Example:
    """Same group, only Yamada linked: Yamada gets it all, Sato's lines included."""
    return _write("group_one_linked", url, day, targets, tz)


def group_two_staff_same_target(
    url: str, day: dt.date = DEFAULT_DAY, targets: Targets = None, *, tz: str = "Asia/Tokyo"
) -> Example:
    """Group Suzuki, Takahashi, Yamada, linked by both: one transcript."""
    return _write("group_two_staff_same_target", url, day, targets, tz)


def group_two_staff_one_link(
    url: str, day: dt.date = DEFAULT_DAY, targets: Targets = None, *, tz: str = "Asia/Tokyo"
) -> Example:
    """Same group, linked by Suzuki only: Takahashi's lines included."""
    return _write("group_two_staff_one_link", url, day, targets, tz)


EXAMPLES: dict[str, ExampleFixture] = {
    "one_to_one_linked": one_to_one_linked,
    "one_to_one_unlinked": one_to_one_unlinked,
    "group_both_linked": group_both_linked,
    "group_one_linked": group_one_linked,
    "group_two_staff_same_target": group_two_staff_same_target,
    "group_two_staff_one_link": group_two_staff_one_link,
}


def write_examples(
    url: str, day: dt.date = DEFAULT_DAY, targets: Targets = None, *, tz: str = "Asia/Tokyo"
) -> dict[str, Example]:
    """Write all six examples into one store."""
    return {name: fixture(url, day, targets, tz=tz) for name, fixture in EXAMPLES.items()}
