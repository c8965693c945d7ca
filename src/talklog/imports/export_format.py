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
  a sticker, image, file, ... message (see `classify_talk` for when a marker is one).

The file is read as bytes and decoded line by physical line, so a line that is not UTF-8
rejects exactly its record and the rest of the file goes on. A row that cannot be read
becomes a `Rejection` with its physical line numbers, a reason code and a reason. No reason
and no exception ever quotes the file: they name the line, the column and what was expected.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple, TextIO
from zoneinfo import ZoneInfo

from talklog.imports.summary import Rejection
from talklog.store.models import MessageType
from talklog.windows import DEFAULT_TIMEZONE, zone

csv.field_size_limit(16 * 1024 * 1024)  # one talk may be longer than csv's 128 KiB default

_COLUMNS = {
    "time": ("日時", "date", "datetime", "date time", "time", "sent at"),
    "sender": ("送信者", "sender", "from"),
    "receivers": ("受信者", "receiver", "receivers", "recipient", "recipients", "to"),
    # an older export tool named the room column トークルームID
    "channel": ("チャンネルid", "トークルームid", "channel id", "channelid", "channel", "room id"),
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
_TEXT = MessageType.TEXT.value
_OPENING = re.compile(r"\s*[\[【(（]")  # how every marker starts: most talks are text
_PLACEHOLDER_TYPES = {
    MessageType.IMAGE: ("画像", "写真", "image", "photo"),
    MessageType.FILE: ("ファイル", "file"),
    MessageType.STICKER: ("スタンプ", "sticker"),
    MessageType.LOCATION: ("位置情報", "location"),
    MessageType.AUDIO: ("音声", "ボイスメッセージ", "audio", "voice"),
    MessageType.VIDEO: ("動画", "video"),
}
_LABELS = {label: kind for kind, labels in _PLACEHOLDER_TYPES.items() for label in labels}
# When a marker is one (anything else stays a text message, whole):
# - image, file, audio, video: nothing after the marker, or a file name: one line of at most
#   255 characters (a file system's limit) ending in an extension (`.` and 1-8 ASCII letters or
#   digits after at least one other character), without `/`, `\` or control characters;
# - sticker: nothing, or one line of at most 100 characters (kept as the message text);
# - location: one line of at most 255 characters (the place, kept as the message text).
MAX_FILE_NAME = 255
_FILE_NAME = re.compile(r"[^/\\\x00-\x1f\x7f]*[^./\\\s\x00-\x1f\x7f]\.[0-9A-Za-z]{1,8}")
_DETAIL_LIMITS = {MessageType.STICKER: 100, MessageType.LOCATION: 255}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DOWNLOAD_ERROR = "downloadlogs error"
_MAX_ID = 64  # rooms.id, lw_users.id, line_users.id
_BOM = b"\xef\xbb\xbf"
# Times a talk can have: LINE WORKS did not exist before 2000, and every zone's local time of
# a moment in this range (the transcripts' and windows' arithmetic) is one Python can hold.
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
_CSV_PROBLEMS = (
    "field larger than field limit",
    "unexpected end of data",
    "new-line character seen in unquoted field",
    "expected after",
)


class ImportFileError(Exception):
    """The file as a whole cannot be imported (missing, not an export, header not UTF-8)."""


class RowProblem(ValueError):
    """Why one row cannot be imported: a reason code and a reason that never quotes the row."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Party:
    """A sender or receiver as the export names it."""

    name: str
    account_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}({self.account_id})" if self.account_id else self.name


class ExportRow(NamedTuple):
    """One message of the export, parsed; `line` is its first physical line in the file (a
    named tuple: a million are made per window, at a fifth of a frozen dataclass's cost)."""

    line: int
    channel_id: str
    sent_at: dt.datetime
    sender: Party
    receivers: tuple[Party, ...]
    message_type: str
    text: str | None
    file_name: str | None
    end_line: int = 0  # its last physical line
    party_cells: str = ""  # 送信者 and 受信者 as written: equal cells name the same parties


def parse_time(value: str, zone: ZoneInfo) -> dt.datetime:
    """A timezone-aware time; a time without offset is local to `zone`.

    `RowProblem` (a `ValueError`) when it is not a time, or not one between `EARLIEST` and
    `LATEST` (year 1, year 9999 at -05:00, offsets of a day or more).
    """
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise RowProblem("unreadable_time", "unreadable time in 日時 (like 2026/01/09 10:00:00)")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0").ljust(6, "0"))
    parts = (int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
    try:
        moment = dt.datetime(*parts, tzinfo=zone if offset is None else _offset(offset))
        utc = moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise RowProblem(
            "unreadable_time",
            "unreadable time in 日時: not a calendar date, time of day and UTC offset"
            " (offsets are less than 24 hours)",
        ) from None
    if not EARLIEST <= utc < LATEST:
        raise RowProblem("time_out_of_range", "time in 日時 outside 2000-01-01 to 2099-12-31 (UTC)")
    return moment


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


# An export repeats the same few cells (a room's parties, a second's time) on many rows: the
# parsers of those cells are cached, bounded. Equal cells give equal (immutable) results.
_CELL_CACHE = 4_096
# A cell that fails its checks raises each time (an exception is not cached).


@functools.lru_cache(_CELL_CACHE)
def _sender_cell(value: str) -> Party | None:
    party = parse_party(value)
    _check_parties((party,) if party else ())
    return party


@functools.lru_cache(_CELL_CACHE)
def _receivers_cell(value: str) -> tuple[Party, ...]:
    parties = parse_parties(value)
    _check_parties(parties)
    return parties


_time_cell = functools.lru_cache(_CELL_CACHE)(parse_time)


def classify_talk(talk: str) -> tuple[str, str | None, str | None]:
    """(message type, text, file name): a marker like `[画像] a.jpg` becomes that type when
    what follows it fits the type (rules above `MAX_FILE_NAME`); any other talk is text, whole.
    """
    if _OPENING.match(talk) is None:
        return _TEXT, talk, None
    match = _PLACEHOLDER.fullmatch(talk.strip())
    kind = _LABELS.get(match["label"].strip().lower()) if match else None
    if match is None or kind is None:
        return _TEXT, talk, None
    detail = match["detail"].strip() or None
    if kind in _DETAIL_LIMITS:
        fits = detail is None or (len(detail) <= _DETAIL_LIMITS[kind] and "\n" not in detail)
        return (kind.value, detail, None) if fits else (_TEXT, talk, None)
    if detail is None or is_file_name(detail):
        return kind.value, None, detail
    return _TEXT, talk, None


def is_file_name(text: str) -> bool:
    """One line that can be an attachment's file name (see the rules above `MAX_FILE_NAME`)."""
    return len(text) <= MAX_FILE_NAME and _FILE_NAME.fullmatch(text) is not None


def _column_positions(line: int, header: Sequence[str]) -> dict[str, int]:
    names = [cell.strip().lstrip("\ufeff").lower() for cell in header]
    positions = {}
    for column, aliases in _COLUMNS.items():
        found = [i for i, name in enumerate(names) if name in aliases]
        if not found:
            raise ImportFileError(
                f"line {line} is not a LINE WORKS export header: expected the columns"
                " 日時,送信者,受信者,チャンネルID,トーク (or Date,Sender,Receiver,Channel ID,Talk)"
                f" in any order, found {len(header)} columns that are not these"
            )
        positions[column] = found[0]
    return positions


def decoded_lines(stream: Iterable[bytes] | Iterable[str], bad: dict[int, str]) -> Iterator[str]:
    """The physical lines of an export as text (a leading BOM dropped).

    A line that is not UTF-8 is passed on with U+FFFD in place of its bad bytes (so the CSV
    structure around it stays) and its number goes into `bad` with the decoder's reason.
    """
    number = 0
    for chunk in stream:
        if isinstance(chunk, str):  # already text (tests, an in-memory export)
            number += 1
            yield chunk
            continue
        for raw in chunk.splitlines(keepends=True):  # also a lone CR ends a line
            number += 1
            data = raw.removeprefix(_BOM) if number == 1 else raw
            try:
                yield data.decode("utf-8")
            except UnicodeDecodeError as error:
                bad[number] = error.reason  # "invalid start byte": never the bytes
                yield data.decode("utf-8", errors="replace")


def _csv_reason(error: csv.Error) -> str:
    """What the CSV reader found, from a known list (its messages are not passed on)."""
    text = str(error)
    known = next((problem for problem in _CSV_PROBLEMS if problem in text), None)
    return f"unreadable CSV ({known})" if known else "unreadable CSV"


def export_zone(name: str) -> ZoneInfo:
    """The time zone of an export's times without an offset; unknown names refuse the file."""
    try:
        return zone(name)
    except ValueError as error:
        raise ImportFileError(str(error)) from error


class ExportReader:
    """Streams an export: `ExportRow`s and `Rejection`s in file order, with line numbers.

    `stream` is the file in binary (decoded here, line by line) or text.
    """

    def __init__(self, stream: BinaryIO | TextIO, timezone: str = DEFAULT_TIMEZONE) -> None:
        self.undecodable: dict[int, str] = {}  # physical line -> decoder's reason
        self.reader = csv.reader(decoded_lines(stream, self.undecodable))
        self.zone = export_zone(timezone)
        self.columns: dict[str, int] = {}
        self.cells: Callable[[list[str]], tuple[str, ...]] = tuple  # time, sender,
        # receivers, channel, talk of a row
        self.width = 0
        self.warnings: list[str] = []
        self.download_error = False

    def __iter__(self) -> Iterator[ExportRow | Rejection]:
        for line, end_line, cells in self._records():
            undecodable = self._undecodable(line, end_line)
            if not self.columns:
                self._header(line, cells, undecodable)
            elif undecodable:
                yield undecodable
            elif isinstance(cells, csv.Error):
                yield Rejection(line, _csv_reason(cells), end_line, "unreadable_csv")
            else:
                yield self._row(line, end_line, cells)
        if not self.columns:
            raise ImportFileError("not a LINE WORKS message export: the file has no header")

    def _undecodable(self, line: int, end_line: int) -> Rejection | None:
        """The rejection of a record with a line that is not UTF-8 (its first such line)."""
        if not self.undecodable:
            return None
        bad = sorted(n for n in self.undecodable if n <= end_line)
        if not bad:
            return None
        reason = self.undecodable[bad[0]]
        for number in bad:
            del self.undecodable[number]
        return Rejection(
            line, f"line {bad[0]} is not UTF-8 ({reason}): export as UTF-8", end_line, "not_utf8"
        )

    def _header(self, line: int, cells: list[str] | csv.Error, bad: Rejection | None) -> None:
        if bad is not None:
            raise ImportFileError(f"{bad.reason.split(':')[0]}: export the file as UTF-8")
        if isinstance(cells, csv.Error):
            raise ImportFileError(
                f"line {line} is not a LINE WORKS export header ({_csv_reason(cells)})"
            )
        self.columns, self.width = _column_positions(line, cells), len(cells)
        self.cells = operator.itemgetter(*(self.columns[name] for name in _COLUMNS))

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
            except UnicodeDecodeError as error:  # a text stream that decodes strictly
                raise ImportFileError(
                    f"line {start} is not UTF-8 ({error.reason}): export the file as UTF-8"
                ) from None
            if (cells and cells[0].strip()) or any(cell.strip() for cell in cells):
                yield start, self.reader.line_num, cells

    def _row(self, line: int, end_line: int, cells: list[str]) -> ExportRow | Rejection:
        try:
            return self._parse(line, end_line, cells)
        except RowProblem as problem:
            return Rejection(line, problem.reason, end_line, problem.code)
        except (ValueError, OverflowError) as error:  # never its text: it may quote the row
            return Rejection(line, f"unreadable row ({type(error).__name__})", end_line)

    def _parse(self, line: int, end_line: int, cells: list[str]) -> ExportRow:
        if not cells[0][:1].isdigit() and cells[0].strip().lower().startswith(_DOWNLOAD_ERROR):
            self.download_error = True
            raise RowProblem(
                "download_error", "the export reports a download error here: download again"
            )
        if len(cells) != self.width:
            raise RowProblem("columns", f"expected {self.width} columns, found {len(cells)}")
        if "\x00" in "".join(cells):
            raise RowProblem("nul", "a NUL character (0x00), which the store cannot hold")
        time, sender_cell, receivers, channel, talk = self.cells(cells)
        channel = channel.strip()
        if not channel:
            raise RowProblem("empty_channel", "empty channel id")
        sent_at = _time_cell(time, self.zone)
        sender = _sender_cell(sender_cell)
        if sender is None:
            raise RowProblem("empty_sender", "empty sender")
        parties = _receivers_cell(receivers)
        _checked_channel(channel)
        if "\r" in talk:
            talk = talk.replace("\r\n", "\n").replace("\r", "\n")
        message_type, text, file_name = classify_talk(talk)
        return ExportRow(
            line, channel, sent_at, sender, parties, message_type, text, file_name, end_line,
            f"{sender_cell}\x1f{receivers}",
        )  # fmt: skip


def _check_channel(channel: str) -> None:
    if len(channel) > _MAX_ID:
        raise RowProblem("long_id", f"channel id longer than {_MAX_ID} characters")
    if _CONTROL.search(channel):
        raise RowProblem("control_character", "control characters in the channel id")


def _check_parties(parties: tuple[Party, ...]) -> None:
    for party in parties:
        if party.account_id and len(party.account_id) > _MAX_ID:
            raise RowProblem("long_id", f"account id longer than {_MAX_ID} characters")


_checked_channel = functools.lru_cache(_CELL_CACHE)(_check_channel)


def read_export(
    path: str | Path, timezone: str = DEFAULT_TIMEZONE
) -> Iterator[ExportRow | Rejection]:
    """Parse an export file (for inspection and tests); see `import_export` to store it."""
    with open_export(path) as stream:
        yield from ExportReader(stream, timezone)


def open_export(path: str | Path) -> BinaryIO:
    """The export file, binary (`ExportReader` decodes it); `ImportFileError` when missing."""
    file = Path(path)
    if not file.is_file():
        raise ImportFileError(f"export file not found: {file}")
    return file.open("rb")
