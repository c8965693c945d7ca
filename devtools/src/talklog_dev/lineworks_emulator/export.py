"""Talk rows rendered as the Monitoring API's CSV, in ja_JP or en_US."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator
from zoneinfo import ZoneInfo

from talklog_dev.synth.lineworks import Person, TalkRow

HEADERS = {
    "ja_JP": ("日時", "送信者", "受信者", "チャンネルID", "トーク"),
    "en_US": ("Date", "Sender", "Receiver", "Channel ID", "Talk"),  # not documented
}
MARKERS = {
    "ja_JP": {"image": "(写真)", "file": "(file)", "location": "(位置情報)",
              "audio": "(音声)", "video": "(動画)"},
    "en_US": {"image": "(Photo)", "file": "(file)", "location": "(Location)",
              "audio": "(Voice)", "video": "(Video)"},
}  # fmt: skip
STICKER_URL = (
    "https://stickershop.line-scdn.net/stickershop/v1/sticker/{sticker}/android/sticker.png"
)
ZONE = ZoneInfo("Asia/Tokyo")


def label(person: Person) -> str:
    """Staff as ``name(account@domain)``, customers by name, bots as ``[Bot]name``."""
    return f"{person.name}({person.email})" if person.email else person.name


def talk(row: TalkRow, language: str) -> str:
    """The トーク cell: text, a marker plus a file name, or a sticker's URL."""
    local = row.sent_at.astimezone(ZONE)
    markers = MARKERS[language]
    if row.message_type == "text":
        return row.text or ""
    if row.message_type == "sticker":
        sticker = (row.text or "0/0").rsplit("/", 1)[-1]
        return STICKER_URL.format(sticker=sticker)
    if row.message_type == "image":
        return f"{markers['image']} image_{local:%Y%m%d_%H.%M.%S}.png"
    if row.message_type == "location":
        return f"{markers['location']} {row.text or ''}".rstrip()
    return f"{markers[row.message_type]} {row.file_name or ''}".rstrip()


def in_period(rows: Iterable[TalkRow], start: dt.datetime, end: dt.datetime, bots: str):
    """Rows with start <= time <= end (seconds), bot posts included, excluded or only."""
    first, last = start.replace(microsecond=0), end.replace(microsecond=0)
    for row in rows:
        at = row.sent_at.replace(microsecond=0)
        if at > last:
            return
        if at < first or (bots == "exclude" and row.is_bot) or (bots == "only" and not row.is_bot):
            continue
        yield row


def lines(rows: Iterable[TalkRow], language: str, header: str | None = None) -> Iterator[bytes]:
    """The file, one encoded record at a time (CRLF line ends, UTF-8 with BOM)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header is None:
        writer.writerow(HEADERS[language])
    else:
        buffer.write(header + "\r\n")
    yield ("\ufeff" + buffer.getvalue()).encode()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        receivers = ", ".join(label(person) for person in row.receivers)
        local = row.sent_at.astimezone(ZONE).isoformat(timespec="seconds")
        writer.writerow((local, label(row.sender), receivers, row.channel_id, talk(row, language)))
        yield buffer.getvalue().encode()
