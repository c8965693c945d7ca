"""Who receives which transcript: the spec's section 5 table at the domain level."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from talklog.extract import LinkInForce, RoomContext, Span
from talklog.ledger import Claim, PartCounts
from talklog.salesforce.failures import row_error
from talklog.stale_parts import held_in_salesforce
from talklog.talklogs import (
    TalkLogSettings,
    TaskCopy,
    room_claims,
    room_drafts,
    talklog_part_key,
    talklog_rows,
    task_part_key,
    task_rows,
)
from talklog.targets import CustomerRecord, Placement
from talklog.transcripts import TASK_DESCRIPTION_LIMIT, TalkLine, utf16_len
from talklog.windows import TalkWindow

UTC = dt.UTC
WINDOW = TalkWindow(
    dt.datetime(2026, 1, 8, 15, tzinfo=UTC), dt.datetime(2026, 1, 8, 16, tzinfo=UTC)
)
BEFORE = dt.datetime(2026, 1, 1, tzinfo=UTC)
YAMADA_SF, SATO_SF = "a00000000000001AAA", "a00000000000002AAA"
SPAN = Span(BEFORE, None)


def at(minute: int) -> dt.datetime:
    return WINDOW.start + dt.timedelta(minutes=minute)


def link(staff: str, customer: str, target: str) -> LinkInForce:
    return LinkInForce(f"{staff}:{customer}", staff, customer, "external_contact", target, (SPAN,))


def room(
    kind: str, staff: list[str], customers: list[str], links: list[LinkInForce]
) -> RoomContext:
    return RoomContext(
        "room-1",
        kind,
        None,
        lw_members={s: [SPAN] for s in staff},
        line_members={c: [SPAN] for c in customers},
        links=links,
    )


def lines_from(speakers: list[tuple[str, str, str]]) -> list[TalkLine]:
    return [
        TalkLine(n, at(n), kind, name, "text", text)
        for n, (kind, name, text) in enumerate(speakers, start=1)
    ]


PLACED = {
    target: CustomerRecord(target, Placement.EXTERNAL_CONTACT, external_contact_id=target)
    for target in (YAMADA_SF, SATO_SF)
}
GROUP_TALK = [
    ("lw", "鈴木", "皆さんこんにちは"),
    ("line", "山田", "山田です"),
    ("line", "佐藤", "佐藤です"),
    ("lw", "高橋", "高橋です"),
]


def deliver(context: RoomContext, talk: list[tuple[str, str, str]]):
    """Plan one room as a fresh window would: claim, then build drafts."""
    lines = lines_from(talk)
    claims = room_claims(context, lines, PLACED, WINDOW)
    drafts, foreign = room_drafts(context, lines, claims, PLACED, {}, WINDOW)
    assert foreign == 0
    return {draft.customer.record_id: sorted(line.text for line in draft.lines) for draft in drafts}


# (case, room type, staff, customers, links, talk, expected: record -> the lines it receives)
SECTION_5 = [
    (
        "1:1, Yamada linked by Suzuki",
        "one_to_one",
        ["suzuki"],
        ["yamada"],
        [link("suzuki", "yamada", YAMADA_SF)],
        [("line", "山田", "こんにちは"), ("lw", "鈴木", "どうも")],
        {YAMADA_SF: ["こんにちは", "どうも"]},
    ),
    (
        "1:1, Sato not linked",
        "one_to_one",
        ["suzuki"],
        ["sato"],
        [],
        [("line", "佐藤", "こんにちは")],
        {},
    ),
    (
        "group, both linked",
        "group",
        ["suzuki", "takahashi"],
        ["yamada", "sato"],
        [link("suzuki", "yamada", YAMADA_SF), link("suzuki", "sato", SATO_SF)],
        GROUP_TALK,
        {YAMADA_SF: sorted(t for *_, t in GROUP_TALK), SATO_SF: sorted(t for *_, t in GROUP_TALK)},
    ),
    (
        "group, only Yamada linked: Sato's lines included",
        "group",
        ["suzuki", "takahashi"],
        ["yamada", "sato"],
        [link("suzuki", "yamada", YAMADA_SF)],
        GROUP_TALK,
        {YAMADA_SF: sorted(t for *_, t in GROUP_TALK)},
    ),
    (
        "group, Yamada linked by both staff to one record: once",
        "group",
        ["suzuki", "takahashi"],
        ["yamada"],
        [link("suzuki", "yamada", YAMADA_SF), link("takahashi", "yamada", YAMADA_SF)],
        GROUP_TALK[:2] + GROUP_TALK[3:],
        {YAMADA_SF: sorted(t for _, n, t in GROUP_TALK if n != "佐藤")},
    ),
    (
        "group, Yamada linked by Suzuki only: Takahashi's lines included",
        "group",
        ["suzuki", "takahashi"],
        ["yamada"],
        [link("suzuki", "yamada", YAMADA_SF)],
        GROUP_TALK[:2] + GROUP_TALK[3:],
        {YAMADA_SF: sorted(t for _, n, t in GROUP_TALK if n != "佐藤")},
    ),
]


@pytest.mark.parametrize(
    ("kind", "staff", "customers", "links", "talk", "expected"),
    [case[1:] for case in SECTION_5],
    ids=[case[0] for case in SECTION_5],
)
def test_section_5(kind, staff, customers, links, talk, expected):
    assert deliver(room(kind, staff, customers, links), talk) == expected


def test_messages_outside_the_link_period_or_membership_are_not_delivered():
    unlinked = LinkInForce(
        "s:y", "suzuki", "yamada", "external_contact", YAMADA_SF, (Span(BEFORE, at(2)),)
    )
    context = room("one_to_one", ["suzuki"], ["yamada"], [unlinked])
    context.line_members["yamada"] = [Span(BEFORE, at(3))]
    talk = [
        ("line", "山田", "linked"),
        ("line", "山田", "after unlink"),
        ("line", "山田", "after leaving"),
    ]
    assert deliver(context, talk) == {YAMADA_SF: ["linked"]}


def test_pairs_owned_by_another_window_are_skipped_and_counted():
    context = room("one_to_one", ["suzuki"], ["yamada"], [link("suzuki", "yamada", YAMADA_SF)])
    lines = lines_from([("line", "山田", "a"), ("line", "山田", "b")])
    owned = [
        Claim([1], YAMADA_SF, "room-1|other-window|x", None),
        Claim([2], YAMADA_SF, f"room-1|{WINDOW.key()}|{YAMADA_SF}", None),
    ]
    drafts, foreign = room_drafts(context, lines, owned, PLACED, {}, WINDOW)
    assert foreign == 1
    assert [line.text for line in drafts[0].lines] == ["b"]


def _draft(text_size: int, task_copy: TaskCopy = TaskCopy.FULL):
    context = room("one_to_one", ["suzuki"], ["yamada"], [link("suzuki", "yamada", YAMADA_SF)])
    lines = [TalkLine(n, at(n % 50), "line", "山田", "text", "あ" * 1000) for n in range(text_size)]
    ids = [line.message_id for line in lines]
    claims = [Claim(ids, YAMADA_SF, f"room-1|{WINDOW.key()}|{YAMADA_SF}", YAMADA_SF)]
    drafts, _ = room_drafts(
        context, lines, claims, PLACED, {"suzuki": "005000000000001AAA"}, WINDOW
    )
    return drafts[0], TalkLogSettings(task_copy=task_copy)


def test_long_transcripts_split_into_numbered_parts_with_deterministic_keys():
    draft, settings = _draft(300)
    talklogs = list(talklog_rows(draft, settings))
    tasks = list(task_rows(draft, settings))
    assert [row["Part__c"] for row in talklogs] == [1, 2, 3]
    assert all(utf16_len(row["Transcript__c"]) <= 131_072 for row in talklogs)
    assert all(utf16_len(row["Description"]) <= TASK_DESCRIPTION_LIMIT for row in tasks)
    assert len(tasks) == 10 and tasks[0]["Subject"] == "LINE WORKSログ (1/10)"
    assert [row["TalkLogKey__c"] for row in talklogs] == [
        row["TalkLogKey__c"] for row in talklog_rows(draft, settings)
    ]
    assert tasks[0]["OwnerId"] == "005000000000001AAA" and tasks[0]["WhatId"] == YAMADA_SF
    assert tasks[0]["ActivityDate"] == "2026-01-09"


def test_task_copy_settings():
    draft, settings = _draft(3, TaskCopy.NO_CONTENT)
    (task,) = task_rows(draft, settings)
    assert "あ" not in task["Description"] and task["Subject"] == "LINE WORKSログ"
    draft, settings = _draft(3, TaskCopy.OFF)
    assert list(task_rows(draft, settings)) == []


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record:--",
            ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record", None),
        ),
        (
            "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --",
            ("REQUIRED_FIELD_MISSING", "Required fields are missing: [Name]", "Name"),
        ),
    ],
)
def test_bulk_errors_are_parsed(text, parsed):
    error = row_error(text)
    assert (error.code, error.message, error.fields_text) == parsed


@pytest.mark.parametrize("task_copy", list(TaskCopy))
def test_part_keys_name_every_row_a_run_writes(task_copy):
    draft, settings = _draft(300, task_copy)
    talklogs = [row["TalkLogKey__c"] for row in talklog_rows(draft, settings)]
    tasks = [row["LineWorksKey__c"] for row in task_rows(draft, settings)]
    assert talklogs == [talklog_part_key(draft.key, n) for n in range(1, len(talklogs) + 1)]
    assert tasks == [task_part_key(draft.key, n) for n in range(1, len(tasks) + 1)]
    assert len(tasks) == {TaskCopy.FULL: 10, TaskCopy.NO_CONTENT: 1, TaskCopy.OFF: 0}[task_copy]


def _prefix_query(records: dict[str, list[str]]):
    """A query function over `records` (object -> keys) that answers `LIKE 'x|%'` conditions
    as SOQL does (`_` matches any character), and records the queries."""
    asked: list[str] = []

    def query_all(soql: str):
        asked.append(soql)
        obj = soql.split(" FROM ")[1].split()[0]
        field = soql.split()[1]
        patterns = re.findall(r"LIKE '((?:[^'\\]|\\.)*)'", soql)
        regexes = [_like(pattern.replace("\\'", "'")) for pattern in patterns]
        for key in records.get(obj, []):
            if any(regex.match(key) for regex in regexes):
                yield {field: key}

    return query_all, asked


def _like(pattern: str) -> re.Pattern[str]:
    """A SOQL LIKE pattern as a regular expression (`_` one character, `%` any)."""
    return re.compile(re.escape(pattern).replace("_", ".").replace("%", ".*") + "$")


def test_part_counts_of_claims_written_before_0003_come_from_salesforce_by_prefix():
    keys = [f"r_{n}|w|rec" for n in range(30)] + ["it's|w|rec"]
    records = {
        "TalkLog__c": ["r_1|w|rec|1", "r_1|w|rec|2", "rX1|w|rec|7", "r_1|w|rec|x", "it's|w|rec|1"],
        "Task": ["log|r_1|w|rec|1", "log|r_2|w|rec|3", "log|r_2|w|rec|1", "log|rX2|w|rec|9"],
    }
    query_all, asked = _prefix_query(records)
    found = held_in_salesforce(query_all, keys)
    assert found["r_1|w|rec"] == PartCounts(2, 1)  # rX1 matched the LIKE, not the key
    assert found["r_2|w|rec"] == PartCounts(0, 3)
    assert found["it's|w|rec"] == PartCounts(1, 0)
    assert all(found[key] == PartCounts(0, 0) for key in keys[3:30])
    assert len(asked) == 4  # 31 keys: two chunks, one query per object each
    assert held_in_salesforce(query_all, []) == {} and len(asked) == 4
