"""The LINE WORKS message-content export: a CSV file read row by row, with line numbers.

LINE WORKS admins download talk contents as CSV from the admin console or the Monitoring API
(`日時,送信者,受信者,チャンネルID,トーク`, UTF-8 with or without BOM, quoted multi-line talks,
no message id). The file is streamed with the `csv` module:

- 日時: a local time in the import's time zone (default Asia/Tokyo) unless it carries an
  offset; `2026/01/09 10:00:00`, `2026-01-09 10:00`, `2026-01-09T10:00:00+09:00` are accepted.
- 送信者 / 受信者: a party is `display name(account id)` or a bare display name; 受信者 may list
  several, separated by `,` or `、`.
- チャンネルID: the room id.
- トーク: text; a whole talk like `[スタンプ]`, `[画像] photo.jpg`, `[File] 見積書.pdf` becomes
  a sticker, image, file, ... message (the detail as file name, or as text for stickers and
  locations).

A row that cannot be read becomes a `Rejection` with its physical line numbers and a reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from talklog.imports.message_keys import Occurrences, message_content, message_key
from talklog.imports.summary import MAX_LISTED_REJECTIONS, Rejection
from talklog.store.models import MessageType
from talklog.windows import DEFAULT_TIMEZONE, zone

csv.field_size_limit(16 * 1024 * 1024)  # one talk may be longer than csv's 128 KiB default

_COLUMNS = {
    "time": ("日時", "date", "datetime", "date time", "time", "sent at"),
    "sender": ("送信者", "sender", "from"),
    "receivers": ("受信者", "receiver", "receivers", "recipient", "recipients", "to"),
    "channel": ("チャンネルid", "channel id", "channelid", "channel", "room id"),
    "talk": ("トーク", "トーク内容", "talk", "message", "content", "contents"),
}
_TIME = re.compile(
    r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)
_PARTY = re.compile(r"(?P<name>.*?)\s*[(（<＜](?P<id>[A-Za-z0-9._:@+-]+)[)）>＞]")
_PARTY_SEPARATORS = re.compile(r"[,、]")
_PLACEHOLDER = re.compile(
    r"[\[【(（](?P<label>[^\]】)）\n]{1,20})[\]】)）][ \t]*(?P<detail>.*)", re.S
)
_PLACEHOLDER_TYPES = {
    MessageType.IMAGE: ("画像", "写真", "image", "photo"),
    MessageType.FILE: ("ファイル", "file"),
    MessageType.STICKER: ("スタンプ", "sticker"),
    MessageType.LOCATION: ("位置情報", "location"),
    MessageType.AUDIO: ("音声", "ボイスメッセージ", "audio", "voice"),
    MessageType.VIDEO: ("動画", "video"),
}
_LABELS = {label: kind for kind, labels in _PLACEHOLDER_TYPES.items() for label in labels}
_DETAIL_IS_TEXT = {MessageType.STICKER, MessageType.LOCATION}
_DOWNLOAD_ERROR = "downloadlogs error"
_MAX_ID = 64  # rooms.id, lw_users.id, line_users.id


class ImportFileError(Exception):
    """The file as a whole cannot be imported (missing, not UTF-8, not an export)."""


@dataclass(frozen=True, slots=True)
class Party:
    """A sender or receiver as the export names it."""

    name: str
    account_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}({self.account_id})" if self.account_id else self.name


@dataclass(frozen=True, slots=True)
class ExportRow:
    """One message of the export, parsed; `line` is its first physical line in the file."""

    line: int
    channel_id: str
    sent_at: dt.datetime
    sender: Party
    receivers: tuple[Party, ...]
    message_type: str
    text: str | None
    file_name: str | None
    message_key: str


def parse_time(value: str, zone: ZoneInfo) -> dt.datetime:
    """A timezone-aware time; a time without offset is local to `zone`."""
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"unreadable time {value.strip()[:40]!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0").ljust(6, "0"))
    parts = (int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
    tz = zone if offset is None else _offset(offset)
    try:
        return dt.datetime(*parts, tzinfo=tz)
    except ValueError as error:
        raise ValueError(f"unreadable time {value.strip()[:40]!r} ({error})") from None


def _offset(text: str) -> dt.tzinfo:
    if text == "Z":
        return dt.UTC
    digits = text[1:].replace(":", "")
    delta = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return dt.timezone(-delta if text[0] == "-" else delta)


def parse_party(value: str) -> Party | None:
    """`name(account id)` or a bare name; None when empty."""
    text = " ".join(value.split())
    if not text:
        return None
    match = _PARTY.fullmatch(text)
    if match is None:
        return Party(text)
    return Party(match["name"] or match["id"], match["id"])


def parse_parties(value: str) -> tuple[Party, ...]:
    """The parties of a 受信者 cell (several in a group talk)."""
    parties = (parse_party(part) for part in _PARTY_SEPARATORS.split(value))
    return tuple(party for party in parties if party is not None)


def classify_talk(talk: str) -> tuple[str, str | None, str | None]:
    """(message type, text, file name): placeholders like `[画像] a.jpg` become non-text."""
    match = _PLACEHOLDER.fullmatch(talk.strip())
    kind = _LABELS.get(match["label"].strip().lower()) if match else None
    if match is None or kind is None:
        return MessageType.TEXT.value, talk, None
    detail = match["detail"].strip() or None
    if kind in _DETAIL_IS_TEXT or (detail and "\n" in detail):
        return kind.value, detail, None
    return kind.value, None, detail[:512] if detail else None


def _column_positions(header: Sequence[str]) -> dict[str, int]:
    names = [cell.strip().lstrip("\ufeff").lower() for cell in header]
    positions = {}
    for column, aliases in _COLUMNS.items():
        found = [i for i, name in enumerate(names) if name in aliases]
        if not found:
            raise ImportFileError(
                "not a LINE WORKS message export: expected the columns"
                f" 日時,送信者,受信者,チャンネルID,トーク, found {','.join(header)[:200]!r}"
            )
        positions[column] = found[0]
    return positions


def export_zone(name: str) -> ZoneInfo:
    """The time zone of an export's times without an offset; unknown names refuse the file."""
    try:
        return zone(name)
    except ValueError as error:
        raise ImportFileError(str(error)) from error


