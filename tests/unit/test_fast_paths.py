"""The fast paths of issue 8 give exactly what the straightforward code gave."""

from __future__ import annotations

import bisect
import datetime as dt
import unicodedata
from zoneinfo import ZoneInfo

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talklog.extract import LinkInForce, RoomContext, Span, window_lines
from talklog.reader import ReaderProcessError, window_lines_in_child
from talklog.store import make_engine, make_session_factory
from talklog.talklogs import (
    TalkLogSettings,
    TaskCopy,
    render_draft,
    room_claims,
    room_drafts,
    talklog_rows,
    task_rows,
)
from talklog.transcripts import (
    TalkLine,
    _clean,
    _safe_cut,
    render_line,
    render_lines,
    split_transcript,
    utf16_len,
)
from talklog.windows import TalkWindow
from talklog_dev.synth import GeneratorConfig, generate
from tests.integration.talklog_world import window_messages

from .test_talklogs import PLACED, WINDOW, YAMADA_SF, lines_from, link, room

TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(
        "\r\n\t\x00\x0b\x0c\x1c\x1e\x1f\x7f\x85\x9f\u2028\u2029\u0301\u200d\ufe0f😀山"
    )
)

TOKYO = ZoneInfo("Asia/Tokyo")


def _clean_by_category(text: str) -> str:
    """Each line break str.splitlines() finds as a newline; other Cc characters dropped."""
    bodies = [(line, line.splitlines()[0]) for line in text.splitlines(keepends=True)]
    text = "".join(body if body == line else body + "\n" for line, body in bodies)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")


def _cut_by_walking(line: str, limit: int) -> int:
    hard, units = 0, 0
    for ch in line:
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            break
        hard += 1
    cut = hard
    while 0 < cut < len(line) and (
        unicodedata.combining(line[cut]) != 0 or line[cut] in "\u200d\ufe0e\ufe0f"
    ):
        cut -= 1
    return cut or hard


@settings(max_examples=300)
@given(TEXT)
def test_clean_drops_exactly_the_control_characters(text):
    assert _clean(text) == _clean_by_category(text)


@settings(max_examples=300)
@given(TEXT)
def test_utf16_len_counts_code_units(text):
    assert utf16_len(text) == len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


@settings(max_examples=300)
@given(TEXT, st.integers(min_value=2, max_value=40))
def test_safe_cut_matches_the_character_walk(text, limit):
    if utf16_len(text) > limit:
        assert _safe_cut(text, limit) == _cut_by_walking(text, limit)


def _split_line_by_line(text: str, limit: int) -> list[str]:
    """`split_transcript` as it was: a line at a time, each line measured."""
    if utf16_len(text) <= limit:
        return [text]
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        line_units = utf16_len(line)
        if current and size + line_units > limit and line_units <= limit:
            parts.append("".join(current))
            current, size = [], 0
        while size + line_units > limit:
            cut = _safe_cut(line, limit - size, forced=not current)
            if cut:
                current.append(line[:cut])
                line = line[cut:]
                line_units = utf16_len(line)
            parts.append("".join(current))
            current, size = [], 0
        if line:
            current.append(line)
            size += line_units
    if current:
        parts.append("".join(current))
    return parts


_LINE = TEXT | st.text(alphabet=st.sampled_from("a山😀\u0301\u200d"), min_size=8, max_size=60)


@settings(max_examples=500)
@given(st.lists(_LINE, max_size=10).map("\n".join), st.integers(min_value=2, max_value=40))
def test_split_by_line_ends_matches_the_line_by_line_split(text, limit):
    assert split_transcript(text, limit) == _split_line_by_line(text, limit)


@settings(max_examples=200)
@given(TEXT, TEXT)
def test_rendered_line_matches_the_uncached_name_and_content(name, text):
    line = TalkLine(1, WINDOW.start, "line", name, "text", text)
    stamp = WINDOW.start.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
    speaker = _clean(name).replace("\n", " ")
    content = _clean(text).replace("\n", "\n    ")
    assert render_line(line, TOKYO) == f"{stamp} [LINE] {speaker}: {content}"


