"""From a room's messages to TalkLog__c and Task rows: recipients, claims, parts, fields.

A transcript is per (room, window, customer record): the record the customer lives on now.
Two links that reach the same record give one transcript; in a group, the lines of unlinked
members are part of every linked customer's transcript.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from zoneinfo import ZoneInfo

from talklog.extract import LinkInForce, RoomContext
from talklog.ledger import Claim
from talklog.salesforce.bulk import UNCHANGED
from talklog.settings import TalkLogSettings, TaskCopy
from talklog.targets import CustomerRecord
from talklog.transcripts import (
    TALKLOG_LIMIT,
    TASK_DESCRIPTION_LIMIT,
    TalkLine,
    render_transcript,
    split_transcript,
)
from talklog.windows import TalkWindow

TALKLOG_SUBJECT = "LINE WORKSログ"
PART_HEADER_RESERVE = 32
ROOM_TYPE_LABELS = {"one_to_one": ("OneToOne", "1:1"), "group": ("Group", "グループ")}


@dataclass
class TalkLogDraft:
    """One transcript to write: its key, where it goes and the messages in it."""

    key: str
    room: RoomContext
    window: TalkWindow
    customer: CustomerRecord
    link: LinkInForce
    owner_id: str | None
    lines: list[TalkLine]


_MESSAGE_ID, _SENT_AT = itemgetter(0), itemgetter(1)  # a `TalkLine`'s fields, read in C


def talklog_key(room_id: str, window: TalkWindow, record_id: str) -> str:
    """The deterministic key of a (room, window, record) transcript."""
    return f"{window_prefix(room_id, window)}{record_id}"


def talklog_part_key(key: str, part: int) -> str:
    """`TalkLog__c.TalkLogKey__c` of part `part` (from 1) of the TalkLog `key`."""
    return f"{key}|{part}"


def task_part_key(key: str, part: int) -> str:
    """`Task.LineWorksKey__c` of the `part`-th `LINE WORKSログ` Task of the TalkLog `key`."""
    return f"log|{talklog_part_key(key, part)}"


def window_prefix(room_id: str, window: TalkWindow) -> str:
    """Keys of the transcripts a window owns for a room start with this."""
    return f"{room_id}|{window.key()}|"


def room_claims(
    room: RoomContext,
    lines: Sequence[TalkLine],
    placed: Mapping[str, CustomerRecord],
    window: TalkWindow,
) -> list[Claim]:
    """The (message, customer) pairs this window would deliver for one room: one claim per
    recipient step and receiver.

    `lines` are in time order (as `window_lines` yields them): each recipient step covers a
    contiguous run of them, found by bisection, so the work is per step and receiver rather
    than per message.
    """
    bounds, steps = room.recipient_steps()
    times = list(map(_SENT_AT, lines))
    claims: list[Claim] = []
    for number, links in enumerate(steps):
        receivers = _receivers(room, links, placed, window)
        if not receivers:
            continue
        start = bisect_left(times, bounds[number])
        end = bisect_left(times, bounds[number + 1]) if number + 1 < len(bounds) else len(times)
        if start == end:
            continue
        ids = [line.message_id for line in lines[start:end]]
        claims.extend(Claim(ids, *receiver) for receiver in receivers)
    return claims


def _receivers(
    room: RoomContext,
    links: Sequence[LinkInForce],
    placed: Mapping[str, CustomerRecord],
    window: TalkWindow,
) -> list[tuple[str, str, str]]:
    """(customer key, TalkLog key, record id) reached through `links`, once per customer;
    unresolved targets are left out (the caller reports them)."""
    receivers = {}
    for link in links:
        customer = placed.get(link.target_id)
        if customer is not None:
            key = talklog_key(room.room_id, window, customer.record_id)
            receivers[link.target_id] = (link.target_id, key, customer.record_id)
    return list(receivers.values())


def room_drafts(
    room: RoomContext,
    lines: Sequence[TalkLine],
    owned: Sequence[Claim],
    placed: Mapping[str, CustomerRecord],
    staff_users: Mapping[str, str | None],
    window: TalkWindow,
) -> tuple[list[TalkLogDraft], int]:
    """The drafts this window owns for one room (`owned`: the room's pairs and their owners,
    as `ledger.claim_rooms` returns them), and how many pairs other windows own."""
    prefix = window_prefix(room.room_id, window)
    by_key: dict[str, dict[int, TalkLine]] = defaultdict(dict)
    customers_of: dict[str, set[str]] = defaultdict(set)
    foreign = 0
    lines_by_id = dict(zip(map(_MESSAGE_ID, lines), lines, strict=True))
    for claim in owned:
        found = dict(zip(claim.message_ids, map(lines_by_id.get, claim.message_ids), strict=True))
        if None in found.values():  # a claimed message without a line here is left out
            found = {i: line for i, line in found.items() if line is not None}
        if not claim.talklog_key.startswith(prefix):
            foreign += len(found)
        elif found:
            by_key[claim.talklog_key].update(found)
            customers_of[claim.talklog_key].add(claim.customer_key)
    drafts = []
    for key in sorted(by_key):
        link = _link_for(room, customers_of[key])
        customer = _customer_for(customers_of[key], placed)
        if link is None or customer is None:
            continue
        drafts.append(
            TalkLogDraft(
                key,
                room,
                window,
                customer,
                link,
                staff_users.get(link.lw_user_id),
                list(by_key[key].values()),
            )
        )
    return drafts, foreign


def _link_for(room: RoomContext, customer_keys: set[str]) -> LinkInForce | None:
    """The link whose LineWorks__c record the TalkLog hangs on (lowest key: deterministic)."""
    candidates = [link for link in room.links if link.target_id in customer_keys]
    return min(candidates, key=lambda link: link.link_key, default=None)


def _customer_for(
    customer_keys: set[str], placed: Mapping[str, CustomerRecord]
) -> CustomerRecord | None:
    records = [placed[key] for key in sorted(customer_keys) if key in placed]
    return records[0] if records else None


def render_draft(
    draft: TalkLogDraft, settings: TalkLogSettings, rendered: Mapping[int, str] | None = None
) -> str:
    """The whole transcript of a draft (render once, split per field limit); `rendered`: its
    lines as `transcripts.render_lines` rendered them already."""
    zone = ZoneInfo(settings.timezone)
    type_label = ROOM_TYPE_LABELS.get(draft.room.room_type, (draft.room.room_type,) * 2)[1]
    header = [
        f"LINE WORKS トーク: {draft.room.title or draft.room.room_id} ({type_label})",
        f"期間: {draft.window.label(settings.timezone)}",
    ]
    return render_transcript(header, draft.lines, zone, rendered)


def transcript_parts(
    draft: TalkLogDraft, settings: TalkLogSettings, limit: int, text: str | None = None
) -> list[str]:
    """The transcript (`text`, or rendered here) in parts of at most `limit` characters,
    each with a part header."""
    if text is None:
        text = render_draft(draft, settings)
    parts = split_transcript(text, limit - PART_HEADER_RESERVE)
    if len(parts) == 1:
        return parts
    return [f"({n}/{len(parts)})\n{part}" for n, part in enumerate(parts, start=1)]


def talklog_rows(
    draft: TalkLogDraft, settings: TalkLogSettings, text: str | None = None
) -> Iterator[dict[str, Any]]:
    """`TalkLog__c` rows (one per part), keyed by `TalkLogKey__c`; `text` is the rendered
    transcript when the caller has it (`render_draft`)."""
    parts = transcript_parts(draft, settings, TALKLOG_LIMIT, text)
    zone = ZoneInfo(settings.timezone)
    first = min(map(_SENT_AT, draft.lines)).astimezone(zone)
    for number, text in enumerate(parts, start=1):
        suffix = f" ({number}/{len(parts)})" if len(parts) > 1 else ""
        yield {
            "TalkLogKey__c": talklog_part_key(draft.key, number),
            "Name": f"LINE WORKS {first:%Y-%m-%d %H:%M}{suffix}",
            "Transcript__c": text,
            "RoomId__c": draft.room.room_id,
            "RoomType__c": ROOM_TYPE_LABELS.get(draft.room.room_type, ("Group",))[0],
            "WindowStart__c": _iso(draft.window.start),
            "WindowEnd__c": _iso(draft.window.end),
            "MessageCount__c": len(draft.lines),
            "Part__c": number,
            "LineWorks__r.LinkKey__c": draft.link.link_key,
            **draft.customer.parent_lookups(),
        }


def task_rows(
    draft: TalkLogDraft, settings: TalkLogSettings, text: str | None = None
) -> Iterator[dict[str, Any]]:
    """`LINE WORKSログ` Task rows, keyed by `LineWorksKey__c`, per the Task-copy setting;
    `text` is the rendered transcript when the caller has it (`render_draft`)."""
    if settings.task_copy is TaskCopy.OFF:
        return
    if settings.task_copy is TaskCopy.FULL:
        parts = transcript_parts(draft, settings, TASK_DESCRIPTION_LIMIT, text)
    else:
        parts = [f"{len(draft.lines)}件のメッセージ (TalkLog {draft.key}|1)"]
    who_id, what_id = draft.customer.task_parents()
    for number, description in enumerate(parts, start=1):
        suffix = f" ({number}/{len(parts)})" if len(parts) > 1 else ""
        yield {
            "LineWorksKey__c": task_part_key(draft.key, number),
            "Subject": TALKLOG_SUBJECT + suffix,
            "Description": description,
            "Status": "Completed",
            "ActivityDate": draft.window.day(settings.timezone).isoformat(),
            "OwnerId": draft.owner_id or UNCHANGED,  # unknown staff user: the default owner
            "WhoId": who_id,
            "WhatId": what_id,
            "LineWorksRoomId__c": draft.room.room_id,
            "TalkLogKey__c": talklog_part_key(draft.key, 1),
            "LineWorksKind__c": "TalkLog",
        }


def _iso(moment) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")