class ExportReader:
    """Streams an export: `ExportRow`s and `Rejection`s in file order, with line numbers."""

    def __init__(self, stream: TextIO, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.reader = csv.reader(stream)
        self.zone = export_zone(timezone)
        self.occurrences = Occurrences()
        self.columns: dict[str, int] = {}
        self.width = 0
        self.warnings: list[str] = []
        self.download_error = False

    def __iter__(self) -> Iterator[ExportRow | Rejection]:
        for line, end_line, cells in self._records():
            if isinstance(cells, csv.Error):
                yield Rejection(line, f"unreadable CSV ({cells})", end_line)
            elif not self.columns:
                self.columns, self.width = _column_positions(cells), len(cells)
            else:
                yield self._row(line, end_line, cells)
        if not self.columns:
            raise ImportFileError("not a LINE WORKS message export: the file has no header")

    def _records(self) -> Iterator[tuple[int, int, list[str] | csv.Error]]:
        """(first line, last line, cells or the CSV error) of each non-blank record."""
        while True:
            start = self.reader.line_num + 1
            try:
                cells = next(self.reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield start, self.reader.line_num, error
                continue
            except UnicodeDecodeError as error:
                raise ImportFileError(
                    f"after line {start - 1}: the file is not UTF-8 ({error.reason});"
                    " export it as UTF-8"
                ) from error
            if any(cell.strip() for cell in cells):
                yield start, self.reader.line_num, cells

    def _row(self, line: int, end_line: int, cells: list[str]) -> ExportRow | Rejection:
        try:
            return self._parse(line, cells)
        except ValueError as error:
            return Rejection(line, str(error), end_line)

    def _parse(self, line: int, cells: list[str]) -> ExportRow:
        if cells[0].strip().lower().startswith(_DOWNLOAD_ERROR):
            self.download_error = True
            raise ValueError("the export reports a download error here: download the period again")
        if len(cells) != self.width:
            raise ValueError(f"expected {self.width} columns, found {len(cells)}")
        get = {name: cells[i] for name, i in self.columns.items()}
        channel = get["channel"].strip()
        if not channel:
            raise ValueError("empty channel id")
        sent_at = parse_time(get["time"], self.zone)
        sender = parse_party(get["sender"])
        if sender is None:
            raise ValueError("empty sender")
        receivers = parse_parties(get["receivers"])
        _check_ids(channel, sender, *receivers)
        talk = get["talk"].replace("\r\n", "\n").replace("\r", "\n")
        message_type, text, file_name = classify_talk(talk)
        key = self._key(line, channel, sent_at, sender, talk)
        return ExportRow(
            line, channel, sent_at, sender, receivers, message_type, text, file_name, key
        )

    def _key(self, line: int, channel: str, sent_at: dt.datetime, sender: Party, talk: str) -> str:
        content = message_content(channel, sent_at, sender.label, talk)
        occurrence, exact = self.occurrences.next(sent_at, hashlib.sha256(content).digest())
        if not exact and len(self.warnings) < MAX_LISTED_REJECTIONS:
            self.warnings.append(
                f"line {line}: far out of time order; an identical message of the same second"
                " may be taken for a duplicate"
            )
        return message_key(content, occurrence)


def _check_ids(channel: str, *parties: Party) -> None:
    if len(channel) > _MAX_ID:
        raise ValueError(f"channel id longer than {_MAX_ID} characters")
    for party in parties:
        if party.account_id and len(party.account_id) > _MAX_ID:
            raise ValueError(f"account id longer than {_MAX_ID} characters")


def read_export(
    path: str | Path, timezone: str = DEFAULT_TIMEZONE
) -> Iterator[ExportRow | Rejection]:
    """Parse an export file (for inspection and tests); see `import_export` to store it."""
    with open_export(path) as stream:
        yield from ExportReader(stream, timezone)


def open_export(path: str | Path) -> TextIO:
    """The export file as text (a BOM is dropped); `ImportFileError` when it is missing."""
    file = Path(path)
    if not file.is_file():
        raise ImportFileError(f"export file not found: {file}")
    return file.open(encoding="utf-8-sig", newline="")
