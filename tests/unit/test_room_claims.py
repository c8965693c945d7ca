"""`room_claims` (per recipient step, by bisection) gives the pairs the per-message rule gives."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from talklog.extract import LinkInForce, RoomContext, Span
from talklog.talklogs import room_claims, talklog_key
from talklog.transcripts import TalkLine

from .test_talklogs import PLACED, SATO_SF, WINDOW, YAMADA_SF

_MINUTES = st.integers(min_value=-10, max_value=70)
_SPAN = st.tuples(_MINUTES, st.one_of(st.none(), st.integers(min_value=0, max_value=40)))


def _at(minute: int, second: int = 0) -> dt.datetime:
    return WINDOW.start + dt.timedelta(minutes=minute, seconds=second)


def _spans(pairs: list[tuple[int, int | None]]) -> list[Span]:
    return [Span(_at(a), None if b is None else _at(a + b + 1)) for a, b in pairs]


def _per_message(room: RoomContext, lines: list[TalkLine]) -> set[tuple[int, str, str]]:
    """The rule, message by message: every link in force at the moment, once per customer."""
    pairs = set()
    for line in lines:
        for found in room.recipients(line.sent_at):
            record = PLACED[found.target_id].record_id
            pairs.add((line.message_id, found.target_id, talklog_key("room-1", WINDOW, record)))
    return pairs


@settings(max_examples=200, deadline=None)
@given(
    periods=st.lists(st.lists(_SPAN, max_size=3), min_size=1, max_size=4),
    customer_spans=st.lists(_SPAN, max_size=3),
    staff_spans=st.lists(_SPAN, max_size=3),
    seconds=st.lists(st.integers(min_value=0, max_value=3_600), max_size=40),
)
def test_room_claims_equal_the_per_message_recipients(
    periods, customer_spans, staff_spans, seconds
):
    room = RoomContext("room-1", "group", None)
    room.line_members["c1"] = _spans(customer_spans)
    room.lw_members["s1"] = _spans(staff_spans)
    targets = (YAMADA_SF, SATO_SF)
    room.links = [
        LinkInForce(f"link-{n}", "s1", "c1", "lead", targets[n % 2], tuple(_spans(spans)))
        for n, spans in enumerate(periods)
    ]
    lines = [
        TalkLine(n, _at(0, second), "line", "山田", "text", "x")
        for n, second in enumerate(sorted(seconds), start=1)
    ]
    claims = room_claims(room, lines, PLACED, WINDOW)
    found = [pair for claim in claims for pair in claim.pairs()]
    assert all(claim.message_ids for claim in claims)
    assert len(found) == len(set(found))
    assert set(found) == _per_message(room, lines)