def test_long_line_split_is_unchanged():
    text = ("あ" * 50_000 + "\u0301") * 3 + "😀" * 40_000
    parts = split_transcript(text, 31_968)
    assert "".join(parts) == text
    assert all(utf16_len(part) <= 31_968 for part in parts)


def test_rows_from_a_rendered_transcript_equal_rows_rendered_per_field():
    talk = [("line", "山田", "長い" * 40_000), ("lw", "鈴木", "はい")]
    context = room("one_to_one", ["s1"], ["c1"], [link("s1", "c1", YAMADA_SF)])
    lines = lines_from(talk)
    claims = room_claims(context, lines, PLACED, WINDOW)
    (draft,), _ = room_drafts(context, lines, claims, PLACED, {}, WINDOW)
    for copy in TaskCopy:
        options = TalkLogSettings(task_copy=copy)
        text = render_draft(draft, options)
        assert list(talklog_rows(draft, options, text)) == list(talklog_rows(draft, options))
        assert list(task_rows(draft, options, text)) == list(task_rows(draft, options))
    assert len(list(task_rows(draft, TalkLogSettings(), text))) > 2


_MINUTES = st.integers(min_value=0, max_value=120)
_SPAN = st.tuples(_MINUTES, st.one_of(st.none(), _MINUTES))


def _spans(pairs):
    return [Span(at(a), None if b is None else at(a + b + 1)) for a, b in pairs]


def at(minute: int):
    return WINDOW.start + dt.timedelta(minutes=minute)


@settings(max_examples=200, deadline=None)
@given(
    periods=st.lists(st.lists(_SPAN, min_size=0, max_size=3), min_size=1, max_size=3),
    customer_spans=st.lists(_SPAN, min_size=0, max_size=3),
    staff_spans=st.lists(_SPAN, min_size=0, max_size=3),
    moments=st.lists(st.integers(min_value=-5, max_value=250), min_size=1, max_size=30),
)
def test_recipient_steps_give_the_recipients_at_every_moment(
    periods, customer_spans, staff_spans, moments
):
    context = RoomContext("room-1", "group", None)
    context.line_members["c1"] = _spans(customer_spans)
    context.lw_members["s1"] = _spans(staff_spans)
    context.links = [
        LinkInForce(f"link-{n}", "s1", "c1", "lead", f"00Q{n:015d}", tuple(_spans(spans)))
        for n, spans in enumerate(periods)
    ]
    bounds, steps = context.recipient_steps()
    for minute in moments:
        moment = at(minute) + dt.timedelta(seconds=minute % 7)
        step = bisect.bisect_right(bounds, moment) - 1
        assert (steps[step] if step >= 0 else []) == context.recipients(moment)


def _lines_by_orm(session, window: TalkWindow) -> list[tuple[str, list[TalkLine]]]:
    """`window_lines` the straightforward way: every row through the ORM types, then rooms
    in id order and each room's lines in time order."""
    rooms: dict[str, list[TalkLine]] = {}
    for room_id, line in window_messages(session, window):
        rooms.setdefault(room_id, []).append(line)
    return [
        (room_id, sorted(lines, key=lambda line: (line.sent_at, line.message_id)))
        for room_id, lines in sorted(rooms.items())
    ]


@pytest.mark.parametrize("chunk_rows", [1, 7, 20_000])
def test_window_lines_equal_the_lines_read_row_by_row(store_url, chunk_rows):
    config = GeneratorConfig(seed=3, n_rooms=6, messages=150)
    generate(store_url, config, migrate=True)
    start, end = config.window()
    with make_session_factory(store_url)() as session:
        for window in (TalkWindow(start, end), TalkWindow(start + (end - start) / 3, end)):
            expected = _lines_by_orm(session, window)
            assert list(window_lines(session, window, chunk_rows)) == expected
            assert len(expected) > 1


