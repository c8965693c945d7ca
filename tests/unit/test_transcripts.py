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
    TalkLine,
    join_parts,
    message_content,
    render_line,
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
