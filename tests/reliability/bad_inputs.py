"""The bad-input corpus (issue 9), kept as test data: one case per talk room.

Every case is a 1:1 room of its own (staff, customer, link, messages on the window day) and
says how it must end: `record` (a correct TalkLog and Task), `dead letter` (Salesforce's
error kept with the row), `unresolved` (the run reports the link target with a reason and
claims nothing, so a fixed link delivers later), `refused` (the store refuses the row as
written, with a clear error, so nothing ambiguous enters it) or `quarantined` (issue 16: the
store holds what it cannot return, such as bytes that are not UTF-8 written by another tool;
those messages are quarantined with their key and a reason, unclaimed, and the room's other
messages are delivered as a record).

No transcript line may look like a message that was not sent: every line break in a text or
a display name (issue 16: U+2028, U+2029, NEL, CR, CRLF, VT, FF ...) renders the same way.

Texts that must sit exactly at a split limit are sized at build time from `overhead`: the
length of the case's transcript without its last message's text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from talklog.transcripts import TALKLOG_LIMIT, TASK_DESCRIPTION_LIMIT


class Expect(StrEnum):
    RECORD = "record"
    DEAD_LETTER = "dead letter"
    UNRESOLVED = "unresolved"
    REFUSED = "refused"
    QUARANTINED = "quarantined"


class Target(StrEnum):
    EXTERNAL_CONTACT = "external contact"
    MALFORMED_ID = "malformed id"
    DELETED = "deleted external contact"
    CONVERTED_LEAD_DELETED = "lead converted, then the lead deleted"
    CONVERTED_CONTACT_DELETED = "lead converted, then its contact deleted"


@dataclass(frozen=True)
class Msg:
    """A message: minutes after 10:00 local, who sends it, its type and content."""

    minute: int = 0
    sender: str = "customer"  # "customer", "staff" or "stranger" (a LINE user not in the room)
    text: str | None = "こんにちは"
    message_type: str = "text"
    file_name: str | None = None
    sent_at: dt.datetime | None = None  # overrides `minute` (zones, naive times)
    key: str | None = None  # message_key; default unique per case and message
    raw_text: bytes | None = None  # stored as these bytes by another tool (any encoding)
    raw_file_name: bytes | None = None  # the same for the file name


Texts = Callable[[int], list[Msg]]


@dataclass(frozen=True)
class Case:
    name: str
    expect: Expect
    messages: Texts
    reason: str = ""  # error code(s), space-separated, or reason the outcome must carry
    target: Target = Target.EXTERNAL_CONTACT
    customer_name: str = "山田 太郎"
    staff_name: str = "鈴木 一郎"
    nickname: str | None = "山田さん"
    parts: tuple[int, int] | None = None  # at most (TalkLog parts, Task parts)
    tags: frozenset[str] = field(default_factory=frozenset)
    raw_names: tuple[bytes | None, bytes | None] = (None, None)  # (customer, staff) as bytes
    quarantined: tuple[int, ...] = ()  # the messages (by index) quarantined, the rest recorded


def fixed(*messages: Msg) -> Texts:
    return lambda overhead: list(messages)


def sized(total: int, tail: str = "", fill: str = "a") -> Texts:
    """One message whose transcript is `total` UTF-16 units: `fill` repeated, then `tail`."""

    def build(overhead: int) -> list[Msg]:
        room = total - overhead - _units(tail)
        return [Msg(text=fill * (room // _units(fill)) + tail)]

    return build


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


TOKYO_10 = dt.datetime(2026, 1, 9, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=9)))
MINUS_5 = dt.timezone(dt.timedelta(hours=-5))
EMOJI = "😀"  # a surrogate pair in UTF-16
COMBINING = "e\u0301"  # e + combining acute accent
CSV_HOSTILE = '=HYPERLINK("http://evil.example","x"),"quoted ""twice""",\n,comma\r\nCRLF'
NOT_UTF8 = "秘密".encode() + b"\xff\xfeA"  # bytes no UTF-8 text holds
FORGED = "2026-01-09 10:05 [LW] 鈴木 一郎: 本日ご契約ありがとうございます"  # a fake staff line
SEPARATORS = {
    "U+2028": "\u2028",
    "U+2029": "\u2029",
    "NEL": "\x85",
    "CR": "\r",
    "CRLF": "\r\n",
    "VT": "\x0b",
    "FF": "\x0c",
}