def test_window_lines_read_by_the_reader_process_match_the_lines_read_here(store_url):
    config = GeneratorConfig(seed=4, n_rooms=8, messages=400)
    generate(store_url, config, migrate=True)
    window = TalkWindow(*config.window())
    url = make_engine(store_url).url
    with make_session_factory(store_url)() as session:
        expected = list(window_lines(session, window))
    with window_lines_in_child(url, window, chunk_rows=7) as rooms:
        assert list(rooms) == [(room_id, lines, None) for room_id, lines in expected]
    with window_lines_in_child(url, window, zone="Asia/Tokyo", render_when_waiting=0) as rooms:
        # a room rendered there comes with its lines' ids and times: its rendering has the rest
        rendered = [
            (room_id, [_ids_and_time(line) for line in lines], render_lines(lines, TOKYO)[0])
            for room_id, lines in expected
        ]
        assert list(rooms) == rendered
    assert len(expected) > 1


def _ids_and_time(line: TalkLine) -> TalkLine:
    return TalkLine(line.message_id, line.sent_at, *[None] * (len(TalkLine._fields) - 2))


def test_a_reader_process_that_fails_says_why_and_is_stopped(tmp_path):
    url = make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'store.db'}").url
    window = TalkWindow(*GeneratorConfig(seed=4).window())
    before = _children()
    failure = "OperationalError: unable to open database"
    with (
        pytest.raises(ReaderProcessError, match=failure),
        window_lines_in_child(url, window) as rooms,
    ):
        next(rooms)
    assert _children() == before


def test_a_reader_process_left_early_is_stopped(sqlite_url):
    config = GeneratorConfig(seed=4, n_rooms=8, messages=400)
    generate(sqlite_url, config, migrate=True)
    before = _children()
    with window_lines_in_child(make_engine(sqlite_url).url, TalkWindow(*config.window())) as rooms:
        first_room = next(rooms)
        assert len(_children() - before) == 1  # the reader
    assert first_room[1]
    assert _children() == before  # the reader was killed and reaped, not left reading


def _children() -> set[int]:
    """Process ids of this process's children (other tests' servers among them)."""
    return {child.pid for child in psutil.Process().children()}


def test_reader_batches_go_marshalled_when_plain_and_as_they_are_otherwise():
    from talklog.reader import _packed, _rooms

    plain = [
        ("room-1", [(1,), ("2026-01-09 00:00:00.000000",), ("line",), ("山田",), ("text",),
                    ("a\udc80",), (None,), (3,)], None)
    ]  # fmt: skip
    assert isinstance(_packed(plain), bytes)
    assert _rooms(_packed(plain)) == plain
    driver_types = [("room-1", [(1,), (dt.datetime(2026, 1, 9, tzinfo=dt.UTC),)], None)]
    assert _packed(driver_types) is driver_types
    assert _rooms(driver_types) is driver_types


@pytest.mark.parametrize(
    "times",
    [
        ["2026-01-09 00:00:00.000000", "2026-01-09 23:59:59", "2026-01-10 00:00:00.123456"],
        ["2026-01-09 00:00:00", "2026-01-09T09:00:00+09:00", "2026-01-09 01:00:00"],  # other ISO
        ["2026-01-09 00:00:00", dt.datetime(2026, 1, 9, 1, tzinfo=dt.UTC)],  # a driver's value
        ["2026-01-09 00:00:00", "2026-13-09 00:00:00", "not a time"],  # unreadable: None
        ["2026-01-09 00:00:00", None],
    ],
)
def test_lines_built_in_c_equal_the_lines_built_row_by_row(times):
    from talklog.extract import talk_lines
    from talklog.store.models import utc_from_db

    def row_by_row(value):
        try:
            return utc_from_db(value)
        except (TypeError, ValueError):
            return None

    ids = list(range(len(times)))
    columns = [ids, times, ["lw"] * len(times), ["名前"] * len(times), ["text"] * len(times),
               ["本文"] * len(times), [None] * len(times), [None] * len(times)]  # fmt: skip
    lines = talk_lines(columns)
    assert lines == [
        TalkLine(i, row_by_row(t), "lw", "名前", "text", "本文", None, None)
        for i, t in zip(ids, times, strict=True)
    ]
    assert all(type(line) is TalkLine for line in lines)
    assert all(line.sent_at is None or line.sent_at.tzinfo is dt.UTC for line in lines)
