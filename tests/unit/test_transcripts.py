"""Transcript rendering and splitting."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talklog.transcripts import (
    TALKLOG_LIMIT,
    TASK_DESCRIPTION_LIMIT,
    UNREADABLE_SENDER_NAME,
    UNREADABLE_TEXT,
    UNREADABLE_TIME,
    UNRENDERABLE,
    TalkLine,
    join_parts,
    message_content,
    render_line,
    render_lines,
    render_transcript,
    split_transcript,
    utf16_len,
)

TOKYO = ZoneInfo("Asia/Tokyo")
UTC = dt.UTC


def line(kind="line", name="山田 太郎", mtype="text", text="こんにちは", **kw) -> TalkLine:
    sent = kw.pop("sent_at", dt.datetime(2026, 1, 8, 15, 5, tzinfo=UTC))
    return TalkLine(1, sent, kind, name, mtype, text, **kw)


def test_line_has_local_time_speaker_tag_name_and_content():
    assert render_line(line(), TOKYO) == "2026-01-09 00:05 [LINE] 山田 太郎: こんにちは"
    assert render_line(line(kind="lw", name="鈴木"), TOKYO).startswith(
        "2026-01-09 00:05 [LW] 鈴木:"
    )


@pytest.mark.parametrize(
    ("mtype", "kw", "expected"),
    [
        ("image", {"file_name": "photo.jpg", "file_size": 2048}, "[画像] photo.jpg / 2.0 KB"),
        ("file", {"file_name": "見積書.pdf", "file_size": 10}, "[ファイル] 見積書.pdf / 10 B"),
        ("sticker", {}, "[スタンプ]"),
        ("location", {"text": "東京都千代田区"}, "[位置情報] 東京都千代田区"),
        ("audio", {"file_name": "voice.m4a"}, "[音声] voice.m4a"),
        ("video", {"file_name": "clip.mp4"}, "[動画] clip.mp4"),
        ("poll", {}, "[未対応のメッセージ種別: poll]"),
    ],
)
def test_non_text_messages_become_readable_placeholders(mtype, kw, expected):
    kw.setdefault("text", None)
    assert message_content(line(mtype=mtype, **kw)) == expected


def test_multiline_messages_are_indented_and_control_characters_dropped():
    rendered = render_line(line(text="一行目\r\n二行目\x00\x1b"), TOKYO)
    assert rendered.endswith("一行目\n    二行目")


def test_transcript_is_in_time_order_after_its_header():
    late = line(text="later", sent_at=dt.datetime(2026, 1, 8, 15, 30, tzinfo=UTC))
    early = line(text="earlier", sent_at=dt.datetime(2026, 1, 8, 15, 1, tzinfo=UTC))
    text = render_transcript(["header"], [late, early], TOKYO)
    assert text.splitlines() == [
        "header",
        "2026-01-09 00:01 [LINE] 山田 太郎: earlier",
        "2026-01-09 00:30 [LINE] 山田 太郎: later",
    ]


def test_utf16_length_counts_emoji_twice():
    assert utf16_len("a😀") == 3


def test_split_prefers_line_boundaries():
    text = "\n".join(["あ" * 10] * 5)
    parts = split_transcript(text, 25)
    assert all(part.endswith("\n") for part in parts[:-1])
    assert join_parts(parts) == text


def test_split_of_a_200k_message_respects_the_task_limit():
    text = "x" * 200_000
    parts = split_transcript(text, TASK_DESCRIPTION_LIMIT)
    assert len(parts) == 7 and all(utf16_len(p) <= TASK_DESCRIPTION_LIMIT for p in parts)


def test_a_message_longer_than_a_part_fills_the_part_it_starts_in():
    header = "LINE WORKS トーク: room (1:1)\n期間: 2026-01-09 00:00 – 23:59 (Asia/Tokyo)\n"
    text = header + "2026-01-09 10:00 [LINE] 山田: " + "あ" * 200_000
    parts = split_transcript(text, TALKLOG_LIMIT)
    assert len(parts) == -(-utf16_len(text) // TALKLOG_LIMIT) == 2  # no header-only part
    assert join_parts(parts) == text


def test_split_never_cuts_a_surrogate_pair_or_a_combining_sequence():
    text = "a" * 9 + "😀" + "e\u0301" * 5
    for limit in range(2, 14):
        parts = split_transcript(text, limit)
        assert join_parts(parts) == text
        for part in parts:
            assert utf16_len(part) <= limit
            assert not part.startswith("\u0301")


@settings(max_examples=200, deadline=None)
@given(text=st.text(min_size=0, max_size=400), limit=st.integers(min_value=2, max_value=60))
def test_split_parts_join_back_and_fit(text, limit):
    parts = split_transcript(text, limit)
    assert join_parts(parts) == text
    assert all(utf16_len(part) <= limit for part in parts)
    assert all(parts) or parts == [""]


# Every line break str.splitlines() knows, each alone and in a forged staff line.
SEPARATORS = {
    "LF": "\n",
    "CR": "\r",
    "CRLF": "\r\n",
    "VT": "\x0b",
    "FF": "\x0c",
    "FS": "\x1c",
    "GS": "\x1d",
    "RS": "\x1e",
    "NEL": "\x85",
    "LINE SEPARATOR": "\u2028",
    "PARAGRAPH SEPARATOR": "\u2029",
}
FORGED = "2026-01-09 00:06 [LW] 鈴木: 偽の返信"


@pytest.mark.parametrize("separator", SEPARATORS.values(), ids=SEPARATORS.keys())
def test_every_line_break_in_a_message_is_an_indented_continuation(separator):
    rendered = render_line(line(text=f"一行目{separator}{FORGED}"), TOKYO)
    assert rendered.splitlines() == ["2026-01-09 00:05 [LINE] 山田 太郎: 一行目", f"    {FORGED}"]
    assert rendered == render_line(line(text=f"一行目\n{FORGED}"), TOKYO)


@pytest.mark.parametrize("separator", SEPARATORS.values(), ids=SEPARATORS.keys())
@pytest.mark.parametrize("kind", ["line", "lw"])
def test_a_display_name_never_breaks_the_line(separator, kind):
    rendered = render_line(line(kind=kind, name=f"山田{separator}{FORGED}", text="本文"), TOKYO)
    assert len(rendered.splitlines()) == 1
    assert rendered.endswith(f"山田 {FORGED}: 本文")


@pytest.mark.parametrize("separator", SEPARATORS.values(), ids=SEPARATORS.keys())
def test_header_lines_never_break(separator):
    text = render_transcript([f"LINE WORKS トーク: 部屋{separator}{FORGED}"], [line()], TOKYO)
    assert len(text.splitlines()) == 2


@pytest.mark.parametrize("separator", SEPARATORS.values(), ids=SEPARATORS.keys())
def test_line_breaks_in_file_names_and_types_are_continuations_too(separator):
    content = message_content(
        line(mtype=f"poll{separator}x", text=None, file_name=f"a{separator}b")
    )
    assert content == "[未対応のメッセージ種別: poll\nx] a\nb"


def test_lines_rendered_once_make_the_same_transcript():
    lines = [line(text="a"), line(text="b", sent_at=dt.datetime(2026, 1, 8, 16, tzinfo=UTC))]
    lines[1] = lines[1]._replace(message_id=2)
    rendered, refused = render_lines(lines, TOKYO)
    assert refused == []
    assert render_transcript(["h"], lines, TOKYO, rendered) == render_transcript(
        ["h"], lines, TOKYO
    )


UNREADABLE = [
    ("text", {"text": "秘密\udcff"}, UNREADABLE_TEXT),
    ("file name", {"mtype": "file", "text": None, "file_name": "\udcc0.pdf"}, UNREADABLE_TEXT),
    ("message type", {"mtype": "poll\udcff"}, UNREADABLE_TEXT),
    ("display name", {"name": "山田\udc80"}, UNREADABLE_SENDER_NAME),
    ("time", {"sent_at": None}, UNREADABLE_TIME),
    ("text as bytes", {"text": b"\xe7\xa7\x98"}, UNRENDERABLE),
    ("name as a number", {"name": 42}, UNRENDERABLE),
    ("file size as text", {"mtype": "file", "file_name": "a", "file_size": "big"}, UNRENDERABLE),
]


@pytest.mark.parametrize(("field", "values", "code"), UNREADABLE, ids=[u[0] for u in UNREADABLE])
def test_a_line_that_cannot_be_rendered_is_set_aside_with_a_reason(field, values, code):
    good = line(text="読める")
    bad = line(**values)._replace(message_id=2)
    rendered, refused = render_lines([good, bad], TOKYO)
    assert list(rendered) == [1]
    assert [(item.line, item.reason_code) for item in refused] == [(bad, code)]
    assert refused[0].reason.isascii()  # quotes none of the line's values