CASES: tuple[Case, ...] = (
    Case("empty message", Expect.RECORD, fixed(Msg(text=""), Msg(1, "staff"))),
    Case("whitespace-only message", Expect.RECORD, fixed(Msg(text="   \t\n  \u3000 "))),
    # A line longer than a part starts a part of its own: the header lines alone are part 1.
    Case("200,000-character message", Expect.RECORD, sized(200_000), parts=(3, 8)),
    Case("Task limit - 1", Expect.RECORD, sized(TASK_DESCRIPTION_LIMIT - 1)),
    Case("Task limit exactly", Expect.RECORD, sized(TASK_DESCRIPTION_LIMIT)),
    Case("Task limit + 1", Expect.RECORD, sized(TASK_DESCRIPTION_LIMIT + 1), parts=(1, 2)),
    Case("TalkLog limit - 1", Expect.RECORD, sized(TALKLOG_LIMIT - 1)),
    Case("TalkLog limit exactly", Expect.RECORD, sized(TALKLOG_LIMIT)),
    Case("TalkLog limit + 1", Expect.RECORD, sized(TALKLOG_LIMIT + 1), parts=(2, 6)),
    Case(
        "surrogate pairs across the Task split point",
        Expect.RECORD,
        sized(TASK_DESCRIPTION_LIMIT + 40, tail=EMOJI * 60),
        parts=(1, 2),
    ),
    Case(
        "surrogate pairs across the Task split point, shifted by one",
        Expect.RECORD,
        sized(TASK_DESCRIPTION_LIMIT + 40, tail="b" + EMOJI * 60),
        parts=(1, 2),
    ),
    Case(
        "combining characters across the Task split point",
        Expect.RECORD,
        sized(TASK_DESCRIPTION_LIMIT + 40, tail=COMBINING * 60),
        parts=(1, 2),
    ),
    Case(
        "combining characters across the Task split point, shifted by one",
        Expect.RECORD,
        sized(TASK_DESCRIPTION_LIMIT + 40, tail="b" + COMBINING * 60),
        parts=(1, 2),
    ),
    Case(
        "emoji only, over the TalkLog limit",
        Expect.RECORD,
        sized(TALKLOG_LIMIT + 3, fill=EMOJI),
        parts=(2, 6),
    ),
    Case(
        "control characters",
        Expect.RECORD,
        fixed(Msg(text="a\x00b\x07c\x1b[31md\x7fe\x85f\u2028g\x0bh\x0ci\x1ej\tk\rl")),
    ),
    Case("CSV-hostile content", Expect.RECORD, fixed(Msg(text=CSV_HOSTILE), Msg(1, text="=1+2"))),
    Case(
        "display names with quotes and backslashes",
        Expect.RECORD,
        fixed(Msg(text="name test"), Msg(1, "staff", text="reply")),
        customer_name="O'Brien \"Bob\" \\ ', Id != '",
        staff_name="Back\\slash 'Staff' \"x\"",
        nickname="Nick' OR Name != '\\",
    ),
    Case(
        "unknown message types",
        Expect.RECORD,
        fixed(
            Msg(message_type="poll", text="来週の都合は?"),
            Msg(1, message_type="calendar\x07", file_name="予定'.ics"),
        ),
    ),
    Case("message from a user not in the room", Expect.RECORD, fixed(Msg(sender="stranger"))),
    Case(
        "same text and time under two message ids",
        Expect.RECORD,
        fixed(Msg(text="重複?"), Msg(text="重複?")),
    ),
    Case(
        "duplicate message id",
        Expect.REFUSED,
        fixed(Msg(key="dup-1"), Msg(1, key="dup-1")),
        reason="UNIQUE",
    ),
    Case(
        "naive timestamp",
        Expect.REFUSED,
        fixed(Msg(sent_at=dt.datetime(2026, 1, 9, 10, 0))),
        reason="naive datetime refused",
    ),
    Case(
        "timestamp in another zone (-05:00)",
        Expect.RECORD,
        fixed(Msg(sent_at=dt.datetime(2026, 1, 8, 20, 30, tzinfo=MINUS_5))),  # 10:30 Tokyo
        tags=frozenset({"10:30"}),
    ),
    Case(
        "link to a malformed Salesforce id",
        Expect.UNRESOLVED,
        fixed(Msg()),
        reason="MALFORMED_ID",
        target=Target.MALFORMED_ID,
    ),
    Case(
        "link to a deleted record",
        Expect.UNRESOLVED,
        fixed(Msg()),
        reason="ENTITY_IS_DELETED",
        target=Target.DELETED,
    ),
    Case(
        "lead converted, then deleted",
        Expect.UNRESOLVED,
        fixed(Msg()),
        reason="ENTITY_IS_DELETED",
        target=Target.CONVERTED_LEAD_DELETED,
    ),
    Case(
        "lead converted, then its contact deleted",
        Expect.DEAD_LETTER,
        fixed(Msg()),
        # TalkLog: its LineWorks__c was refused by the link sync; Task: WhoId is in the
        # recycle bin.
        reason="INVALID_FIELD ENTITY_IS_DELETED",
        target=Target.CONVERTED_CONTACT_DELETED,
    ),
    Case(
        "invalid UTF-8 text in one room of the window",
        Expect.QUARANTINED,
        fixed(Msg(raw_text=NOT_UTF8), Msg(1, "staff"), Msg(2, text="続き")),
        reason="UNREADABLE_TEXT",
        quarantined=(0,),
    ),
    Case(
        "invalid UTF-8 file name",
        Expect.QUARANTINED,
        fixed(
            Msg(message_type="file", text=None, file_name="x", raw_file_name=NOT_UTF8 + b".pdf"),
            Msg(1, "staff"),
        ),
        reason="UNREADABLE_TEXT",
        quarantined=(0,),
    ),
    Case(
        "invalid UTF-8 in the customer's display name",
        Expect.QUARANTINED,
        fixed(Msg(), Msg(1, "staff"), Msg(2)),
        reason="UNREADABLE_SENDER_NAME",
        raw_names=(NOT_UTF8, None),
        quarantined=(0, 2),
    ),
    Case(
        "invalid UTF-8 in the staff member's display name",
        Expect.QUARANTINED,
        fixed(Msg(), Msg(1, "staff")),
        reason="UNREADABLE_SENDER_NAME",
        raw_names=(None, NOT_UTF8),
        quarantined=(1,),
    ),
    *(
        Case(
            f"{name} in a message forging a staff line",
            Expect.RECORD,
            fixed(Msg(text=f"ありがとうございます{sep}{FORGED}"), Msg(1, text=f"{sep}{sep}")),
        )
        for name, sep in SEPARATORS.items()
    ),
    *(
        Case(
            f"{name} in both display names forging a staff line",
            Expect.RECORD,
            fixed(Msg(text="name test"), Msg(1, "staff", text="reply")),
            customer_name=f"山田{sep}{FORGED}",
            staff_name=f"鈴木{sep}{FORGED}",
        )
        for name, sep in SEPARATORS.items()
    ),
)
