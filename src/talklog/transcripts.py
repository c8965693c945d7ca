"""Readable transcripts: one line per message, non-text messages as placeholders,
split into numbered parts that fit Salesforce's field limits.

Every line break a message holds (CRLF, CR, LF, VT, FF, FS, GS, RS, NEL, U+2028, U+2029)
is rendered the same way, as an indented continuation line, and names and header lines
never break (`line_breaks_as`): no text can start a line that looks like another message.
Lines the store returned but that cannot be rendered are set aside by `render_lines`.

Lengths are counted in UTF-16 code units, as Salesforce counts them (an emoji is two),
so a part that fits here fits there.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from operator import itemgetter
from typing import NamedTuple
from zoneinfo import ZoneInfo

TALKLOG_LIMIT = 131_072  # TalkLog__c.Transcript__c (long text area)
TASK_DESCRIPTION_LIMIT = 32_000  # Task.Description

SPEAKER_TAGS = {"lw": "[LW]", "line": "[LINE]"}
PLACEHOLDERS = {
    "image": "画像",
    "file": "ファイル",
    "sticker": "スタンプ",
    "location": "位置情報",
    "audio": "音声",
    "video": "動画",
}
CONTINUATION_INDENT = "    "
_NEXT_LINE = "\n" + CONTINUATION_INDENT
# What str.splitlines() breaks lines at besides LF: the mandatory breaks of UAX #14 and FS,
# GS, RS (CRLF first). Replaced one by one: a C scan each, faster than a regular expression.
LINE_BREAKS = ("\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
# Unicode category Cc (C0 and C1 controls) without tab and newline; line breaks are
# rendered before this applies.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# What the store's tolerant read (`store.engine.tolerant_text`) makes of bytes that are
# not UTF-8; strict UTF-8 and PostgreSQL never return a lone surrogate.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ASTRAL = re.compile(r"[\U00010000-\U0010ffff]")  # two UTF-16 units each


class TalkLine(NamedTuple):
    """One message as the transcript needs it (a tuple: a window has a million of them)."""

    message_id: int
    sent_at: dt.datetime  # None when the store holds something else (`render_lines`)
    speaker_kind: str  # "lw" or "line"
    speaker_name: str
    message_type: str
    text: str | None = None
    file_name: str | None = None
    file_size: int | None = None


def utf16_len(text: str) -> int:
    """Length as Salesforce counts it: UTF-16 code units."""
    if text.isascii():  # a flag lookup: ASCII is one unit per character
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def message_content(line: TalkLine) -> str:
    """The message's text, or a readable placeholder for a non-text message."""
    if line.message_type == "text":
        text = line.text or ""
        return text if text.isprintable() else _clean(text)  # most texts: no call
    label = PLACEHOLDERS.get(line.message_type)
    if label is None:
        label = f"未対応のメッセージ種別: {_clean(line.message_type)}"
    details = [_clean(part) for part in (line.file_name, line.text) if part]
    if line.file_size is not None and line.file_name:
        details.append(_human_size(line.file_size))
    return f"[{label}]" + (" " + " / ".join(details) if details else "")


def line_breaks_as(text: str, newline: str) -> str:
    """`text` with every line break (LF and `LINE_BREAKS`) as `newline` and the other control
    characters dropped (tab kept): the one way a transcript renders a line break."""
    if text.isprintable():  # one C scan: no control character or separator at all
        return text
    for mark in LINE_BREAKS:
        if mark in text:
            text = text.replace(mark, "\n")
    text = _CONTROL.sub("", text)
    return text if newline == "\n" else text.replace("\n", newline)


def _clean(text: str) -> str:
    """Line breaks as newlines, other control characters dropped."""
    return line_breaks_as(text, "\n")


def one_line(text: str) -> str:
    """`text` on one line: each line break a space (names, header lines)."""
    return line_breaks_as(text, " ")


def render_line(line: TalkLine, zone: ZoneInfo) -> str:
    """`2026-01-09 00:05 [LINE] 山田 太郎: text`, continuation lines indented."""
    stamp = _minute_stamp(int(line.sent_at.timestamp()) // 60, zone)
    tag = SPEAKER_TAGS.get(line.speaker_kind, "[?]")
    content = message_content(line).replace("\n", _NEXT_LINE)
    return f"{stamp} {tag} {_speaker(line.speaker_name)}: {content}"


@functools.lru_cache(maxsize=4096)
def _speaker(name: str) -> str:
    """A speaker's name on one line (a window has a few thousand speakers)."""
    return one_line(name)


@functools.lru_cache(maxsize=4096)
def _minute_stamp(epoch_minute: int, zone: ZoneInfo) -> str:
    """`YYYY-MM-DD HH:MM` of a minute in `zone` (a day of talk has 1,440 of them)."""
    moment = dt.datetime.fromtimestamp(epoch_minute * 60, zone)
    return moment.strftime("%Y-%m-%d %H:%M")


def render_transcript(
    header: Sequence[str],
    lines: Iterable[TalkLine],
    zone: ZoneInfo,
    rendered: Mapping[int, str] | None = None,
) -> str:
    """The whole transcript: header lines (each on one line), then the messages in time
    order; `rendered` holds the lines as `render_lines` rendered them already."""
    ordered = sorted(lines, key=_TIME_ORDER)
    if rendered is None:
        texts = [render_line(line, zone) for line in ordered]
    else:
        texts = [rendered[line.message_id] for line in ordered]
    return "\n".join([*map(one_line, header), *texts])


_TIME_ORDER = itemgetter(1, 0)  # (sent_at, message_id) of a `TalkLine`, in C


class Unreadable(NamedTuple):
    """A line that cannot go into a transcript, and why (`reason` quotes none of it)."""

    line: TalkLine
    reason_code: str
    reason: str


UNREADABLE_TIME = "UNREADABLE_TIME"
UNREADABLE_SENDER_NAME = "UNREADABLE_SENDER_NAME"
UNREADABLE_TEXT = "UNREADABLE_TEXT"
UNRENDERABLE = "UNRENDERABLE"


def render_lines(
    lines: Sequence[TalkLine], zone: ZoneInfo
) -> tuple[dict[int, str], list[Unreadable]]:
    """Each line rendered once (message id -> `render_line`), and the lines that cannot be:
    a value the store could not decode or read (`unreadable`), or one the renderer fails on.

    A room's lines are rendered in one go; only a room with such a line is rendered again
    line by line, so the check costs one UTF-8 encoding of the rendered text.
    """
    try:
        rendered = {line.message_id: render_line(line, zone) for line in lines}
        "".join(rendered.values()).encode()  # refuses lone surrogates (faster than a search)
    except Exception:  # a value the store could not decode, or one no store should return
        return _render_each(lines, zone)
    return rendered, []


def _render_each(
    lines: Sequence[TalkLine], zone: ZoneInfo
) -> tuple[dict[int, str], list[Unreadable]]:
    rendered: dict[int, str] = {}
    refused: list[Unreadable] = []
    for line in lines:
        problem = unreadable(line)
        if problem is None:
            try:
                rendered[line.message_id] = render_line(line, zone)
            except Exception as error:  # the class only: its message may quote the value
                problem = UNRENDERABLE, f"it cannot be rendered ({type(error).__name__})"
        if problem is not None:
            refused.append(Unreadable(line, *problem))
    return rendered, refused


def unreadable(line: TalkLine) -> tuple[str, str] | None:
    """(reason code, reason) when the store could not return one of the line's values."""
    if not isinstance(line.sent_at, dt.datetime):
        return UNREADABLE_TIME, "its time (sent_at) is not a time"
    if is_undecoded(line.speaker_name):
        return UNREADABLE_SENDER_NAME, "the sender's display name is not valid UTF-8"
    if any(map(is_undecoded, (line.text, line.file_name, line.message_type, line.speaker_kind))):
        return UNREADABLE_TEXT, "its text, file name or type is not valid UTF-8"
    return None


def is_undecoded(value: object) -> bool:
    """`value` holds bytes the store could not decode (`store.engine.tolerant_text`)."""
    return isinstance(value, str) and _LONE_SURROGATE.search(value) is not None


def split_transcript(text: str, limit: int) -> list[str]:
    """Split `text` into parts of at most `limit` UTF-16 units.

    Parts break at line ends; a line longer than a part fills the current part and goes on
    in the next ones, cut never inside a surrogate pair or between a character and its
    combining marks. Joining the parts gives `text` back; see `join_parts`.
    """
    if limit < 2:
        raise ValueError("limit must leave room for at least one character")
    units = utf16_len(text)
    if units <= limit:
        return [text]
    lines, ends, unit_ends = _layout(text)
    parts: list[str] = []
    start, start_units, i = 0, 0, 0  # the current part starts at `start`, inside line i
    while (j := bisect_right(unit_ends, start_units + limit, i)) < len(lines):
        # lines i..j-1 end in this part, line j does not
        if j > i and unit_ends[j] - unit_ends[j - 1] <= limit:  # line j fits a part of its own
            end, end_units = ends[j - 1], unit_ends[j - 1]
        else:  # a head of line j (or, with j == i, of what is left of it) fills the part
            head, head_units = (ends[j - 1], unit_ends[j - 1]) if j > i else (start, start_units)
            free = limit - (head_units - start_units)
            cut = _safe_cut(text[head : ends[j]], free, forced=j == i)
            end, end_units = head + cut, head_units + utf16_len(text[head : head + cut])
        parts.append(text[start:end])
        start, start_units, i = end, end_units, j
    parts.append(text[start:])
    return parts


@functools.lru_cache(maxsize=2)
def _layout(text: str) -> tuple[list[str], list[int], list[int]]:
    """`text`'s lines (ends kept) and where each ends, in characters and in UTF-16 units;
    kept for the last texts: a transcript is split once for TalkLog__c, once for its Tasks."""
    lines = text.splitlines(keepends=True)
    ends = list(accumulate(map(len, lines)))
    if utf16_len(text) == len(text):
        return lines, ends, ends  # no surrogate pairs: units are characters
    wide = _ASTRAL.sub("  ", text).splitlines(keepends=True)  # every pair as two characters
    return lines, ends, list(accumulate(map(len, wide)))


def join_parts(parts: Sequence[str]) -> str:
    """Inverse of `split_transcript`."""
    return "".join(parts)


def _safe_cut(line: str, limit: int, *, forced: bool = True) -> int:
    """The largest index <= limit units that cuts neither a pair nor a combining sequence.

    0 when nothing fits that way; with `forced`, a combining sequence longer than `limit`
    itself is cut inside instead (nothing else fits).
    """
    prefix = line[:limit]
    if utf16_len(prefix) == len(prefix):  # no surrogate pairs: `limit` characters fit
        return _back_off_combining(line, len(prefix), forced)
    hard, units = 0, 0
    for ch in line:
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            break
        hard += 1
    return _back_off_combining(line, hard, forced)


def _back_off_combining(line: str, hard: int, forced: bool) -> int:
    cut = hard
    while 0 < cut < len(line) and _joins_previous(line[cut]):
        cut -= 1
    return cut or (hard if forced else 0)


def _joins_previous(ch: str) -> bool:
    return unicodedata.combining(ch) != 0 or ch in "\u200d\ufe0e\ufe0f"
